"""API errors are JSON, whatever goes wrong with the request."""

import json

import pytest
from django.conf import settings

from tests.factories import UserFactory


@pytest.mark.django_db
def test_an_oversized_json_body_is_a_json_413(client):
    client.force_login(UserFactory(username="big"))
    body = json.dumps({"summary": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})

    response = client.post("/api/v1/applications/", body, content_type="application/json")

    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    assert "too large" in response.json()["detail"]
