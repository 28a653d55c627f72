"""Which torch release first broke a project: a binary search over the releases between a good
and a bad one, whatever runs each release (the agent CLI runs jobs here; `run_one` is a
callable).

1. The plan (`plan_bisection`): both ends matched against the releases the wheel sources
   publish (`wheel_index.py`) that a job can pin, and the candidates strictly between them,
   one build per public version (the build with the ends' local tag: `+cpu` ends bisect
   `+cpu` builds; a version with no such build is left out, and said so).
2. The search (`bisect`): `passed` is good; `failed`, `timed_out` and `not_installable` are
   bad (each is a release the project does not work with); `errored` decides nothing, so the
   search stops and names the release and its error code. The ends are taken as given unless
   `check_ends` runs them first; k candidates take at most ceil(log2(k + 1)) runs, two more
   with the ends checked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

from ci_runners.agent import wheel_index
from ci_runners.agent.contracts import CellState, Job, Result

# Exit statuses of `python -m ci_runners.agent bisect` (documented in cli.py and the README).
EXIT_FOUND = 0
EXIT_ENDS_DISAGREE = 1  # --check-ends: the good end fails or the bad end passes
EXIT_BAD_REQUEST = 2  # an end not published, or --good not older than --bad (and usage errors)
EXIT_UNDECIDED = 3  # a release errored, or a wheel source could not be read

GOOD_STATES = frozenset({CellState.PASSED})
BAD_STATES = frozenset({CellState.FAILED, CellState.TIMED_OUT, CellState.NOT_INSTALLABLE})

RunOne = Callable[[str], Result]


class BisectError(Exception):
    """No first bad release can be named: the message says why, `exit_code` is the CLI's
    status and `tried` what ran before it stopped."""

    def __init__(
        self, message: str, *, exit_code: int, tried: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.tried = list(tried or [])


@dataclass(frozen=True, kw_only=True)
class BisectionPlan:
    """The ends as published, and the builds strictly between them, oldest first."""

    good: Version
    bad: Version
    candidates: list[Version]
    # Versions between the ends without a build of the ends' local tag (another variant).
    left_out: list[Version] = field(default_factory=list)

    def describe(self) -> str:
        text = (
            f"{len(self.candidates)} releases between {self.good} and {self.bad}, at most "
            f"{max_runs(len(self.candidates))} runs"
        )
        if self.left_out:
            text += f"; left out, no build like the ends': {', '.join(map(str, self.left_out))}"
        return text


@dataclass(frozen=True, kw_only=True)
class Bisection:
    """The first bad release and the last good one (as published), why the first bad one is
    bad (its failing tests, else its error: empty when it is the bad end and the ends were
    not run), and every run in order ({"torch", "state"})."""

    first_bad: str
    last_good: str
    failures: list[dict[str, Any]] = field(default_factory=list)
    tried: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def max_runs(candidates: int, *, check_ends: bool = False) -> int:
    """The most runs a bisection over `candidates` releases between the ends takes."""
    return math.ceil(math.log2(candidates + 1)) + (2 if check_ends else 0)


def plan_for_job(*, job: Job, good: str, bad: str) -> BisectionPlan:
    """The bisection between `good` and `bad` over the releases `job`'s wheel sources publish
    (`job`'s own torch version is ignored). Raises BisectError, for a wheel source that
    cannot be read too."""
    try:
        published = wheel_index.published_torch_versions(job=job)
    except wheel_index.WheelIndexError as exc:
        raise BisectError(
            f"the torch releases cannot be listed: {exc}", exit_code=EXIT_UNDECIDED
        ) from exc
    try:
        return plan_bisection(published=published, good=good, bad=bad)
    except BisectError as exc:  # say which sources were read: a source may be missing
        sources = wheel_index.job_source_list(job).describe()
        raise BisectError(f"{exc} [wheel sources: {sources}]", exit_code=exc.exit_code) from exc


# --- the plan ---------------------------------------------------------------------------------


def plan_bisection(*, published: list[Version], good: str, bad: str) -> BisectionPlan:
    """Match the ends to the `published` builds a job can run and pick the candidates between
    them. Raises BisectError (EXIT_BAD_REQUEST) when an end is not published or good is not
    older than bad."""
    runnable = runnable_builds(published)
    good_end = match_published(good, runnable=runnable, published=published, which="--good")
    bad_end = match_published(bad, runnable=runnable, published=published, which="--bad")
    if Version(good_end.public) >= Version(bad_end.public):
        raise BisectError(
            f"--good {good_end} is not older than --bad {bad_end}",
            exit_code=EXIT_BAD_REQUEST,
        )
    candidates, left_out = candidates_between(good_end, bad_end, runnable)
    return BisectionPlan(good=good_end, bad=bad_end, candidates=candidates, left_out=left_out)


def runnable_builds(published: list[Version]) -> list[Version]:
    """The published builds a job can pin (`Job.torch_requirement`): `torch==P` also matches
    P's local builds and uv installs one of them, so a build without a local tag published
    beside local builds of its version cannot be run, and is left out."""
    with_local = {v.public for v in published if v.local is not None}
    return [v for v in published if v.local is not None or v.public not in with_local]


def match_published(
    requested: str, *, runnable: list[Version], published: list[Version], which: str
) -> Version:
    """The build `requested` names: itself; or, given without a local tag, the one build of
    that version there is (`9.0.0` is `9.0.0+cpu` when that is all there is, or all that can
    be run). A local tag given must match."""
    try:
        wanted = Version(requested)
    except InvalidVersion as exc:
        raise BisectError(
            f"{which} {requested!r} is not a version", exit_code=EXIT_BAD_REQUEST
        ) from exc
    if wanted in runnable:
        return next(version for version in runnable if version == wanted)
    builds = [v for v in runnable if wanted.local is None and v.public == wanted.public]
    if len(builds) == 1:
        return builds[0]
    if builds:
        raise BisectError(
            f"{which} {requested} is published as {', '.join(map(str, builds))}: name one",
            exit_code=EXIT_BAD_REQUEST,
        )
    raise BisectError(
        f"{which} {requested}: no torch {requested} is published on the wheel sources "
        f"({_published_summary(published)})",
        exit_code=EXIT_BAD_REQUEST,
    )


def _published_summary(published: list[Version]) -> str:
    if not published:
        return "they publish no torch wheel for this python"
    return f"they publish {len(published)} builds, {published[0]} to {published[-1]}"


def candidates_between(
    good: Version, bad: Version, runnable: list[Version]
) -> tuple[list[Version], list[Version]]:
    """One build per version strictly between the ends, oldest first: the build with the good
    end's local tag, else the bad end's; and the versions left out, that have neither (they
    are builds of another variant). Pre-releases only when an end is one."""
    low, high = Version(good.public), Version(bad.public)
    prereleases = good.is_prerelease or bad.is_prerelease
    by_public: dict[Version, dict[str | None, Version]] = {}
    for version in runnable:
        public = Version(version.public)
        if low < public < high and (prereleases or not version.is_prerelease):
            by_public.setdefault(public, {})[version.local] = version
    chosen, left_out = [], []
    for public in sorted(by_public):
        builds = by_public[public]
        build = builds.get(good.local) or builds.get(bad.local)
        if build is None:
            left_out.append(public)
        else:
            chosen.append(build)
    return chosen, left_out


# --- the search -------------------------------------------------------------------------------


def bisect(*, plan: BisectionPlan, run_one: RunOne, check_ends: bool = False) -> Bisection:
    """Binary search for the first bad release of `plan`, running each release it tries
    with `run_one` (given the version as published). Raises BisectError when a run errors
    or, with `check_ends`, when the good end does not pass or the bad end does."""
    tried: list[dict[str, str]] = []
    results: dict[Version, Result] = {}

    def is_good(version: Version) -> bool:
        result = run_checked(version, run_one=run_one, tried=tried)
        results[version] = result
        return CellState(result.state) in GOOD_STATES

    if check_ends:
        _check_ends(plan=plan, is_good=is_good, tried=tried)
    releases = [plan.good, *plan.candidates, plan.bad]
    last_good, first_bad = 0, len(releases) - 1  # known good, known bad
    while first_bad - last_good > 1:
        middle = (last_good + first_bad) // 2
        if is_good(releases[middle]):
            last_good = middle
        else:
            first_bad = middle
    bad_result = results.get(releases[first_bad])
    return Bisection(
        first_bad=str(releases[first_bad]),
        last_good=str(releases[last_good]),
        failures=why_bad(bad_result) if bad_result is not None else [],
        tried=tried,
    )


def _check_ends(
    *, plan: BisectionPlan, is_good: Callable[[Version], bool], tried: list[dict[str, str]]
) -> None:
    if not is_good(plan.good):
        raise BisectError(
            f"the good end {plan.good} does not pass ({tried[-1]['state']}): nothing to bisect",
            exit_code=EXIT_ENDS_DISAGREE,
            tried=tried,
        )
    if is_good(plan.bad):
        raise BisectError(
            f"the bad end {plan.bad} passes: nothing to bisect",
            exit_code=EXIT_ENDS_DISAGREE,
            tried=tried,
        )


def run_checked(version: Version, *, run_one: RunOne, tried: list[dict[str, str]]) -> Result:
    """Run `version`, record it in `tried`, and make sure its result decides something: an
    errored run, or one that ran another torch than asked, stops the bisection."""
    result = run_one(str(version))
    state = CellState(result.state)
    tried.append({"torch": str(version), "state": str(state)})
    if state not in GOOD_STATES | BAD_STATES:
        raise BisectError(
            f"torch {version} {state} ({result.error_code or 'no error code'}): "
            f"{result.error or 'no error message'}; cannot tell good from bad",
            exit_code=EXIT_UNDECIDED,
            tried=tried,
        )
    ran = result.environment.get("torch")
    if ran and not _same_build(ran, version):
        raise BisectError(
            f"torch {version} was asked for but {ran} ran: the result is not about {version}",
            exit_code=EXIT_UNDECIDED,
            tried=tried,
        )
    return result


def _same_build(ran: str, version: Version) -> bool:
    try:
        return Version(ran) == version
    except InvalidVersion:
        return False


def why_bad(result: Result) -> list[dict[str, Any]]:
    """A bad release's failing tests; else (not installable, timed out without failures) its
    reason as one entry without a test."""
    if result.failures:
        return [dict(failure) for failure in result.failures]
    return [{"test": "", "message": result.error or str(CellState(result.state))}]


def job_for(base: Job, version: str) -> Job:
    """`base` for one published torch build: its public version and local tag (variant)."""
    parsed = Version(version)
    return dataclasses.replace(base, torch_version=parsed.public, torch_variant=parsed.local)
