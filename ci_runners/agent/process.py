"""The one way the agent runs a trusted tool (git, uv, cp, python) outside the sandbox.

Argument lists only, never a shell; output captured as text; a wall clock; and one shape of
error for every caller: `<what> failed: <why>`, raised as the caller's own exception type.
Untrusted code never runs through here: it runs under `sandbox.run_sandboxed`.
"""

from __future__ import annotations

import subprocess  # noqa: S404 - argument lists, never a shell
from collections.abc import Callable
from pathlib import Path

OUTPUT_LINES = 8


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
