"""The agent's messages reach the services through the web side's tasks, field for field."""

from ci_runners import tasks
from ci_runners.agent.contracts import ProgressMessage, Result, ResultMessage
from ci_runners.models import CompatRun
from ci_runners.services import compat_run_request
from ci_runners.states import CellState


def test_progress_and_result_messages_are_recorded_even_with_a_newer_agents_field(
    project, targets, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = compat_run_request(project=project, trigger=CompatRun.Trigger.MANUAL)
    cell = run.cells.order_by("pk").first()
    progress = ProgressMessage(cell_id=cell.pk, attempt=1, runner="r#1", phase="running")
    result = ResultMessage(
        cell_id=cell.pk,
        attempt=1,
        runner="r#1",
        result=Result(state=CellState.FAILED, exit_code=1).to_dict(),
        log="the full log",
    )

    tasks.record_cell_progress.apply(kwargs={**progress.to_kwargs(), "added_later": 1}).get()
    cell.refresh_from_db()
    assert cell.state == CellState.RUNNING
    with django_capture_on_commit_callbacks(execute=True):
        tasks.record_cell_result.apply(kwargs={**result.to_kwargs(), "added_later": 1}).get()

    cell.refresh_from_db()
    assert (cell.state, cell.exit_code, cell.runner_name) == (CellState.FAILED, 1, "r#1")
    assert cell.log_file.read() == b"the full log"
