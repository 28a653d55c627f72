"""Cells: the one writer of `CompatCell.state`, runners' progress and results, and what
follows when cells become final (matrix, project summary, freed slots, the run's end).
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import partial
from typing import Any

from django.core.files.base import ContentFile
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import Case, CharField, Value, When
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
    TorchTarget,
)
from ci_runners.services.dispatch import cells_dispatch_waiting
from ci_runners.states import FINAL_STATES, RESULT_STATES, CellState, check_transition
from registry.bulk import bulk_insert, bulk_update
from registry.models import Project
from registry.services import CompatSummary, projects_set_compat_summaries

logger = logging.getLogger(__name__)

LOG_FILE_MAX_CHARS = contracts.STORED_LOG_MAX_CHARS
LOG_TAIL_CHARS = contracts.LOG_TAIL_CHARS


def cell_transition(*, cell: CompatCell, to: str, **changes: Any) -> CompatCell:
    """Move a (locked) cell to `to`, checking the transition table; other fields ride along."""
    _transition(cell=cell, to=to, **changes)
    cell.save(update_fields=["state", *changes])
    return cell


def _transition(*, cell: CompatCell, to: str, **changes: Any) -> None:
    """`cell_transition` in memory only (a batch writes its cells in bulk)."""
    check_transition(current=cell.state, to=to)
    cell.state = to
    for name, value in changes.items():
        setattr(cell, name, value)


def _locked_cell(cell_id: int) -> CompatCell | None:
    """The cell, locked; its run and target read along but not locked (every cell of a
    target would otherwise wait on the target's row)."""
    return (
        CompatCell.objects.select_for_update(of=("self",))
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
            for name, value in changes.items():
                setattr(cell, name, value)
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
    """Store one runner's result: `cells_record_results` with a batch of one."""
    message = contracts.ResultMessage(
        cell_id=cell_id, attempt=attempt, runner=runner, result=result, log=log
    )
    return cells_record_results(messages=[message])[0]


@dataclass(kw_only=True)
class _Recorded:
    """What a batch of results changed, for the writes and derived updates that follow."""

    rows: list[CellResult] = field(default_factory=list)
    applied: dict[int, CompatCell] = field(default_factory=dict)
    resolved_commits: dict[int, str] = field(default_factory=dict)
    call_offs: list[tuple[int, str, str]] = field(default_factory=list)


def cells_record_results(*, messages: Sequence[contracts.ResultMessage]) -> list[CellResult | None]:
    """Store runners' results, once per (cell, attempt), and apply each while its cell is not
    final: one transaction for the whole batch, the rows written in bulk, and what follows
    coalesced (`cells_finalize`: one matrix update per project and target, one summary per
    project, one slot refill, each finished run once).

    A second delivery of a result (in this batch or an earlier one) changes nothing and gets
    the first row. The result of an attempt the reaper gave up on (its runner taken for lost,
    the cell re-queued as a later attempt) still wins when it comes first: that attempt
    finished, the cell is its, and the later attempt is called off. Once the cell is final,
    later results are kept but not applied. Returns each message's row: None for an unknown
    cell or a result an agent may not send (logged).
    """
    outcomes = [_outcome_of(message) for message in messages]
    now = timezone.now()
    with transaction.atomic():
        ids = sorted({message.cell_id for message in messages})
        cells = {
            cell.pk: cell
            for cell in CompatCell.objects.select_for_update(of=("self",))
            .select_related("run", "target")
            .defer(*RESULT_ONLY_FIELDS)
            .filter(pk__in=ids)
            .order_by("pk")
        }
        stored = {
            (row.cell_id, row.attempt): row for row in CellResult.objects.filter(cell_id__in=ids)
        }
        references = _ShrinkReferences.load(cells=list(cells.values()))
        recorded = _Recorded()
        answers: list[CellResult | None] = []
        for message, outcome in zip(messages, outcomes, strict=True):
            cell = cells.get(message.cell_id)
            if cell is None or outcome is None:
                answers.append(None)
                continue
            key = (cell.pk, message.attempt)
            if key not in stored:
                stored[key] = _record(
                    cell=cell,
                    message=message,
                    outcome=outcome,
                    recorded=recorded,
                    references=references,
                    now=now,
                )
            answers.append(stored[key])
        _write(recorded)
    return answers


# A result the database could not take for want of a connection comes back this much later.
RESEND_AFTER_S = 10.0


def cells_record_results_or_resend(*, messages: Sequence[contracts.ResultMessage]) -> None:
    """`cells_record_results` for a batch the results worker took. When the database refuses
    the batch, each result is recorded alone, so one bad result (logged and dropped, as an
    unreadable one is) does not hold back the others; what could not be recorded for want of
    the database (connection lost, deadlock) is sent again to the results queue, due in
    RESEND_AFTER_S: the worker acknowledges a batch once this returns, so nothing is dropped
    while the database is away, and recording it again changes nothing that was committed."""
    if not messages:
        return
    try:
        cells_record_results(messages=messages)
        return
    except (OperationalError, InterfaceError):
        logger.exception("recording %d results failed: sending them again", len(messages))
        _resend(messages)
        return
    except DatabaseError:
        logger.exception("recording a batch of %d results failed: one by one", len(messages))
    for message in messages:
        try:
            cells_record_results(messages=[message])
        except (OperationalError, InterfaceError):
            _resend([message])
        except DatabaseError:
            logger.exception(
                "dropped the result of cell %s attempt %s", message.cell_id, message.attempt
            )


def _resend(messages: Sequence[contracts.ResultMessage]) -> None:
    for message in messages:
        broker.send_by_name(
            name=contracts.RESULT_TASK,
            kwargs=message.to_kwargs(),
            queue=contracts.CELL_RESULTS_QUEUE,
            countdown=RESEND_AFTER_S,
        )


def _outcome_of(message: contracts.ResultMessage) -> Result | None:
    try:
        return Result.from_dict(message.result)
    except (KeyError, TypeError, ValueError) as exc:
        logger.error(
            "cell %s attempt %s: unreadable result: %r", message.cell_id, message.attempt, exc
        )
        return None


def _record(
    *,
    cell: CompatCell,
    message: contracts.ResultMessage,
    outcome: Result,
    recorded: _Recorded,
    references: _ShrinkReferences,
    now: datetime,
) -> CellResult:
    """The per-attempt row of one result (written later, in bulk); the result applied to its
    (locked, in-memory) cell when it applies."""
    attempt = message.attempt
    applies = 1 <= attempt <= cell.attempt and cell.state not in FINAL_STATES
    row = _result_row(
        cell=cell, attempt=attempt, runner=message.runner, outcome=outcome, applied=applies
    )
    recorded.rows.append(row)
    if not applies:
        return row
    if attempt < cell.attempt:
        recorded.call_offs.append((cell.pk, str(cell.token), cell.task_id))
        cell.attempt = attempt
        cell.task_id = contracts.cell_task_id(
            cell_id=cell.pk, token=str(cell.token), attempt=attempt
        )
    full_log = _cap_log(message.log or outcome.log_tail)
    log_tail = (outcome.log_tail or message.log)[-LOG_TAIL_CHARS:]
    if len(full_log) > LOG_TAIL_CHARS:
        cell.log_file.save(
            f"cell-{cell.pk}-attempt-{attempt}.log.gz",
            ContentFile(gzip.compress(full_log.encode("utf-8", errors="replace"), 6)),
            save=False,
        )
    else:  # the whole log is its tail: kept there alone (`selectors.cell_log_bytes`)
        cell.log_file = ""  # type: ignore[assignment]
        log_tail = full_log
    _transition(
        cell=cell,
        to=str(outcome.state),
        runner_name=message.runner[:200],
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
        log_tail=log_tail,
        **_reported_fields(outcome),
    )
    for name, value in references.shrink(cell=cell).items():
        setattr(cell, name, value)
    recorded.applied[cell.pk] = cell
    if outcome.commit and not cell.run.resolved_commit:
        recorded.resolved_commits.setdefault(cell.run_id, outcome.commit[:64])
    return row


# Every field `_record` may change on a cell, written in bulk.
RECORDED_FIELDS = [
    "state",
    "attempt",
    "task_id",
    "log_file",
    "runner_name",
    "finished_at",
    "started_at",
    "last_seen_at",
    "commit",
    "counts",
    "failures",
    "warnings",
    "timings",
    "environment",
    "energy_j",
    "exit_code",
    "error",
    "log_tail",
    "error_code",
    "tests_collected",
    "needs_network",
    "recipe",
    "recipe_hash",
    "lock_hash",
    "declared",
    "flaky",
    "beyond_range",
    "suite_shrunk",
    "suite_shrink",
]


# Of those, the ones a result replaces whole and nothing reads before: not loaded with the
# batch's cells (their JSON costs more to decode than the rest of the row).
RESULT_ONLY_FIELDS = [
    "counts",
    "failures",
    "warnings",
    "timings",
    "environment",
    "recipe",
    "declared",
    "flaky",
    "beyond_range",
    "suite_shrink",
    "needs_network",
    "log_tail",
    "error",
]


def _write(recorded: _Recorded) -> None:
    """The batch's rows and cells in bulk, the runs' resolved commits in one update, later
    attempts called off once committed, then what follows the cells that became final."""
    bulk_insert(recorded.rows)
    cells = list(recorded.applied.values())
    if not cells:
        return
    bulk_update(cells, RECORDED_FIELDS)
    if recorded.resolved_commits:
        CompatRun.objects.filter(pk__in=recorded.resolved_commits, resolved_commit="").update(
            resolved_commit=Case(
                *[When(pk=pk, then=Value(sha)) for pk, sha in recorded.resolved_commits.items()],
                output_field=CharField(),
            )
        )
    if recorded.call_offs:
        _call_off_later_attempts(recorded.call_offs)
    cells_finalize(cells=cells)


def _result_row(
    *, cell: CompatCell, attempt: int, runner: str, outcome: Result, applied: bool
) -> CellResult:
    """The per-attempt copy (unsaved): the result as reported, its lock in a field of its own.
    (A shallow copy: serialised as it is written, so nothing is shared with the cell.)"""
    payload = {f.name: getattr(outcome, f.name) for f in fields(outcome) if f.name != "lock"}
    payload["state"] = str(outcome.state)
    lock = outcome.lock
    return CellResult(
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


@dataclass(frozen=True, kw_only=True)
class _Reference:
    """A finished cell that collected tests: what a cell on another target is measured by."""

    pk: int
    target_id: int
    target_label: str
    collected: int
    finished_at: datetime


NO_SHRINK: dict[str, Any] = {"suite_shrunk": False, "suite_shrink": None}


@dataclass(kw_only=True)
class _ShrinkReferences:
    """For a batch: each project's latest final cell per target that collected tests (the
    matrix's), kept current as the batch's cells finish, so no cell costs a query."""

    by_project: dict[int, dict[int, _Reference]]

    @classmethod
    def load(cls, *, cells: list[CompatCell]) -> _ShrinkReferences:
        project_ids = {cell.project_id for cell in cells if cell.project_id is not None}
        rows = list(
            CompatStatus.objects.filter(
                project_id__in=project_ids,
                last_final_cell__tests_collected__gt=0,
                last_final_cell__finished_at__isnull=False,
                last_final_cell__state__in=RESULT_STATES,
            ).values_list(
                "project_id",
                "target_id",
                "last_final_cell_id",
                "last_final_cell__tests_collected",
                "last_final_cell__finished_at",
            )
        )
        targets = TorchTarget.objects.in_bulk({row[1] for row in rows})
        by_project: dict[int, dict[int, _Reference]] = {}
        for project_id, target_id, pk, collected, finished_at in rows:
            if collected is None or finished_at is None:  # filtered out above
                continue
            by_project.setdefault(project_id, {})[target_id] = _Reference(
                pk=pk,
                target_id=target_id,
                target_label=targets[target_id].label,
                collected=collected,
                finished_at=finished_at,
            )
        return cls(by_project=by_project)

    def shrink(self, *, cell: CompatCell) -> dict[str, Any]:
        """`suite_shrunk` and its figures: the cell collected more than SUITE_SHRINK_RATIO
        fewer tests than the same project's latest final cell on another target (an
        applicant's repository: the same source) that collected any."""
        collected = cell.tests_collected
        if collected is None:
            return NO_SHRINK
        if cell.project_id is None:
            reference = _applicant_reference(cell)
        else:
            references = self.by_project.setdefault(cell.project_id, {})
            others = [ref for ref in references.values() if ref.target_id != cell.target_id]
            reference = max(others, key=lambda ref: (ref.finished_at, ref.pk), default=None)
            if collected > 0 and cell.finished_at is not None and cell.state in RESULT_STATES:
                references[cell.target_id] = _Reference(
                    pk=cell.pk,
                    target_id=cell.target_id,
                    target_label=cell.target.label,
                    collected=collected,
                    finished_at=cell.finished_at,
                )
        if reference is None or collected >= reference.collected * (1 - SUITE_SHRINK_RATIO):
            return NO_SHRINK
        return {
            "suite_shrunk": True,
            "suite_shrink": {
                "collected": collected,
                "reference": reference.collected,
                "reference_cell": reference.pk,
                "reference_target": reference.target_label,
            },
        }


def _applicant_reference(cell: CompatCell) -> _Reference | None:
    """An applicant's repository (no project): its latest finished cell of the same source on
    another target that collected tests."""
    other = (
        CompatCell.objects.filter(
            project__isnull=True,
            run__source_url=cell.run.source_url,
            tests_collected__gt=0,
            finished_at__isnull=False,
            state__in=RESULT_STATES,
        )
        .exclude(target_id=cell.target_id)
        .exclude(pk=cell.pk)
        .select_related("target")
        .order_by("-finished_at", "-pk")
        .first()
    )
    if other is None or other.tests_collected is None or other.finished_at is None:
        return None
    return _Reference(
        pk=other.pk,
        target_id=other.target_id,
        target_label=other.target.label,
        collected=other.tests_collected,
        finished_at=other.finished_at,
    )


def _call_off_later_attempts(call_offs: list[tuple[int, str, str]]) -> None:
    """Cells gone back to an earlier attempt, whose result is applied: once committed, the
    agents are told that the later attempts are not wanted (their messages revoked)."""
    keyed = [(cell_id, token) for cell_id, token, _ in call_offs]
    task_ids = [task_id for _, _, task_id in call_offs]

    def call_off() -> None:
        try:
            broker.cancel_cells(cells=keyed, task_ids=task_ids)
        except Exception:  # the results stand; an agent running a later attempt finishes it
            logger.exception("calling off the later attempts of cells %s failed", keyed)

    transaction.on_commit(call_off)


def matrix_project_id(cell: CompatCell) -> int | None:
    """The project the cell speaks for in the matrix and summaries: a registry project's cell,
    not one of a bisection (the evidence of one search); None otherwise."""
    if cell.run.trigger == CompatRun.Trigger.BISECTION:
        return None
    return cell.project_id


def cells_finalize(*, cells: list[CompatCell]) -> None:
    """After cells became final (inside the transaction), coalesced over the batch: the matrix
    (one status update per project and target, the newest cell winning), one summary per
    project, one slot refill, and each run whose cells are all final finished once.

    The projects are locked first, in key order: two batches touching one project take
    turns, so each summary is computed from every committed status (and no two batches wait
    on each other in opposite orders)."""
    newest: dict[tuple[int, int], CompatCell] = {}
    for cell in cells:
        project_id = matrix_project_id(cell)
        key = (project_id or 0, cell.target_id)
        if cell.state in RESULT_STATES and project_id is not None:
            if key not in newest or cell.pk > newest[key].pk:
                newest[key] = cell
    project_ids = sorted({cell.project_id for cell in cells if cell.project_id is not None})
    list(Project.objects.select_for_update().filter(pk__in=project_ids).order_by("pk").values("pk"))
    _statuses_set_last_final(newest)
    _push_summaries(project_ids=sorted({project_id for project_id, _ in newest}))
    cells_dispatch_waiting(project_ids=project_ids)
    _finish_runs(run_ids=sorted({cell.run_id for cell in cells}))


def _statuses_set_last_final(newest: dict[tuple[int, int], CompatCell]) -> None:
    """Point each (project, target)'s status at its newest final cell, unless it already
    points at a newer one (a late result of an older run does not hide a newer run's)."""
    if not newest:
        return
    statuses = list(
        CompatStatus.objects.select_for_update()
        .filter(
            project_id__in={project_id for project_id, _ in newest},
            target_id__in={target_id for _, target_id in newest},
        )
        .only("pk", "project_id", "target_id", "last_final_cell_id")
        .order_by("pk")
    )
    changed = []
    for status in statuses:
        cell = newest.get((status.project_id, status.target_id))
        if cell is None:
            continue
        if status.last_final_cell_id is None or status.last_final_cell_id < cell.pk:
            status.last_final_cell = cell
            changed.append(status)
    bulk_update(changed, ["last_final_cell"])


# What the latest final cell on a torch version says of the project on that version. Errored
# (infrastructure) and cancelled cells say nothing: the version is in none of the lists.
WORKS_WITH_STATES = frozenset({CellState.PASSED})
BREAKS_WITH_STATES = frozenset({CellState.FAILED, CellState.TIMED_OUT})
NOT_INSTALLABLE_STATES = frozenset({CellState.NOT_INSTALLABLE})


@dataclass(frozen=True)
class _LastWord:
    """What a (project, target)'s latest final cell says, as `_push_summaries` reads it."""

    version: str
    state: str
    declared: dict[str, str] | None
    finished_at: datetime | None
    beyond_range: object


def _push_summaries(*, project_ids: list[int]) -> None:
    """Each project's public compatibility summary from the latest final cell on each target
    (one query of plain values for all of them): the versions it works with, breaks with,
    cannot be installed with (of those, the ones its tests pass with beyond its declared
    range: `widenable_with`), and what it declares."""
    if not project_ids:
        return
    rows = CompatStatus.objects.filter(
        project_id__in=project_ids, last_final_cell__isnull=False
    ).values_list(
        "project_id",
        "target__version",
        "last_final_cell__state",
        "last_final_cell__declared",
        "last_final_cell__finished_at",
        "last_final_cell__beyond_range",
    )
    by_project: dict[int, list[_LastWord]] = {project_id: [] for project_id in project_ids}
    for project_id, *word in rows:
        by_project[project_id].append(_LastWord(*word))
    projects_set_compat_summaries(
        summaries=[
            (project, _summary_of(by_project[project.pk]))
            for project in Project.objects.filter(pk__in=project_ids).order_by("pk")
        ]
    )


def _summary_of(words: list[_LastWord]) -> CompatSummary:
    works: list[str] = []
    breaks: list[str] = []
    not_installable: list[str] = []
    widenable: list[str] = []
    declared: dict[str, str] | None = None
    latest: datetime | None = None
    for word in words:
        if word.declared and word.finished_at and (latest is None or word.finished_at > latest):
            declared, latest = dict(word.declared), word.finished_at
        if word.state in WORKS_WITH_STATES:
            works.append(word.version)
        elif word.state in BREAKS_WITH_STATES:
            breaks.append(word.version)
        elif word.state in NOT_INSTALLABLE_STATES:
            not_installable.append(word.version)
            # Its declared range excludes this torch, but its tests pass with it (run beyond).
            beyond = word.beyond_range if isinstance(word.beyond_range, dict) else {}
            if beyond.get("state") == CellState.PASSED:
                widenable.append(word.version)
    return CompatSummary(
        works_with=works,
        breaks_with=breaks,
        not_installable_with=not_installable,
        declared=declared,
        widenable_with=widenable,
    )


def _finish_runs(*, run_ids: list[int]) -> None:
    """Finish, once each, the runs whose cells are all final (locked, so two batches cannot
    both finish one): their on-complete tasks are sent on commit, and a matrix run that shows
    a new break starts its bisection."""
    runs = list(
        CompatRun.objects.select_for_update()
        .filter(pk__in=run_ids, finished_at__isnull=True)
        .order_by("pk")
    )
    if not runs:
        return
    open_runs = set(
        CompatCell.objects.filter(run_id__in=[run.pk for run in runs])
        .exclude(state__in=FINAL_STATES)
        .values_list("run_id", flat=True)
    )
    finished = [run for run in runs if run.pk not in open_runs]
    if not finished:
        return
    now = timezone.now()
    CompatRun.objects.filter(pk__in=[run.pk for run in finished]).update(finished_at=now)
    for run in finished:
        run.finished_at = now
        if run.on_complete_task:
            name, kwargs = run.on_complete_task, {"run_id": run.pk, **run.on_complete_kwargs}
            send = partial(
                broker.send_by_name, name=name, kwargs=kwargs, queue=contracts.DEFAULT_QUEUE
            )
            transaction.on_commit(send)
    from ci_runners.services.bisection import bisections_autostart_after  # bisection starts runs

    bisections_autostart_after(runs=finished)
