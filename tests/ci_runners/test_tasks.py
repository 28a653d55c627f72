"""The agent's messages reach the services through the web side's tasks, field for field, in a
worker of their own."""

import pytest
from celery import Celery

from ci_runners import tasks
from ci_runners.agent.contracts import ProgressMessage, Result, ResultMessage
from ci_runners.models import CompatRun
from ci_runners.selectors import cell_log_bytes
from ci_runners.services import compat_run_request
from ci_runners.states import CellState
from config import celery as config_celery


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
    assert cell_log_bytes(cell=cell) == b"the full log"


def test_the_results_worker_keeps_its_unacknowledged_messages_apart_and_briefly(settings):
    """kombu keeps one `unacked` hash per Redis database, restored by every consumer with its
    own visibility timeout: the `results` worker gets keys of its own and a short timeout, so
    a result left unacknowledged by a killed worker comes back in about a minute, not hours."""
    shared = {"visibility_timeout": 4 * 3600}

    def worker_options(queues):
        conf = Celery("probe", set_as_current=False).conf
        conf.broker_transport_options = dict(shared)
        config_celery.configure_worker(conf=conf, options={"queues": queues})
        return conf.broker_transport_options

    results = worker_options(["results"])
    assert results["visibility_timeout"] == settings.CELERY_RESULTS_VISIBILITY_TIMEOUT <= 120
    assert {results[key] for key in ("unacked_key", "unacked_index_key", "unacked_mutex_key")}
    assert not {"unacked", "unacked_index", "unacked_mutex"} & {
        results[key] for key in ("unacked_key", "unacked_index_key", "unacked_mutex_key")
    }
    assert worker_options("results") == results  # -Q as one string
    assert worker_options(["default"]) == shared
    assert worker_options(None) == shared
    # One worker cannot give `results` its short timeout and `default` its long one.
    with pytest.raises(SystemExit, match="results"):
        worker_options(["default", "results"])
