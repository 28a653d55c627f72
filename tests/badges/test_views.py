"""Badge endpoints on the Django side: headers, conditional requests, unknown projects, the
cache (no query when cached, one when not) and its invalidation through the registry services."""

import json
from datetime import date

import pytest
from defusedxml import ElementTree
from django_redis import get_redis_connection

from registry import services
from registry.badge_cache import badge_cache_key, badge_key_prefix
from registry.models import Project
from registry.repository_urls import Repository
from tests.registry.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def url(slug: str, kind: str, fmt: str = "svg") -> str:
    return f"/badges/{slug}/{kind}.{fmt}"


def cached(slug: str, kind: str, fmt: str) -> bytes | None:
    key = badge_cache_key(badge_key_prefix(), slug, kind, fmt)
    return get_redis_connection("default").get(key)


def message_of(client, slug: str, kind: str) -> str:
    return json.loads(client.get(url(slug, kind, "json")).content)["message"]


def test_svg_headers(client):
    ProjectFactory(slug="torchgeo", works_with=["2.13", "2.14"])
    response = client.get(url("torchgeo", "compat"))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert response["Cache-Control"] == "max-age=300, stale-while-revalidate=86400"
    assert response["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert response["X-Content-Type-Options"] == "nosniff"
    etag = response["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    root = ElementTree.fromstring(response.content)
    assert root.get("aria-label") == "pytorch: 2.13 | 2.14"


def test_json_is_the_shields_endpoint_document(client):
    ProjectFactory(slug="torchgeo", status=Project.Status.RETIRED)
    response = client.get(url("torchgeo", "ecosystem", "json"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "Content-Security-Policy" not in response
    assert json.loads(response.content) == {
        "schemaVersion": 1,
        "label": "pytorch ecosystem",
        "message": "retired",
        "color": "lightgrey",
        "cacheSeconds": 300,
    }


def test_if_none_match_gives_304(client):
    ProjectFactory(slug="torchgeo")
    first = client.get(url("torchgeo", "review"))
    etag = first["ETag"]
    again = client.get(url("torchgeo", "review"), HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    assert again["Cache-Control"] == "max-age=300, stale-while-revalidate=86400"
    listed = client.get(url("torchgeo", "review"), HTTP_IF_NONE_MATCH=f'"other", W/{etag}')
    assert listed.status_code == 304
    stale = client.get(url("torchgeo", "review"), HTTP_IF_NONE_MATCH='"not-it"')
    assert stale.status_code == 200 and stale.content == first.content


@pytest.mark.parametrize("kind", ["ecosystem", "compat", "review"])
def test_unknown_slug_is_a_grey_200(client, kind):
    response = client.get(url("no-such-project", kind))
    assert response.status_code == 200
    root = ElementTree.fromstring(response.content)
    assert root.get("aria-label").endswith(": unknown")
    assert "#9f9f9f" in response.content.decode()
    document = json.loads(client.get(url("no-such-project", kind, "json")).content)
    assert (document["message"], document["color"]) == ("unknown", "lightgrey")


def test_absurd_slug_is_unknown_and_not_cached(client, django_assert_num_queries):
    slug = "a" * 5000
    with django_assert_num_queries(0):
        response = client.get(url(slug, "compat"))
    assert response.status_code == 200
    assert cached(slug, "compat", "svg") is None


def test_unknown_kind_or_format_is_404(client):
    ProjectFactory(slug="torchgeo")
    assert client.get("/badges/torchgeo/stars.svg").status_code == 404
    assert client.get("/badges/torchgeo/compat.png").status_code == 404


def test_only_get_and_head(client):
    ProjectFactory(slug="torchgeo")
    assert client.post(url("torchgeo", "compat")).status_code == 405
    head = client.head(url("torchgeo", "compat"))
    assert head.status_code == 200 and head["ETag"]


def test_uncached_costs_one_query_cached_costs_none(client, django_assert_num_queries):
    ProjectFactory(slug="torchgeo", works_with=["2.14"])
    with django_assert_num_queries(1):
        first = client.get(url("torchgeo", "compat"))
    # One miss filled every badge of the project.
    for kind in ("ecosystem", "compat", "review"):
        for fmt in ("svg", "json"):
            assert cached("torchgeo", kind, fmt) is not None
    with django_assert_num_queries(0):
        second = client.get(url("torchgeo", "compat"))
        client.get(url("torchgeo", "review", "json"))
        client.get(url("torchgeo", "compat"), HTTP_IF_NONE_MATCH=first["ETag"])
    assert second.content == first.content and second["ETag"] == first["ETag"]


def test_unknown_slug_uncached_one_query_then_none(client, db, django_assert_num_queries):
    with django_assert_num_queries(1):
        client.get(url("ghost", "compat"))
    with django_assert_num_queries(0):
        client.get(url("ghost", "compat"))


def test_compat_change_drops_the_cached_badges(client):
    project = ProjectFactory(slug="torchgeo", works_with=["2.13"])
    assert message_of(client, "torchgeo", "compat") == "2.13"
    etag = client.get(url("torchgeo", "compat"))["ETag"]
    services.project_set_compat_summary(
        project=project, works_with=["2.13", "2.14"], breaks_with=["2.15"]
    )
    assert cached("torchgeo", "compat", "svg") is None
    assert message_of(client, "torchgeo", "compat") == "2.13 | 2.14, fails 2.15"
    assert client.get(url("torchgeo", "compat"), HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_a_version_the_project_cannot_be_installed_with_shows_on_both_formats(client):
    """SVG and JSON say "not installable" in orange: a compatibility fact, never an error."""
    project = ProjectFactory(slug="torchgeo", works_with=["2.13"])
    assert message_of(client, "torchgeo", "compat") == "2.13"
    services.project_set_compat_summary(
        project=project, works_with=["2.13"], breaks_with=[], not_installable_with=["2.14"]
    )
    document = json.loads(client.get(url("torchgeo", "compat", "json")).content)
    assert document["message"] == "2.13, not installable 2.14"
    assert document["color"] == "orange"
    svg = ElementTree.fromstring(client.get(url("torchgeo", "compat", "svg")).content)
    title = svg.find("{http://www.w3.org/2000/svg}title").text
    assert title == "pytorch: 2.13, not installable 2.14"
    assert "error" not in client.get(url("torchgeo", "compat", "svg")).content.decode()
    assert '#fe7d37"' in client.get(url("torchgeo", "compat", "svg")).content.decode()


def test_review_change_drops_the_cached_badges(client):
    project = ProjectFactory(slug="torchgeo")
    assert message_of(client, "torchgeo", "review") == "none"
    services.project_set_review_state(project=project, review_state="in_review")
    assert message_of(client, "torchgeo", "review") == "in review"
    services.project_set_review_state(project=project, review_state="accepted")
    assert message_of(client, "torchgeo", "review") == "accepted"


def test_status_change_drops_the_cached_badges(client):
    project = ProjectFactory(slug="torchgeo")
    assert message_of(client, "torchgeo", "ecosystem") == "active"
    services.project_retire(project=project)
    assert message_of(client, "torchgeo", "ecosystem") == "retired"


def test_onboarding_replaces_a_cached_unknown(client, db):
    assert message_of(client, "torchgeo", "ecosystem") == "unknown"
    project = services.project_onboard(
        name="TorchGeo",
        repository=Repository(owner="microsoft", name="torchgeo"),
        category=None,
        kind=Project.Kind.HOSTED,
        accepted_on=date(2025, 1, 1),
    )
    assert project.slug == "torchgeo"
    assert message_of(client, "torchgeo", "ecosystem") == "hosted"


def test_hostile_review_state_is_escaped_end_to_end(client):
    project = ProjectFactory(slug="torchgeo")
    services.project_set_review_state(project=project, review_state="</text><script>x</script>")
    body = client.get(url("torchgeo", "review")).content.decode()
    assert "<script" not in body and "&lt;script&gt;" in body
    root = ElementTree.fromstring(body)
    for element in root.iter():
        assert not any(name.startswith("on") for name in element.attrib)


def test_badge_misses_are_throttled(client, db, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"badge": "3/minute"})
    statuses = [client.get(url(f"ghost-{n}", "compat")).status_code for n in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_a_hosted_projects_review_badge_says_hosted_and_when(client, db):
    ProjectFactory(slug="vllm", kind="hosted", accepted_on=date(2025, 4, 8))
    assert message_of(client, "vllm", "review") == "hosted, accepted 2025-04-08"


def test_a_project_imported_from_the_landscape_replaces_a_cached_unknown(client, db, tmp_path):
    import io

    from django.core.management import call_command

    assert message_of(client, "newcomer", "ecosystem") == "unknown"
    landscape = tmp_path / "landscape.yml"
    landscape.write_text(
        "landscape:\n  - category:\n    name: Training\n    subcategories:\n"
        "      - subcategory:\n        name: General\n        items:\n"
        "          - item:\n            name: Newcomer\n"
    )
    call_command("import_landscape", str(landscape), stdout=io.StringIO())
    assert message_of(client, "newcomer", "ecosystem") == "active"
