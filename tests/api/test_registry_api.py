"""Registry endpoints: projects (filters, ordering, health, works-with, badge links),
categories, the landscape export, pagination and throttling."""

from datetime import timedelta

import pytest
import yaml
from django.utils import timezone

from tests.factories import UserFactory
from tests.registry.factories import CategoryFactory, ProjectFactory, RepoSnapshotFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def landscape(db):
    modeling = CategoryFactory(name="Modeling", slug="modeling", position=1)
    vision = CategoryFactory(name="Vision", slug="vision", parent=modeling)
    training_root = CategoryFactory(name="Training", slug="training", position=2)
    training = CategoryFactory(name="Distributed", slug="distributed", parent=training_root)
    geo = ProjectFactory(
        slug="torchgeo",
        name="TorchGeo",
        category=vision,
        repository="microsoft/torchgeo",
        description="Geospatial datasets",
        works_with=["2.13", "2.14"],
        breaks_with=["2.12"],
        not_installable_with=["2.15"],
        review_state="accepted",
    )
    ProjectFactory(slug="deepspeed", name="DeepSpeed", kind="hosted", category=training)
    ProjectFactory(slug="oldie", name="Oldie", status="retired", category=vision)
    now = timezone.now()
    RepoSnapshotFactory(project=geo, taken_at=now - timedelta(days=2), checked_at=now, stars=10)
    RepoSnapshotFactory(project=geo, taken_at=now, checked_at=now, stars=2500, has_license=True)
    return geo


def slugs(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [p["slug"] for p in response.json()["results"]]


def test_project_list_defaults_to_active(api, landscape):
    assert slugs(api.get("/api/v1/projects/")) == ["deepspeed", "torchgeo"]
    assert slugs(api.get("/api/v1/projects/?status=all")) == ["deepspeed", "oldie", "torchgeo"]
    assert slugs(api.get("/api/v1/projects/?status=retired")) == ["oldie"]


def test_project_filters_and_ordering(api, landscape):
    assert slugs(api.get("/api/v1/projects/?kind=hosted")) == ["deepspeed"]
    assert slugs(api.get("/api/v1/projects/?category=modeling&status=all")) == [
        "oldie",
        "torchgeo",
    ]
    assert slugs(api.get("/api/v1/projects/?category=vision")) == ["torchgeo"]
    assert slugs(api.get("/api/v1/projects/?search=geospatial")) == ["torchgeo"]
    assert slugs(api.get("/api/v1/projects/?search=MICROSOFT")) == ["torchgeo"]
    assert slugs(api.get("/api/v1/projects/?ordering=-name")) == ["torchgeo", "deepspeed"]


def test_bad_filter_values_are_400_with_a_message(api, landscape):
    response = api.get("/api/v1/projects/?kind=spaceship")
    assert response.status_code == 400
    assert "kind" in response.json()
    assert api.get("/api/v1/projects/?status=zombie").status_code == 400


def test_project_detail(api, landscape):
    response = api.get("/api/v1/projects/torchgeo/")
    assert response.status_code == 200
    data = response.json()
    assert data["works_with"] == ["2.13", "2.14"]
    assert data["breaks_with"] == ["2.12"]
    assert data["not_installable_with"] == ["2.15"]  # does not work with it; not an error
    assert data["review_state"] == "accepted"
    assert data["repository"] == "microsoft/torchgeo"
    assert data["category"]["path"] == "Modeling / Vision"
    assert data["health"]["stars"] == 2500 and data["health"]["has_license"] is True
    assert data["badges"]["compat"] == {
        "svg": "http://testserver/badges/torchgeo/compat.svg",
        "json": "http://testserver/badges/torchgeo/compat.json",
    }
    assert data["html_url"] == "http://testserver/projects/torchgeo/"
    # A retired project is still found by its slug; an unknown one is a 404.
    assert api.get("/api/v1/projects/oldie/").json()["status"] == "retired"
    assert api.get("/api/v1/projects/nope/").status_code == 404
    assert api.get("/api/v1/projects/deepspeed/").json()["health"] is None


def test_project_list_query_count_does_not_grow(api, landscape, django_assert_max_num_queries):
    ProjectFactory.create_batch(10)
    with django_assert_max_num_queries(3):  # count, page, latest snapshots
        assert len(slugs(api.get("/api/v1/projects/"))) == 12


def test_pagination(api, db):
    ProjectFactory.create_batch(55)
    first = api.get("/api/v1/projects/").json()
    assert first["count"] == 55 and len(first["results"]) == 50 and first["next"]
    second = api.get(first["next"]).json()
    assert len(second["results"]) == 5 and second["next"] is None


def test_categories(api, landscape):
    data = api.get("/api/v1/categories/").json()
    by_slug = {c["slug"]: c for c in data["results"]}
    assert by_slug["vision"]["parent"] == "modeling"
    assert by_slug["vision"]["path"] == "Modeling / Vision"
    assert by_slug["modeling"]["parent"] is None
    children = api.get("/api/v1/categories/?parent__slug=modeling").json()["results"]
    assert [c["slug"] for c in children] == ["vision"]


def test_landscape_export_json_and_yaml(api, landscape):
    as_json = api.get("/api/v1/landscape/")
    assert as_json.status_code == 200 and as_json["Content-Type"] == "application/json"
    document = as_json.json()
    names = [
        item["name"]
        for category in document["landscape"]
        for sub in category["subcategories"]
        for item in sub["items"]
    ]
    assert sorted(names) == ["DeepSpeed", "Oldie", "TorchGeo"]
    as_yaml = api.get("/api/v1/landscape/?format=yaml")
    assert as_yaml.status_code == 200
    assert as_yaml["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.content) == document
    negotiated = api.get("/api/v1/landscape/", HTTP_ACCEPT="application/yaml")
    assert yaml.safe_load(negotiated.content) == document


def test_read_endpoints_refuse_writes(api, landscape):
    assert api.post("/api/v1/projects/", {"slug": "x"}).status_code in (401, 403, 405)
    staff = UserFactory(username="staff", is_staff=True, is_superuser=True)
    api.force_authenticate(staff)
    assert api.post("/api/v1/projects/", {"slug": "x"}).status_code == 405
    assert api.delete("/api/v1/projects/torchgeo/").status_code == 405
    assert api.put("/api/v1/categories/1/", {}).status_code == 405


def test_anonymous_throttle(api, landscape, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "2/minute", "user": None})
    statuses = [api.get("/api/v1/categories/").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
