"""Results recorded in batches: one transaction per batch, the rows in bulk, the derived data
(matrix, summaries, badges, slots, run ends) coalesced and right at the end; a repeat, a late
attempt and a bad result inside a batch; and, with a real results worker taking a burst of
results, a kill -9 in the middle of a commit that loses and doubles nothing."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from celery import current_app
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from ci_runners import services
from ci_runners.agent import contracts
from ci_runners.agent.contracts import CellState, Result, ResultMessage
from ci_runners.models import CellResult, CompatCell, CompatRun, CompatStatus
from registry import badge_cache
from registry.models import Project
from tests.ci_runners.factories import TorchTargetFactory
from tests.ci_runners.test_fleet_e2e import Processes, wait_for
from tests.registry.factories import ProjectFactory

STATES = [CellState.PASSED, CellState.FAILED, CellState.NOT_INSTALLABLE, CellState.ERRORED]


def _projects(count: int) -> list[Project]:
    return [
        ProjectFactory(slug=f"batch-{i}", name=f"Batch {i}", repository=f"org/batch-{i}")
        for i in range(count)
    ]


def _night(projects: list[Project], targets) -> list[CompatCell]:
    services.compat_runs_request_for_projects(
        projects=projects, targets=targets, trigger=CompatRun.Trigger.SCHEDULE
    )
    return list(
        CompatCell.objects.filter(project__in=projects).select_related("target").order_by("pk")
    )


def _result(state: CellState, *, collected: int = 10) -> dict:
    counts = {"passed": collected, "failed": 0}
    if state == CellState.FAILED:
        counts = {"passed": collected - 1, "failed": 1}
    return Result(
        state=state,
        exit_code=0 if state == CellState.PASSED else 1,
        commit="c0ffee" * 6 + "c0ff",
        counts=counts,
        failures=[{"test": "tests/test_x.py::test_x", "message": "boom"}]
        if state == CellState.FAILED
        else [],
        tests_collected=collected if state in (CellState.PASSED, CellState.FAILED) else None,
        error_code="env_build_failed" if state == CellState.ERRORED else None,
    ).to_dict()


def _message(cell: CompatCell, state: CellState, *, attempt: int = 1) -> ResultMessage:
    return ResultMessage(
        cell_id=cell.pk, attempt=attempt, runner="stand-in", result=_result(state), log="log\n"
    )


@pytest.fixture
def four_targets(db):
    return [
        TorchTargetFactory(version=version, variant="cpu")
        for version in ("2.11.0", "2.12.0", "2.13.0", "2.14.1")
    ]


def test_a_batch_with_mixed_outcomes_repeats_and_bad_results_leaves_everything_right(
    four_targets, django_capture_on_commit_callbacks
):
    projects = _projects(3)
    cells = _night(projects, four_targets)
    badge_before = badge_cache.badge_get(slug=projects[0].slug, kind="compat", fmt="json").body
    messages = [_message(cell, STATES[i % 4]) for i, cell in enumerate(cells)]
    repeat = messages[0]
    unreadable = ResultMessage(cell_id=cells[1].pk, attempt=1, runner="x", result={"state": "?"})
    unknown = ResultMessage(cell_id=10**9, attempt=1, runner="x", result=_result(CellState.PASSED))
    batch = [*messages, repeat, unreadable, unknown]

    with django_capture_on_commit_callbacks(execute=True):
        rows = services.cells_record_results(messages=batch)

    assert rows[len(messages)] is rows[0]  # the repeat gets the first row, nothing twice
    assert rows[-2:] == [None, None]
    assert CellResult.objects.count() == len(cells)
    assert Counter(CellResult.objects.values_list("cell_id", "attempt")) == Counter(
        {(cell.pk, 1): 1 for cell in cells}
    )
    by_id = {cell.pk: cell for cell in CompatCell.objects.all()}
    for i, cell in enumerate(cells):
        assert by_id[cell.pk].state == STATES[i % 4]
    for status in CompatStatus.objects.filter(project__in=projects):
        assert status.last_final_cell_id == status.latest_cell_id
    for project in Project.objects.filter(pk__in=[p.pk for p in projects]):
        mine = [c for c in cells if c.project_id == project.pk]
        states = {c.target.version: by_id[c.pk].state for c in mine}
        assert project.works_with == sorted(v for v, s in states.items() if s == "passed")
        assert project.breaks_with == sorted(v for v, s in states.items() if s == "failed")
        assert project.not_installable_with == sorted(
            v for v, s in states.items() if s == "not_installable"
        )
    assert CompatRun.objects.filter(finished_at__isnull=True).count() == 0
    badge_after = badge_cache.badge_get(slug=projects[0].slug, kind="compat", fmt="json").body
    assert badge_after != badge_before  # the badge cache was dropped and re-rendered

    # The same batch delivered again (a worker killed after its commit): nothing changes.
    again = services.cells_record_results(messages=batch)
    assert [row.pk if row else None for row in again] == [row.pk if row else None for row in rows]
    assert CellResult.objects.count() == len(cells)


def test_the_late_result_of_an_earlier_attempt_wins_inside_a_batch(
    four_targets, django_capture_on_commit_callbacks
):
    (project,) = _projects(1)
    cells = _night([project], four_targets[:1])
    cell = cells[0]
    CompatCell.objects.filter(pk=cell.pk).update(attempt=2, state=CellState.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        services.cells_record_results(
            messages=[
                _message(cell, CellState.PASSED, attempt=1),
                _message(cell, CellState.FAILED, attempt=2),
            ]
        )
    cell.refresh_from_db()
    assert (cell.state, cell.attempt) == (CellState.PASSED, 1)
    applied = dict(CellResult.objects.filter(cell=cell).values_list("attempt", "applied"))
    assert applied == {1: True, 2: False}


def test_the_derived_updates_of_a_batch_do_not_grow_with_its_results(four_targets):
    """40 results of 10 projects cost a few queries per project (its summary), not several per
    result: the matrix, slots and runs are updated once per batch."""
    projects = _projects(10)
    cells = _night(projects, four_targets)
    messages = [_message(cell, CellState.PASSED) for cell in cells]
    with CaptureQueriesContext(connection) as queries:
        services.cells_record_results(messages=messages)
    assert len(cells) == 40
    assert len(queries) <= 20 + 2 * len(projects), [q["sql"][:120] for q in queries]


def test_a_result_the_database_refuses_is_dropped_alone(four_targets):
    """A NUL byte PostgreSQL cannot store fails the batch's transaction; the batch is then
    recorded result by result and only the bad one is dropped."""
    projects = _projects(2)
    cells = _night(projects, four_targets[:2])
    bad = Result(state=CellState.FAILED, error="nul \x00 byte").to_dict()
    messages = [_message(cell, CellState.PASSED) for cell in cells[1:]]
    messages.insert(0, ResultMessage(cell_id=cells[0].pk, attempt=1, runner="x", result=bad))

    services.cells_record_results_or_resend(messages=messages)

    recorded = set(CellResult.objects.values_list("cell_id", flat=True))
    assert recorded == {cell.pk for cell in cells[1:]}
    assert CompatCell.objects.get(pk=cells[0].pk).state == CellState.QUEUED


BURST = 120


def _pool_processes(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.slow
@pytest.mark.parametrize("killed", ["the whole worker", "its pool processes"])
def test_a_real_results_worker_killed_mid_commit_in_a_burst_loses_and_doubles_nothing(
    transactional_db, broker, tmp_path, four_targets, killed
):
    """Results sent where agents send them (`CELL_RESULTS_QUEUE`), consumed in batches by the
    results worker's bootstep (ci_runners/result_batches.py), the first batch held mid-commit
    by a row lock; then kill -9 of the whole worker (restarted: the broker gives the batch's
    messages back after the visibility timeout) or of its pool processes only (the worker
    gives the failed batch back itself)."""
    projects = _projects(BURST // 4)
    cells = _night(projects, four_targets)
    CompatRun.objects.filter(project__in=projects).update(
        on_complete_task="reviews.compat_run_finished"
    )
    processes = Processes(tmp=tmp_path, broker_url=broker.url)
    worker_env = {"CELERY_RESULTS_VISIBILITY_TIMEOUT": "10", "RESULTS_RETRY_AFTER_S": "1"}
    try:
        processes.start_web_worker("results", "results", **worker_env)
        broker.client().delete("default")

        def waits_on_a_lock() -> bool:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
                return cursor.fetchone()[0] > 0

        with transaction.atomic():
            # The first result's transaction locks this row: it waits, half done, until we let go.
            CompatCell.objects.select_for_update().get(pk=cells[0].pk)
            with current_app.connection_for_write(broker.url) as conn:
                for i, cell in enumerate(cells):
                    current_app.send_task(
                        contracts.RESULT_TASK,
                        kwargs=_message(cell, STATES[i % 2]).to_kwargs(),
                        queue=contracts.reply_queue(contracts.RESULT_TASK),
                        connection=conn,
                    )
            wait_for("a result to be mid-commit", waits_on_a_lock, processes)
            if killed == "the whole worker":
                processes.kill("results")  # kill -9: its transaction never commits
            else:
                for pid in _pool_processes(processes.running["results"].pid):
                    os.kill(pid, signal.SIGKILL)
        assert not CellResult.objects.filter(cell_id=cells[0].pk).exists()

        if killed == "the whole worker":
            processes.start_web_worker("results", "results", **worker_env)
        wait_for(
            "every result to be recorded",
            lambda: CellResult.objects.filter(cell_id__in=[c.pk for c in cells]).count() == BURST,
            processes,
            timeout=120,
        )
        time.sleep(1)  # a doubled delivery would land now
    finally:
        processes.stop_all()

    assert Counter(CellResult.objects.values_list("cell_id", "attempt")) == Counter(
        {(cell.pk, 1): 1 for cell in cells}
    )
    by_id = dict(CompatCell.objects.values_list("pk", "state"))
    assert [by_id[cell.pk] for cell in cells] == [STATES[i % 2] for i in range(BURST)]
    for project in Project.objects.filter(pk__in=[p.pk for p in projects]):
        assert len(project.works_with) == len(project.breaks_with) == 2
    assert not CompatRun.objects.filter(project__in=projects, finished_at__isnull=True).exists()
    # Each finished run told its on-complete task once (and, showing a new break, asked once
    # for its bisection).
    sent = Counter(
        json.loads(raw)["headers"]["task"] for raw in broker.client().lrange("default", 0, -1)
    )
    assert sent["reviews.compat_run_finished"] == len(projects)
    assert sent["ci_runners.bisections_start_for_new_breaks"] == len(projects)


@pytest.mark.slow
def test_the_results_worker_holds_a_result_sent_again_until_due_and_drops_what_is_no_result(
    transactional_db, broker, tmp_path, four_targets
):
    """A result the database could not take is sent again with a countdown
    (`cells_record_results_or_resend`): the batching consumer holds it until due, as Celery
    holds an ETA task. A message on the results queue that is no result is dropped, logged,
    and the worker goes on."""
    cells = _night(_projects(1), four_targets)
    processes = Processes(tmp=tmp_path, broker_url=broker.url)
    try:
        processes.start_web_worker("results", "results")
        with current_app.connection_for_write(broker.url) as conn:
            current_app.send_task(
                "ci_runners.not_a_result",
                kwargs={"cell_id": cells[1].pk},
                queue=contracts.CELL_RESULTS_QUEUE,
                connection=conn,
            )
            sent_at = time.monotonic()
            current_app.send_task(
                contracts.RESULT_TASK,
                kwargs=_message(cells[0], CellState.PASSED).to_kwargs(),
                queue=contracts.CELL_RESULTS_QUEUE,
                countdown=4,
                connection=conn,
            )
        wait_for(
            "the result to be recorded",
            lambda: CellResult.objects.filter(cell=cells[0]).exists(),
            processes,
            timeout=60,
            every=0.1,
        )
        assert time.monotonic() - sent_at >= 3.5
        assert "not a result on results.cells ('ci_runners.not_a_result')" in processes.log(
            "results"
        )
    finally:
        processes.stop_all()
    assert CompatCell.objects.get(pk=cells[0].pk).state == CellState.PASSED
    assert not CellResult.objects.filter(cell=cells[1]).exists()
    assert not broker.client().llen(contracts.CELL_RESULTS_QUEUE)
