"""Public pages: the landscape (filters, htmx search) and the project page."""

import pytest
from django.urls import reverse

from registry.models import Project
from tests.registry.factories import ProjectFactory, RepoSnapshotFactory

pytestmark = pytest.mark.django_db


def names(response):
    return {p.name for p in response.context["page"]}


def test_landscape_shows_active_projects_with_category_counts(client, imported_landscape):
    response = client.get(reverse("registry:landscape"))
    assert response.status_code == 200
    assert response.context["page"].paginator.count == 75  # 6 hosted + 69 ecosystem
    counts = {c.name: c.project_count for c in response.context["categories"]}
    assert counts["PyTorch Projects"] == 6
    assert sum(counts.values()) == 75
    assert b"<html" in response.content and b'name="viewport"' in response.content


def test_retired_projects_show_only_when_asked(client, imported_landscape):
    landscape = reverse("registry:landscape")
    assert "Detectron2" not in names(client.get(landscape, {"q": "detectron"}))
    assert names(client.get(landscape, {"q": "detectron", "status": "retired"})) == {"Detectron2"}
    assert client.get(landscape, {"status": "all"}).context["page"].paginator.count == 143


def test_filters_by_kind_and_category(client, imported_landscape):
    landscape = reverse("registry:landscape")
    hosted = names(client.get(landscape, {"kind": "hosted"}))
    assert hosted == {"PyTorch", "DeepSpeed", "Ray", "vLLM", "Helion", "Safetensors"}
    vision = client.get(landscape, {"category": "modeling-computer-vision", "status": "all"})
    assert "Detectron2" in names(vision) and "vLLM" not in names(vision)


def test_search_as_you_type_returns_the_list_fragment(client, imported_landscape):
    response = client.get(reverse("registry:landscape"), {"q": "vllm"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b"<html" not in response.content
    assert "vLLM" in names(response) and "PyTorch" not in names(response)


def test_bad_filter_values_are_harmless(client, imported_landscape):
    landscape = reverse("registry:landscape")
    for params in [
        {"page": "abc"},
        {"page": "99999"},
        {"kind": "<script>"},
        {"status": "nope"},
        {"q": "x" * 5000},
        {"category": "missing"},
    ]:
        assert client.get(landscape, params).status_code == 200


def test_project_page_shows_health_with_its_date_and_flags(client, imported_landscape):
    from django.utils import timezone

    project = Project.objects.get(slug="vissl")
    taken = timezone.now()
    RepoSnapshotFactory(
        project=project,
        taken_at=taken,
        checked_at=taken,
        stars=3210,
        license_spdx="MIT",
        commits_90d=4,
        has_license=True,
    )
    response = client.get(project.get_absolute_url())
    body = response.content.decode()
    assert response.status_code == 200
    assert "3,210" in body and "MIT" in body and taken.strftime("%Y-%m-%d") in body
    assert "extra path parts dropped" in body


def test_unknown_project_is_a_404_page(client, db):
    assert client.get("/projects/no-such-project/").status_code == 404


def test_text_is_escaped(client, db):
    ProjectFactory(
        slug="evil", name="<script>alert(1)</script>", description='"><img src=x onerror=alert(1)>'
    )
    body = client.get("/projects/evil/").content.decode()
    assert "<script>alert(1)" not in body and "<img src=x" not in body
    assert "&lt;script&gt;" in body


def test_only_http_urls_become_links(client, db):
    """A URL that is not http(s) (from an old import, or written by hand) shows as text."""
    ProjectFactory(
        slug="odd",
        homepage_url="javascript:alert(document.cookie)",
        documentation_url="https://docs.example.org/odd",
    )
    body = client.get("/projects/odd/").content.decode()
    assert 'href="javascript:' not in body.lower()
    assert "javascript:alert(document.cookie)" in body
    assert 'href="https://docs.example.org/odd"' in body
