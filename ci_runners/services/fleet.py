"""The runner fleet: hosts' heartbeats, and the reaper that re-queues lost cells (lost runners,
lost messages), reading each runner's own claim in the broker Redis."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ci_runners import broker
from ci_runners.agent import contracts
from ci_runners.models import MAX_ATTEMPTS, CompatCell, RunnerHost
from ci_runners.services.cells import cell_transition, cells_finalize
from ci_runners.services.dispatch import cells_dispatch_waiting, cells_publish_on_commit
from ci_runners.states import CellState

logger = logging.getLogger(__name__)


def runner_heartbeat_record(
    *,
    name: str,
    queues: list[str],
    version: str = "",
    cell_id: int | None = None,
    attempt: int | None = None,
    cache_bytes: int | None = None,
    isolation: str = "",
) -> RunnerHost:
    """Record a runner's heartbeat: it is alive, its queues, its cell (kept alive too), its
    cache's size and isolation (an older agent sends neither: unknown, not zero)."""
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
            "cache_bytes": cache_bytes
            if isinstance(cache_bytes, int) and cache_bytes >= 0
            else None,
            "isolation": str(isolation or "")[:200],
        },
    )
    return host


def reap_stale_cells(*, silent_s: float | None = None, now: datetime | None = None) -> dict:
    """Re-queue cells whose runner is gone, and send again cells whose message was lost.

    The database's `last_seen_at` only picks the candidates (silent for `silent_s`): it is
    written by the worker that consumes `results`, so a backlog there looks like silence. What
    decides is the runner's own claim on the attempt in the broker Redis (`broker.Claim`):
    - held by a runner (refreshed while the cell runs): alive, left alone;
    - done (the result is sent, not recorded yet): left alone, for COMPAT_RESULT_WAIT_S; after
      that its result is taken for lost and the cell runs again as the next attempt;
    - none on a preparing/running cell: its runner was lost mid-run: the next attempt (at most
      MAX_ATTEMPTS, then `errored`: runner lost);
    - none on a queued cell whose queue is empty: the message was lost (a broker restarted
      without persistence): sent again as the SAME attempt (same task id, same wanted-attempt
      key), which costs the cell nothing.
    Nothing is reaped while `results` has a backlog, or when the broker cannot be read.
    """
    silent_s = float(settings.COMPAT_RUNNER_SILENT_S if silent_s is None else silent_s)
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=silent_s)
    requeued: list[int] = []
    resent: list[int] = []
    lost: list[CompatCell] = []
    with transaction.atomic():
        candidates = list(
            CompatCell.objects.select_for_update(skip_locked=True)
            .filter(
                Q(state__in=[CellState.PREPARING, CellState.RUNNING], last_seen_at__lt=cutoff)
                | Q(state=CellState.QUEUED, dispatched_at__lt=cutoff)
            )
            .order_by("pk")
        )
        for cell, fate in _fates(candidates):
            if fate == RESEND:
                cell.dispatched_at = now
                cell.save(update_fields=["dispatched_at"])
                resent.append(cell.pk)
            elif cell.attempt >= MAX_ATTEMPTS:
                cell_transition(
                    cell=cell,
                    to=CellState.ERRORED,
                    finished_at=now,
                    error=fate,
                    error_code=contracts.ErrorCode.RUNNER_LOST.value,
                )
                lost.append(cell)
            else:
                attempt = cell.attempt + 1
                cell_transition(
                    cell=cell,
                    to=CellState.QUEUED,
                    attempt=attempt,
                    runner_name="",
                    started_at=None,
                    last_seen_at=None,
                    dispatched_at=now,
                    task_id=contracts.cell_task_id(
                        cell_id=cell.pk, token=str(cell.token), attempt=attempt
                    ),
                )
                requeued.append(cell.pk)
        cells_publish_on_commit(cell_ids=sorted(requeued + resent))
        if lost:
            cells_finalize(cells=lost)
        waiting = CompatCell.objects.filter(
            state=CellState.QUEUED, dispatched_at__isnull=True, project__isnull=False
        ).values_list("project_id", flat=True)
        cells_dispatch_waiting(project_ids=sorted(set(waiting)))
    return {"requeued": sorted(requeued + resent), "errored": [cell.pk for cell in lost]}


RESEND = "resend"  # the same attempt again: its message was lost
RUNNER_LOST = "runner lost"  # the next attempt
RESULT_LOST = "result lost"  # the next attempt


def _fates(cells: list[CompatCell]) -> list[tuple[CompatCell, str]]:
    """What becomes of each candidate cell; those left alone are left out."""
    if not cells:
        return []
    lengths = broker.queue_lengths(names={cell.queue for cell in cells})
    backlog = [lengths.get(q, 1) for q in (contracts.RESULTS_QUEUE, contracts.CELL_RESULTS_QUEUE)]
    if any(backlog):  # a backlog, or unknown
        logger.info("reaper waits: the results queue has a backlog or cannot be read")
        return []
    claims = broker.cell_claims(
        attempts=[(cell.pk, str(cell.token), cell.attempt) for cell in cells]
    )
    if claims is None:
        return []
    fates = []
    for cell in cells:
        claim = claims.get(cell.pk)
        if claim is None and cell.state == CellState.QUEUED:
            # Unknown depth is not "empty": better wait than double a cell.
            if lengths.get(cell.queue, 1) == 0:
                fates.append((cell, RESEND))
        elif claim is None:
            fates.append((cell, RUNNER_LOST))
        elif claim.done and (claim.done_for_s or 0) > settings.COMPAT_RESULT_WAIT_S:
            fates.append((cell, RESULT_LOST))
    return fates
