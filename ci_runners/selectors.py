"""Reads of the compatibility runs: matrices, cells, the fleet, and who may run what."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import BooleanField, Count, ExpressionWrapper, Q, QuerySet
from django.utils import timezone

from ci_runners import broker
from ci_runners.models import CompatCell, CompatRun, CompatStatus, RunnerHost, TorchTarget
from ci_runners.states import ACTIVE_STATES, CELL_STATE_VALUES, CellState
from registry.models import Category, Project
from registry.selectors import user_maintains

MATRIX_PAGE_SIZE = 50


def user_can_manage_runs(*, user: Any, project: Project | None) -> bool:
    """Staff, and the project's maintainers, may start and cancel its runs."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_staff:
        return True
    return project is not None and user_maintains(user=user, project=project)


def active_targets() -> list[TorchTarget]:
    return list(TorchTarget.objects.filter(active=True))


@dataclass(frozen=True)
class MatrixRow:
    target: TorchTarget
    cell: CompatCell | None


def project_matrix(*, project: Project) -> list[MatrixRow]:
    """Each active target with the project's latest cell on it (two queries)."""
    targets = active_targets()
    statuses = {
        status.target_id: status.latest_cell
        for status in CompatStatus.objects.filter(
            project=project, target__in=targets
        ).select_related("latest_cell")
    }
    return [MatrixRow(target=target, cell=statuses.get(target.pk)) for target in targets]


def project_latest_run(*, project: Project) -> CompatRun | None:
    return CompatRun.objects.filter(project=project).order_by("-created_at", "-pk").first()


def run_has_active_cells(*, run: CompatRun | None) -> bool:
    return run is not None and run.cells.filter(state__in=ACTIVE_STATES).exists()


def cell_log_bytes(*, cell: CompatCell) -> bytes:
    """The cell's stored full log (gzip-compressed when its name ends in .gz)."""
    with cell.log_file.open("rb") as stored:
        data = stored.read()
    return gzip.decompress(data) if (cell.log_file.name or "").endswith(".gz") else data


def cell_for_page(*, cell_id: int, user: Any) -> CompatCell:
    """The cell, if `user` may see it (`CompatCellQuerySet.visible_to`); else DoesNotExist."""
    cells = CompatCell.objects.visible_to(user).select_related("run__project", "target")
    return cells.get(pk=cell_id)


@dataclass(frozen=True)
class MatrixFilters:
    target: int | None = None
    state: str = ""
    category: str = ""


@dataclass(frozen=True)
class GlobalMatrix:
    targets: list[TorchTarget]
    page: Page
    rows: list[tuple[Project, list[CompatCell | None]]]


def global_matrix(*, filters: MatrixFilters, page_number: Any) -> GlobalMatrix:
    """Projects x active targets with each latest cell; a fixed number of queries per page.

    With a target and a state, it answers "which projects break on version X".
    """
    targets = active_targets()
    if filters.target is not None:
        shown_targets = [target for target in targets if target.pk == filters.target]
    else:
        shown_targets = targets
    projects = Project.objects.select_related("category__parent").order_by("name", "pk")
    if filters.category:
        projects = projects.filter(
            Q(category__slug=filters.category) | Q(category__parent__slug=filters.category)
        )
    if filters.state in CELL_STATE_VALUES:
        matching = CompatStatus.objects.filter(latest_cell__state=filters.state)
        if filters.target is not None:
            matching = matching.filter(target_id=filters.target)
        else:
            matching = matching.filter(target__in=targets)
        projects = projects.filter(pk__in=matching.values("project_id"))
    page = Paginator(projects, MATRIX_PAGE_SIZE).get_page(page_number)
    page_projects = list(page.object_list)
    latest = {
        (status.project_id, status.target_id): status.latest_cell
        for status in CompatStatus.objects.filter(
            project__in=[project.pk for project in page_projects],
            target__in=[target.pk for target in shown_targets],
        ).select_related("latest_cell")
    }
    rows = [
        (project, [latest.get((project.pk, target.pk)) for target in shown_targets])
        for project in page_projects
    ]
    return GlobalMatrix(targets=shown_targets, page=page, rows=rows)


def matrix_categories() -> QuerySet[Category]:
    return Category.objects.filter(parent__isnull=True).order_by("position", "name")


@dataclass(frozen=True)
class Fleet:
    runners: Sequence[RunnerHost]  # annotated with `is_silent`
    silent_after_s: int
    queues: dict[str, int]
    running: list[CompatCell]
    state_counts: dict[str, int]


def fleet() -> Fleet:
    silent_s = settings.COMPAT_RUNNER_SILENT_S
    cutoff = timezone.now() - timedelta(seconds=silent_s)
    runners = list(
        RunnerHost.objects.select_related("current_cell__target")
        .annotate(
            is_silent=ExpressionWrapper(
                Q(last_heartbeat__isnull=True) | Q(last_heartbeat__lt=cutoff),
                output_field=BooleanField(),
            )
        )
        .order_by("name")
    )
    running = list(
        CompatCell.objects.filter(state__in=[CellState.PREPARING, CellState.RUNNING])
        .select_related("target", "run__project")
        .order_by("started_at")[:100]
    )
    counts = dict(
        CompatCell.objects.filter(state__in=ACTIVE_STATES)
        .values("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    queue_names = set(TorchTarget.objects.values_list("capability", flat=True))
    return Fleet(
        runners=runners,
        silent_after_s=silent_s,
        queues=broker.queue_lengths(names={f"runner.{name}" for name in queue_names}),
        running=running,
        state_counts=counts,
    )
