"""Loose ends of issue 15 on the registry's side: a candidate found by a later sync who signed
in before is a maintainer at once; the hosted review badge; the import's count of scheduled
reviews; the "Manage listing" link of the public project page."""

import io
import json

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from registry import badges
from registry.badge_cache import badge_key_prefix
from registry.models import ListingChange
from tests.factories import UserFactory
from tests.registry.factories import MaintainerIdentityFactory, ProjectFactory
from tests.registry.github_fixtures import AcmeProjectFactory, healthy_repository, synced

pytestmark = pytest.mark.django_db

CODEOWNERS = "* @Dora @erin @owner1\n"


def client_of(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


# --- candidates who signed in before the sync found them ---------------------------------------


def test_a_candidate_who_signed_in_before_is_a_maintainer_after_the_sync(fake_github):
    dora = MaintainerIdentityFactory(github_handle="dora", verified=True)
    MaintainerIdentityFactory(github_handle="erin", verified=False)  # not proven: waits
    healthy_repository(fake_github, files=["CODEOWNERS"], contents={"CODEOWNERS": CODEOWNERS})

    project = synced(AcmeProjectFactory(maintainers=["owner1"]))

    assert project.maintainers == ["owner1", "dora"]  # as the sign-in spelled it
    assert project.maintainer_candidates == [{"handle": "erin", "source": "codeowners"}]
    change = ListingChange.objects.get(project=project, field="maintainers")
    assert (change.old_value, change.new_value) == (["owner1"], ["owner1", "dora"])
    assert change.actor is None  # the sync, not a person
    managed = client_of(dora.user).get(f"/api/v1/maintained-projects/{project.slug}/")
    assert managed.status_code == 200  # and so they manage the listing


def test_a_maintainer_already_is_not_added_twice(fake_github):
    MaintainerIdentityFactory(github_handle="Owner1", verified=True)
    healthy_repository(fake_github, files=["CODEOWNERS"], contents={"CODEOWNERS": CODEOWNERS})

    project = synced(AcmeProjectFactory(maintainers=["owner1"]))

    assert project.maintainers == ["owner1"]
    assert not ListingChange.objects.filter(project=project).exists()
    assert {c["handle"] for c in project.maintainer_candidates} == {"Dora", "erin"}


# --- the hosted review badge -------------------------------------------------------------------


def test_the_hosted_since_review_state_is_shown_in_the_hosted_colour():
    summary = badges.ProjectSummary("hosted", "active", review_state="hosted since 2025-04-08")
    badge = badges.badge_for("review", summary)
    assert (badge.message, badge.color) == ("hosted since 2025-04-08", "blue")


def test_the_hosted_since_badge_served_blue(client):
    slug = "hosted-since-badge"
    redis = get_redis_connection("default")
    stale = list(redis.scan_iter(match=f"{badge_key_prefix()}:*{slug}*"))
    if stale:
        redis.delete(*stale)
    ProjectFactory(slug=slug, kind="hosted", review_state="hosted since 2025-04-08")

    document = json.loads(client.get(f"/badges/{slug}/review.json").content)
    svg = client.get(f"/badges/{slug}/review.svg").content.decode()

    assert (document["message"], document["color"]) == ("hosted since 2025-04-08", "blue")
    assert f'fill="{badges.COLORS["blue"]}"' in svg and "hosted since 2025-04-08" in svg


# --- the import reports the reviews it scheduled -----------------------------------------------


def test_import_landscape_prints_the_reviews_scheduled(tmp_path):
    landscape = tmp_path / "landscape.yml"
    landscape.write_text(
        "landscape:\n  - category:\n    name: Training\n    subcategories:\n"
        "      - subcategory:\n        name: General\n        items:\n"
        "          - item:\n            name: Newcomer\n"
        "          - item:\n            name: Second\n"
    )
    out = io.StringIO()

    call_command("import_landscape", str(landscape), stdout=out)
    again = io.StringIO()
    call_command("import_landscape", str(landscape), stdout=again)

    assert "reviews: 2 active projects given a next periodic review date" in out.getvalue()
    assert "reviews: 0 active projects given a next periodic review date" in again.getvalue()


# --- "Manage listing" on the public project page -----------------------------------------------


def manage_link(client, project) -> bool:
    page = client.get(project.get_absolute_url())
    assert page.status_code == 200
    return f'href="/reviews/my-projects/{project.slug}/"' in page.content.decode()


def test_the_manage_link_is_shown_to_who_manages_the_project(client):
    project = ProjectFactory(slug="torchgood", maintainers=["Owner1"])
    owner = MaintainerIdentityFactory(github_handle="owner1", verified=True).user
    unproven = MaintainerIdentityFactory(github_handle="Owner1x", verified=False).user

    assert not manage_link(client, project)  # a visitor
    client.force_login(UserFactory())
    assert not manage_link(client, project)
    client.force_login(unproven)
    assert not manage_link(client, project)
    client.force_login(owner)
    assert manage_link(client, project)
    assert "Manage listing" in client.get(project.get_absolute_url()).content.decode()
    client.force_login(UserFactory(is_staff=True))
    assert manage_link(client, project)


def test_the_manage_link_costs_a_visitor_no_query(client):
    project = ProjectFactory(slug="torchgood", maintainers=["Owner1"])
    with CaptureQueriesContext(connection) as captured:
        client.get(project.get_absolute_url())
    assert captured.captured_queries
    assert not any("maintaineridentity" in q["sql"] for q in captured.captured_queries)
