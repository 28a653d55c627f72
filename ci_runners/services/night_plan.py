"""The incremental night: which cells of the nightly run must run, and which are carried.

A cell's key is (project commit, torch target, job hash, resolved environment). The job hash
(`dispatch.job_hash_of`) covers the source, ref, test config override, timeout and target; the
recipe is discovered from the repository at the commit, so an unchanged commit and job hash
mean an unchanged recipe. The resolved environment (the lock the agent resolved,
`CompatCell.lock_hash`) can change without any of these: an unpinned dependency's new release.
We chose the AGE rule for it (not a resolver dry run on the runner): a cell is carried only
while the resolve of its evidence is younger than `COMPAT_CARRY_MAX_AGE_S` (default 7 days),
so such a release is caught within that age.

A cell is carried when the latest final cell of its project on its target (the evidence) is
passed or failed, has a lock hash, the same job hash, the project's current commit, and its
original cell (a carried evidence points at the real cell) started within that age. The
current commit is read cheaply: a fresh GitHub sync snapshot whose last push is not after the
evidence started says "unchanged" without any network; else one `git ls-remote` per project
(`ci_runners.repo_heads`). A doubt (no answer, no evidence) runs the cell. A forced night runs
every cell.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from ci_runners import repo_heads
from ci_runners.models import CompatCell, CompatRun, CompatStatus, ProjectTestConfig, TorchTarget
from ci_runners.services.dispatch import CHUNK, job_hash_of, source_of
from ci_runners.states import CellState
from registry.models import Project, RepoSnapshot

CARRYABLE_STATES = (CellState.PASSED, CellState.FAILED)
# What a carried cell copies from its evidence: the result, not the run's traces (runner, log,
# timings, start): a carried cell never ran.
CARRIED_FIELDS = (
    "state", "commit", "counts", "failures", "warnings", "flaky", "needs_network", "declared",
    "beyond_range", "tests_collected", "recipe", "recipe_hash", "lock_hash", "environment",
    "suite_shrunk", "suite_shrink", "exit_code",
)  # fmt: skip


@dataclass
class NightPlan:
    """What a night does per (project, target): `carry` maps the carried ones to their
    evidence (the latest final cell; when that was carried too, its copy points at the real
    cell, never at a chain); every other cell runs. `heads` holds the commits `git ls-remote`
    answered (None: unknown), by project id."""

    projects: list[Project]
    targets: list[TorchTarget]
    forced: bool = False
    carry: dict[tuple[int, int], CompatCell] = field(default_factory=dict)
    heads: dict[int, str | None] = field(default_factory=dict)
    # `job_hashes_of` the projects on the targets, once the plan needed them (not forced).
    hashes: dict[tuple[int, int], str] | None = None

    @property
    def planned(self) -> int:
        return len(self.projects) * len(self.targets)

    @property
    def carried(self) -> int:
        return len(self.carry)

    @property
    def dispatched(self) -> int:
        return self.planned - self.carried


def configs_of(project_ids: Sequence[int]) -> dict[int, ProjectTestConfig]:
    """The projects' test configs by project id, a query per CHUNK projects."""
    configs: dict[int, ProjectTestConfig] = {}
    for start in range(0, len(project_ids), CHUNK):
        part = project_ids[start : start + CHUNK]
        configs.update(
            (config.project_id, config)
            for config in ProjectTestConfig.objects.filter(project_id__in=part)
        )
    return configs


def job_hashes_of(
    *,
    projects: Sequence[Project],
    targets: Sequence[TorchTarget],
    configs: dict[int, ProjectTestConfig] | None = None,
) -> dict[tuple[int, int], str]:
    """`job_hash_of` of each project's nightly job (no ref) on each target, by (project id,
    target id); the configs are read once for all."""
    if configs is None:
        configs = configs_of([project.pk for project in projects])
    return {
        (project.pk, target.pk): job_hash_of(
            project=project, config=configs.get(project.pk), target=target
        )
        for project in projects
        for target in targets
    }


def carried_cell(
    *, evidence: CompatCell, run: CompatRun, job_hash: str, now: datetime
) -> CompatCell:
    """An unsaved final cell of `run` repeating `evidence`'s result (`carried_from`), finished
    `now`; it never ran, so it has no runner, start, log or timings."""
    original = evidence.carried_from_id or evidence.pk
    cell = CompatCell(
        run=run,
        target_id=evidence.target_id,
        project_id=run.project_id,
        queue=evidence.queue,
        job_hash=job_hash,
        carried_from_id=original,
        finished_at=now,
    )
    for name in CARRIED_FIELDS:
        setattr(cell, name, getattr(evidence, name))
    return cell


