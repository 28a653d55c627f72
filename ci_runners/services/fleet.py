"""The runner fleet: hosts' heartbeats, and the reaper that re-queues lost cells."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ci_runners import broker
from ci_runners.agent import contracts
from ci_runners.models import MAX_ATTEMPTS, CompatCell, RunnerHost
from ci_runners.services.cells import cell_transition, cells_finalize
from ci_runners.services.dispatch import cells_dispatch_waiting, cells_publish_on_commit
from ci_runners.states import CellState


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
    if cell_id is not None and attempt is not None:
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
                task_id=contracts.cell_task_id(cell_id=cell.pk, attempt=attempt),
            )
            requeued.append(cell.pk)
        cells_publish_on_commit(cell_ids=requeued)
        if lost:
            cells_finalize(cells=lost)
        waiting = CompatCell.objects.filter(
            state=CellState.QUEUED, dispatched_at__isnull=True, project__isnull=False
        ).values_list("project_id", flat=True)
        cells_dispatch_waiting(project_ids=sorted(set(waiting)))
    return {"requeued": requeued, "errored": [cell.pk for cell in lost]}
