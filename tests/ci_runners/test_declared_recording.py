"""What a cell's project declares is recorded with the cell and reaches the project's
summary, from its latest finished cell that read it."""

from ci_runners import services
from ci_runners.agent.contracts import Result
from ci_runners.states import CellState
from registry.declared import DisagreementKind, project_compatibility


def _result(state: CellState, declared: object) -> dict:
    data = Result(state=state, exit_code=0, commit="abc123", declared={}).to_dict()
    data["declared"] = declared
    return data


def test_declared_range_is_recorded_and_set_against_the_measured_set(
    project, targets, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.compat_run_request(project=project, trigger="manual")
    on_2_13, on_2_14 = run.cells.get(target=targets[0]), run.cells.get(target=targets[1])
    declared = {"torch": ">=2.3,<2.14", "requires_python": ">=3.9"}

    with django_capture_on_commit_callbacks(execute=True):
        services.cell_record_result(
            cell_id=on_2_13.pk, attempt=1, runner="r", result=_result(CellState.PASSED, declared)
        )
        services.cell_record_result(
            cell_id=on_2_14.pk,
            attempt=1,
            runner="r",
            result=_result(CellState.NOT_INSTALLABLE, declared),
        )

    on_2_13.refresh_from_db()
    project.refresh_from_db()
    assert on_2_13.declared == declared
    assert project.declared == declared
    compat = project_compatibility(project=project)
    assert (compat.works_with, compat.not_installable_with) == (["2.13.0"], ["2.14.1"])
    assert [(d.kind, d.torch) for d in compat.disagreements] == [
        (DisagreementKind.EXCLUDED_BY_METADATA, "2.14.1")
    ]


def test_junk_or_missing_declared_from_an_agent_is_stored_as_nothing(
    project, targets, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.compat_run_request(project=project, trigger="manual")
    cell = run.cells.get(target=targets[0])

    services.cell_record_result(
        cell_id=cell.pk,
        attempt=1,
        runner="r",
        result=_result(CellState.PASSED, {"torch": 3, "other": "x", "requires_python": ">=3"}),
    )

    cell.refresh_from_db()
    project.refresh_from_db()
    assert cell.declared == {"requires_python": ">=3"}
    assert project.declared == {"requires_python": ">=3"}
