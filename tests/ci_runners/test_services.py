"""Services of the compatibility runs against real PostgreSQL and a real (private) Redis."""

import json
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from ci_runners import services
from ci_runners.agent.contracts import CELL_KEY_TTL_S, Job, Result, cell_key, claim_key
from ci_runners.models import (
    MAX_ATTEMPTS,
    CellResult,
    CompatCell,
    CompatRun,
    ProjectTestConfig,
    TorchTarget,
)
from ci_runners.selectors import cell_log_bytes
from ci_runners.states import CellState, InvalidTransition
from tests.ci_runners.factories import TorchTargetFactory
from tests.fakes.http import FakeHTTPServer, Reply
from tests.registry.factories import ProjectFactory


def result_dict(state=CellState.PASSED, **extra) -> dict:
    counts = {"passed": 3, "failed": 1 if state == CellState.FAILED else 0}
    return Result(state=state, exit_code=0, counts=counts, commit="abc123", **extra).to_dict()


def request_run(project, django_capture_on_commit_callbacks, **kwargs):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = services.compat_run_request(
            project=project, trigger=kwargs.pop("trigger", CompatRun.Trigger.MANUAL), **kwargs
        )
    return run, callbacks


def test_dispatch_sends_one_message_per_cell_to_its_queue_on_commit(
    project, targets, gpu_target, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = services.compat_run_request(project=project, trigger=CompatRun.Trigger.MANUAL)
        assert broker.client().llen("runner.cpu") == 0  # nothing leaves before commit
    assert len(callbacks) == 1
    callbacks[0]()

    cpu = broker.messages("runner.cpu")
    gpu = broker.messages("runner.cuda.sm90")
    assert len(cpu) == 2 and len(gpu) == 1
    assert {m["task"] for m in cpu + gpu} == {"ci_runners.agent.run_cell"}
    cells = {cell.pk: cell for cell in run.cells.all()}
    for message in cpu + gpu:
        job = Job.from_dict(message["kwargs"]["job"])
        cell = cells[job.cell_id]
        assert message["id"] == cell.task_id == f"compat-cell-{cell.pk}-{cell.token.hex}-1"
        assert job.torch_version == cell.target.version
        assert job.source == "https://github.com/thingorg/torchthing"
        assert job.test_config.pytest_args == ["-x"] and job.timeout_s == 300
    assert Job.from_dict(gpu[0]["kwargs"]["job"]).torch_variant == "cu126"
    # The agent reads which attempt is wanted from the broker Redis (it has no database).
    for cell in cells.values():
        assert broker.client().get(f"ecoreg:compat:cell:{cell.pk}:{cell.token}") == b"1"


REPO_ROOT = Path(__file__).resolve().parents[2]

AGENT_CHECK = """
import json, sys
from ci_runners.agent.supervision import cell_still_wanted, claim_cell
from ci_runners.agent.contracts import Job
job = Job.from_dict(json.loads(sys.argv[1]))
print(json.dumps([cell_still_wanted(job=job), claim_cell(job=job), claim_cell(job=job)]))
"""


def agent_check(*, job: dict, broker_url: str) -> list[bool]:
    """[wanted, first claim, second claim] as the agent (no Django) decides them."""
    completed = subprocess.run(
        [sys.executable, "-c", AGENT_CHECK, json.dumps(job)],
        cwd=REPO_ROOT,
        env={"AGENT_BROKER_URL": broker_url, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_stale_broker_keys_of_a_reused_cell_id_do_not_block_the_new_cell(
    project, targets, broker, django_capture_on_commit_callbacks
):
    """A database reset reuses cell ids while the broker Redis keeps the old cells' keys."""
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = services.compat_run_request(
            project=project, trigger=CompatRun.Trigger.MANUAL, targets=targets[:1]
        )
    cell = run.cells.get()
    old_token = uuid.uuid4()
    assert old_token != cell.token
    client = broker.client()
    # What an old cell with the same id left behind: cancelled and claimed (old key format too).
    client.set(f"ecoreg:compat:cell:{cell.pk}:{old_token}", "cancelled")
    client.set(f"ecoreg:compat:claim:{cell.pk}:{old_token}:1", "done")
    client.set(f"ecoreg:compat:cell:{cell.pk}", "cancelled")
    client.set(f"ecoreg:compat:claim:{cell.pk}:1", "done")
    for callback in callbacks:
        callback()

    [message] = broker.messages("runner.cpu")
    job = Job.from_dict(message["kwargs"]["job"])
    assert job.cell_id == cell.pk and job.cell_token == str(cell.token)
    assert client.get(f"ecoreg:compat:cell:{cell.pk}:{cell.token}") == b"1"
    # The agent runs the new cell once: wanted, claimed, and a redelivery is dropped.
    assert agent_check(job=message["kwargs"]["job"], broker_url=broker.url) == [True, True, False]
    # The old cell's message (old token) is still refused: it was cancelled.
    stale = {**message["kwargs"]["job"], "cell_token": str(old_token)}
    assert agent_check(job=stale, broker_url=broker.url)[0] is False


def test_inactive_targets_are_not_run_and_no_target_is_refused(project, targets, db):
    TorchTargetFactory(version="2.15.0", variant="cpu", active=False)
    run = services.compat_run_request(project=project, trigger="manual")
    assert run.cells.count() == 2
    TorchTarget.objects.update(active=False)
    with pytest.raises(services.CompatRunRefused, match="No active PyTorch target"):
        services.compat_run_request(project=project, trigger="manual")


def test_review_run_for_an_applicant_repository(
    targets, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.compat_run_request(
            source_url="https://github.com/applicant/newlib/",
            trigger="review",
            on_complete_task="reviews.compat_run_finished",
            on_complete_kwargs={"submission_id": 7},
        )
    assert run.project is None and run.source_url == "https://github.com/applicant/newlib"
    jobs = [Job.from_dict(m["kwargs"]["job"]) for m in broker.messages("runner.cpu")]
    assert {job.source for job in jobs} == {"https://github.com/applicant/newlib"}
    with pytest.raises(services.CompatRunRefused, match="github.com"):
        services.compat_run_request(source_url="https://gitlab.com/a/b", trigger="review")
    with pytest.raises(services.CompatRunRefused, match="Unknown trigger"):
        services.compat_run_request(source_url="https://github.com/a/b", trigger="sometimes")


def test_recording_the_same_result_twice_gives_one_result(
    project, targets, django_capture_on_commit_callbacks
):
    run, _ = request_run(project, django_capture_on_commit_callbacks)
    cell = run.cells.get(target=targets[0])
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            services.cell_record_result(
                cell_id=cell.pk, attempt=1, runner="r1", result=result_dict(), log="full log\n"
            )
    assert CellResult.objects.filter(cell=cell).count() == 1
    cell.refresh_from_db()
    assert cell.state == CellState.PASSED and cell.counts["passed"] == 3
    assert cell_log_bytes(cell=cell) == b"full log\n"
    project.refresh_from_db()
    assert project.works_with == ["2.13.0"] and project.breaks_with == []
    # The database itself refuses a second row for the same attempt.
    with pytest.raises(IntegrityError), transaction.atomic():
        CellResult.objects.create(cell=cell, attempt=1, state="passed")


def test_illegal_transitions_are_refused(project, targets, django_capture_on_commit_callbacks):
    run, _ = request_run(project, django_capture_on_commit_callbacks)
    cell = run.cells.first()
    services.cell_record_result(cell_id=cell.pk, attempt=1, runner="r", result=result_dict())
    cell.refresh_from_db()
    with pytest.raises(InvalidTransition, match="a passed cell cannot become running"):
        services.cell_transition(cell=cell, to=CellState.RUNNING)
    # A late progress report for a final cell changes nothing.
    assert not services.cell_record_progress(
        cell_id=cell.pk, attempt=1, runner="r", phase="running"
    )
    cell.refresh_from_db()
    assert cell.state == CellState.PASSED


def test_progress_moves_forward_only_and_keeps_the_live_log(
    project, targets, django_capture_on_commit_callbacks
):
    run, _ = request_run(project, django_capture_on_commit_callbacks)
    cell = run.cells.first()
    services.cell_record_progress(
        cell_id=cell.pk, attempt=1, runner="r1", phase="running", log_tail="collected 3 items"
    )
    services.cell_record_progress(cell_id=cell.pk, attempt=1, runner="r1", phase="preparing")
    cell.refresh_from_db()
    assert cell.state == CellState.RUNNING and cell.log_tail == "collected 3 items"
    assert cell.runner_name == "r1" and cell.started_at is not None
    # A report about another attempt is stale.
    assert not services.cell_record_progress(
        cell_id=cell.pk, attempt=2, runner="r2", phase="running"
    )


def test_reaper_requeues_a_silent_cell_then_errors_after_three_attempts(
    project, targets, broker, django_capture_on_commit_callbacks
):
    run, _ = request_run(project, django_capture_on_commit_callbacks, targets=targets[:1])
    cell = run.cells.get()
    broker.client().delete("runner.cpu")  # an agent took the message
    for attempt in (1, 2, 3):
        services.cell_record_progress(cell_id=cell.pk, attempt=attempt, runner="r", phase="running")
        later = timezone.now() + timedelta(seconds=91)
        with django_capture_on_commit_callbacks(execute=True):
            report = services.reap_stale_cells(now=later)
        cell.refresh_from_db()
        if attempt < 3:
            assert report["requeued"] == [cell.pk]
            assert cell.state == CellState.QUEUED and cell.attempt == attempt + 1
            messages = broker.messages("runner.cpu")
            assert [Job.from_dict(m["kwargs"]["job"]).attempt for m in messages] == [attempt + 1]
            key = f"ecoreg:compat:cell:{cell.pk}:{cell.token}"
            assert broker.client().get(key) == str(attempt + 1).encode()
            broker.client().delete("runner.cpu")
        else:
            assert report["errored"] == [cell.pk]
            assert cell.state == CellState.ERRORED and cell.error == "runner lost"
            assert cell.error_code == "runner_lost"  # infrastructure, said as a code
    run.refresh_from_db()
    assert run.finished_at is not None


def test_reaper_leaves_live_cells_and_waiting_messages_alone(
    project, targets, broker, django_capture_on_commit_callbacks
):
    run, _ = request_run(project, django_capture_on_commit_callbacks)
    first, second = run.cells.order_by("pk")
    services.cell_record_progress(cell_id=first.pk, attempt=1, runner="r", phase="running")
    # Silent for less than 90 s: alive. The other cell's message still waits in its queue.
    report = services.reap_stale_cells(now=timezone.now() + timedelta(seconds=60))
    assert report == {"requeued": [], "errored": []}
    report = services.reap_stale_cells(now=timezone.now() + timedelta(seconds=120))
    assert report["requeued"] == [first.pk]  # the queued one's message is still in the queue


def test_reaper_resends_a_queued_cell_whose_message_was_lost(
    project, targets, broker, django_capture_on_commit_callbacks
):
    run, _ = request_run(project, django_capture_on_commit_callbacks, targets=targets[:1])
    cell = run.cells.get()
    broker.client().flushall()  # the broker restarted without persistence
    with django_capture_on_commit_callbacks(execute=True):
        report = services.reap_stale_cells(now=timezone.now() + timedelta(seconds=91))
    assert report["requeued"] == [cell.pk]
    # Sent again as the same attempt: losing a message is not the cell's fault.
    assert [Job.from_dict(m["kwargs"]["job"]).attempt for m in broker.messages("runner.cpu")] == [1]


def test_a_lost_message_is_sent_again_as_the_same_attempt_however_often_it_is_lost(
    project, targets, broker, django_capture_on_commit_callbacks
):
    run, _ = request_run(project, django_capture_on_commit_callbacks, targets=targets[:1])
    cell = run.cells.get()
    client = broker.client()
    for loss in range(1, MAX_ATTEMPTS + 2):
        client.flushall()  # the broker restarted without persistence, once more
        later = timezone.now() + timedelta(seconds=91 * loss)
        with django_capture_on_commit_callbacks(execute=True):
            report = services.reap_stale_cells(now=later)
        assert report == {"requeued": [cell.pk], "errored": []}
        [message] = broker.messages("runner.cpu")
        assert message["id"] == f"compat-cell-{cell.pk}-{cell.token.hex}-1"
        assert Job.from_dict(message["kwargs"]["job"]).attempt == 1
        assert client.get(cell_key(cell_id=cell.pk, token=str(cell.token))) == b"1"
        cell.refresh_from_db()
        assert (cell.state, cell.attempt, cell.task_id) == (
            CellState.QUEUED,
            1,
            f"compat-cell-{cell.pk}-{cell.token.hex}-1",
        )


def test_reaper_trusts_the_runners_claim_not_the_silence_of_the_database(
    project, targets, broker, django_capture_on_commit_callbacks
):
    """`last_seen_at` is written by the worker that consumes `results`: when that worker lags,
    a live cell looks silent. The runner's own claim key says whether it still runs."""
    run, _ = request_run(project, django_capture_on_commit_callbacks)
    running, finished = run.cells.order_by("pk")
    client = broker.client()
    client.delete("runner.cpu")  # agents took both messages
    for cell in (running, finished):
        services.cell_record_progress(cell_id=cell.pk, attempt=1, runner="r", phase="running")
    client.set(claim_key(cell_id=running.pk, token=str(running.token), attempt=1), "r")
    client.set(claim_key(cell_id=finished.pk, token=str(finished.token), attempt=1), "done")
    later = timezone.now() + timedelta(seconds=600)

    with django_capture_on_commit_callbacks(execute=True):
        report = services.reap_stale_cells(now=later)

    assert report == {"requeued": [], "errored": []}
    for cell in (running, finished):
        cell.refresh_from_db()
        assert (cell.state, cell.attempt) == (CellState.RUNNING, 1)
    assert broker.messages("runner.cpu") == []
    # Its claim gone (not refreshed any more): that runner is lost, and only that one.
    client.delete(claim_key(cell_id=running.pk, token=str(running.token), attempt=1))
    with django_capture_on_commit_callbacks(execute=True):
        report = services.reap_stale_cells(now=later)
    assert report == {"requeued": [running.pk], "errored": []}
    finished.refresh_from_db()
    assert (finished.state, finished.attempt) == (CellState.RUNNING, 1)


def test_a_cell_whose_sent_result_never_came_runs_again(
    project, targets, broker, settings, django_capture_on_commit_callbacks
):
    """A done claim waits COMPAT_RESULT_WAIT_S for its result, not the claim's 3 days."""
    run, _ = request_run(project, django_capture_on_commit_callbacks, targets=targets[:1])
    cell = run.cells.get()
    client = broker.client()
    client.delete("runner.cpu")
    services.cell_record_progress(cell_id=cell.pk, attempt=1, runner="r", phase="running")
    key = claim_key(cell_id=cell.pk, token=str(cell.token), attempt=1)
    later = timezone.now() + timedelta(seconds=600)
    done_for_s = settings.COMPAT_RESULT_WAIT_S - 60
    client.set(key, "done", ex=CELL_KEY_TTL_S - done_for_s)
    assert services.reap_stale_cells(now=later) == {"requeued": [], "errored": []}

    client.set(key, "done", ex=CELL_KEY_TTL_S - settings.COMPAT_RESULT_WAIT_S - 60)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.reap_stale_cells(now=later) == {"requeued": [cell.pk], "errored": []}
    cell.refresh_from_db()
    assert (cell.state, cell.attempt) == (CellState.QUEUED, 2)


def test_a_queued_cell_a_runner_has_claimed_is_not_sent_again(
    project, targets, broker, django_capture_on_commit_callbacks
):
    """The runner took the message; its progress report waits in the results queue."""
    run, _ = request_run(project, django_capture_on_commit_callbacks, targets=targets[:1])
    cell = run.cells.get()
    client = broker.client()
    client.delete("runner.cpu")
    client.set(claim_key(cell_id=cell.pk, token=str(cell.token), attempt=1), "r")

    report = services.reap_stale_cells(now=timezone.now() + timedelta(seconds=91))

    assert report == {"requeued": [], "errored": []}
    assert broker.messages("runner.cpu") == []


def test_reaper_waits_while_the_results_queue_has_a_backlog_or_cannot_be_read(
    project, targets, broker, settings, django_capture_on_commit_callbacks
):
    run, _ = request_run(project, django_capture_on_commit_callbacks, targets=targets[:1])
    cell = run.cells.get()
    client = broker.client()
    client.delete("runner.cpu")
    services.cell_record_progress(cell_id=cell.pk, attempt=1, runner="r", phase="running")
    later = timezone.now() + timedelta(seconds=600)
    client.lpush("results", b"a result not recorded yet")

    assert services.reap_stale_cells(now=later) == {"requeued": [], "errored": []}
    broker_url = settings.CELERY_BROKER_URL
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # nothing answers: length unknown
    assert services.reap_stale_cells(now=later) == {"requeued": [], "errored": []}
    cell.refresh_from_db()
    assert (cell.state, cell.attempt) == (CellState.RUNNING, 1)

    settings.CELERY_BROKER_URL = broker_url
    client.delete("results")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.reap_stale_cells(now=later)["requeued"] == [cell.pk]


def test_a_result_of_a_superseded_attempt_is_kept_but_not_applied(
    project, targets, broker, django_capture_on_commit_callbacks
):
    run, _ = request_run(project, django_capture_on_commit_callbacks, targets=targets[:1])
    cell = run.cells.get()
    services.cell_record_progress(cell_id=cell.pk, attempt=1, runner="r", phase="running")
    with django_capture_on_commit_callbacks(execute=True):
        services.reap_stale_cells(now=timezone.now() + timedelta(seconds=91))
    cell.refresh_from_db()
    assert cell.state == CellState.QUEUED and cell.attempt == 2
    services.cell_record_result(cell_id=cell.pk, attempt=2, runner="r2", result=result_dict())
    # Attempt 1 reports after attempt 2 has finished the cell: kept, not applied.
    stale = services.cell_record_result(
        cell_id=cell.pk, attempt=1, runner="r", result=result_dict(CellState.FAILED)
    )
    cell.refresh_from_db()
    assert stale.applied is False
    assert cell.state == CellState.PASSED and cell.runner_name == "r2" and cell.attempt == 2


def test_the_first_result_of_an_attempt_the_reaper_gave_up_on_still_wins(
    project, targets, broker, django_capture_on_commit_callbacks
):
    """The runner was taken for lost, but its attempt finished: its result stands and the
    re-queued attempt is called off, so the agent that took it drops it."""
    run, _ = request_run(project, django_capture_on_commit_callbacks, targets=targets[:1])
    cell = run.cells.get()
    client = broker.client()
    client.delete("runner.cpu")
    services.cell_record_progress(cell_id=cell.pk, attempt=1, runner="r1", phase="running")
    with django_capture_on_commit_callbacks(execute=True):
        services.reap_stale_cells(now=timezone.now() + timedelta(seconds=91))
    [requeued] = broker.messages("runner.cpu")
    assert Job.from_dict(requeued["kwargs"]["job"]).attempt == 2

    with django_capture_on_commit_callbacks(execute=True):
        first = services.cell_record_result(
            cell_id=cell.pk, attempt=1, runner="r1", result=result_dict(CellState.FAILED)
        )

    cell.refresh_from_db()
    assert first.applied is True
    assert (cell.state, cell.attempt, cell.runner_name) == (CellState.FAILED, 1, "r1")
    assert cell.task_id == f"compat-cell-{cell.pk}-{cell.token.hex}-1"
    assert client.get(cell_key(cell_id=cell.pk, token=str(cell.token))) == b"cancelled"
    assert agent_check(job=requeued["kwargs"]["job"], broker_url=broker.url)[0] is False
    run.refresh_from_db()
    assert run.finished_at is not None
    # Should the re-queued attempt report all the same, it is kept and not applied.
    late = services.cell_record_result(
        cell_id=cell.pk, attempt=2, runner="r2", result=result_dict()
    )
    cell.refresh_from_db()
    assert late.applied is False and cell.state == CellState.FAILED and cell.attempt == 1
    assert list(CellResult.objects.filter(cell=cell, applied=True).values_list("attempt")) == [(1,)]


def test_cancel_marks_cells_tells_agents_and_finishes_the_run(
    project, targets, broker, staff, django_capture_on_commit_callbacks
):
    run, _ = request_run(
        project,
        django_capture_on_commit_callbacks,
        on_complete_task="reviews.compat_run_finished",
        on_complete_kwargs={"submission_id": 3},
    )
    first, second = run.cells.order_by("pk")
    services.cell_record_progress(cell_id=first.pk, attempt=1, runner="r", phase="running")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.compat_run_cancel(run=run, actor=staff) == 2
    for cell in (first, second):
        cell.refresh_from_db()
        assert cell.state == CellState.CANCELLED and cell.error == "cancelled by staff"
        assert broker.client().get(f"ecoreg:compat:cell:{cell.pk}:{cell.token}") == b"cancelled"
    run.refresh_from_db()
    assert run.finished_at and run.cancelled_by == staff
    assert broker.messages("default") == [
        {
            "task": "reviews.compat_run_finished",
            "id": broker.messages("default")[0]["id"],
            "args": [],
            "kwargs": {"run_id": run.pk, "submission_id": 3},
        }
    ]
    # A result arriving after the cancel is kept apart and does not revive the cell.
    services.cell_record_result(cell_id=first.pk, attempt=1, runner="r", result=result_dict())
    first.refresh_from_db()
    assert first.state == CellState.CANCELLED


def test_run_completion_sends_the_named_task_once(
    project, targets, broker, django_capture_on_commit_callbacks
):
    run, _ = request_run(
        project,
        django_capture_on_commit_callbacks,
        on_complete_task="reviews.compat_run_finished",
        on_complete_kwargs={"submission_id": 9},
    )
    first, second = run.cells.order_by("pk")
    with django_capture_on_commit_callbacks(execute=True):
        services.cell_record_result(cell_id=first.pk, attempt=1, runner="r", result=result_dict())
    assert broker.messages("default") == []
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            services.cell_record_result(
                cell_id=second.pk, attempt=1, runner="r", result=result_dict(CellState.FAILED)
            )
    sent = broker.messages("default")
    assert len(sent) == 1 and sent[0]["kwargs"] == {"run_id": run.pk, "submission_id": 9}
    project.refresh_from_db()
    assert project.works_with == ["2.13.0"] and project.breaks_with == ["2.14.1"]


def test_concurrency_limit_holds_cells_back_until_a_slot_frees(
    project, targets, broker, django_capture_on_commit_callbacks
):
    ProjectTestConfig.objects.filter(project=project).update(max_concurrent=1)
    run, _ = request_run(project, django_capture_on_commit_callbacks)
    first, second = run.cells.order_by("pk")
    assert len(broker.messages("runner.cpu")) == 1
    assert second.dispatched_at is None and second.state == CellState.QUEUED
    # A second run of the same project waits too.
    run2, _ = request_run(project, django_capture_on_commit_callbacks)
    assert len(broker.messages("runner.cpu")) == 1
    with django_capture_on_commit_callbacks(execute=True):
        services.cell_record_result(cell_id=first.pk, attempt=1, runner="r", result=result_dict())
    sent = [Job.from_dict(m["kwargs"]["job"]).cell_id for m in broker.messages("runner.cpu")]
    assert sent == [first.pk, second.pk]
    assert CompatCell.objects.filter(run=run2, dispatched_at__isnull=False).count() == 0


def fake_pypi(releases: dict) -> FakeHTTPServer:
    server = FakeHTTPServer()
    server.routes[("GET", "/pypi/torch/json")] = Reply(
        200, {"info": {"name": "torch"}, "releases": releases}
    )
    return server


def test_new_torch_release_becomes_an_inactive_target_and_approval_runs_it(
    project, targets, broker, settings, django_capture_on_commit_callbacks
):
    files = [{"filename": "torch.whl", "yanked": False}]
    server = fake_pypi(
        {
            "2.13.0": files,
            "2.14.1": files,
            "2.15.0": files,
            "2.15.1": [{"filename": "torch.whl", "yanked": True}],
            "2.16.0rc1": files,
            "1.0.0": files,
        }
    )
    with server:
        settings.PYPI_JSON_URL = server.url + "/pypi/{name}/json"
        created = services.torch_releases_check()
        # One per runner setup among the active targets (variant "" and "cpu" here).
        assert [(target.version, target.variant) for target in created] == [
            ("2.15.0", ""),
            ("2.15.0", "cpu"),
        ]
        assert services.torch_releases_check() == []  # known now
    target = created[0]
    assert target.active is False
    with django_capture_on_commit_callbacks(execute=True):
        cells = services.torch_target_approve(target=target)
    target.refresh_from_db()
    assert target.active and cells == 1
    jobs = [Job.from_dict(m["kwargs"]["job"]) for m in broker.messages("runner.cpu")]
    assert [job.torch_version for job in jobs] == ["2.15.0"]
    assert CompatRun.objects.get().trigger == CompatRun.Trigger.NEW_RELEASE


def test_pypi_unavailable_is_a_clear_error(settings, db):
    from registry.sources.pypi import PyPIUnavailable

    server = FakeHTTPServer()
    with server:
        settings.PYPI_JSON_URL = server.url + "/pypi/{name}/json"
        with pytest.raises(PyPIUnavailable, match="PyPI release list unavailable"):
            services.torch_releases_check()


def test_nightly_runs_every_active_project_on_every_active_target(
    project, targets, broker, django_capture_on_commit_callbacks
):
    ProjectFactory(slug="retired", name="Retired", status="retired", repository="o/r")
    ProjectFactory(slug="norepo", name="No repo")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.nightly_runs() == 2
    assert CompatRun.objects.get().trigger == CompatRun.Trigger.SCHEDULE
    assert len(broker.messages("runner.cpu")) == 2


def test_heartbeat_records_the_runner_and_keeps_its_cell_alive(
    project, targets, django_capture_on_commit_callbacks
):
    run, _ = request_run(project, django_capture_on_commit_callbacks)
    cell = run.cells.first()
    services.cell_record_progress(cell_id=cell.pk, attempt=1, runner="r", phase="running")
    CompatCell.objects.filter(pk=cell.pk).update(last_seen_at=timezone.now() - timedelta(hours=1))
    host = services.runner_heartbeat_record(
        name="gpu-1", queues=["runner.cpu"], version="1.0", cell_id=cell.pk, attempt=1
    )
    assert host.current_cell_id == cell.pk
    cell.refresh_from_db()
    assert timezone.now() - cell.last_seen_at < timedelta(seconds=30)
    assert services.reap_stale_cells()["requeued"] == []


@pytest.mark.django_db(transaction=True)
def test_two_beats_for_one_nightly_slot_make_one_run_per_project(project, targets, broker):
    import threading

    from django.db import connection

    counts: list[int] = []
    start = threading.Barrier(2)

    def beat() -> None:
        start.wait()
        try:
            counts.append(services.nightly_runs())
        finally:
            connection.close()

    beats = [threading.Thread(target=beat) for _ in range(2)]
    for thread in beats:
        thread.start()
    for thread in beats:
        thread.join()

    assert sorted(counts) == [0, 2]
    assert CompatRun.objects.filter(project=project).count() == 1
    assert len(broker.messages("runner.cpu")) == 2
    # The next night is a new slot.
    tomorrow = timezone.localdate() + timedelta(days=1)
    assert services.nightly_runs(slot=tomorrow) == 2
    assert CompatRun.objects.filter(project=project).count() == 2
