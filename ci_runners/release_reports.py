"""The release readiness report (read-only): how every active registry project fares on a new
PyTorch release against the release before it.

`release_report(version)` is the one computation behind the page, its CSV and JSON downloads,
the API and `manage.py release_report`, so all of them say the same. It reads the matrix's
own record (`CompatStatus`): on each target of the new release, the project's latest final
cell (its latest cell while none is final yet); on the previous release (the newest active
version below it), the latest final cell on the target of the same variant and Python when
there is one. Bisection cells are never in it, and only registry projects are (public data).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from django.urls import reverse
from packaging.version import InvalidVersion, Version

from ci_runners.models import CompatCell, CompatStatus, TorchTarget
from ci_runners.states import ACTIVE_STATES, CellState
from registry.models import Project

# Classes of a project on the new release, in the report's order (the worst first).
NEWLY_BROKEN = "newly_broken"
STILL_BROKEN = "still_broken"
NOT_INSTALLABLE = "not_installable"
ERRORED = "errored"
PENDING = "pending"
NEWLY_FIXED = "newly_fixed"
PASSED = "passed"
CLASSIFICATIONS: tuple[str, ...] = (
    NEWLY_BROKEN,
    STILL_BROKEN,
    NOT_INSTALLABLE,
    ERRORED,
    PENDING,
    NEWLY_FIXED,
    PASSED,
)
CLASSIFICATION_LABELS = {
    NEWLY_BROKEN: "Newly broken",
    STILL_BROKEN: "Still broken",
    NOT_INSTALLABLE: "Not installable",
    ERRORED: "Errored",
    PENDING: "Pending",
    NEWLY_FIXED: "Newly fixed",
    PASSED: "Passed",
}
BREAK_STATES = frozenset({CellState.FAILED, CellState.TIMED_OUT})
MAX_FAILURES_SHOWN = 10
CSV_COLUMNS = (
    "project",
    "project_name",
    "classification",
    "target",
    "state",
    "cell_id",
    "previous_target",
    "previous_state",
    "previous_cell_id",
    "failing_tests",
    "new_torch_warnings",
)


class InvalidReleaseVersion(ValueError):
    """The version asked for is not a PEP 440 version."""


def parse_release_version(version: str) -> str:
    """The version as the catalog writes it; raises InvalidReleaseVersion when not PEP 440."""
    try:
        return str(Version(version))
    except InvalidVersion:
        raise InvalidReleaseVersion(f"{version[:60]!r} is not a PyTorch version.") from None


def release_report(version: str) -> dict[str, Any]:
    """The readiness report of `version` as plain JSON data (see the module docstring).

    A version with no target, or whose targets have no cell yet, gives the same shape with
    empty sections and zero counts.
    """
    version = parse_release_version(version)
    targets = list(TorchTarget.objects.filter(version=version).order_by("variant", "pk"))
    previous_version = _previous_version(version)
    previous_targets = (
        list(TorchTarget.objects.filter(version=previous_version, active=True))
        if previous_version
        else []
    )
    pairing = {target.pk: _matching_target(target, previous_targets) for target in targets}
    rows = _project_rows(targets=targets, pairing=pairing)
    summary = {name: 0 for name in CLASSIFICATIONS}
    for row in rows:
        summary[row["classification"]] += 1
    return {
        "version": version,
        "previous_version": previous_version,
        "approved": bool(targets) and all(target.active for target in targets),
        "targets": [_target_data(target) for target in targets],
        "summary": {"projects": len(rows), **summary},
        "sections": [
            {
                "classification": name,
                "label": CLASSIFICATION_LABELS[name],
                "projects": [row for row in rows if row["classification"] == name],
            }
            for name in CLASSIFICATIONS
        ],
    }


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's project rows in its order (newly broken first)."""
    return [row for section in report["sections"] for row in section["projects"]]


def _version_or_none(raw: str) -> Version | None:
    try:
        return Version(raw)
    except InvalidVersion:
        return None


def _previous_version(version: str) -> str | None:
    """The newest active target version below `version` (as the catalog writes it)."""
    new = Version(version)
    below = [
        (parsed, raw)
        for raw in TorchTarget.objects.filter(active=True).values_list("version", flat=True)
        if (parsed := _version_or_none(raw)) is not None and parsed < new
    ]
    return max(below)[1] if below else None


