"""Reads of the compatibility runs: matrices, cells, the fleet, and who may run what."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
)
from django.db.models.functions import Lower
from django.utils import timezone

from ci_runners import broker
from ci_runners.models import CompatCell, CompatRun, CompatStatus, RunnerHost, TorchTarget
from ci_runners.states import ACTIVE_STATES, CELL_STATE_VALUES, RESULT_STATES, CellState
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


def project_latest_recipe_cell(*, project: Project) -> CompatCell | None:
    """The project's latest finished cell that reported its test recipe (older agents and
    cells that never got to the recipe report none), for "how we test this project"."""
    return (
        CompatCell.objects.filter(
            project=project, state__in=RESULT_STATES, finished_at__isnull=False
        )
        .exclude(recipe={})
        .select_related("target")
        .order_by("-finished_at", "-pk")
        .first()
    )


def run_has_active_cells(*, run: CompatRun | None) -> bool:
    return run is not None and run.cells.filter(state__in=ACTIVE_STATES).exists()


def cell_log_bytes(*, cell: CompatCell) -> bytes:
    """The cell's full log: its stored file (gzip-compressed when its name ends in .gz), or,
    for a log no longer than the live tail (kept there alone, no file), its tail."""
    if not cell.log_file:
        return cell.log_tail.encode("utf-8", errors="replace")
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
    kind: str = ""
    status: str = ""  # "" = active projects only; "all" = active and retired; or one status


@dataclass(frozen=True)
class TargetTotals:
    """How the projects in view stand on one target: a count per latest-cell state."""

    target: TorchTarget
    counts: list[tuple[str, str, int]]  # (state, label, projects whose latest cell is in it)
    untested: int  # projects in view with no cell on the target


@dataclass(frozen=True)
class GlobalMatrix:
    targets: list[TorchTarget]
    page: Page
    rows: list[tuple[Project, list[CompatCell | None]]]
    totals: list[TargetTotals]


def global_matrix(*, filters: MatrixFilters, page_number: Any) -> GlobalMatrix:
    """Projects x active targets with each latest cell; a fixed number of queries per page.

    Projects with results come first (a final result, then cells still in progress, then
    none), each part in case-insensitive name order. With a target and a state, it answers
    "which projects break on version X".
    """
    targets = active_targets()
    if filters.target is not None:
        shown_targets = [target for target in targets if target.pk == filters.target]
    else:
        shown_targets = targets
    shown_ids = [target.pk for target in shown_targets]
    projects = _matrix_projects(filters=filters, targets=targets)
    statuses = CompatStatus.objects.filter(project=OuterRef("pk"), target__in=shown_ids)
    ordered = (
        projects.select_related("category__parent")
        .annotate(
            has_final=Exists(statuses.filter(last_final_cell__isnull=False)),
            has_cells=Exists(statuses),
        )
        .order_by(F("has_final").desc(), F("has_cells").desc(), Lower("name"), "pk")
    )
    page = Paginator(ordered, MATRIX_PAGE_SIZE).get_page(page_number)
    page_projects = list(page.object_list)
    latest = {
        (status.project_id, status.target_id): status.latest_cell
        for status in CompatStatus.objects.filter(
            project__in=[project.pk for project in page_projects], target__in=shown_ids
        ).select_related("latest_cell__carried_from")  # a carried cell's evidence date
    }
    rows: list[tuple[Project, list[CompatCell | None]]] = [
        (project, [latest.get((project.pk, target.pk)) for target in shown_targets])
        for project in page_projects
    ]
    return GlobalMatrix(
        targets=shown_targets,
        page=page,
        rows=rows,
        totals=_target_totals(
            projects=projects, targets=shown_targets, in_view=page.paginator.count
        ),
    )


def _matrix_projects(*, filters: MatrixFilters, targets: list[TorchTarget]) -> QuerySet[Project]:
    projects = Project.objects.listed(status=filters.status, kind=filters.kind)
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
    return projects


def _target_totals(
    *, projects: QuerySet[Project], targets: list[TorchTarget], in_view: int
) -> list[TargetTotals]:
    """Per target, the projects in view by the state of their latest cell (one query)."""
    counts: dict[int, dict[str, int]] = {target.pk: {} for target in targets}
    rows = (
        CompatStatus.objects.filter(
            project__in=projects.order_by().values("pk"), target__in=list(counts)
        )
        .values_list("target_id", "latest_cell__state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for target_id, state, n in rows:
        counts[target_id][state] = n
    return [
        TargetTotals(
            target=target,
            counts=[
                (state.value, state.label, counts[target.pk][state.value])
                for state in CellState
                if counts[target.pk].get(state.value)
            ],
            untested=max(in_view - sum(counts[target.pk].values()), 0),
        )
        for target in targets
    ]


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


FLAKY_HISTORY_RUNS = 10
KNOWN_FLAKY_MIN_RUNS = 2


@dataclass(frozen=True)
class FlakyHistory:
    """How often each test was flaky (failed, then passed on its re-run in the same cell)
    across a project's latest runs: `flaky_in` maps a node id to the number of those runs
    (`runs` of them, at most `FLAKY_HISTORY_RUNS`) in which any cell found it flaky."""

    runs: int
    flaky_in: dict[str, int]

    @property
    def known(self) -> dict[str, int]:
        """Known flaky tests: flaky in at least `KNOWN_FLAKY_MIN_RUNS` of the runs, most
        often flaky first."""
        return {test: n for test, n in self.flaky_in.items() if n >= KNOWN_FLAKY_MIN_RUNS}


def flaky_test_history(*, project: Project | None, runs: int = FLAKY_HISTORY_RUNS) -> FlakyHistory:
    """The flaky history of `project` over its latest `runs` runs that reported a result
    (bisection runs left out: they are evidence of one search, not of the project's suite);
    empty for no project (an applicant's repository keeps no history)."""
    if project is None:
        return FlakyHistory(runs=0, flaky_in={})
    reported = CompatCell.objects.filter(run=OuterRef("pk"), state__in=RESULT_STATES)
    run_ids = list(
        CompatRun.objects.filter(project=project)
        .exclude(trigger=CompatRun.Trigger.BISECTION)
        .filter(Exists(reported))
        .order_by("-created_at", "-pk")
        .values_list("pk", flat=True)[:runs]
    )
    seen: dict[str, set[int]] = {}
    cells = CompatCell.objects.filter(run_id__in=run_ids, state__in=RESULT_STATES)
    for run_id, flaky in cells.values_list("run_id", "flaky"):
        for entry in flaky if isinstance(flaky, list) else []:
            test = entry.get("test") if isinstance(entry, dict) else None
            if isinstance(test, str) and test:
                seen.setdefault(test, set()).add(run_id)
    ordered = sorted(seen.items(), key=lambda item: (-len(item[1]), item[0]))
    return FlakyHistory(runs=len(run_ids), flaky_in={test: len(ids) for test, ids in ordered})


def with_flaky_history(
    *, tests: list[dict[str, Any]], history: FlakyHistory
) -> list[dict[str, Any]]:
    """Failed (or flaky) tests as a cell reports them, each with `known_flaky`: in how many
    of the project's latest runs the test was flaky when it is known flaky, else None."""
    known = history.known
    return [
        {**test, "known_flaky": known.get(str(test.get("test")))}
        for test in tests
        if isinstance(test, dict)
    ]
