"""Measuring the automated criteria: GitHub health, PyPI, compatibility cells -> outcomes.

Reads only (external services and ci_runners rows); `reviews.services` writes the results.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import requests
from django.utils import timezone

from registry.sources import pypi
from reviews import criteria

logger = logging.getLogger(__name__)

MET, UNMET, UNKNOWN, NOT_APPLICABLE = "met", "unmet", "unknown", "na"
# Where a check stands (CriterionResult.CheckState): it measured, it waits, or it could not run.
MEASURED, RUNNING, FAILED = "measured", "running", "failed"
PYPI_NAME_RE = pypi.PYPI_NAME_RE  # the application form checks names with it


@dataclass(frozen=True)
class Measurement:
    criterion: int
    outcome: str
    value: str
    url: str = ""
    measured_at: datetime | None = None
    check: str = MEASURED  # RUNNING: the value says what it waits for; FAILED: why it failed


class ChecksDeferred(Exception):
    """GitHub is rate limited or unavailable: try again later (the task retries)."""

    def __init__(self, message: str, retry_in: int = 60):
        super().__init__(message)
        self.retry_in = retry_in


# --- GitHub -----------------------------------------------------------------------------------


def github_measurements(health, *, maintainer_handles: list[str]) -> list[Measurement]:
    """Criteria 2 (workflow files), 7, 11 to 19 from a RepositoryHealth."""
    at = getattr(health, "taken_at", None) or timezone.now()
    url = health.html_url
    out: list[Measurement] = [maintainers_measurement(maintainer_handles, at=at)]
    spdx = health.license_spdx or ""
    if not spdx:
        out.append(Measurement(7, UNMET, "no license detected by GitHub", url, at))
    elif spdx in criteria.PERMISSIVE_LICENSES:
        out.append(Measurement(7, MET, f"{spdx} (permissive)", url, at))
    else:
        out.append(Measurement(7, UNMET, f"{spdx} is not in the permissive allow-list", url, at))
    out.append(
        _threshold(12, health.contributors_90d, criteria.MIN_ACTIVE_CONTRIBUTORS,
                   "active contributors in 90 days", f"{url}/graphs/contributors", at)
    )  # fmt: skip
    out.append(
        _threshold(13, health.commits_90d, criteria.MIN_COMMITS_90D, "commits in 90 days",
                   f"{url}/commits", at)
    )  # fmt: skip
    out.append(_threshold(14, health.stars, criteria.MIN_STARS, "stars", f"{url}/stargazers", at))
    for number, (attribute, file_name) in criteria.LAYOUT_FILES.items():
        present = bool(getattr(health, attribute))
        out.append(
            Measurement(
                number,
                MET if present else UNMET,
                f"{file_name} {'found' if present else 'not found'}",
                url,
                at,
            )
        )
    if health.has_ci_workflows:
        out.append(
            Measurement(
                2,
                UNKNOWN,
                "CI workflow files found in .github/workflows; reviewers confirm every declared "
                "architecture",
                f"{url}/actions",
                at,
            )
        )
    else:
        out.append(Measurement(2, UNMET, "no CI workflow files in .github/workflows", url, at))
    return out


def maintainers_measurement(handles: list[str], *, at: datetime) -> Measurement:
    count = len({handle.lower() for handle in handles})
    outcome = MET if count >= criteria.MIN_MAINTAINERS else UNMET
    return Measurement(11, outcome, f"{count} maintainer{'s' if count != 1 else ''} named", "", at)


def _threshold(number: int, value, minimum: int, label: str, url: str, at) -> Measurement:
    if value is None:
        return Measurement(number, UNKNOWN, f"{label}: not measured", url, at)
    outcome = MET if value >= minimum else UNMET
    return Measurement(number, outcome, f"{value} {label} (at least {minimum})", url, at)


def github_unreachable_measurements(reason: str, *, outcome: str = UNKNOWN) -> list[Measurement]:
    """The GitHub criteria when GitHub gave no figures: unknown means the check failed (with
    `reason`); unmet is a finding (the repository is not public)."""
    at = timezone.now()
    check = FAILED if outcome == UNKNOWN else MEASURED
    return [Measurement(n, outcome, reason, "", at, check) for n in criteria.GITHUB_CRITERIA]


def fetch_github_health(*, owner: str, name: str):
    """RepositoryHealth, or a list of Measurements saying why there is none.

    Raises ChecksDeferred when GitHub is rate limited or unavailable.
    """
    from registry.sources import github

    try:
        result = github.fetch_repository_health(owner=owner, name=name)
    except github.RepositoryMoved as moved:
        if moved.health is not None:
            return moved.health
        return github_unreachable_measurements(str(moved))
    except (github.RepositoryNotFound, github.RepositoryPrivate) as missing:
        return github_unreachable_measurements(
            f"{missing} The repository must be public.", outcome=UNMET
        )
    except github.RateLimited as limited:
        wait = int((limited.reset_at - timezone.now()).total_seconds())
        raise ChecksDeferred(str(limited), retry_in=max(30, min(wait + 5, 3600))) from limited
    except github.GitHubUnavailable as unavailable:
        raise ChecksDeferred(unavailable.message, retry_in=120) from unavailable
    if isinstance(result, github.NotModified):  # no ETag is sent, so this cannot happen
        return github_unreachable_measurements("GitHub answered 'not modified'.")
    return result


def health_figures(health) -> dict:
    """The health figures kept on the application for the review page (JSON-safe)."""
    fields = (
        "full_name", "html_url", "stars", "forks", "open_issues", "license_spdx",
        "default_branch", "commits_90d", "contributors_90d", "latest_release", "has_license",
        "has_readme", "has_contributing", "has_codeowners", "has_code_of_conduct",
        "has_security", "has_ci_workflows", "archived",
    )  # fmt: skip
    figures = {field: getattr(health, field, None) for field in fields}
    for field in ("pushed_at", "latest_release_at", "taken_at"):
        value = getattr(health, field, None)
        figures[field] = value.isoformat() if value else None
    return figures


# --- PyPI -------------------------------------------------------------------------------------


def pypi_measurement(package: str) -> Measurement:
    """Criterion 9: is there a package on PyPI with files to install? (PyPI is read through
    `registry.sources.pypi`, the one module that talks to it.)"""
    at = timezone.now()
    if not package or not pypi.valid_package_name(package):
        return Measurement(9, UNKNOWN, "no valid PyPI package name to look up", "", at)
    page = f"https://pypi.org/project/{quote(package, safe='')}/"
    try:
        data = pypi.package_json(name=package)
    except pypi.PyPIUnavailable as error:
        logger.info("PyPI unreadable for %s: %s", package, error)
        return Measurement(9, UNKNOWN, _pypi_failure(error), "", at, FAILED)
    if data is None:
        return Measurement(
            9, UNMET,
            f"no package {package!r} on PyPI (conda is not checked: a reviewer may override)",
            "", at,
        )  # fmt: skip
    try:
        version = str(data["info"]["version"])[:50]
        has_files = bool(data.get("urls")) or any((data.get("releases") or {}).values())
    except (KeyError, TypeError, AttributeError):
        return Measurement(9, UNKNOWN, "PyPI answered with an unexpected body", "", at, FAILED)
    if not has_files:
        return Measurement(9, UNMET, f"{package} {version} has no files on PyPI", page, at)
    return Measurement(9, MET, f"{package} {version} on PyPI", page, at)


def _pypi_failure(error: pypi.PyPIUnavailable) -> str:
    """What the criterion shows when PyPI could not be read: an error status, a body that is
    not JSON, or no answer at all."""
    cause = error.__cause__
    response = getattr(cause, "response", None)
    if isinstance(cause, requests.HTTPError) and response is not None:
        return f"PyPI answered HTTP {response.status_code}"
    if isinstance(cause, ValueError) or cause is None:
        return "PyPI answered with an unexpected body"
    return f"PyPI could not be reached ({type(cause).__name__})"


# --- compatibility runs -----------------------------------------------------------------------

FAILING_CELL_STATES = {"failed", "timed_out"}
# The project's own metadata (or its dependencies) exclude that torch: a compatibility fact that
# counts against PyTorch support, as a failure does. Errored cells (infrastructure) count
# neither way: they make the outcome unknown.
NOT_INSTALLABLE_CELL_STATES = {"not_installable"}
JUDGED_CELL_STATES = FAILING_CELL_STATES | NOT_INSTALLABLE_CELL_STATES | {"passed"}


def compat_measurements(cells, *, run_url: str) -> list[Measurement]:
    """Criteria 1 and 8 from the final cells of a run (CompatCell rows with their target).

    The run's targets are the current PyTorch releases (`latest_two_minor_targets`): a failing
    or not-installable cell on any of them means the project does not support current PyTorch.
    """
    at = timezone.now()
    cells = list(cells)
    if not cells:
        reason = "the compatibility run has no cells"
        return [
            Measurement(1, UNKNOWN, reason, run_url, at, FAILED),
            Measurement(8, UNKNOWN, reason, run_url, at, FAILED),
        ]
    versions = sorted({cell.target.version for cell in cells})
    failing = _labels(cells, FAILING_CELL_STATES)
    not_installable = _labels(cells, NOT_INSTALLABLE_CELL_STATES)
    errored = sorted({c.target.label for c in cells if c.state not in JUDGED_CELL_STATES})
    tests_passed = sum(int((cell.counts or {}).get("passed", 0) or 0) for cell in cells)
    tests_failed = sum(
        int((cell.counts or {}).get("failed", 0) or 0)
        + int((cell.counts or {}).get("errors", 0) or 0)
        for cell in cells
    )
    against = []
    if failing:
        against.append(f"fails on PyTorch {', '.join(failing)}")
    if not_installable:
        against.append(f"cannot be installed with PyTorch {', '.join(not_installable)}")
    if against:
        value = "; ".join(against)
        outcome = UNMET
    elif errored:
        value = f"could not run on {', '.join(errored)} (infrastructure error)"
        outcome = UNKNOWN
    else:
        value = f"passes on PyTorch {', '.join(versions)}"
        outcome = MET
    value += _declared_note(cells)
    tests = f"{value}; {tests_passed} tests passed, {tests_failed} failed"
    check = FAILED if errored and not against else MEASURED  # infrastructure, not the project
    if outcome == MET and tests_passed == 0:
        return [
            Measurement(1, MET, value, run_url, at),
            Measurement(8, UNMET, f"{value}; but no tests ran", run_url, at),
        ]
    return [
        Measurement(1, outcome, value, run_url, at, check),
        Measurement(8, outcome, tests, run_url, at, check),
    ]


def _declared_note(cells) -> str:
    """The torch range the project declares, as the latest cell of the run that built it read
    it, to set against what was measured (" (its metadata declares torch>=2.3)"), with the
    versions that range excludes but the tests pass with when run beyond it; "" when it
    declares none or was never built."""
    built = [c for c in cells if isinstance(c.declared, dict) and c.declared.get("torch")]
    if not built:
        return ""
    latest = max(
        built, key=lambda c: (c.finished_at.timestamp() if c.finished_at else 0, c.pk or 0)
    )
    # Excluded by that range, yet its tests pass when run beyond it: a range that could widen.
    widenable = sorted(
        {
            c.target.label
            for c in cells
            if c.state in NOT_INSTALLABLE_CELL_STATES
            and isinstance(c.beyond_range, dict)
            and c.beyond_range.get("state") == "passed"
        }
    )
    beyond = f"; its tests pass beyond that range on {', '.join(widenable)}" if widenable else ""
    return f" (its metadata declares torch{latest.declared['torch']}{beyond})"


def _labels(cells, states: set[str]) -> list[str]:
    return sorted({cell.target.label for cell in cells if cell.state in states})


def latest_two_minor_targets():
    """Active, non-prerelease TorchTargets of the latest patch of the two latest minors."""
    from ci_runners.models import TorchTarget

    targets = list(TorchTarget.objects.filter(active=True, prerelease=False))
    parsed = []
    for target in targets:
        match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", target.version)
        if match:
            major, minor, patch = (int(part or 0) for part in match.groups())
            parsed.append(((major, minor), patch, target))
    minors = sorted({minor for minor, _, _ in parsed}, reverse=True)[:2]
    chosen = []
    for minor in minors:
        latest_patch = max(patch for m, patch, _ in parsed if m == minor)
        chosen += [t for m, patch, t in parsed if m == minor and patch == latest_patch]
    return chosen
