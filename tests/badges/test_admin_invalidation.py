"""Staff edits in the admin drop the project's cached badges like the services do."""

import json

import pytest
from django.urls import reverse

from tests.registry.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def badge_message(client, slug):
    return json.loads(client.get(f"/badges/{slug}/ecosystem.json").content)["message"]


def change_form_data(project, **changes):
    data = {
        "slug": project.slug,
        "name": project.name,
        "kind": project.kind,
        "status": project.status,
        "repo_state": project.repo_state,
        "additional_repos": "[]",
        "maintainers": "[]",
        "flags": "[]",
        "landscape_extra": "{}",
        "snapshots-TOTAL_FORMS": "0",
        "snapshots-INITIAL_FORMS": "0",
    }
    data.update(changes)
    return data


def test_status_changed_in_the_admin_shows_on_the_badge(admin_client, client):
    project = ProjectFactory(slug="torchgeo", name="TorchGeo")
    assert badge_message(client, "torchgeo") == "active"  # now cached

    url = reverse("admin:registry_project_change", args=[project.pk])
    response = admin_client.post(url, change_form_data(project, status="retired"))

    assert response.status_code == 302, response.content[:500]
    assert badge_message(client, "torchgeo") == "retired"


def test_renamed_slug_in_the_admin_leaves_no_stale_badge(admin_client, client):
    project = ProjectFactory(slug="oldname", name="Old")
    assert badge_message(client, "oldname") == "active"

    url = reverse("admin:registry_project_change", args=[project.pk])
    response = admin_client.post(url, change_form_data(project, slug="newname"))

    assert response.status_code == 302
    assert badge_message(client, "oldname") == "unknown"
    assert badge_message(client, "newname") == "active"
