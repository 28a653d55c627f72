"""Requesting and cancelling compatibility runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ci_runners import broker
from ci_runners.models import CompatCell, CompatRun, CompatStatus, ProjectTestConfig, TorchTarget
from ci_runners.services.cells import cell_transition, cells_finalize, matrix_project_id
from ci_runners.services.dispatch import CHUNK, cells_dispatch_waiting, job_hash_of
from ci_runners.services.night_plan import carried_cell, job_hashes_of
from ci_runners.states import ACTIVE_STATES, CellState
from registry.bulk import bulk_insert
from registry.models import Project
from registry.repository_urls import InvalidRepositoryURL, parse_repository_url


class CompatRunRefused(Exception):
    """The run cannot be requested as asked; the message says why."""


MAINTAINER_RUNS_WINDOW = timedelta(hours=1)


class RunLimitReached(CompatRunRefused):
    """A maintainer's run refused by the project's hourly allowance; `retry_after_s` says when
    the next one may start."""

    def __init__(self, *, limit: int, retry_after_s: int) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        minutes = max(1, -(-retry_after_s // 60))
        super().__init__(
            f"This project's maintainers may start {limit} runs an hour; the next one "
            f"can start in {minutes} minute{'s' if minutes != 1 else ''}."
        )

    @property
    def message(self) -> str:
        return str(self)


def _update_statuses(cells: list[CompatCell]) -> None:
    rows = [
        CompatStatus(project_id=project_id, target_id=cell.target_id, latest_cell=cell)
        for cell in cells
        if (project_id := matrix_project_id(cell)) is not None
    ]
    CompatStatus.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["project", "target"],
        update_fields=["latest_cell"],
        batch_size=CHUNK,
    )


def _check_trigger(trigger: str) -> None:
    if trigger not in CompatRun.Trigger.values:
        raise CompatRunRefused(
            f"Unknown trigger {trigger!r}; use one of {', '.join(CompatRun.Trigger.values)}."
        )


def _targets(targets: Iterable[TorchTarget] | None) -> list[TorchTarget]:
    chosen = list(TorchTarget.objects.filter(active=True)) if targets is None else list(targets)
    if not chosen:
        raise CompatRunRefused("No active PyTorch target to run against.")
    return chosen


def compat_run_request(
    *,
    project: Project | None = None,
    source_url: str = "",
    targets: Iterable[TorchTarget] | None = None,
    trigger: str,
    requested_by: Any = None,
    ref: str = "",
    on_complete_task: str = "",
    on_complete_kwargs: dict | None = None,
) -> CompatRun:
    """Create a run with one cell per target (None: every active one) and dispatch its cells.

    Without a project, `source_url` must be a GitHub repository URL (an applicant's
    repository). When every cell is final, `on_complete_task` is sent by name to the
    `default` queue with `{"run_id": run.id, **on_complete_kwargs}`.
    """
    _check_trigger(trigger)
    if project is None:
        try:
            source_url = parse_repository_url(source_url).url
        except InvalidRepositoryURL as exc:
            raise CompatRunRefused(str(exc)) from exc
    else:
        config = ProjectTestConfig.objects.filter(project=project).first()
        if not (config and config.source_override) and not project.repository_url:
            raise CompatRunRefused(f"{project.name} has no repository to test.")
    if len(ref) > 200:
        raise CompatRunRefused("The ref is longer than 200 characters.")
    chosen = _targets(targets)
    with transaction.atomic():
        run = CompatRun.objects.create(
            project=project,
            source_url=source_url if project is None else "",
            trigger=trigger,
            requested_by=requested_by if getattr(requested_by, "pk", None) else None,
            ref=ref,
            on_complete_task=on_complete_task,
            on_complete_kwargs=dict(on_complete_kwargs or {}),
        )
        config = ProjectTestConfig.objects.filter(project=project).first() if project else None
        cells = CompatCell.objects.bulk_create(
            [
                CompatCell(
                    run=run,
                    target=target,
                    project=project,
                    queue=target.queue,
                    job_hash=job_hash_of(
                        project=project,
                        config=config,
                        target=target,
                        source_url=run.source_url,
                        ref=run.ref,
                    ),
                )
                for target in chosen
            ]
        )
        _update_statuses(cells)
        cells_dispatch_waiting(project_ids=[project.pk] if project else [], run=run)
    return run


def compat_run_request_manual(*, project: Project, requested_by: Any) -> CompatRun:
    """A run of `project` asked for now by staff or one of its maintainers (the caller checks
    who may), against every active target.

    Staff are not limited. The maintainers share the project's allowance of
    `COMPAT_MAINTAINER_RUNS_PER_HOUR` manual runs an hour, counted from the runs themselves
    under a lock of the project's row, in the transaction that creates the run: of two
    requests at once for the last run of the hour, one waits for the other's and is refused
    (`RunLimitReached`)."""
    with transaction.atomic():
        if not getattr(requested_by, "is_staff", False):
            Project.objects.select_for_update().filter(pk=project.pk).first()
            _check_maintainer_allowance(project=project, now=timezone.now())
        return compat_run_request(
            project=project, trigger=CompatRun.Trigger.MANUAL, requested_by=requested_by
        )


def _check_maintainer_allowance(*, project: Project, now: datetime) -> None:
    limit: int = getattr(settings, "COMPAT_MAINTAINER_RUNS_PER_HOUR", 6)
    recent = list(
        CompatRun.objects.filter(
            project=project,
            trigger=CompatRun.Trigger.MANUAL,
            requested_by__is_staff=False,
            created_at__gt=now - MAINTAINER_RUNS_WINDOW,
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)[: max(limit, 1)]
    )
    if len(recent) < limit:
        return
    # The oldest of the `limit` latest runs leaves the window first.
    frees_at = (recent[-1] if limit > 0 and recent else now) + MAINTAINER_RUNS_WINDOW
    retry_after_s = max(1, int((frees_at - now).total_seconds()) + 1)
    raise RunLimitReached(limit=limit, retry_after_s=retry_after_s)


def compat_runs_request_for_projects(
    *,
    projects: Iterable[Project],
    targets: Iterable[TorchTarget] | None,
    trigger: str,
    carry: Mapping[tuple[int, int], CompatCell] | None = None,
    job_hashes: Mapping[tuple[int, int], str] | None = None,
) -> int:
    """One run per project against the targets, in bulk (nightly, new release). Returns cells.

    `carry` maps (project id, target id) to the evidence cell of a cell that need not run
    (`services.night_plan`): that cell is made final at once, a copy of the evidence's result
    (`carried_cell`); the other cells are queued and dispatched. `job_hashes`: the plan's
    `job_hashes_of` these projects and targets, when it has them (else computed here).
    """
    _check_trigger(trigger)
    chosen = _targets(targets)
    project_list = list(projects)
    if not project_list:
        return 0
    carry = carry or {}
    with transaction.atomic():
        runs = [CompatRun(project=project, trigger=trigger) for project in project_list]
        bulk_insert(runs)
        hashes = job_hashes or job_hashes_of(projects=project_list, targets=chosen)
        now = timezone.now()
        cells = [
            _new_cell(
                run=run,
                target=target,
                job_hash=hashes[project.pk, target.pk],
                evidence=carry.get((project.pk, target.pk)),
                now=now,
            )
            for run, project in zip(runs, project_list, strict=True)
            for target in chosen
        ]
        bulk_insert(cells)
        _update_statuses(cells)
        carried = [cell for cell in cells if cell.carried_from_id is not None]
        if carried:
            cells_finalize(cells=carried)
        cells_dispatch_waiting(project_ids=[project.pk for project in project_list])
    return len(cells)


def _new_cell(
    *,
    run: CompatRun,
    target: TorchTarget,
    job_hash: str,
    evidence: CompatCell | None,
    now: datetime,
) -> CompatCell:
    if evidence is not None:
        return carried_cell(evidence=evidence, run=run, job_hash=job_hash, now=now)
    return CompatCell(
        run=run, target=target, project_id=run.project_id, queue=target.queue, job_hash=job_hash
    )


def compat_run_cancel(*, run: CompatRun, actor: Any) -> int:
    """Cancel every unfinished cell of the run; agents stop running ones. Returns the count."""
    with transaction.atomic():
        run = CompatRun.objects.select_for_update().get(pk=run.pk)
        cells = list(run.cells.select_for_update().filter(state__in=ACTIVE_STATES).order_by("pk"))
        now = timezone.now()
        who = getattr(actor, "get_username", lambda: "")() or "system"
        for cell in cells:
            cell_transition(
                cell=cell,
                to=CellState.CANCELLED,
                finished_at=now,
                error=f"cancelled by {who}",
            )
        if run.cancelled_at is None and cells:
            run.cancelled_at = now
            run.cancelled_by = actor if getattr(actor, "pk", None) else None
            run.save(update_fields=["cancelled_at", "cancelled_by"])
        keyed = [(cell.pk, str(cell.token)) for cell in cells]
        task_ids = [cell.task_id for cell in cells]
        transaction.on_commit(lambda: broker.cancel_cells(cells=keyed, task_ids=task_ids))
        cells_finalize(cells=cells)
    return len(cells)