def night_plan(
    *,
    projects: Iterable[Project],
    targets: Iterable[TorchTarget],
    force: bool = False,
    now: datetime | None = None,
) -> NightPlan:
    """Decide, for each project on each target, whether its nightly cell runs or is carried
    (see the module's docstring). A handful of queries per CHUNK projects, whatever their
    number; `git ls-remote` only for projects with some carry candidate that the sync data
    could not clear, in a thread pool."""
    plan = NightPlan(projects=list(projects), targets=list(targets), forced=force)
    if force or not plan.projects or not plan.targets:
        return plan
    now = now or timezone.now()
    project_ids = [project.pk for project in plan.projects]
    configs = configs_of(project_ids)
    hashes = job_hashes_of(projects=plan.projects, targets=plan.targets, configs=configs)
    plan.hashes = hashes
    candidates = _candidates(
        project_ids=project_ids,
        target_ids=[target.pk for target in plan.targets],
        hashes=hashes,
        since=now - timedelta(seconds=settings.COMPAT_CARRY_MAX_AGE_S),
    )
    pushed = _fresh_pushes(
        project_ids=sorted({key[0] for key in candidates}),
        configs=configs,
        since=now - timedelta(seconds=settings.COMPAT_SYNC_FRESH_S),
    )
    undecided: dict[tuple[int, int], tuple[CompatCell, datetime]] = {}
    for key, (evidence, started) in candidates.items():
        last_push = pushed.get(key[0])
        if last_push is not None and last_push <= started:
            plan.carry[key] = evidence
        else:
            undecided[key] = (evidence, started)
    by_id = {project.pk: project for project in plan.projects}
    plan.heads = repo_heads.remote_heads(
        {
            pid: source_of(project=by_id[pid], config=configs.get(pid))
            for pid in sorted({key[0] for key in undecided})
        }
    )
    for key, (evidence, _started) in undecided.items():
        head = plan.heads.get(key[0])
        if head and evidence.commit and head == evidence.commit.lower():
            plan.carry[key] = evidence
    return plan


# What a carried cell copies of its evidence, and what the plan reads of it (not its log).
EVIDENCE_FIELDS = (
    "target_id",
    "queue",
    "job_hash",
    "carried_from_id",
    "started_at",
    *CARRIED_FIELDS,
)


def _candidates(
    *,
    project_ids: Sequence[int],
    target_ids: Sequence[int],
    hashes: dict[tuple[int, int], str],
    since: datetime,
) -> dict[tuple[int, int], tuple[CompatCell, datetime]]:
    """The evidence that could be carried, by (project id, target id): the latest final cell,
    passed or failed, with a lock hash and today's job hash, whose original cell started
    `since` or later; with that start.

    Three plain lookups per CHUNK projects (the statuses by project, their cells by key, the
    originals' starts by key) rather than one join: after a night's bulk writes, before the
    tables are analysed again, PostgreSQL planned that join from every passed or failed cell
    (measured at 10,000 projects: 40 s a chunk, against well under a second)."""
    found: dict[tuple[int, int], tuple[CompatCell, datetime]] = {}
    for start in range(0, len(project_ids), CHUNK):
        pointers = dict(
            CompatStatus.objects.filter(
                project_id__in=project_ids[start : start + CHUNK],
                target_id__in=target_ids,
                last_final_cell__isnull=False,
            ).values_list("last_final_cell_id", "project_id")
        )
        cells = list(
            CompatCell.objects.filter(
                pk__in=list(pointers),
                state__in=CARRYABLE_STATES,
                lock_hash__gt="",
                job_hash__gt="",
            ).only(*EVIDENCE_FIELDS)
        )
        original_starts = dict(
            CompatCell.objects.filter(
                pk__in={cell.carried_from_id for cell in cells if cell.carried_from_id}
            ).values_list("pk", "started_at")
        )
        for cell in cells:
            key = (pointers[cell.pk], cell.target_id)
            original = cell.carried_from_id
            started = (original_starts.get(original) if original else None) or cell.started_at
            if started is not None and started >= since and cell.job_hash == hashes.get(key):
                found[key] = (cell, started)
    return found


def _fresh_pushes(
    *, project_ids: Sequence[int], configs: dict[int, ProjectTestConfig], since: datetime
) -> dict[int, datetime]:
    """The last push to each project's GitHub repository, as its latest sync snapshot checked
    `since` or later says; only for projects tested from that repository (no source
    override)."""
    latest = RepoSnapshot.objects.filter(project=OuterRef("pk")).order_by("-taken_at", "-pk")
    pushes: dict[int, datetime] = {}
    for start in range(0, len(project_ids), CHUNK):
        rows = (
            Project.objects.filter(pk__in=project_ids[start : start + CHUNK])
            .exclude(repo_owner="")
            .annotate(
                checked=Subquery(latest.values("checked_at")[:1]),
                pushed=Subquery(latest.values("pushed_at")[:1]),
            )
            .values_list("pk", "checked", "pushed")
        )
        for project_id, checked, pushed in rows:
            config = configs.get(project_id)
            if config is not None and config.source_override:
                continue
            if checked is not None and pushed is not None and checked >= since:
                pushes[project_id] = pushed
    return pushes