def _matching_target(target: TorchTarget, candidates: list[TorchTarget]) -> TorchTarget | None:
    """The previous release's target closest to `target`: same variant and Python, else same
    variant, else same Python, else the first."""

    def closeness(other: TorchTarget) -> tuple[bool, bool, int]:
        return (
            other.variant != target.variant,
            other.python_version != target.python_version,
            other.pk,
        )

    return min(candidates, key=closeness) if candidates else None


def _target_data(target: TorchTarget | None) -> dict[str, Any] | None:
    if target is None:
        return None
    return {
        "id": target.pk,
        "label": target.label,
        "version": target.version,
        "variant": target.variant,
        "python_version": target.python_version,
        "capability": target.capability,
        "active": target.active,
    }


def _statuses(targets: list[TorchTarget]) -> dict[tuple[int, int], CompatStatus]:
    """(project id, target id) -> status, for the active registry projects."""
    statuses = CompatStatus.objects.filter(
        target__in=targets, project__status=Project.Status.ACTIVE
    ).select_related("project", "latest_cell", "last_final_cell")
    return {(status.project_id, status.target_id): status for status in statuses}


def _project_rows(
    *, targets: list[TorchTarget], pairing: dict[int, TorchTarget | None]
) -> list[dict[str, Any]]:
    """A row per active project with a cell on the new release, the worst class first."""
    new = _statuses(targets)
    previous = _statuses([target for target in pairing.values() if target is not None])
    projects = {status.project_id: status.project for status in new.values()}
    rows = []
    for project in projects.values():
        comparisons = []
        for target in targets:
            status = new.get((project.pk, target.pk))
            if status is None:
                continue
            cell = status.last_final_cell or status.latest_cell
            before_target = pairing[target.pk]
            before = previous.get((project.pk, before_target.pk)) if before_target else None
            comparisons.append(
                _comparison(
                    target=target,
                    cell=cell,
                    previous_target=before_target,
                    previous_cell=before.last_final_cell if before else None,
                )
            )
        rows.append(_project_row(project, comparisons))
    rows.sort(
        key=lambda row: (
            CLASSIFICATIONS.index(row["classification"]),
            row["project"]["name"].lower(),
            row["project"]["slug"],
        )
    )
    return rows


def classify(*, state: str, previous_state: str | None) -> str:
    """The class of a project on one target of the new release, from the state of its cell
    there and of its latest final cell on the previous release (None: none).

    A break is "newly broken" only against a pass on the previous release; a break with no
    passing baseline (failing, uninstallable or untested before) is "still broken".
    """
    if state in ACTIVE_STATES:
        return PENDING
    if state == CellState.PASSED:
        return NEWLY_FIXED if previous_state in BREAK_STATES else PASSED
    if state in BREAK_STATES:
        return NEWLY_BROKEN if previous_state == CellState.PASSED else STILL_BROKEN
    if state == CellState.NOT_INSTALLABLE:
        return NOT_INSTALLABLE
    return ERRORED  # errored (infrastructure) or cancelled: no result on the new release


def _cell_data(cell: CompatCell | None) -> dict[str, Any] | None:
    if cell is None:
        return None
    return {
        "id": cell.pk,
        "state": cell.state,
        "url": reverse("ci_runners:cell", kwargs={"cell_id": cell.pk}),
        "counts": dict(cell.counts or {}),
        "finished_at": cell.finished_at.isoformat() if cell.finished_at else None,
    }


def _comparison(
    *,
    target: TorchTarget,
    cell: CompatCell,
    previous_target: TorchTarget | None,
    previous_cell: CompatCell | None,
) -> dict[str, Any]:
    """One target of the new release against its match on the previous one."""
    classification = classify(
        state=cell.state, previous_state=previous_cell.state if previous_cell else None
    )
    return {
        "target": target.label,
        "classification": classification,
        "cell": _cell_data(cell),
        "previous_target": previous_target.label if previous_target else None,
        "previous_cell": _cell_data(previous_cell),
        "failures": _failures(cell) if cell.state in BREAK_STATES else [],
        "error": (cell.error or "")[:500] if cell.state not in ACTIVE_STATES else "",
        "new_torch_warnings": _new_torch_warnings(cell, previous_cell),
    }


