"""Throttles know a client by the address the web server saw. uvicorn already replaces it with
X-Forwarded-For's when the request came through the trusted proxy; a client that sends the
header itself must not become a new client with each value."""

import pytest
from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/categories/", "/badges/ghost/compat.svg"])
def test_a_forged_forwarded_for_does_not_reset_the_count(client, monkeypatch, path):
    cache.clear()
    monkeypatch.setattr(
        SimpleRateThrottle,
        "THROTTLE_RATES",
        {"anon": "2/minute", "user": None, "badge": "2/minute"},
    )

    statuses = [
        client.get(path, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(4)
    ]

    assert statuses == [200, 200, 429, 429]
