"""Cells: the one writer of `CompatCell.state`, runners' progress and results, and what
follows when cells become final (matrix, project summary, freed slots, the run's end).
"""

from __future__ import annotations

import gzip
import logging
from datetime import datetime
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from ci_runners import broker
from ci_runners.agent import contracts
from ci_runners.agent.contracts import Result
from ci_runners.models import (
    SUITE_SHRINK_RATIO,
    CellResult,
    CompatCell,
    CompatRun,
    CompatStatus,
)
from ci_runners.services.dispatch import cells_dispatch_waiting
from ci_runners.states import FINAL_STATES, RESULT_STATES, CellState, check_transition
from registry.models import Project
from registry.services import project_set_compat_summary

logger = logging.getLogger(__name__)

LOG_FILE_MAX_CHARS = contracts.STORED_LOG_MAX_CHARS
LOG_TAIL_CHARS = contracts.LOG_TAIL_CHARS


def cell_transition(*, cell: CompatCell, to: str, **changes: Any) -> CompatCell:
    """Move a (locked) cell to `to`, checking the transition table; other fields ride along."""
    check_transition(current=cell.state, to=to)
    cell.state = to
    for field, value in changes.items():
        setattr(cell, field, value)
    cell.save(update_fields=["state", *changes])
    return cell


def _locked_cell(cell_id: int) -> CompatCell | None:
    return (
        CompatCell.objects.select_for_update()
        .select_related("run", "target")
        .filter(pk=cell_id)
        .first()
    )


def cell_record_progress(
    *, cell_id: int, attempt: int, runner: str, phase: str, log_tail: str = ""
) -> bool:
    """A runner says it is preparing / running the cell; stale or late reports are ignored."""
    with transaction.atomic():
        cell = _locked_cell(cell_id)
        if cell is None or cell.attempt != attempt or cell.state in FINAL_STATES:
            return False
        now = timezone.now()
        changes: dict[str, Any] = {"last_seen_at": now, "runner_name": runner[:200]}
        if log_tail:
            changes["log_tail"] = log_tail[-LOG_TAIL_CHARS:]
        if cell.started_at is None:
            changes["started_at"] = now
        moves_forward: dict[str, set[str]] = {
            CellState.QUEUED: {CellState.PREPARING, CellState.RUNNING},
            CellState.PREPARING: {CellState.RUNNING},
        }
        if phase in moves_forward.get(cell.state, set()):
            cell_transition(cell=cell, to=phase, **changes)
        else:
            for field, value in changes.items():
                setattr(cell, field, value)
            cell.save(update_fields=list(changes))
    return True


def _cap_log(log: str) -> str:
    if len(log) <= LOG_FILE_MAX_CHARS:
        return log
    half = LOG_FILE_MAX_CHARS // 2
    return f"{log[:half]}\n[... {len(log) - 2 * half} characters cut ...]\n{log[-half:]}"


def cell_record_result(
    *, cell_id: int, attempt: int, runner: str, result: dict[str, Any], log: str = ""
) -> CellResult | None:
    """Store a runner's result, once per (cell, attempt); apply it while the cell is not final.

    A second delivery of the same result returns the first row and changes nothing. The result
    of an attempt the reaper gave up on (its runner taken for lost, the cell re-queued as a
    later attempt) still wins when it comes first: that attempt finished, the cell is its, and
    the later attempt is called off (`_call_off_later_attempt`). Once the cell is final, later
    results are kept but not applied.
    """
    outcome = Result.from_dict(result)
    with transaction.atomic():
        cell = _locked_cell(cell_id)
        if cell is None:
            return None
        existing = CellResult.objects.filter(cell=cell, attempt=attempt).first()
        if existing is not None:
            return existing
        applies = 1 <= attempt <= cell.attempt and cell.state not in FINAL_STATES
        stored = _store_result(
            cell=cell, attempt=attempt, runner=runner, outcome=outcome, applied=applies
        )
        if not applies:
            return stored
        if attempt < cell.attempt:
            _call_off_later_attempt(cell=cell, attempt=attempt)
        now = timezone.now()
        full_log = _cap_log(log or outcome.log_tail).encode("utf-8", errors="replace")
        cell.log_file.save(
            f"cell-{cell.pk}-attempt-{attempt}.log.gz",
            ContentFile(gzip.compress(full_log, compresslevel=6)),
            save=False,
        )
        cell_transition(
            cell=cell,
            to=str(outcome.state),
            runner_name=runner[:200],
            finished_at=now,
            started_at=cell.started_at or now,
            last_seen_at=now,
            commit=(outcome.commit or "")[:64],
            counts=outcome.counts,
            failures=outcome.failures,
            warnings=outcome.warnings,
            timings=outcome.timings,
            environment=outcome.environment,
            energy_j=outcome.energy_j,
            exit_code=outcome.exit_code,
            error=outcome.error or "",
            log_tail=(outcome.log_tail or log)[-LOG_TAIL_CHARS:],
            log_file=cell.log_file,
            **_reported_fields(outcome),
            **_suite_shrink(cell=cell, collected=_collected(outcome)),
        )
        if outcome.commit and not cell.run.resolved_commit:
            CompatRun.objects.filter(pk=cell.run_id, resolved_commit="").update(
                resolved_commit=outcome.commit[:64]
            )
        cells_finalize(cells=[cell])
    return stored


