"""Torch targets, runs and cells over the API: public project runs, staff-only applicant runs,
cursor pagination of cells with failures and warnings."""

import pytest

from tests.ci_runners.factories import CompatCellFactory, CompatRunFactory, TorchTargetFactory
from tests.factories import UserFactory
from tests.registry.factories import ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs(db):
    project = ProjectFactory(slug="torchgeo", name="TorchGeo")
    t13 = TorchTargetFactory(version="2.13.0")
    t14 = TorchTargetFactory(version="2.14.1")
    public = CompatRunFactory(project=project, trigger="schedule")
    private = CompatRunFactory(project=None, source_url="https://github.com/a/b", trigger="review")
    CompatCellFactory(run=public, target=t13, state="passed", counts={"passed": 10})
    CompatCellFactory(
        run=public,
        target=t14,
        state="failed",
        failures=[{"test": "test_x", "message": "boom"}],
        warnings=[{"category": "DeprecationWarning", "message": "old"}],
    )
    CompatCellFactory(run=private, target=t14, state="queued")
    return public, private


def test_targets(api, runs):
    labels = [t["label"] for t in api.get("/api/v1/torch-targets/").json()["results"]]
    assert labels == ["2.13.0+cpu py3.11", "2.14.1+cpu py3.11"]


def test_runs_are_scoped(api, runs):
    public, private = runs
    anonymous = [r["id"] for r in api.get("/api/v1/runs/").json()["results"]]
    assert anonymous == [public.pk]
    assert api.get(f"/api/v1/runs/{private.pk}/").status_code == 404
    api.force_authenticate(UserFactory(username="stella", is_staff=True))
    assert sorted(r["id"] for r in api.get("/api/v1/runs/").json()["results"]) == sorted(
        [public.pk, private.pk]
    )
    detail = api.get(f"/api/v1/runs/{public.pk}/").json()
    assert detail["cell_states"] == {"passed": 1, "failed": 1}


def test_cells_with_failures_and_cursor_pagination(api, runs):
    data = api.get("/api/v1/cells/?project=torchgeo").json()
    assert "next" in data and "count" not in data  # cursor pagination
    failed = [c for c in data["results"] if c["state"] == "failed"][0]
    assert failed["failures"] == [{"test": "test_x", "message": "boom"}]
    assert failed["warnings"][0]["category"] == "DeprecationWarning"
    assert failed["target"]["version"] == "2.14.1"
    assert len(api.get("/api/v1/cells/").json()["results"]) == 2  # not the applicant's run
    assert [c["state"] for c in api.get("/api/v1/cells/?state=passed").json()["results"]] == [
        "passed"
    ]


def test_cell_cursor_pages(api, runs):
    from ci_runners import api as ci_api

    original = ci_api.CellCursorPagination.page_size
    ci_api.CellCursorPagination.page_size = 1
    try:
        first = api.get("/api/v1/cells/").json()
        second = api.get(first["next"]).json()
    finally:
        ci_api.CellCursorPagination.page_size = original
    assert len(first["results"]) == len(second["results"]) == 1
    assert first["results"][0]["id"] > second["results"][0]["id"]
