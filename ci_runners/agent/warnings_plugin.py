"""pytest plugin loaded inside the sandbox: what the agent cannot see from outside pytest.

Standalone (stdlib and pytest only): it is copied read-only into the sandbox and loaded with
`-p ecoreg_warnings_plugin`. It writes a JSON report to `$ECOREG_REPORT_PATH` holding:
- `torch_check`: the torch that ran against the one the job asked for
  (`$ECOREG_EXPECTED_TORCH`), checked at session start before any collection or test; on a
  mismatch the session stops there (the report is written before `pytest.exit`, since pytest
  skips `pytest_sessionfinish` when the session never started);
- `failures`: every failed collector and test report, by pytest node id, with its exception
  line and whether it failed only for want of a network (`network`);
- `conftest_error`: a conftest that could not be imported (pytest then stops before its
  session, exit 4, and prints it only as text);
- `interrupted`: tests that started and never finished (the agent's SIGINT at its wall time);
- `tests_collected`, xfailed/xpassed `outcomes`, and the python/torch/cuda versions seen;
- `warnings` grouped by (category, message) with a count, whether torch raised them
  (`torch_api`: see `torch_origin`) and the tests that raised them (`tests`: node ids in the
  order first seen, at most `MAX_TESTS_PER_GROUP`; `NO_TEST` for a warning raised outside any
  test: at configuration, collection, or torch's import).
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import sys
import traceback
import warnings
from typing import Any

import pytest

REPORT_ENV = "ECOREG_REPORT_PATH"
EXPECTED_TORCH_ENV = "ECOREG_EXPECTED_TORCH"
# A re-run of failed tests: a JSON list of the node ids to keep, the rest deselected.
RERUN_ENV = "ECOREG_RERUN_TESTS"
MAX_GROUPS = 500
MAX_ORIGINS = 5000
MAX_FAILURES = 200
MAX_MESSAGE = 2000
MAX_CHAIN = 50
MAX_TESTS_PER_GROUP = 20
NO_TEST = "<collection>"
# Torch's C++ warnings (TORCH_WARN) end with where they were raised in torch's own sources.
TORCH_CPP_MARKER = re.compile(r"Triggered internally at \S*(torch/csrc/|c10/|aten/src/)")
# Files whose frames only relay a warning: `deprecated` wrappers (typing_extensions, and
# `warnings.deprecated` from Python 3.13); the object they wrap is in their local `arg`.
WARNING_RELAY_FILES = ("typing_extensions.py", "warnings.py", "_py_warnings.py")
NETWORK_TEXT = re.compile(
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable"
    r"|No address associated with hostname|NameResolutionError|Failed to resolve"
)
NETWORK_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN}
_HOST_IN_TEXT = re.compile(r"host='([^']+)'")
_LOCAL_HOSTS = {"localhost", "::1", "0.0.0.0", ""}  # noqa: S104 - names, no binding

_groups: dict[tuple[str, str], dict[str, Any]] = {}
_origins: dict[tuple[str, str], bool] = {}
_outcomes = {"xfailed": 0, "xpassed": 0}
_failures: list[dict[str, Any]] = []
_run: dict[str, Any] = {"tests_collected": None, "torch_check": None, "conftest_error": None}
_unfinished: dict[str, None] = {}  # tests started and not yet finished, in order


# --- where a warning comes from ---------------------------------------------------------------


def _torch_dir() -> str | None:
    torch = sys.modules.get("torch")
    path = getattr(torch, "__file__", None)
    return os.path.dirname(path) + os.sep if path else None


def _is_torch_object(value: object) -> bool:
    module = getattr(value, "__module__", None) or ""
    return module == "torch" or module.startswith("torch.")


def torch_origin(*, message: str, frame: Any) -> bool:
    """Whether torch raised this warning: its message carries torch's C++ marker, or the Python
    frame that raised it (past `deprecated` relays, judged by what they wrap) is torch's code.

    Judged where the warning is raised, not where `stacklevel` points, so a deprecation that
    torch reports against the caller's line is still torch's."""
    if TORCH_CPP_MARKER.search(message):
        return True
    torch_dir = _torch_dir()
    while frame is not None and torch_dir:
        filename = frame.f_code.co_filename
        if os.path.basename(filename) not in WARNING_RELAY_FILES:
            return filename.startswith(torch_dir)
        if _is_torch_object(frame.f_locals.get("arg")):
            return True
        frame = frame.f_back
    return False


def _warning_key(category: type, message: object) -> tuple[str, str]:
    return category.__name__, str(message)[:MAX_MESSAGE]


def _install_origin_hook() -> None:
    """Note each warning's origin as it is raised: `warnings._showwarnmsg` is what both Python's
    and C's `warn` call for a warning that is shown or recorded, with the raising frames still
    on the stack (catch_warnings swaps `showwarning` and `_showwarnmsg_impl`, never this)."""
    original = getattr(warnings, "_showwarnmsg", None)
    if original is None or getattr(original, "ecoreg_hook", False):
        return

    def showwarnmsg(msg: Any) -> Any:
        try:
            key = _warning_key(msg.category, msg.message)
            if not _origins.get(key) and len(_origins) < MAX_ORIGINS:
                _origins[key] = torch_origin(message=key[1], frame=sys._getframe(1))
        except Exception:  # noqa: BLE001, S110 - never break the project's warnings
            pass
        return original(msg)

    showwarnmsg.ecoreg_hook = True  # type: ignore[attr-defined]
    warnings._showwarnmsg = showwarnmsg  # type: ignore[attr-defined]


_install_origin_hook()


def _group_warning(*, category: type, message: object, filename: str, nodeid: str = "") -> None:
    """Count the warning in its (category, message) group and note the test that raised it
    (`nodeid`; "" outside any test)."""
    key = _warning_key(category, message)
    group = _groups.get(key)
    if group is None:
        if len(_groups) >= MAX_GROUPS:
            return
        torch_dir = _torch_dir()
        # Only when the hook saw nothing: the file the warning names.
        fallback = bool(TORCH_CPP_MARKER.search(key[1])) or bool(
            torch_dir and filename.startswith(torch_dir)
        )
        group = _groups[key] = {
            "category": key[0],
            "message": key[1],
            "fallback": fallback,
            "count": 0,
            "tests": {},  # an insertion-ordered set
        }
    group["count"] += 1
    tests = group["tests"]
    if len(tests) < MAX_TESTS_PER_GROUP:
        tests[nodeid or NO_TEST] = None


def pytest_warning_recorded(warning_message, when, nodeid, location):  # noqa: ANN001, ARG001
    _group_warning(
        category=warning_message.category,
        message=warning_message.message,
        filename=str(warning_message.filename),
        nodeid=nodeid if when == "runtest" else "",
    )


def _warning_groups() -> list[dict[str, Any]]:
    """The groups, each with one answer for its (category, message) whatever frame showed it."""
    groups = []
    for key, group in _groups.items():
        origin = _origins.get(key)
        groups.append(
            {
                "category": group["category"],
                "message": group["message"],
                "torch_api": group["fallback"] if origin is None else origin,
                "count": group["count"],
                "tests": list(group["tests"]),
            }
        )
    return sorted(groups, key=lambda g: (-g["count"], g["category"]))


# --- failures -----------------------------------------------------------------------------------


def _shorten(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def exception_line(text: str) -> str:
    """The exception line of a pytest failure text: the first line of its last block of
    `E   ` lines (the final exception), else its first line."""
    blocks: list[list[str]] = []
    previous_was_e = False
    for line in text.splitlines():
        is_e = line.startswith("E ")
        if is_e:
            if not previous_was_e:
                blocks.append([])
            blocks[-1].append(line[1:].strip())
        previous_was_e = is_e
    if blocks:
        return blocks[-1][0]
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


def _crash_message(report: Any) -> str:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    message = getattr(crash, "message", None)
    if message:
        return _shorten(str(message))
    return _shorten(exception_line(str(getattr(report, "longreprtext", "") or "")))


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """The exception and those behind it: causes, contexts, and wrapped `reason`s / args (as
    urllib's URLError, urllib3's MaxRetryError and requests' ConnectionError hold them)."""
    found: list[BaseException] = []
    pending = [exc]
    while pending and len(found) < MAX_CHAIN:
        current = pending.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += list(getattr(current, "args", ()) or ())
        pending += [item for item in linked if isinstance(item, BaseException)]
    return found


def _hosts_named(chain: list[BaseException]) -> set[str]:
    hosts: set[str] = set()
    for exc in chain:
        for holder in (exc, getattr(exc, "conn", None), getattr(exc, "pool", None)):
            host = getattr(holder, "host", None)
            if isinstance(host, str):
                hosts.add(host)
        hosts.update(_HOST_IN_TEXT.findall(str(exc)))
    return hosts


def needs_network(exc: BaseException) -> bool:
    """Whether a test failed only because the sandbox has no network: a name that cannot be
    resolved, a network that cannot be reached, or a refused connection to another host."""
    chain = _exception_chain(exc)
    for item in chain:
        if isinstance(item, socket.gaierror):
            return True
        if isinstance(item, OSError) and item.errno in NETWORK_ERRNOS:
            return True
        if NETWORK_TEXT.search(str(item)):
            return True
    if any(isinstance(item, ConnectionRefusedError) for item in chain):
        return any(
            host not in _LOCAL_HOSTS and not host.startswith("127.") for host in _hosts_named(chain)
        )
    return False


def _record_failure(*, nodeid: str, when: str, message: str, network: bool) -> None:
    if len(_failures) < MAX_FAILURES:
        _failures.append({"test": nodeid, "when": when, "message": message, "network": network})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001, ARG001
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None:
        try:
            report.ecoreg_network = needs_network(call.excinfo.value)
        except Exception:  # noqa: BLE001 - a strange exception is just not a network one
            report.ecoreg_network = False


def pytest_runtest_logreport(report):  # noqa: ANN001
    if report.failed:
        network = getattr(report, "ecoreg_network", None)
        message = _crash_message(report)
        if network is None:  # a report from elsewhere (xdist): judge by its text
            network = bool(NETWORK_TEXT.search(message))
        _record_failure(nodeid=report.nodeid, when=report.when, message=message, network=network)
    if not hasattr(report, "wasxfail"):
        return
    if report.skipped:
        _outcomes["xfailed"] += 1
    elif report.passed and report.when == "call":
        _outcomes["xpassed"] += 1


def pytest_collectreport(report):  # noqa: ANN001
    if report.failed:
        message = _shorten(exception_line(str(report.longreprtext or "")))
        _record_failure(nodeid=report.nodeid, when="collect", message=message, network=False)


def pytest_runtest_logstart(nodeid, location):  # noqa: ANN001, ARG001
    _unfinished[nodeid] = None


def pytest_runtest_logfinish(nodeid, location):  # noqa: ANN001, ARG001
    _unfinished.pop(nodeid, None)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):  # noqa: ANN001
    """On a re-run (`$ECOREG_RERUN_TESTS`), only the listed tests run: selected by the node
    ids the first run reported, after the same collection, whatever the run's arguments."""
    raw = os.environ.get(RERUN_ENV)
    if raw is None:
        return
    wanted = set(json.loads(raw))
    deselected = [item for item in items if item.nodeid not in wanted]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.nodeid in wanted]