def _store_result(
    *, cell: CompatCell, attempt: int, runner: str, outcome: Result, applied: bool
) -> CellResult:
    """The per-attempt copy: the result as reported, its lock in a field of its own."""
    payload = outcome.to_dict()
    lock = payload.pop("lock", None)
    return CellResult.objects.create(
        cell=cell,
        attempt=attempt,
        runner_name=runner[:200],
        state=str(outcome.state),
        payload=payload,
        applied=applied,
        error_code=_text(outcome.error_code, 40),
        tests_collected=_collected(outcome),
        recipe_hash=_recipe_hash(outcome),
        lock=[str(line) for line in lock] if isinstance(lock, list) else [],
        lock_hash=_text(outcome.lock_hash, 80),
    )


def _text(value: object, limit: int) -> str:
    return str(value)[:limit] if value else ""


def _collected(outcome: Result) -> int | None:
    """`tests_collected` when it is a count (an older agent sends none, a broken one junk)."""
    value = outcome.tests_collected
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _recipe_hash(outcome: Result) -> str:
    recipe = outcome.recipe if isinstance(outcome.recipe, dict) else {}
    return _text(recipe.get("hash"), 80)


def _reported_fields(outcome: Result) -> dict[str, Any]:
    """What newer agents report besides the counts; an older agent's defaults are empty."""
    recipe = outcome.recipe if isinstance(outcome.recipe, dict) else {}
    needs_network = outcome.needs_network if isinstance(outcome.needs_network, list) else []
    return {
        "error_code": _text(outcome.error_code, 40),
        "tests_collected": _collected(outcome),
        "needs_network": needs_network,
        "recipe": recipe,
        "recipe_hash": _recipe_hash(outcome),
        "lock_hash": _text(outcome.lock_hash, 80),
        "declared": _declared(outcome),
        "flaky": _dict_list(outcome.flaky),
        "beyond_range": outcome.beyond_range if isinstance(outcome.beyond_range, dict) else {},
    }


