"""Maintainers set the timeout of their project's test recipe (10 s to 4 h, the model's bounds),
on the listing page and through the API; audited and revertible like the rest of the recipe."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from ci_runners.models import MAX_CELL_TIMEOUT_S, ProjectTestConfig
from registry.models import ListingChange
from tests.factories import UserFactory
from tests.registry.factories import MaintainerIdentityFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return ProjectFactory(slug="torchgood", maintainers=["owner1"])


@pytest.fixture
def owner():
    return MaintainerIdentityFactory(github_handle="owner1", verified=True).user


def recipe_api(user) -> tuple[APIClient, str]:
    api = APIClient()
    api.force_authenticate(user)
    return api, "/api/v1/maintained-projects/torchgood/test-recipe/"


def test_the_api_reads_and_sets_the_timeout(project, owner):
    api, url = recipe_api(owner)
    assert api.get(url).json()["timeout_s"] == 900  # no config yet: the default

    response = api.patch(url, {"timeout_s": 3600}, format="json")

    assert response.status_code == 200 and response.json()["timeout_s"] == 3600
    assert ProjectTestConfig.objects.get(project=project).timeout_s == 3600
    change = ListingChange.objects.get(project=project, field="test_recipe")
    assert (change.old_value, change.new_value) == ({"timeout_s": 900}, {"timeout_s": 3600})

    staff, _ = recipe_api(UserFactory(is_staff=True))
    reverted = staff.post(f"/api/v1/maintained-projects/torchgood/changes/{change.pk}/revert/")
    assert reverted.status_code in (200, 201)
    assert ProjectTestConfig.objects.get(project=project).timeout_s == 900


@pytest.mark.parametrize("value", [5, MAX_CELL_TIMEOUT_S + 1, "soon", None])
def test_the_api_refuses_a_timeout_out_of_bounds(project, owner, value):
    api, url = recipe_api(owner)

    response = api.patch(url, {"timeout_s": value}, format="json")

    assert response.status_code == 400 and "timeout_s" in response.json()
    assert not ProjectTestConfig.objects.filter(project=project).exclude(timeout_s=900).exists()


def test_another_user_cannot_set_it(project):
    api, url = recipe_api(UserFactory())
    assert api.patch(url, {"timeout_s": 60}, format="json").status_code in (403, 404)
    assert not ProjectTestConfig.objects.filter(project=project).exists()


def test_the_page_sets_the_timeout_and_shows_it(client, project, owner):
    client.force_login(owner)
    url = reverse("reviews:project_recipe", args=[project.slug])

    assert client.post(url, {"timeout_s": "1200"}).status_code == 302
    assert ProjectTestConfig.objects.get(project=project).timeout_s == 1200
    page = client.get(reverse("reviews:project_manage", args=[project.slug])).content.decode()
    assert 'name="timeout_s"' in page and 'value="1200"' in page

    refused = client.post(url, {"timeout_s": str(MAX_CELL_TIMEOUT_S + 1)})
    assert refused.status_code == 400
    assert ProjectTestConfig.objects.get(project=project).timeout_s == 1200
