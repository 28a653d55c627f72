"""pytest plugin loaded inside the sandbox: harvests warnings and xfail outcomes.

Standalone (stdlib only): it is copied read-only into the sandbox and loaded with
`-p ecoreg_warnings_plugin`. At session end it writes a JSON report to
`$ECOREG_REPORT_PATH`: warnings grouped by (category, message) with a count and whether
torch raised them, xfailed/xpassed counts, and the python/torch/cuda versions seen.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

REPORT_ENV = "ECOREG_REPORT_PATH"
MAX_GROUPS = 500
MAX_MESSAGE = 2000
_TORCH_NAME = re.compile(r"(^|[^\w.])torch\.[A-Za-z_]")

_groups: dict[tuple[str, str], dict[str, Any]] = {}
_outcomes = {"xfailed": 0, "xpassed": 0}


def _torch_dir() -> str | None:
    torch = sys.modules.get("torch")
    path = getattr(torch, "__file__", None)
    return os.path.dirname(path) + os.sep if path else None


def _from_torch(*, category: type, message: str, filename: str) -> bool:
    torch_dir = _torch_dir()
    if torch_dir and filename.startswith(torch_dir):
        return True
    if f"{os.sep}torch{os.sep}" in filename:
        return True
    if getattr(category, "__module__", "").split(".")[0] == "torch":
        return True
    # Deprecations are raised with stacklevel pointing at the caller; the message names the API.
    return bool(_TORCH_NAME.search(message))


def pytest_warning_recorded(warning_message, when, nodeid, location):  # noqa: ANN001, ARG001
    category = warning_message.category
    message = str(warning_message.message)[:MAX_MESSAGE]
    key = (category.__name__, message)
    group = _groups.get(key)
    if group is None:
        if len(_groups) >= MAX_GROUPS:
            return
        group = _groups[key] = {
            "category": category.__name__,
            "message": message,
            "torch_api": False,
            "count": 0,
        }
    group["count"] += 1
    if not group["torch_api"]:
        group["torch_api"] = _from_torch(
            category=category, message=message, filename=str(warning_message.filename)
        )


def pytest_runtest_logreport(report):  # noqa: ANN001
    if not hasattr(report, "wasxfail"):
        return
    if report.skipped:
        _outcomes["xfailed"] += 1
    elif report.passed and report.when == "call":
        _outcomes["xpassed"] += 1


def _environment() -> dict[str, str | None]:
    record: dict[str, str | None] = {
        "python": sys.version.split()[0],
        "torch": None,
        "cuda": None,
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        record["torch"] = getattr(torch, "__version__", None)
        record["cuda"] = getattr(getattr(torch, "version", None), "cuda", None)
    return record


def pytest_sessionfinish(session, exitstatus):  # noqa: ANN001, ARG001
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    report = {
        "warnings": sorted(_groups.values(), key=lambda g: (-g["count"], g["category"])),
        "outcomes": dict(_outcomes),
        "environment": _environment(),
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle)
