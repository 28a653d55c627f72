"""Public pages: the landscape (filters, htmx search) and the project page."""

import pytest
from django.urls import reverse

from registry.models import Project
from tests.registry.factories import (
    CategoryFactory,
    ProjectFactory,
    RepoSnapshotFactory,
    SubcategoryFactory,
)

pytestmark = pytest.mark.django_db


def names(response):
    return {p.name for p in response.context["page"]}


def article(body: str, name: str) -> str:
    """The HTML of the card of project `name` on a landscape page."""
    return next(card for card in body.split("<article")[1:] if f"<span>{name}</span>" in card)


def test_landscape_shows_active_projects_with_category_counts(client, imported_landscape):
    response = client.get(reverse("registry:landscape"))
    assert response.status_code == 200
    assert response.context["page"].paginator.count == 75  # 6 hosted + 69 ecosystem
    choices = response.context["landscape"].categories
    counts = {c.category.name: c.count for c in choices if c.category.parent_id is None}
    assert counts["PyTorch Projects"] == 6
    assert sum(counts.values()) == 75
    assert b"<html" in response.content and b'name="viewport"' in response.content


def test_landscape_groups_projects_by_category_and_subcategory(client, imported_landscape):
    landscape = client.get(reverse("registry:landscape")).context["landscape"]
    groups = {group.name: group for group in landscape.groups}
    assert list(groups) == ["Modeling", "Training", "Optimizations", "PyTorch Projects"]
    assert sum(group.count for group in landscape.groups) == 75
    for group in landscape.groups:
        assert group.count == sum(len(sub.projects) for sub in group.subgroups)
        for sub in group.subgroups:
            assert sub.count == len(sub.projects)
            names = [p.name for p in sub.projects]
            assert names == sorted(names, key=str.lower)  # case-insensitive, in each subcategory
    hosted = groups["PyTorch Projects"].subgroups[0]
    assert hosted.name == "Foundation" and hosted.count == 6

    body = client.get(reverse("registry:landscape")).content.decode()
    assert '<h2>PyTorch Projects <span class="count">6</span></h2>' in body
    assert body.count('<span class="pill hosted">hosted</span>') == 6


def test_a_category_filter_counts_only_that_category(client, imported_landscape):
    landscape = client.get(
        reverse("registry:landscape"), {"category": "modeling-computer-vision"}
    ).context["landscape"]
    assert [g.name for g in landscape.groups] == ["Modeling"]
    [group] = landscape.groups
    assert [sub.name for sub in group.subgroups] == ["Computer Vision"]
    assert group.count == group.subgroups[0].count == len(group.subgroups[0].projects)
    # The category menu still counts every category under the other filters.
    counts = {c.category.name: c.count for c in landscape.categories}
    assert counts["PyTorch Projects"] == 6


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


def test_cards_show_compatibility_and_health_at_a_glance(client, db):
    from django.utils import timezone

    sub = SubcategoryFactory(name="Vision", parent=CategoryFactory(name="Modeling"))
    geo = ProjectFactory(
        slug="torchgeo",
        name="TorchGeo",
        category=sub,
        works_with=["2.13.0"],
        breaks_with=["2.14.1"],
    )
    ProjectFactory(slug="quiet", name="Quiet", category=sub)
    RepoSnapshotFactory(project=geo, taken_at=timezone.now(), stars=12_345, commits_90d=87)

    body = client.get(reverse("registry:landscape")).content.decode()

    card = article(body, "TorchGeo")
    assert "✓ 2.13.0" in card and "✗ 2.14.1" in card
    assert 'class="pill fails latest"' in card  # the newest version any result names
    assert "★ 12.3k" in card and "87 commits / 90 d" in card
    quiet = article(body, "Quiet")
    assert "untested" in quiet and "health not measured yet" in quiet
    assert "latest PyTorch tested: 2.14.1" in body


def test_breaks_with_the_latest_pytorch_filter(client, db):
    ProjectFactory(
        slug="old-break", name="Old Break", breaks_with=["2.13.0"], works_with=["2.14.1"]
    )
    ProjectFactory(
        slug="new-break", name="New Break", works_with=["2.13.0"], breaks_with=["2.14.1"]
    )
    ProjectFactory(slug="untested", name="Untested")
    ProjectFactory(slug="gone", name="Gone", status="retired", breaks_with=["2.14.1"])
    landscape = reverse("registry:landscape")

    assert names(client.get(landscape, {"breaks": "latest"})) == {"New Break"}
    assert names(client.get(landscape, {"breaks": "latest", "status": "all"})) == {
        "New Break",
        "Gone",
    }
    assert len(names(client.get(landscape, {"breaks": "no"}))) == 3
    body = client.get(landscape).content.decode()
    assert "Breaks with the latest PyTorch (2.14.1)" in body