def _failures(cell: CompatCell) -> list[dict[str, str]]:
    """The first failing tests and their error lines (network-only failures are no breaks)."""
    failures = [
        {
            "test": str(item.get("test", "")),
            "when": str(item.get("when") or "call"),
            "message": str(item.get("message") or ""),
        }
        for item in cell.failures or []
        if isinstance(item, dict) and not item.get("network")
    ]
    return failures[:MAX_FAILURES_SHOWN]


def _new_torch_warnings(cell: CompatCell, previous_cell: CompatCell | None) -> list[dict]:
    """Warnings raised from inside torch on the new release whose message the previous
    release's cell did not show."""
    seen = {
        item.get("message")
        for item in (previous_cell.warnings if previous_cell else None) or []
        if isinstance(item, dict)
    }
    return [
        {
            "category": str(item.get("category", "")),
            "message": str(item.get("message", "")),
            "count": int(item.get("count") or 0),
        }
        for item in cell.warnings or []
        if isinstance(item, dict) and item.get("torch_api") and item.get("message") not in seen
    ]


def _project_row(project: Project, comparisons: list[dict[str, Any]]) -> dict[str, Any]:
    """The project's class is its worst on any target of the new release; its failing tests
    and new torch warnings are those of every target, each once."""
    classification = min(
        (comparison["classification"] for comparison in comparisons),
        key=CLASSIFICATIONS.index,
    )
    return {
        "project": {
            "slug": project.slug,
            "name": project.name,
            "url": project.get_absolute_url(),
        },
        "classification": classification,
        "failures": _distinct(
            [item for c in comparisons for item in c["failures"]], key=("test", "message")
        )[:MAX_FAILURES_SHOWN],
        "new_torch_warnings": _distinct(
            [item for c in comparisons for item in c["new_torch_warnings"]],
            key=("category", "message"),
        ),
        "comparisons": comparisons,
    }


def _distinct(items: list[dict[str, Any]], *, key: tuple[str, ...]) -> list[dict[str, Any]]:
    """The items in order, each `key` once (the same test failing on every target is one)."""
    seen: set[tuple[Any, ...]] = set()
    kept = []
    for item in items:
        marker = tuple(item.get(name) for name in key)
        if marker not in seen:
            seen.add(marker)
            kept.append(item)
    return kept


def release_report_csv(report: dict[str, Any]) -> str:
    """The report as CSV: one line per project and target of the new release."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in report_rows(report):
        for comparison in row["comparisons"]:
            cell = comparison["cell"] or {}
            previous = comparison["previous_cell"] or {}
            writer.writerow(
                [
                    row["project"]["slug"],
                    _csv_safe(row["project"]["name"]),
                    comparison["classification"],
                    comparison["target"],
                    cell.get("state", ""),
                    cell.get("id", ""),
                    comparison["previous_target"] or "",
                    previous.get("state", ""),
                    previous.get("id", ""),
                    _csv_safe("; ".join(item["test"] for item in comparison["failures"])),
                    len(comparison["new_torch_warnings"]),
                ]
            )
    return out.getvalue()


def _csv_safe(text: str) -> str:
    """No formula injection when the CSV is opened in a spreadsheet."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def releases_awaiting_approval() -> list[dict[str, Any]]:
    """Detected releases not approved yet: versions with an inactive target never approved,
    newest first, each with its targets (the fleet page's banner)."""
    waiting: dict[str, list[TorchTarget]] = {}
    for target in TorchTarget.objects.filter(active=False, approved_at__isnull=True).order_by(
        "variant", "pk"
    ):
        waiting.setdefault(target.version, []).append(target)
    ordered = sorted(waiting, key=lambda raw: (_version_or_none(raw) or Version("0"), raw))
    return [{"version": version, "targets": waiting[version]} for version in reversed(ordered)]


def release_versions() -> list[dict[str, Any]]:
    """Every version in the catalog, newest first, with whether it is approved (active)."""
    versions: dict[str, bool] = {}
    for raw, active in TorchTarget.objects.values_list("version", "active"):
        versions[raw] = versions.get(raw, True) and active
    ordered = sorted(versions, key=lambda raw: (_version_or_none(raw) or Version("0"), raw))
    return [{"version": raw, "active": versions[raw]} for raw in reversed(ordered)]
