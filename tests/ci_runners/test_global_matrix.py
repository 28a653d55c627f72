"""The global matrix (/runs/): active projects by default, projects with results first in
case-insensitive order, filters (kind, status, state, target, category), a heat map, and how
the projects in view stand on each target."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ci_runners import services
from ci_runners.agent.contracts import Result
from ci_runners.selectors import MatrixFilters, global_matrix
from ci_runners.states import CellState
from tests.registry.factories import CategoryFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def record(project, target, state) -> None:
    cell = project.compat_cells.filter(target=target).latest("pk")
    services.cell_record_result(
        cell_id=cell.pk, attempt=cell.attempt, runner="r", result=Result(state=state).to_dict()
    )


@pytest.fixture
def fleet(targets, broker):
    """Six projects: two with final results, one with cells still queued, three with none
    (one retired, one hosted)."""
    training = CategoryFactory(name="Training", slug="training")
    made = {
        name: ProjectFactory(slug=name.lower(), name=name, **extra)
        for name, extra in [
            ("alpha", {}),
            ("Beta", {"category": training}),
            ("charlie", {}),
            ("Zed", {"kind": "hosted"}),
            ("delta", {"kind": "hosted"}),
            ("Old", {"status": "retired"}),
        ]
    }
    services.compat_runs_request_for_projects(
        projects=[made["Beta"], made["charlie"], made["Zed"]], targets=targets, trigger="schedule"
    )
    record(made["Beta"], targets[0], CellState.PASSED)
    record(made["Beta"], targets[1], CellState.FAILED)
    record(made["Zed"], targets[0], CellState.PASSED)
    return made


def rows(**filters) -> list[str]:
    data = global_matrix(filters=MatrixFilters(**filters), page_number=1)
    return [project.name for project, _ in data.rows]


def test_results_first_then_case_insensitive_names_active_only(fleet):
    assert rows() == ["Beta", "Zed", "charlie", "alpha", "delta"]
    assert rows(status="all") == ["Beta", "Zed", "charlie", "alpha", "delta", "Old"]
    assert rows(status="retired") == ["Old"]


def test_filters_by_kind_state_target_and_category(fleet, targets):
    assert rows(kind="hosted") == ["Zed", "delta"]
    assert rows(state="failed") == ["Beta"]
    assert rows(state="passed", target=targets[1].pk) == []
    assert rows(state="queued") == ["Zed", "charlie"]  # Zed: its second target is queued
    assert rows(category="training") == ["Beta"]


def test_totals_per_target_count_every_project_in_view(fleet, targets):
    data = global_matrix(filters=MatrixFilters(), page_number=1)
    first, second = data.totals
    assert first.target == targets[0]
    assert first.counts == [("queued", "Queued", 1), ("passed", "Passed", 2)]
    assert first.untested == 2
    assert second.counts == [("queued", "Queued", 2), ("failed", "Failed", 1)]
    assert second.untested == 2
    hosted = global_matrix(filters=MatrixFilters(kind="hosted"), page_number=1)
    assert [(t.counts, t.untested) for t in hosted.totals] == [
        ([("passed", "Passed", 1)], 1),
        ([("queued", "Queued", 1)], 1),
    ]


def test_the_page_is_a_heat_map_with_totals(client, fleet):
    page = client.get(reverse("ci_runners:matrix")).content.decode()
    assert page.count('<td class="heat passed">') == 2
    assert page.count('<td class="heat failed">') == 1
    assert '<td class="heat none">' in page
    assert '<span class="total passed">2 passed</span>' in page
    assert '<span class="total none">2 untested</span>' in page
    assert "5 projects, active" in page
    assert page.index(">Beta<") < page.index(">Zed<") < page.index(">charlie<")
    assert "ci_runners/matrix.css" in page
    assert "Old" not in page
    everything = client.get(reverse("ci_runners:matrix"), {"status": "all"}).content.decode()
    assert '<span class="pill retired">retired</span>' in everything
    bad = client.get(reverse("ci_runners:matrix"), {"kind": "<b>", "status": "x" * 500})
    assert bad.status_code == 200 and "<b>" not in bad.content.decode()


def test_query_count_is_flat_under_every_filter(client, fleet, targets):
    def queries(**params) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("ci_runners:matrix"), params).status_code == 200
        return len(captured)

    shapes = [{}, {"status": "all", "kind": "ecosystem"}, {"state": "queued"}]
    before = [queries(**params) for params in shapes]
    more = [ProjectFactory(name=f"More {i}") for i in range(70)]
    services.compat_runs_request_for_projects(projects=more, targets=targets, trigger="schedule")
    for project in more[:20]:
        record(project, targets[0], CellState.FAILED)
    assert [queries(**params) for params in shapes] == before
    assert queries(page=2) == before[0]
