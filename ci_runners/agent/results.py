"""Reading what a test run left behind: its exit, pytest's JUnit XML, the plugin's report.

The files were written by untrusted code. The XML goes through defusedxml (no entities, no
DTD) before junitparser sees it, and every size is capped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError  # noqa: S405 - only the exception type

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from junitparser import Error, Failure, JUnitXml, JUnitXmlError, Skipped

from ci_runners.agent.contracts import COUNT_KEYS, CellState, ErrorCode

MAX_JUNIT_BYTES = 50 * 1024 * 1024
MAX_PLUGIN_REPORT_BYTES = 5 * 1024 * 1024
MAX_FAILURES = 50
MAX_FAILURE_MESSAGE = 2000
MAX_WARNINGS = 100
_PYTEST_REFUSAL = re.compile(r"^(ERROR: |(\S+: )?error: )")
PYTEST_EXIT_MEANINGS = {
    2: "test run interrupted",
    3: "pytest internal error",
    4: "pytest usage error",
    5: "no tests collected",
}


class JunitParseError(Exception):
    """The JUnit report is missing, too big or not valid JUnit XML."""


@dataclass(kw_only=True)
class TestSummary:
    __test__ = False  # not a pytest test class

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    failures: list[dict[str, str]] = field(default_factory=list)


def _read_capped(path: Path, *, limit: int, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise JunitParseError(f"{what} too large: {size} bytes (limit {limit})")
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError as exc:
        raise JunitParseError(f"{what} missing") from exc
    except OSError as exc:
        raise JunitParseError(f"{what} unreadable: {exc}") from exc
    if len(data) > limit:
        raise JunitParseError(f"{what} too large: over {limit} bytes")
    return data


def _shorten(text: str | None, limit: int) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_junit(*, path: Path, max_bytes: int = MAX_JUNIT_BYTES) -> TestSummary:
    """Counts and failures from pytest's `--junitxml` file; raises JunitParseError."""
    data = _read_capped(path, limit=max_bytes, what="junit report")
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        xml = JUnitXml.fromroot(root)
    except DefusedXmlException as exc:
        raise JunitParseError(f"junit report rejected: {type(exc).__name__}") from exc
    except (ParseError, JUnitXmlError, ValueError) as exc:
        raise JunitParseError(f"junit report invalid: {exc}") from exc

    summary = TestSummary()
    counts = summary.counts
    try:
        for suite in xml:
            for case in suite:
                results = list(case.result)
                name = f"{case.classname}::{case.name}" if case.classname else str(case.name)
                problem = next((r for r in results if isinstance(r, Error | Failure)), None)
                skipped = next((r for r in results if isinstance(r, Skipped)), None)
                if problem is not None:
                    counts["errors" if isinstance(problem, Error) else "failed"] += 1
                    if len(summary.failures) < MAX_FAILURES:
                        message = problem.message or problem.text
                        summary.failures.append(
                            {"test": name, "message": _shorten(message, MAX_FAILURE_MESSAGE)}
                        )
                elif skipped is not None:
                    if (skipped.type or "") == "pytest.xfail":
                        counts["xfailed"] += 1
                    else:
                        counts["skipped"] += 1
                else:
                    counts["passed"] += 1
    except (AttributeError, TypeError, ValueError) as exc:
        raise JunitParseError(f"junit report invalid: {exc}") from exc
    return summary


def apply_xfail_outcomes(*, summary: TestSummary, outcomes: dict[str, Any]) -> None:
    """JUnit reports an xpass as a pass; the plugin saw which ones were xpasses."""
    xpassed = int(outcomes.get("xpassed") or 0)
    moved = min(xpassed, summary.counts["passed"])
    summary.counts["passed"] -= moved
    summary.counts["xpassed"] += moved
    xfailed = int(outcomes.get("xfailed") or 0)
    missing = max(0, xfailed - summary.counts["xfailed"])
    moved = min(missing, summary.counts["skipped"])
    summary.counts["skipped"] -= moved
    summary.counts["xfailed"] += moved


def _list(raw: object) -> list[Any]:
    return raw if isinstance(raw, list) else []


# Tests named per warning group (the plugin's `MAX_TESTS_PER_GROUP`).
MAX_WARNING_TESTS = 20


def _plugin_warnings(raw: object) -> list[dict[str, Any]]:
    """The plugin's warning groups: category, message, torch's or not, count, and the tests
    that raised them (node ids, or the plugin's "<collection>" for none)."""
    warnings: list[dict[str, Any]] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or len(warnings) >= MAX_WARNINGS:
            continue
        try:
            count = int(item.get("count") or 0)
        except (TypeError, ValueError):
            count = 0
        tests = [str(test) for test in _list(item.get("tests")) if isinstance(test, str) and test]
        warnings.append(
            {
                "category": _shorten(str(item.get("category")), 200),
                "message": _shorten(str(item.get("message")), MAX_FAILURE_MESSAGE),
                "torch_api": bool(item.get("torch_api")),
                "count": count,
                "tests": [_shorten(test, 1000) for test in tests[:MAX_WARNING_TESTS]],
            }
        )
    return warnings


