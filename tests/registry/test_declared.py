"""Declared vs measured: the torch range a project's metadata declares, set against the
versions its latest cells work with, break with, or cannot be installed with; on the project
page and in the API's project detail."""

import pytest
from django.urls import reverse

from registry.declared import DisagreementKind, project_compatibility
from tests.registry.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def _project(**fields):
    return ProjectFactory(slug="declarer", name="Declarer", repository="org/declarer", **fields)


def test_a_break_inside_the_declared_range_is_a_broken_claim():
    project = _project(
        declared={"torch": ">=2.3", "requires_python": ">=3.9"},
        works_with=["2.13.0"],
        breaks_with=["2.14.1", "2.2.0"],
    )

    compat = project_compatibility(project=project)

    assert compat.declared == {"torch": ">=2.3", "requires_python": ">=3.9"}
    assert compat.works_with == ["2.13.0"]
    assert compat.breaks_with == ["2.2.0", "2.14.1"]
    # 2.2.0 is outside what it declares: failing there breaks no claim.
    assert [d.to_dict() for d in compat.disagreements] == [
        {
            "kind": "broken_claim",
            "torch": "2.14.1",
            "message": "declares torch>=2.3, fails on 2.14.1",
        }
    ]


def test_a_version_its_declared_range_excludes_is_not_installable_by_its_own_metadata():
    project = _project(
        declared={"torch": ">=2.3,<2.14", "requires_python": ""},
        works_with=["2.13.0"],
        not_installable_with=["2.14.1", "2.13.1"],
    )

    compat = project_compatibility(project=project)

    # 2.13.1 is inside the range: not installable for another reason (its dependencies).
    assert [(d.kind, d.torch) for d in compat.disagreements] == [
        (DisagreementKind.EXCLUDED_BY_METADATA, "2.14.1")
    ]
    assert compat.disagreements[0].message == (
        "declared range torch>=2.3,<2.14 excludes 2.14.1: not installable by its own metadata"
    )


def test_no_declared_range_no_disagreement():
    never_built = _project(breaks_with=["2.14.1"])
    assert project_compatibility(project=never_built).disagreements == []
    no_range = ProjectFactory(declared={"torch": "", "requires_python": ""}, breaks_with=["2.1"])
    assert project_compatibility(project=no_range).disagreements == []
    junk = ProjectFactory(declared={"torch": "not a specifier"}, breaks_with=["2.1"])
    assert project_compatibility(project=junk).disagreements == []


def test_api_project_detail_has_the_compatibility_object(client):
    _project(
        declared={"torch": ">=2.3,<2.15", "requires_python": ">=3.9"},
        works_with=["2.13.0"],
        breaks_with=["2.14.1"],
        not_installable_with=["2.15.0"],
    )

    detail = client.get("/api/v1/projects/declarer/").json()

    assert detail["compatibility"] == {
        "declared": {"torch": ">=2.3,<2.15", "requires_python": ">=3.9"},
        "works_with": ["2.13.0"],
        "breaks_with": ["2.14.1"],
        "not_installable_with": ["2.15.0"],
        "widenable_with": [],
        "disagreements": [
            {
                "kind": "broken_claim",
                "torch": "2.14.1",
                "message": "declares torch>=2.3,<2.15, fails on 2.14.1",
            },
            {
                "kind": "excluded_by_metadata",
                "torch": "2.15.0",
                "message": "declared range torch>=2.3,<2.15 excludes 2.15.0: "
                "not installable by its own metadata",
            },
        ],
    }
    # The list stays as it was: the comparison is the detail's.
    listed = client.get("/api/v1/projects/").json()["results"][0]
    assert "compatibility" not in listed


def test_project_page_shows_declared_vs_measured(client):
    _project(
        declared={"torch": ">=2.3", "requires_python": ">=3.9"},
        works_with=["2.13.0"],
        breaks_with=["2.14.1"],
    )

    body = client.get(reverse("registry:project", kwargs={"slug": "declarer"})).content.decode()

    assert "Declared vs measured" in body
    assert "torch&gt;=2.3" in body and "&gt;=3.9" in body
    assert "broken claim" in body and "declares torch&gt;=2.3, fails on 2.14.1" in body
