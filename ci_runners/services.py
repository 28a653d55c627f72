"""Every write of the compatibility runs: request, dispatch, progress, results, cancel, reaping.

`cell_transition` is the one writer of `CompatCell.state`. Messages to runner hosts go out
with `transaction.on_commit`, by task name (see `ci_runners.broker`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import CharField, Count, F, Q, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from ci_runners import broker
from ci_runners.agent.contracts import Job, Result, TestConfig
from ci_runners.models import (
    MAX_ATTEMPTS,
    CellResult,
    CompatCell,
    CompatRun,
    CompatStatus,
    ProjectTestConfig,
    RunnerHost,
    TorchTarget,
)
from ci_runners.states import (
    ACTIVE_STATES,
    FINAL_STATES,
    RESULT_STATES,
    CellState,
    check_transition,
)
from registry.models import Project
from registry.repository_urls import InvalidRepositoryURL, parse_repository_url
from registry.services import project_set_compat_summary

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 900
UNLIMITED = 10**6
LOG_FILE_MAX_CHARS = 4 * 1024 * 1024
LOG_TAIL_CHARS = 8000
CHUNK = 5000


class CompatRunRefused(Exception):
    """The run cannot be requested as asked; the message says why."""


# --- cells: the one state writer -----------------------------------------------------------


def cell_transition(*, cell: CompatCell, to: str, **changes: Any) -> CompatCell:
    """Move a (locked) cell to `to`, checking the transition table; other fields ride along."""
    check_transition(current=cell.state, to=to)
    cell.state = to
    for field, value in changes.items():
        setattr(cell, field, value)
    cell.save(update_fields=["state", *changes])
    return cell


# --- requesting and dispatching ------------------------------------------------------------


def _source_of(*, project: Project | None, config: ProjectTestConfig | None, run: CompatRun) -> str:
    if config is not None and config.source_override:
        return config.source_override
    if project is not None and project.repository_url:
        return project.repository_url
    return run.source_url


def _job_for(*, cell: CompatCell) -> Job:
    run, target = cell.run, cell.target
    project = run.project
    config = getattr(project, "test_config", None) if project is not None else None
    test_config = TestConfig()
    timeout_s: float = DEFAULT_TIMEOUT_S
    if config is not None:
        test_config = TestConfig(
            extra_requirements=list(config.extra_requirements),
            extras=list(config.extras) if config.extras is not None else None,
            pytest_args=list(config.pytest_args),
            test_paths=list(config.test_paths),
            env={str(k): str(v) for k, v in config.env.items()},
            copy_tests=config.copy_tests or None,
            needs_gpu=config.needs_gpu,
        )
        timeout_s = float(config.timeout_s)
    return Job(
        source=_source_of(project=project, config=config, run=run),
        torch_version=target.version,
        cell_id=cell.pk,
        attempt=cell.attempt,
        ref=run.ref or None,
        torch_variant=target.variant or None,
        python_version=target.python_version,
        test_config=test_config,
        timeout_s=timeout_s,
        find_links=list(target.find_links),
        index_urls=list(target.index_urls),
    )


def _task_id(*, cell_id: int, attempt: int) -> str:
    return f"compat-cell-{cell_id}-{attempt}"


def _publish_after_commit(cell_ids: list[int]) -> None:
    if not cell_ids:
        return

    def publish() -> None:
        messages = _messages_for(cell_ids)
        try:
            broker.publish_cells(messages)
        except Exception:  # the reaper re-sends cells that never reached a runner
            logger.exception("publishing %d cells failed; the reaper will retry", len(cell_ids))

    transaction.on_commit(publish)


def _messages_for(cell_ids: list[int]) -> Iterable[broker.CellMessage]:
    for start in range(0, len(cell_ids), CHUNK):
        cells = (
            CompatCell.objects.filter(pk__in=cell_ids[start : start + CHUNK])
            .select_related("target", "run__project__test_config")
            .order_by("pk")
        )
        for cell in cells:
            if cell.state != CellState.QUEUED:
                continue
            job = _job_for(cell=cell)
            yield broker.CellMessage(
                cell_id=cell.pk,
                attempt=cell.attempt,
                task_id=cell.task_id,
                queue=cell.queue,
                job=job.to_dict(),
                timeout_s=job.timeout_s,
            )


def _dispatch_ready(*, project_ids: Sequence[int] = (), run: CompatRun | None = None) -> int:
    """Send the waiting cells of these projects as far as each one's concurrency limit allows.

    Runs inside the caller's transaction; the project rows are locked so that two workers
    finishing cells of one project at once cannot both fill the same slot.
    """
    chosen: list[int] = []
    ids = sorted(set(project_ids))
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        list(Project.objects.select_for_update().filter(pk__in=part).values_list("pk"))
        limits = dict(
            ProjectTestConfig.objects.filter(project_id__in=part).values_list(
                "project_id", "max_concurrent"
            )
        )
        active = dict(
            CompatCell.objects.filter(
                project_id__in=part, state__in=ACTIVE_STATES, dispatched_at__isnull=False
            )
            .values("project_id")
            .annotate(n=Count("id"))
            .values_list("project_id", "n")
        )
        free = {
            pid: limits.get(pid, settings.COMPAT_DEFAULT_MAX_CONCURRENT) - active.get(pid, 0)
            for pid in part
        }
        waiting = CompatCell.objects.filter(
            project_id__in=part, state=CellState.QUEUED, dispatched_at__isnull=True
        ).order_by("project_id", "pk")
        for cell_id, project_id in waiting.values_list("pk", "project_id"):
            if free[project_id] > 0:
                free[project_id] -= 1
                chosen.append(cell_id)
    if run is not None and run.project_id is None:
        chosen += list(
            run.cells.filter(state=CellState.QUEUED, dispatched_at__isnull=True).values_list(
                "pk", flat=True
            )
        )
    _mark_dispatched(chosen)
    return len(chosen)


def _mark_dispatched(cell_ids: list[int]) -> None:
    if not cell_ids:
        return
    now = timezone.now()
    for start in range(0, len(cell_ids), CHUNK):
        part = cell_ids[start : start + CHUNK]
        # task_id is derived from id and attempt; one UPDATE per chunk keeps 40k cells fast.
        CompatCell.objects.filter(pk__in=part).update(
            dispatched_at=now,
            task_id=Concat(
                Value("compat-cell-"),
                Cast(F("id"), CharField()),
                Value("-"),
                Cast(F("attempt"), CharField()),
                output_field=CharField(),
            ),
        )
    _publish_after_commit(cell_ids)


def _update_statuses(cells: list[CompatCell]) -> None:
    rows = [
        CompatStatus(project_id=cell.project_id, target_id=cell.target_id, latest_cell=cell)
        for cell in cells
        if cell.project_id is not None
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
        cells = CompatCell.objects.bulk_create(
            [
                CompatCell(run=run, target=target, project=project, queue=target.queue)
                for target in chosen
            ]
        )
        _update_statuses(cells)
        _dispatch_ready(project_ids=[project.pk] if project else [], run=run)
    return run


def compat_runs_request_for_projects(
    *, projects: Iterable[Project], targets: Iterable[TorchTarget] | None, trigger: str
) -> int:
    """One run per project against the targets, in bulk (nightly, new release). Returns cells."""
    _check_trigger(trigger)
    chosen = _targets(targets)
    project_list = list(projects)
    if not project_list:
        return 0
    with transaction.atomic():
        runs = CompatRun.objects.bulk_create(
            [CompatRun(project=project, trigger=trigger) for project in project_list],
            batch_size=CHUNK,
        )
        cells = CompatCell.objects.bulk_create(
            [
                CompatCell(run=run, target=target, project_id=run.project_id, queue=target.queue)
                for run in runs
                for target in chosen
            ],
            batch_size=CHUNK,
        )
        _update_statuses(cells)
        _dispatch_ready(project_ids=[project.pk for project in project_list])
    return len(cells)


def projects_to_run() -> list[Project]:
    """Active projects that have something to test: a repository or a source override."""
    return list(
        Project.objects.filter(status=Project.Status.ACTIVE)
        .filter(~Q(repo_owner="") | Q(test_config__source_override__gt=""))
        .distinct()
    )


def nightly_runs() -> int:
    if not TorchTarget.objects.filter(active=True).exists():
        return 0
    return compat_runs_request_for_projects(
        projects=projects_to_run(), targets=None, trigger=CompatRun.Trigger.SCHEDULE
    )


# --- progress, heartbeats, results ---------------------------------------------------------


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
        moves_forward = {
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


def runner_heartbeat_record(
    *,
    name: str,
    queues: list[str],
    version: str = "",
    cell_id: int | None = None,
    attempt: int | None = None,
) -> RunnerHost:
    now = timezone.now()
    current = None
    if cell_id is not None:
        seen = CompatCell.objects.filter(
            pk=cell_id, attempt=attempt, state__in=[CellState.PREPARING, CellState.RUNNING]
        ).update(last_seen_at=now)
        current = cell_id if seen else None
    host, _ = RunnerHost.objects.update_or_create(
        name=name[:200],
        defaults={
            "queues": [str(queue) for queue in queues][:20],
            "agent_version": version[:40],
            "last_heartbeat": now,
            "current_cell_id": current,
        },
    )
    return host


def _cap_log(log: str) -> str:
    if len(log) <= LOG_FILE_MAX_CHARS:
        return log
    half = LOG_FILE_MAX_CHARS // 2
    return f"{log[:half]}\n[... {len(log) - 2 * half} characters cut ...]\n{log[-half:]}"


def cell_record_result(
    *, cell_id: int, attempt: int, runner: str, result: dict[str, Any], log: str = ""
) -> CellResult | None:
    """Store a runner's result, once per (cell, attempt); apply it if the attempt is current.

    A second delivery of the same result returns the first row and changes nothing.
    """
    outcome = Result.from_dict(result)
    with transaction.atomic():
        cell = _locked_cell(cell_id)
        if cell is None:
            return None
        existing = CellResult.objects.filter(cell=cell, attempt=attempt).first()
        if existing is not None:
            return existing
        applies = cell.attempt == attempt and cell.state not in FINAL_STATES
        stored = CellResult.objects.create(
            cell=cell,
            attempt=attempt,
            runner_name=runner[:200],
            state=str(outcome.state),
            payload=outcome.to_dict(),
            applied=applies,
        )
        if not applies:
            return stored
        now = timezone.now()
        cell.log_file.save(
            f"cell-{cell.pk}-attempt-{attempt}.log",
            ContentFile(_cap_log(log or outcome.log_tail).encode("utf-8", errors="replace")),
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
        )
        if outcome.commit and not cell.run.resolved_commit:
            CompatRun.objects.filter(pk=cell.run_id, resolved_commit="").update(
                resolved_commit=outcome.commit[:64]
            )
        _cells_finished([cell])
    return stored


def _cells_finished(cells: list[CompatCell]) -> None:
    """After cells became final (inside the transaction): matrix, summary, slots, run end."""
    results = [cell for cell in cells if cell.state in RESULT_STATES and cell.project_id]
    for cell in results:
        CompatStatus.objects.filter(project_id=cell.project_id, target_id=cell.target_id).update(
            last_final_cell=cell
        )
    project_ids = sorted({cell.project_id for cell in cells if cell.project_id})
    for project in Project.objects.filter(pk__in={cell.project_id for cell in results}):
        _push_summary(project=project)
    _dispatch_ready(project_ids=project_ids)
    for run_id in sorted({cell.run_id for cell in cells}):
        _maybe_finish_run(run_id=run_id)


def _push_summary(*, project: Project) -> None:
    statuses = CompatStatus.objects.filter(
        project=project, last_final_cell__isnull=False
    ).select_related("target", "last_final_cell")
    works, breaks = [], []
    for status in statuses:
        state = status.last_final_cell.state
        if state == CellState.PASSED:
            works.append(status.target.version)
        elif state in (CellState.FAILED, CellState.TIMED_OUT):
            breaks.append(status.target.version)
    project_set_compat_summary(project=project, works_with=works, breaks_with=breaks)


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
            lambda: broker.send_by_name(name=name, kwargs=kwargs, queue="default")
        )


# --- cancel and reaping --------------------------------------------------------------------


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
        cell_ids = [cell.pk for cell in cells]
        task_ids = [cell.task_id for cell in cells]
        transaction.on_commit(lambda: broker.cancel_cells(cell_ids=cell_ids, task_ids=task_ids))
        _cells_finished(cells)
    return len(cells)


def reap_stale_cells(*, silent_s: float | None = None, now: datetime | None = None) -> dict:
    """Re-queue cells whose runner went silent (attempt + 1, at most 3, then `errored`).

    Two ways a cell gets lost: its runner stops reporting while preparing/running (killed
    host), or its message never reaches a runner (broker restarted without persistence):
    then the cell stays queued while its queue is empty.
    """
    silent_s = float(settings.COMPAT_RUNNER_SILENT_S if silent_s is None else silent_s)
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=silent_s)
    requeued: list[int] = []
    lost: list[CompatCell] = []
    with transaction.atomic():
        silent = list(
            CompatCell.objects.select_for_update(skip_locked=True)
            .filter(state__in=[CellState.PREPARING, CellState.RUNNING], last_seen_at__lt=cutoff)
            .order_by("pk")
        )
        queued = list(
            CompatCell.objects.select_for_update(skip_locked=True)
            .filter(state=CellState.QUEUED, dispatched_at__lt=cutoff)
            .order_by("pk")
        )
        if queued:
            depths = broker.queue_lengths(names={cell.queue for cell in queued})
            # Unknown depth (broker down) is not "empty": better wait than double a cell.
            queued = [cell for cell in queued if depths.get(cell.queue, 1) == 0]
        for cell in [*silent, *queued]:
            if cell.attempt >= MAX_ATTEMPTS:
                cell_transition(
                    cell=cell,
                    to=CellState.ERRORED,
                    finished_at=now,
                    error="runner lost",
                )
                lost.append(cell)
                continue
            attempt = cell.attempt + 1
            cell_transition(
                cell=cell,
                to=CellState.QUEUED,
                attempt=attempt,
                runner_name="",
                started_at=None,
                last_seen_at=None,
                dispatched_at=now,
                task_id=_task_id(cell_id=cell.pk, attempt=attempt),
            )
            requeued.append(cell.pk)
        _publish_after_commit(requeued)
        if lost:
            _cells_finished(lost)
        waiting = CompatCell.objects.filter(
            state=CellState.QUEUED, dispatched_at__isnull=True, project__isnull=False
        ).values_list("project_id", flat=True)
        _dispatch_ready(project_ids=sorted(set(waiting)))
    return {"requeued": requeued, "errored": [cell.pk for cell in lost]}


# --- targets --------------------------------------------------------------------------------


def torch_target_approve(*, target: TorchTarget, actor: Any = None) -> int:
    """Activate a (detected) target and run every active project on it. Returns cells."""
    with transaction.atomic():
        target = TorchTarget.objects.select_for_update().get(pk=target.pk)
        if target.active:
            return 0
        target.active = True
        target.approved_at = timezone.now()
        target.save(update_fields=["active", "approved_at"])
        return compat_runs_request_for_projects(
            projects=projects_to_run(), targets=[target], trigger=CompatRun.Trigger.NEW_RELEASE
        )


def torch_releases_check() -> list[TorchTarget]:
    """Add an inactive target for each PyTorch release newer than every known target."""
    from packaging.version import InvalidVersion, Version

    from ci_runners import pypi

    releases = pypi.package_releases(name="torch")
    known = []
    for version in TorchTarget.objects.values_list("version", flat=True):
        try:
            known.append(Version(version))
        except InvalidVersion:
            continue
    newest_known = max(known) if known else None
    candidates = sorted(
        release
        for release in releases
        if not release.is_prerelease and (newest_known is None or release > newest_known)
    )
    if newest_known is None:
        candidates = candidates[-1:]
    template = TorchTarget.objects.order_by("-created_at").first()
    created = []
    for release in candidates:
        target, made = TorchTarget.objects.get_or_create(
            version=str(release),
            variant=template.variant if template else "cpu",
            python_version=template.python_version if template else "3.11",
            defaults={
                "capability": template.capability if template else "cpu",
                "active": False,
                "prerelease": release.is_prerelease,
            },
        )
        if made:
            created.append(target)
    return created