def test_cards_show_a_version_the_project_cannot_be_installed_with(client, db):
    """Not installable is shown as its own outcome (not a failure, not hidden), and a version
    only a not-installable result names still counts as the latest tested."""
    ProjectFactory(
        slug="pinned",
        name="Pinned",
        works_with=["2.13.0"],
        not_installable_with=["2.15.0"],
    )
    body = client.get(reverse("registry:landscape")).content.decode()
    card = article(body, "Pinned")
    assert "✓ 2.13.0" in card and "⊘ 2.15.0" in card
    assert 'class="pill not-installable latest"' in card
    assert 'title="cannot be installed with PyTorch 2.15.0 (the latest)"' in card
    assert "latest PyTorch tested: 2.15.0" in body


def test_not_installable_with_the_latest_counts_as_not_working_with_it(client, db):
    ProjectFactory(slug="pinned", name="Pinned", works_with=["2.13.0"],
                   not_installable_with=["2.14.1"])  # fmt: skip
    ProjectFactory(slug="fine", name="Fine", works_with=["2.14.1"])
    landscape = reverse("registry:landscape")
    assert names(client.get(landscape, {"breaks": "latest"})) == {"Pinned"}


def test_the_project_page_names_versions_it_cannot_be_installed_with(client, db):
    project = ProjectFactory(slug="pinned", name="Pinned", not_installable_with=["2.14.1"])
    body = client.get(project.get_absolute_url()).content.decode()
    assert "<dt>Not installable with PyTorch</dt><dd>2.14.1</dd>" in body


def test_breaks_filter_with_no_result_at_all_shows_nothing(client, db):
    ProjectFactory(slug="untested", name="Untested")
    assert names(client.get(reverse("registry:landscape"), {"breaks": "latest"})) == set()


def test_landscape_query_count_does_not_grow_with_projects(client, db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    def queries(**params) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("registry:landscape"), params).status_code == 200
        return len(captured)

    subs = [SubcategoryFactory() for _ in range(3)]
    for i in range(3):
        project = ProjectFactory(
            category=subs[i],
            works_with=["2.14.1"] if i else [],
            breaks_with=[] if i else ["2.14.1"],
        )
        RepoSnapshotFactory(project=project, taken_at=timezone.now())
    few, few_all = queries(), queries(status="all", breaks="latest", q="project")
    for i in range(40):
        project = ProjectFactory(category=subs[i % 3] if i % 5 else None, breaks_with=["2.14.1"])
        RepoSnapshotFactory(project=project, taken_at=timezone.now())
        RepoSnapshotFactory(project=project, taken_at=timezone.now())
    assert queries() == few
    assert queries(status="all", breaks="latest", q="project") == few_all
    assert few <= 8


def test_uncategorised_projects_come_last(client, db):
    ProjectFactory(slug="loose", name="Loose")
    ProjectFactory(slug="filed", name="Filed", category=SubcategoryFactory(name="Tools"))
    groups = client.get(reverse("registry:landscape")).context["landscape"].groups
    assert [g.name for g in groups] == [groups[0].name, "Uncategorised"]
    assert groups[1].count == 1 and groups[1].subgroups[0].projects[0].name == "Loose"


def test_project_page_charts_the_health_history(client, db):
    from datetime import timedelta

    from django.utils import timezone

    project = ProjectFactory(slug="torchgeo", name="TorchGeo", repository="geo/torchgeo")
    now = timezone.now()
    for months_ago in range(12, -1, -1):
        taken = now - timedelta(days=30 * months_ago)
        RepoSnapshotFactory(
            project=project,
            taken_at=taken,
            stars=1000 + 100 * (12 - months_ago),
            commits_90d=40 + months_ago,
            contributors_90d=5,
            latest_release=f"v0.{(12 - months_ago) // 4}",
            latest_release_at=now - timedelta(days=120 * (months_ago // 4)),
        )
    RepoSnapshotFactory(project=project, taken_at=now - timedelta(days=800), stars=1)  # too old

    body = client.get(project.get_absolute_url()).content.decode()

    start = body.index('<div class="health-charts">')
    charts = body[start : body.index("<dl", start)]
    assert charts.count("<svg") == 4
    assert charts.count("<polyline") == 3  # stars, commits, contributors
    assert "Stars: from 1k on " in charts and "to 2.2k on" in charts
    assert "style=" not in charts and "<script" not in charts
    assert "Releases" in charts and "v0.3" in charts


def test_project_page_shows_the_logo_and_hosted_projects_say_so(client, imported_landscape):
    vllm = Project.objects.get(slug="vllm")
    body = client.get(vllm.get_absolute_url()).content.decode()
    assert f'<img class="logo" src="/logos/{vllm.logo_file_id}/card" alt="vLLM logo">' in body
    assert '<span class="pill hosted">hosted</span>' in body
    assert "by the foundation, accepted 2025-04-08" in body
    assert "Not measured yet: the figures and their history appear after" in body


def test_project_page_query_count_does_not_grow_with_history(client, db):
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    project = ProjectFactory(slug="busy", repository="busy/busy")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(project.get_absolute_url()).status_code == 200
        return len(captured)

    RepoSnapshotFactory(project=project)
    few = queries()
    now = timezone.now()
    for hours in range(1, 200):
        RepoSnapshotFactory(project=project, taken_at=now - timedelta(hours=hours))
    assert queries() == few
