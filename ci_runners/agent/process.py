"""The agent's own processes: how it runs a trusted tool, and how its processes end together.

`run_tool` is the one way the agent runs a trusted tool (git, uv, cp, python) outside the
sandbox. Argument lists only, never a shell; output captured as text; a wall clock; and one
shape of error for every caller: `<what> failed: <why>`, raised as the caller's own exception
type. Untrusted code never runs through here: it runs under `sandbox.run_sandboxed`.

`die_with_parent` makes a process end with the one that started it (a cell's child with the
worker's pool process, which Celery's prefork ends with the worker's main process; bwrap has
`--die-with-parent` of its own), so that kill -9 of an agent leaves no job running beside the
retry.
"""

from __future__ import annotations

import ctypes
import os
import subprocess  # noqa: S404 - argument lists, never a shell
import sys
from collections.abc import Callable
from pathlib import Path

OUTPUT_LINES = 8
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ToolError(Exception):
    """A tool could not be started, ran past its time, or failed."""


def last_lines(text: str, count: int = OUTPUT_LINES) -> str:
    return "\n".join(text.splitlines()[-count:])


def run_tool(
    command: list[str],
    *,
    env: dict[str, str],
    timeout_s: float,
    what: str,
    error: type[Exception] = ToolError,
    cwd: Path | None = None,
    check: bool = True,
    explain: Callable[[str], str | None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `command` and return it; raise `error` when it cannot run, or fails (`check`).

    Messages: `<what> failed: <OS error>`, `<what> failed: timed out after <timeout_s> s`, and
    for a non-zero exit `explain(output)` when it has something to say (`output`: the tool's
    stderr, else its stdout, stripped), else `<what> failed: <the output's last lines>`.
    """
    try:
        completed = subprocess.run(  # noqa: S603
            command,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what} failed: timed out after {exc.timeout:g} s") from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise error(f"{what} failed: {exc}") from exc
    if check and completed.returncode != 0:
        output = completed.stderr.strip() or completed.stdout.strip()
        explained = explain(output) if explain is not None else None
        raise error(explained or f"{what} failed: " + last_lines(output))
    return completed


def die_with_parent(*, parent_pid: int, signum: int) -> None:
    """Have the kernel send `signum` to this process once its parent ends (Linux
    `prctl(PR_SET_PDEATHSIG)`); when `parent_pid` has already ended, the signal comes now.

    The kernel watches the parent *thread* that started this process: call it only in
    processes started from their parent's main thread (Celery's prefork pool and the cell's
    child are). Elsewhere than on Linux it only checks the parent.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signum)
