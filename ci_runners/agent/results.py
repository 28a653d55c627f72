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

from ci_runners.agent.contracts import COUNT_KEYS, CellState

MAX_JUNIT_BYTES = 50 * 1024 * 1024
MAX_PLUGIN_REPORT_BYTES = 5 * 1024 * 1024
MAX_FAILURES = 50
MAX_FAILURE_MESSAGE = 2000
MAX_WARNINGS = 100
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


def read_plugin_report(*, path: Path) -> dict[str, Any]:
    """The warnings plugin's JSON; an empty report when it is missing or broken."""
    try:
        data = json.loads(_read_capped(path, limit=MAX_PLUGIN_REPORT_BYTES, what="plugin report"))
    except (JunitParseError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    warnings: list[dict[str, Any]] = []
    for item in data.get("warnings") or []:
        if not isinstance(item, dict) or len(warnings) >= MAX_WARNINGS:
            continue
        try:
            count = int(item.get("count") or 0)
        except (TypeError, ValueError):
            count = 0
        warnings.append(
            {
                "category": _shorten(str(item.get("category")), 200),
                "message": _shorten(str(item.get("message")), MAX_FAILURE_MESSAGE),
                "torch_api": bool(item.get("torch_api")),
                "count": count,
            }
        )
    raw_environment, raw_outcomes = data.get("environment"), data.get("outcomes")
    environment = raw_environment if isinstance(raw_environment, dict) else {}
    outcomes = raw_outcomes if isinstance(raw_outcomes, dict) else {}
    return {
        "warnings": warnings,
        "outcomes": outcomes,
        "environment": {k: (str(v) if v is not None else None) for k, v in environment.items()},
    }


def join_problems(*parts: str | None) -> str | None:
    """The non-empty parts joined with "; ", or None when there are none."""
    kept = [part for part in parts if part]
    return "; ".join(kept) if kept else None


def state_for_exit(*, exit_code: int | None) -> tuple[CellState, str | None]:
    """The cell state of a pytest run that ended with `exit_code`, and the problem if any."""
    if exit_code == 0:
        return CellState.PASSED, None
    if exit_code == 1:
        return CellState.FAILED, None
    if exit_code in PYTEST_EXIT_MEANINGS:
        return CellState.ERRORED, f"pytest exit {exit_code}: {PYTEST_EXIT_MEANINGS[exit_code]}"
    if exit_code is not None and exit_code < 0:
        return CellState.ERRORED, f"test process killed by signal {-exit_code}"
    return CellState.ERRORED, f"test process ended with exit code {exit_code}"


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