def pytest_collection_finish(session):  # noqa: ANN001
    _run["tests_collected"] = len(session.items)


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):  # noqa: ANN001, ARG001
    """A conftest that cannot be imported stops pytest before its session: note which, and
    why, and write the report now."""
    outcome = yield
    error = outcome.excinfo[1] if outcome.excinfo else None
    path, cause = getattr(error, "path", None), getattr(error, "cause", None)
    if path is None or not isinstance(cause, BaseException):
        return
    relative = os.path.relpath(str(path), str(early_config.invocation_params.dir))
    line = traceback.format_exception_only(type(cause), cause)[-1].strip()
    _run["conftest_error"] = {
        "test": str(path) if relative.startswith("..") else relative,
        "message": _shorten(line),
    }
    _run["torch_check"] = torch_check()
    _write_report(early_config)


# --- the torch that runs ------------------------------------------------------------------------


def same_torch(*, actual: str, expected: str) -> bool:
    """With a local tag (`2.13.0+cpu`) the versions must be equal; without one the public
    versions must be (any local build of `2.13.0` is a `2.13.0`)."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return actual == expected if "+" in expected else actual.split("+")[0] == expected
    try:
        if "+" in expected:
            return Version(actual) == Version(expected)
        return Version(Version(actual).public) == Version(expected)
    except InvalidVersion:
        return False


def torch_check() -> dict[str, Any]:
    """Import torch (its import warnings grouped like any other) and compare it with the torch
    the job asked for."""
    expected = os.environ.get(EXPECTED_TORCH_ENV) or None
    check: dict[str, Any] = {"expected": expected, "actual": None, "ok": False, "message": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            import torch  # noqa: PLC0415 - the import is the check
        except Exception as exc:  # noqa: BLE001 - a torch that does not import did not run
            line = traceback.format_exception_only(type(exc), exc)[-1].strip()
            check["message"] = (
                f"torch {expected} was requested but torch cannot be imported: {line}"
            )
            return check
    for caught_warning in caught:
        _group_warning(
            category=caught_warning.category,
            message=caught_warning.message,
            filename=str(caught_warning.filename),
        )
    check["actual"] = actual = str(getattr(torch, "__version__", ""))
    check["ok"] = expected is None or same_torch(actual=actual, expected=expected)
    if not check["ok"]:
        check["message"] = f"torch {actual} ran, but torch {expected} was requested"
    return check


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):  # noqa: ANN001
    check = _run["torch_check"] = torch_check()
    if not check["ok"]:
        _write_report(session.config)
        pytest.exit(f"ecoreg: {check['message']}", returncode=pytest.ExitCode.INTERRUPTED)


# --- the report ---------------------------------------------------------------------------------


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


def _write_report(config: Any) -> None:
    path = os.environ.get(REPORT_ENV)
    if not path or hasattr(config, "workerinput"):  # xdist workers: the controller reports
        return
    report = {
        "warnings": _warning_groups(),
        "outcomes": dict(_outcomes),
        "environment": _environment(),
        "failures": list(_failures),
        # Tests an interrupt (the agent's wall time limit) stopped: JUnit lists them as passed.
        "interrupted": list(_unfinished)[:MAX_FAILURES],
        **_run,
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle)


def pytest_sessionfinish(session, exitstatus):  # noqa: ANN001, ARG001
    _write_report(session.config)
