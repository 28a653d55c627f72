"""First bad release: a bisection over the PyTorch releases published between a release a
project passed (the good end) and a later one it failed (the bad end).

One probe at a time: a run (trigger `bisection`, never in the matrix) with one cell on the
probed release, whose on-complete task (`Bisection.STEP_TASK`) calls `bisection_step`, which
narrows the window and starts the next probe or records the result. k releases strictly
between the ends take at most ceil(log2(k + 1)) probes. The ends are not re-run: the matrix's
latest final cells on them are the evidence.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from packaging.version import InvalidVersion, Version

from ci_runners import broker
from ci_runners.agent import contracts
from ci_runners.models import Bisection, CompatCell, CompatRun, CompatStatus, TorchTarget
from ci_runners.services.cells import (
    BREAKS_WITH_STATES,
    NOT_INSTALLABLE_STATES,
    WORKS_WITH_STATES,
)
from ci_runners.services.runs import CompatRunRefused, compat_run_cancel, compat_run_request
from ci_runners.states import FINAL_STATES
from registry.models import Project
from registry.sources import pypi

logger = logging.getLogger(__name__)

# What a probe says of its release. Errored (infrastructure) and cancelled probes say nothing:
# the bisection fails with the reason rather than guess.
GOOD_STATES = WORKS_WITH_STATES
BAD_STATES = BREAKS_WITH_STATES | NOT_INSTALLABLE_STATES


class BisectionRefused(Exception):
    """The bisection cannot be started as asked; the message says why."""


def releases_between(*, good: str, bad: str) -> list[str]:
    """torch releases published on the configured source (PyPI's JSON API) strictly between
    `good` and `bad`, oldest first; pre-releases and dev releases excluded."""
    low, high = Version(good), Version(bad)
    published = {v for v in pypi.package_releases(name="torch") if not v.is_prerelease}
    return [str(version) for version in sorted(published) if low < version < high]


def _check_ends(good_target: TorchTarget, bad_target: TorchTarget) -> None:
    if (good_target.variant, good_target.python_version) != (
        bad_target.variant,
        bad_target.python_version,
    ):
        raise BisectionRefused("Both ends must be builds of the same variant and Python version.")
    try:
        ordered = Version(good_target.version) < Version(bad_target.version)
    except InvalidVersion:
        raise BisectionRefused("Both ends must be valid version numbers.") from None
    if not ordered:
        raise BisectionRefused(
            f"The good end ({good_target.version}) must be older than the bad end "
            f"({bad_target.version})."
        )


def bisection_start(
    *, project: Project, good_target: TorchTarget, bad_target: TorchTarget, actor: Any = None
) -> Bisection:
    """Start a bisection of `project` between its ends and run its first probe; with no
    release in between, the result is immediate (the bad end is the first bad release).

    Raises BisectionRefused (ends not comparable, a bisection of the project already running,
    nothing to test) and `pypi.PyPIUnavailable` (the release list cannot be read).
    """
    _check_ends(good_target, bad_target)
    candidates = releases_between(good=good_target.version, bad=bad_target.version)
    with transaction.atomic():
        try:
            with transaction.atomic():
                bisection = Bisection.objects.create(
                    project=project,
                    good_version=good_target.version,
                    bad_version=bad_target.version,
                    template_target=bad_target,
                    candidates=candidates,
                    requested_by=actor if getattr(actor, "pk", None) else None,
                )
        except IntegrityError:
            raise BisectionRefused(f"A bisection of {project.name} is already running.") from None
        try:
            _advance(bisection)
        except CompatRunRefused as exc:
            raise BisectionRefused(str(exc)) from exc
    return bisection


def _window(bisection: Bisection) -> tuple[int, int]:
    """(index of the newest candidate known good, index of the oldest known bad); -1 is the
    good end, len(candidates) the bad end."""
    low, high = -1, len(bisection.candidates)
    for entry in bisection.tried:
        if entry["torch"] not in bisection.candidates:
            continue
        index = bisection.candidates.index(entry["torch"])
        if entry["state"] in GOOD_STATES:
            low = max(low, index)
        elif entry["state"] in BAD_STATES:
            high = min(high, index)
    return low, high


def _advance(bisection: Bisection) -> None:
    """Probe the middle of the window, or record the result once the window is closed."""
    low, high = _window(bisection)
    if high - low > 1:
        _probe(bisection, version=bisection.candidates[(low + high) // 2])
        return
    count = len(bisection.candidates)
    bisection.first_bad = bisection.candidates[high] if high < count else bisection.bad_version
    bisection.last_good = bisection.candidates[low] if low >= 0 else bisection.good_version
    bisection.failures = _first_bad_failures(bisection, in_candidates=high < count)
    bisection.state = Bisection.State.FOUND
    bisection.finished_at = timezone.now()
    bisection.save(update_fields=["first_bad", "last_good", "failures", "state", "finished_at"])


def _first_bad_failures(bisection: Bisection, *, in_candidates: bool) -> list[dict[str, Any]]:
    """The failing tests of the first bad release: its probe cell's, or (the bad end itself)
    the matrix's latest final cell on the bad end's target."""
    cell: CompatCell | None
    if in_candidates:
        cell_ids = [e["cell_id"] for e in bisection.tried if e["torch"] == bisection.first_bad]
        cell = CompatCell.objects.filter(pk__in=cell_ids).order_by("-pk").first()
    else:
        status = (
            CompatStatus.objects.filter(
                project_id=bisection.project_id, target_id=bisection.template_target_id
            )
            .select_related("last_final_cell")
            .first()
        )
        cell = status.last_final_cell if status else None
    return list(cell.failures) if cell is not None else []


def _probe(bisection: Bisection, *, version: str) -> None:
    """One run with one cell on `version`, on an inactive target built like the template (an
    inactive target is never run by the nightly)."""
    template = bisection.template_target
    target, _ = TorchTarget.objects.get_or_create(
        version=version,
        variant=template.variant,
        python_version=template.python_version,
        defaults={
            "capability": template.capability,
            "find_links": list(template.find_links),
            "index_urls": list(template.index_urls),
            "active": False,
        },
    )
    run = compat_run_request(
        project=bisection.project,
        targets=[target],
        trigger=CompatRun.Trigger.BISECTION,
        requested_by=bisection.requested_by,
        on_complete_task=Bisection.STEP_TASK,
        on_complete_kwargs={"bisection_id": bisection.pk},
    )
    cell = run.cells.get()
    bisection.tried = [
        *bisection.tried,
        {"torch": version, "state": cell.state, "cell_id": cell.pk},
    ]
    bisection.save(update_fields=["tried"])


def _fail(bisection: Bisection, *, reason: str) -> None:
    bisection.state = Bisection.State.FAILED
    bisection.error = reason
    bisection.finished_at = timezone.now()
    bisection.save(update_fields=["state", "error", "finished_at"])


def _locked(bisection_id: int) -> Bisection | None:
    return (
        Bisection.objects.select_for_update(of=("self",))
        .select_related("template_target", "project")
        .filter(pk=bisection_id)
        .first()
    )


def bisection_step(*, run_id: int, bisection_id: int) -> Bisection | None:
    """A probe run finished: record its verdict, narrow, probe again or finish.

    Idempotent: a second delivery (or a run that is not a pending probe of a running
    bisection) changes nothing. An errored or cancelled probe fails the bisection.
    """
    with transaction.atomic():
        bisection = _locked(bisection_id)
        if bisection is None or bisection.state != Bisection.State.RUNNING:
            return bisection
        cell = CompatCell.objects.filter(run_id=run_id).first()
        entry = next(
            (e for e in bisection.tried if cell is not None and e["cell_id"] == cell.pk), None
        )
        if cell is None or entry is None or entry["state"] in FINAL_STATES:
            return bisection
        if cell.state not in FINAL_STATES:
            return bisection
        entry["state"] = cell.state
        bisection.save(update_fields=["tried"])
        if cell.state not in GOOD_STATES | BAD_STATES:
            detail = f" ({cell.error_code or cell.error})" if cell.error_code or cell.error else ""
            _fail(bisection, reason=f"The probe on torch {entry['torch']} {cell.state}{detail}.")
            return bisection
        try:
            _advance(bisection)
        except CompatRunRefused as exc:
            _fail(bisection, reason=str(exc))
    return bisection


def bisection_cancel(*, bisection: Bisection, actor: Any = None) -> Bisection:
    """Stop a running bisection and cancel its pending probe (a finished one is left as is)."""
    with transaction.atomic():
        locked = _locked(bisection.pk)
        if locked is None or locked.state != Bisection.State.RUNNING:
            return locked or bisection
        locked.state = Bisection.State.CANCELLED
        locked.finished_at = timezone.now()
        pending = [e for e in locked.tried if e["state"] not in FINAL_STATES]
        runs = CompatRun.objects.filter(cells__pk__in=[e["cell_id"] for e in pending]).distinct()
        for run in runs:
            compat_run_cancel(run=run, actor=actor)
        for entry in pending:
            entry["state"] = CompatCell.objects.get(pk=entry["cell_id"]).state
        locked.save(update_fields=["state", "finished_at", "tried"])
    return locked


def bisection_pairs(*, project: Project) -> list[tuple[TorchTarget, TorchTarget]]:
    """(good, bad) target pairs of the project's matrix: by version order among targets of one
    variant and Python version, a target whose latest final cell passed followed by one whose
    latest final cell failed (or timed out). Targets whose last word is neither are skipped."""
    return _pairs_by_project([project.pk]).get(project.pk, [])


def _pairs_by_project(project_ids: list[int]) -> dict[int, list[tuple[TorchTarget, TorchTarget]]]:
    """`bisection_pairs` of several projects, from one query of plain values (a batch of
    results asks for hundreds of projects: no cell is built) and one of their few targets."""
    statuses = CompatStatus.objects.filter(
        project_id__in=project_ids,
        last_final_cell__state__in=[*GOOD_STATES, *BREAKS_WITH_STATES],
    ).values_list(
        "project_id",
        "target_id",
        "target__version",
        "target__variant",
        "target__python_version",
        "last_final_cell__state",
    )
    lines: dict[tuple[int, str, str], list[tuple[Version, int, str]]] = {}
    for project_id, target_id, version_text, variant, python, state in statuses:
        try:
            version = Version(version_text)
        except InvalidVersion:
            continue
        lines.setdefault((project_id, variant, python), []).append((version, target_id, state))
    found: dict[int, list[tuple[int, int]]] = {}
    for (project_id, _, _), line in lines.items():
        line.sort(key=lambda item: item[0])
        for (_, good, good_state), (_, bad, bad_state) in zip(line, line[1:], strict=False):
            if good_state in GOOD_STATES and bad_state in BREAKS_WITH_STATES:
                found.setdefault(project_id, []).append((good, bad))
    targets = TorchTarget.objects.in_bulk(
        {target_id for pairs in found.values() for pair in pairs for target_id in pair}
    )
    return {
        project_id: [(targets[good], targets[bad]) for good, bad in pairs]
        for project_id, pairs in found.items()
    }


def _new_break_pairs(project: Project) -> list[tuple[TorchTarget, TorchTarget]]:
    """The pairs no bisection has searched yet (whatever its outcome)."""
    return _unsearched(project.pk, bisection_pairs(project=project))


def _unsearched(
    project_id: int, pairs: list[tuple[TorchTarget, TorchTarget]]
) -> list[tuple[TorchTarget, TorchTarget]]:
    return _unsearched_by_project({project_id: pairs}).get(project_id, [])


def _unsearched_by_project(
    pairs: dict[int, list[tuple[TorchTarget, TorchTarget]]],
) -> dict[int, list[tuple[TorchTarget, TorchTarget]]]:
    """Of each project's pairs, those no bisection has searched yet (one query for all)."""
    searched = set(
        Bisection.objects.filter(project_id__in=list(pairs)).values_list(
            "project_id", "good_version", "bad_version", "template_target_id"
        )
    )
    return {
        project_id: [
            (good, bad)
            for good, bad in project_pairs
            if (project_id, good.version, bad.version, bad.pk) not in searched
        ]
        for project_id, project_pairs in pairs.items()
    }


def bisections_start_for_new_breaks(*, project: Project) -> Bisection | None:
    """Start a bisection for the first pair of the project's matrix (`bisection_pairs`) not
    searched yet, unless one of the project's bisections is running. Returns the one started."""
    if Bisection.objects.filter(project=project, state=Bisection.State.RUNNING).exists():
        return None
    for good, bad in _new_break_pairs(project):
        try:
            return bisection_start(project=project, good_target=good, bad_target=bad)
        except BisectionRefused as refused:
            logger.info("No bisection of %s %s..%s: %s", project, good, bad, refused)
            return None
    return None


def bisections_autostart_after(*, runs: list[CompatRun]) -> None:
    """Inside the transaction that finishes runs: for each matrix run of a project whose
    matrix now shows a break no bisection has searched, send `Bisection.AUTOSTART_TASK` to the
    default queue once the transaction commits (the release list is read there, not here).
    Two queries for all the runs' projects: their matrices, and the pairs already searched."""
    project_ids = sorted(
        {
            run.project_id
            for run in runs
            if run.project_id is not None and run.trigger != CompatRun.Trigger.BISECTION
        }
    )
    if not project_ids:
        return
    for project_id, pairs in _unsearched_by_project(_pairs_by_project(project_ids)).items():
        if not pairs:
            continue
        kwargs = {"project_id": project_id}
        transaction.on_commit(
            partial(
                broker.send_by_name,
                name=Bisection.AUTOSTART_TASK,
                kwargs=kwargs,
                queue=contracts.DEFAULT_QUEUE,
            )
        )
