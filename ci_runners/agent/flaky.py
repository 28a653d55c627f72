"""Flaky separation: a cell's failed tests re-run once, in the same environment and sandbox.

A test that failed and then passes on its re-run is flaky: it is counted once, as passed, and
listed in `Result.flaky` with the message of its first failure, so it never fails the cell
nor counts as a break. Only a few plain test failures are re-run: at most
`MAX_RERUN_TESTS` failing tests, and none when more than `MAX_FAILED_SHARE` of the suite
failed (a real break: re-running it would only double the run's time). Collection and
conftest errors, setup/teardown errors, network-only failures and runs that did not end on
their own are never re-run.

Pure functions: `runner.py` runs the re-run; here are what to re-run, what the re-run
showed, and the first run's verdict with the flaky tests taken out of its failures.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ci_runners.agent.contracts import CellState
from ci_runners.agent.results import RunVerdict

MAX_RERUN_TESTS = 5
MAX_FAILED_SHARE = 0.2
# Less of the job's time left than this after the first run: no re-run (it could not finish).
MIN_RERUN_S = 5.0


@dataclass(frozen=True, kw_only=True)
class RerunPlan:
    """The node ids to re-run (none: no re-run), and a note for the log saying why a failed
    run's tests are not re-run (None when there is nothing worth saying)."""

    tests: list[str]
    note: str | None = None


def plan_rerun(*, verdict: RunVerdict, plugin_report: dict[str, Any]) -> RerunPlan:
    """Which of a finished run's failed tests to re-run once.

    Only a `failed` verdict's call-phase failures are candidates; none at all when the run
    had a collection or conftest error (a re-run would stop at it again), when more than
    `MAX_RERUN_TESTS` tests failed, or when they are more than `MAX_FAILED_SHARE` of the
    tests collected (unknown: no re-run)."""
    failures = plugin_report.get("failures", [])
    if verdict.state != CellState.FAILED or plugin_report.get("conftest_error") is not None:
        return RerunPlan(tests=[])
    if any(failure["when"] == "collect" for failure in failures):
        return RerunPlan(tests=[])
    failing = verdict.counts["failed"] + verdict.counts["errors"]
    collected = plugin_report.get("tests_collected")
    if failing > MAX_RERUN_TESTS:
        note = f"no re-run of failed tests: {failing} failed, more than {MAX_RERUN_TESTS}"
        return RerunPlan(tests=[], note=note)
    if collected is None or failing > MAX_FAILED_SHARE * collected:
        share = f"{MAX_FAILED_SHARE:.0%}"
        note = (
            f"no re-run of failed tests: {failing} of {collected} failed, more than {share} "
            "of the suite (a real break)"
        )
        return RerunPlan(tests=[], note=note)
    return RerunPlan(tests=_plain_test_failures(failures))


def _plain_test_failures(failures: list[dict[str, Any]]) -> list[str]:
    """Node ids (in order, once each) of tests whose only failures were in their call phase
    and not for want of a network."""
    phases: dict[str, set[str]] = {}
    for failure in failures:
        kind = "network" if failure["network"] else failure["when"]
        phases.setdefault(failure["test"], set()).add(kind)
    return [test for test, kinds in phases.items() if kinds == {"call"}]


def passed_on_rerun(*, tests: list[str], rerun: RunVerdict, collected: int | None) -> list[str]:
    """Those of `tests` that the re-run (its verdict, and the tests it collected) passed.

    Empty when the re-run cannot say for sure: it did not end with test outcomes, it ran
    other tests than those asked for, or some of them neither passed nor failed (skipped,
    xfailed): a test is flaky only when it was seen to pass."""
    if rerun.state not in (CellState.PASSED, CellState.FAILED) or collected != len(tests):
        return []
    failing = {entry["test"] for entry in [*rerun.failures, *rerun.needs_network]}
    passed = [test for test in tests if test not in failing]
    if rerun.counts["passed"] != len(passed):
        return []
    return passed


def flaky_entries(*, failures: list[dict[str, str]], passed: list[str]) -> list[dict[str, str]]:
    """`Result.flaky`: each test that passed on re-run, with its first failure's message."""
    first = {failure["test"]: failure["message"] for failure in reversed(failures)}
    return [{"test": test, "message": first.get(test, "")} for test in passed]


def without_flaky(*, verdict: RunVerdict, flaky: list[dict[str, str]]) -> RunVerdict:
    """The first run's verdict with each flaky test counted once, as passed: out of the
    failures, one failed less and one passed more; `passed` when no failure is left."""
    names = {entry["test"] for entry in flaky}
    moved = {failure["test"] for failure in verdict.failures} & names
    if verdict.state != CellState.FAILED or not moved:
        return verdict
    counts = dict(verdict.counts)
    counts["failed"] = max(0, counts["failed"] - len(moved))
    counts["passed"] += len(moved)
    failures = [failure for failure in verdict.failures if failure["test"] not in moved]
    state = CellState.FAILED if counts["failed"] or counts["errors"] else CellState.PASSED
    return dataclasses.replace(verdict, state=state, counts=counts, failures=failures)


def rerun_summary(*, tests: list[str], passed: list[str]) -> str:
    """The log's line on what a re-run showed."""
    again = [test for test in tests if test not in passed]
    parts = []
    if passed:
        parts.append(f"flaky (failed, then passed on re-run): {', '.join(passed)}")
    if again:
        parts.append(f"failed again on re-run: {', '.join(again)}")
    return "; ".join(parts)