def _plugin_failures(raw: object) -> list[dict[str, Any]]:
    """The plugin's failed reports: node id, phase, exception line, network-only or not."""
    failures: list[dict[str, Any]] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not item.get("test"):
            continue
        failures.append(
            {
                "test": _shorten(str(item["test"]), 1000),
                "when": str(item.get("when") or "call"),
                "message": _shorten(str(item.get("message") or ""), MAX_FAILURE_MESSAGE),
                "network": item.get("network") is True,
            }
        )
    return failures


def _plugin_torch_check(raw: object) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    return {
        "ok": raw.get("ok") is True,
        "expected": None if raw.get("expected") is None else str(raw["expected"])[:100],
        "actual": None if raw.get("actual") is None else str(raw["actual"])[:100],
        "message": _shorten(str(raw.get("message") or ""), MAX_FAILURE_MESSAGE) or None,
    }


def _plugin_conftest_error(raw: object) -> dict[str, str] | None:
    if not isinstance(raw, dict) or not raw.get("test"):
        return None
    return {
        "test": _shorten(str(raw["test"]), 1000),
        "message": _shorten(str(raw.get("message") or ""), MAX_FAILURE_MESSAGE),
    }


def read_plugin_report(*, path: Path) -> dict[str, Any]:
    """The plugin's JSON (`warnings_plugin.py`), checked field by field; `{}` when it is
    missing or not a JSON object (the run never got as far as the plugin)."""
    try:
        data = json.loads(_read_capped(path, limit=MAX_PLUGIN_REPORT_BYTES, what="plugin report"))
    except (JunitParseError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    raw_environment, raw_outcomes = data.get("environment"), data.get("outcomes")
    environment = raw_environment if isinstance(raw_environment, dict) else {}
    collected = data.get("tests_collected")
    return {
        "warnings": _plugin_warnings(data.get("warnings")),
        "outcomes": raw_outcomes if isinstance(raw_outcomes, dict) else {},
        "environment": {
            str(k): (str(v)[:200] if v is not None else None) for k, v in environment.items()
        },
        "failures": _plugin_failures(data.get("failures")),
        "tests_collected": collected if type(collected) is int and collected >= 0 else None,
        "interrupted": [
            _shorten(str(nodeid), 1000) for nodeid in _list(data.get("interrupted"))[:MAX_FAILURES]
        ],
        "torch_check": _plugin_torch_check(data.get("torch_check")),
        "conftest_error": _plugin_conftest_error(data.get("conftest_error")),
    }


def join_problems(*parts: str | None) -> str | None:
    """The non-empty parts joined with "; ", or None when there are none."""
    kept = [part for part in parts if part]
    return "; ".join(kept) if kept else None


@dataclass(frozen=True, kw_only=True)
class RunEnd:
    """How a sandboxed pytest run ended, and what it left behind."""

    exit_code: int | None
    timed_out: bool
    timeout_s: float
    junit_path: Path
    plugin_report: dict[str, Any]
    # The last lines of the run's output: pytest says there why it refused to start.
    output_tail: str = ""


@dataclass(kw_only=True)
class RunVerdict:
    """What a run means: its state, the problem (and `ErrorCode`) of an errored one, and what
    its tests did (counts from JUnit; failures and network-only failures by node id)."""

    state: CellState
    error: str | None = None
    error_code: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    failures: list[dict[str, str]] = field(default_factory=list)
    needs_network: list[dict[str, str]] = field(default_factory=list)


def _errored(code: ErrorCode, error: str) -> RunVerdict:
    return RunVerdict(state=CellState.ERRORED, error=error, error_code=str(code))


def _refusal(output: str) -> str | None:
    """Why pytest refused to start, as it said: its last `ERROR:`/`error:` line, else its last
    line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    said = [line for line in lines if _PYTEST_REFUSAL.match(line)]
    return _shorten((said or lines or [""])[-1], 500) or None


def _exit_problem(end: RunEnd) -> RunVerdict | None:
    """The errored verdict of an exit that is no test outcome; None for 0, 1 and a collection
    error's 2."""
    code = end.exit_code
    collection_failed = any(f["when"] == "collect" for f in end.plugin_report.get("failures", []))
    if code in (0, 1) or (code == 2 and collection_failed):
        return None
    if code == 5:
        return _errored(ErrorCode.NO_TESTS, "pytest exit 5: no tests collected")
    if code == 4:
        why = join_problems("pytest exit 4: pytest usage error", _refusal(end.output_tail))
        return _errored(ErrorCode.BAD_RECIPE, why or "")
    if code in PYTEST_EXIT_MEANINGS:
        return _errored(
            ErrorCode.TEST_RUN_BROKEN, f"pytest exit {code}: {PYTEST_EXIT_MEANINGS[code]}"
        )
    if code is not None and code < 0:
        return _errored(ErrorCode.TEST_RUN_BROKEN, f"test process killed by signal {-code}")
    return _errored(ErrorCode.TEST_RUN_BROKEN, f"test process ended with exit code {code}")


def _split_network(*, verdict: RunVerdict, plugin_failures: list[dict[str, Any]]) -> None:
    """Network-only test failures leave the failures and the counts for `needs_network`."""
    for failure in plugin_failures:
        entry = {"test": failure["test"], "message": failure["message"]}
        if failure["network"] and failure["when"] != "collect":
            verdict.needs_network.append(entry)
            key = "failed" if failure["when"] == "call" else "errors"
            verdict.counts[key] = max(0, verdict.counts[key] - 1)
        elif len(verdict.failures) < MAX_FAILURES:
            verdict.failures.append(entry)


def _interrupted_tests(*, end: RunEnd, plugin_failures: list[dict[str, Any]]) -> list[str]:
    failed = {failure["test"] for failure in plugin_failures}
    return [nodeid for nodeid in end.plugin_report.get("interrupted", []) if nodeid not in failed]


def _test_outcome(*, end: RunEnd, state: CellState, error: str | None) -> RunVerdict:
    """Counts from JUnit, failures from the plugin (JUnit's when it listed none)."""
    try:
        summary = parse_junit(path=end.junit_path)
    except JunitParseError as exc:
        if state == CellState.TIMED_OUT:
            summary = TestSummary()
        else:
            return _errored(ErrorCode.TEST_RUN_BROKEN, str(exc))
    apply_xfail_outcomes(summary=summary, outcomes=end.plugin_report.get("outcomes", {}))
    plugin_failures = end.plugin_report.get("failures", [])
    interrupted = _interrupted_tests(end=end, plugin_failures=plugin_failures)
    # JUnit writes a test an interrupt stopped as passed: it did not pass.
    summary.counts["passed"] = max(0, summary.counts["passed"] - len(interrupted))
    if interrupted:
        error = join_problems(error, f"interrupted in {', '.join(interrupted[:3])}")
    verdict = RunVerdict(state=state, error=error, counts=summary.counts)
    _split_network(verdict=verdict, plugin_failures=plugin_failures)
    if not plugin_failures:
        verdict.failures = summary.failures
    if state == CellState.FAILED and not (verdict.counts["failed"] or verdict.counts["errors"]):
        verdict.state = CellState.PASSED  # its only failures wanted a network
    return verdict


def judge_run(end: RunEnd) -> RunVerdict:
    """The verdict on a finished pytest run.

    A torch other than the one asked for makes it errored whatever the tests did; a collection
    or conftest import error is the project's failure, named by its node id and exception
    line; a run stopped at its wall time keeps what finished before.
    """
    report = end.plugin_report
    check = report.get("torch_check")
    if check is not None and not check["ok"]:
        return _errored(ErrorCode.TORCH_MISMATCH, check["message"] or "torch mismatch")
    conftest = report.get("conftest_error")
    if conftest is not None and not end.timed_out:
        verdict = RunVerdict(state=CellState.FAILED, failures=[conftest])
        verdict.counts["errors"] = 1
        return verdict
    if end.timed_out:
        limit = f"wall time limit of {end.timeout_s:g} s exceeded"
        return _test_outcome(end=end, state=CellState.TIMED_OUT, error=limit)
    problem = _exit_problem(end)
    if problem is not None:
        return problem
    if check is None:
        return _errored(
            ErrorCode.TEST_RUN_BROKEN,
            "the agent's pytest plugin did not report: which torch ran is unknown",
        )
    state = CellState.PASSED if end.exit_code == 0 else CellState.FAILED
    return _test_outcome(end=end, state=state, error=None)


def torch_from_venv(venv: Path) -> dict[str, str | None]:
    """Fallback when the plugin did not report: read the installed torch's own files."""
    found: dict[str, str | None] = {"torch": None, "cuda": None}
    for version_file in venv.glob("lib/python*/site-packages/torch/version.py"):
        text = version_file.read_text(errors="replace")
        version = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)", text, re.MULTILINE)
        cuda = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)", text, re.MULTILINE)
        found["torch"] = version.group(1) if version else None
        found["cuda"] = cuda.group(1) if cuda else None
    return found