def _dict_list(value: object) -> list[dict[str, Any]]:
    """A list of objects as reported (an older agent sends none, a broken one junk)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _declared(outcome: Result) -> dict[str, str]:
    """`Result.declared` as specifier texts (an older agent sends none, a broken one junk)."""
    declared = outcome.declared if isinstance(outcome.declared, dict) else {}
    return {
        key: str(declared[key])[:200]
        for key in ("torch", "requires_python")
        if isinstance(declared.get(key), str)
    }


def _suite_shrink(*, cell: CompatCell, collected: int | None) -> dict[str, Any]:
    """`suite_shrunk` and its figures: the cell collected more than SUITE_SHRINK_RATIO fewer
    tests than the same project's latest finished cell on another target (an applicant's
    repository: the same source) that collected any."""
    if collected is None:
        return {"suite_shrunk": False, "suite_shrink": None}
    others = CompatCell.objects.filter(
        tests_collected__gt=0, finished_at__isnull=False, state__in=RESULT_STATES
    ).exclude(target_id=cell.target_id)
    if cell.project_id is not None:
        others = others.filter(project_id=cell.project_id)
    else:
        others = others.filter(project__isnull=True, run__source_url=cell.run.source_url)
    reference = (
        others.exclude(pk=cell.pk)
        .select_related("target")
        .order_by("-finished_at", "-pk")
        .only("pk", "tests_collected", "target")
        .first()
    )
    if reference is None or reference.tests_collected is None:
        return {"suite_shrunk": False, "suite_shrink": None}
    if collected >= reference.tests_collected * (1 - SUITE_SHRINK_RATIO):
        return {"suite_shrunk": False, "suite_shrink": None}
    return {
        "suite_shrunk": True,
        "suite_shrink": {
            "collected": collected,
            "reference": reference.tests_collected,
            "reference_cell": reference.pk,
            "reference_target": reference.target.label,
        },
    }


def _call_off_later_attempt(*, cell: CompatCell, attempt: int) -> None:
    """The cell goes back to `attempt`, whose result is being applied; once committed, the
    agents are told that the later attempt is not wanted (its message revoked)."""
    later_task_id = cell.task_id
    cell.attempt = attempt
    cell.task_id = contracts.cell_task_id(cell_id=cell.pk, token=str(cell.token), attempt=attempt)
    cell.save(update_fields=["attempt", "task_id"])
    keyed = [(cell.pk, str(cell.token))]

    def call_off() -> None:
        try:
            broker.cancel_cells(cells=keyed, task_ids=[later_task_id])
        except Exception:  # the result stands; an agent running the later attempt finishes it
            logger.exception("calling off cell %s's later attempt failed", keyed[0][0])

    transaction.on_commit(call_off)


def matrix_project_id(cell: CompatCell) -> int | None:
    """The project the cell speaks for in the matrix and summaries: a registry project's cell,
    not one of a bisection (the evidence of one search); None otherwise."""
    if cell.run.trigger == CompatRun.Trigger.BISECTION:
        return None
    return cell.project_id


def cells_finalize(*, cells: list[CompatCell]) -> None:
    """After cells became final (inside the transaction): matrix, summary, slots, run end."""
    summary_ids: set[int] = set()
    for cell in cells:
        project_id = matrix_project_id(cell)
        if cell.state in RESULT_STATES and project_id is not None:
            CompatStatus.objects.filter(project_id=project_id, target_id=cell.target_id).update(
                last_final_cell=cell
            )
            summary_ids.add(project_id)
    project_ids = sorted({cell.project_id for cell in cells if cell.project_id is not None})
    for project in Project.objects.filter(pk__in=summary_ids):
        _push_summary(project=project)
    cells_dispatch_waiting(project_ids=project_ids)
    for run_id in sorted({cell.run_id for cell in cells}):
        _maybe_finish_run(run_id=run_id)


# What the latest final cell on a torch version says of the project on that version. Errored
# (infrastructure) and cancelled cells say nothing: the version is in none of the lists.
WORKS_WITH_STATES = frozenset({CellState.PASSED})
BREAKS_WITH_STATES = frozenset({CellState.FAILED, CellState.TIMED_OUT})
NOT_INSTALLABLE_STATES = frozenset({CellState.NOT_INSTALLABLE})


def _push_summary(*, project: Project) -> None:
    """The project's public compatibility summary from the latest final cell on each target:
    the versions it works with, breaks with, cannot be installed with (of those, the ones its
    tests pass with beyond its declared range: `widenable_with`), and what it declares."""
    statuses = CompatStatus.objects.filter(
        project=project, last_final_cell__isnull=False
    ).select_related("target", "last_final_cell")
    works, breaks, not_installable, widenable = [], [], [], []
    declared: dict[str, str] | None = None
    latest: datetime | None = None
    for status in statuses:
        if status.last_final_cell is None:
            continue
        cell = status.last_final_cell
        if cell.declared and cell.finished_at and (latest is None or cell.finished_at > latest):
            declared, latest = dict(cell.declared), cell.finished_at
        state = status.last_final_cell.state
        if state in WORKS_WITH_STATES:
            works.append(status.target.version)
        elif state in BREAKS_WITH_STATES:
            breaks.append(status.target.version)
        elif state in NOT_INSTALLABLE_STATES:
            not_installable.append(status.target.version)
            # Its declared range excludes this torch, but its tests pass with it (run beyond).
            beyond = cell.beyond_range if isinstance(cell.beyond_range, dict) else {}
            if beyond.get("state") == CellState.PASSED:
                widenable.append(status.target.version)
    project_set_compat_summary(
        project=project,
        works_with=works,
        breaks_with=breaks,
        not_installable_with=not_installable,
        declared=declared,
        widenable_with=widenable,
    )


def _maybe_finish_run(*, run_id: int) -> None:
    run = CompatRun.objects.select_for_update().get(pk=run_id)
    if run.finished_at is not None:
        return
    if run.cells.exclude(state__in=FINAL_STATES).exists():
        return
    run.finished_at = timezone.now()
    run.save(update_fields=["finished_at"])
    if run.on_complete_task:
        name, kwargs = run.on_complete_task, {"run_id": run.pk, **run.on_complete_kwargs}
        transaction.on_commit(
            lambda: broker.send_by_name(name=name, kwargs=kwargs, queue=contracts.DEFAULT_QUEUE)
        )
    from ci_runners.services.bisection import bisections_autostart_after  # bisection starts runs

    bisections_autostart_after(run=run)
