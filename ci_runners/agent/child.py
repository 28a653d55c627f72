"""The child process that runs one job for the Celery worker, and how the two talk.

    python -m ci_runners.agent.child RESULT_PATH      (the job's JSON on stdin)

The worker runs each job in a child of its own (`start_command`), so that a crash of the
job's process (a segfault, the OOM killer) still ends in a reported infrastructure error and
Celery's time limits can end it. The child runs `runner.run_job` with its hooks:
    on_phase     writes `phase <name>` lines to stdout, an event channel no job output reaches
                 (`phase_event`, read back with `parse_phase_event`)
    on_output    copies the job's output to stderr: the cell's log
    should_stop  turns true on SIGUSR1 (the worker's cancel)
SIGTERM ends the child through run_job's cleanup (which kills the sandbox's cgroup), and so
does the end of the process that started it (a parent-death signal, `process.die_with_parent`:
kill -9 of the worker leaves no job running). The Result is written to RESULT_PATH (through a
`.partial` file, so it appears whole or not at all).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ci_runners.agent.contracts import PROGRESS_PHASES, Job, Result
from ci_runners.agent.process import die_with_parent
from ci_runners.agent.worker_config import sandbox_enabled

PHASE_EVENT = "phase "
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
# The pid of the process that starts the child: the child ends when that one does.
PARENT_PID_VARIABLE = "AGENT_PARENT_PID"


def start_command(result_path: Path) -> list[str]:
    """The child's command line; run it in `PACKAGE_ROOT`, with `start_environment()` and the
    job's JSON on stdin."""
    return [sys.executable, "-m", "ci_runners.agent.child", str(result_path)]


def start_environment() -> dict[str, str]:
    """The child's environment: this process's, with the package importable and its pid."""
    return {
        **os.environ,
        "PYTHONPATH": str(PACKAGE_ROOT),
        "PYTHONUNBUFFERED": "1",
        PARENT_PID_VARIABLE: str(os.getpid()),
    }


def phase_event(phase: str) -> str:
    return f"{PHASE_EVENT}{phase}\n"


def parse_phase_event(line: str) -> str | None:
    """The phase a line of the child's stdout announces, if it is a known one."""
    line = line.strip()
    if not line.startswith(PHASE_EVENT):
        return None
    phase = line[len(PHASE_EVENT) :]
    return phase if phase in PROGRESS_PHASES else None


def _stop_requests() -> threading.Event:
    """SIGTERM exits (through run_job's cleanup); SIGUSR1 asks the job to stop."""

    def exit_now(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_now)
    stop_requested = threading.Event()
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: stop_requested.set())
    return stop_requested


def _on_phase(phase: str) -> None:
    sys.stdout.write(phase_event(phase))
    sys.stdout.flush()


def _on_output(chunk: bytes) -> None:
    sys.stderr.buffer.write(chunk)
    sys.stderr.buffer.flush()


def _write_result(result: Result, result_path: Path) -> None:
    partial = result_path.with_name(result_path.name + ".partial")
    partial.write_text(json.dumps(result.to_dict()))
    partial.replace(result_path)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m ci_runners.agent.child RESULT_PATH < job.json\n")
        return 2
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="[agent] %(message)s")
    stop_requested = _stop_requests()
    parent = os.environ.get(PARENT_PID_VARIABLE, "")
    die_with_parent(
        parent_pid=int(parent) if parent.isdigit() else os.getppid(), signum=signal.SIGTERM
    )
    # Imported here, not at the top: the worker imports this module for the protocol only.
    from ci_runners.agent.runner import run_job
    from ci_runners.agent.workspace import default_work_root

    job = Job.from_dict(json.loads(sys.stdin.read()))
    sys.stderr.write(
        f"[agent] cell {job.cell_id} attempt {job.attempt}: {job.source} "
        f"with {job.torch_requirement} on python {job.python_version}\n"
    )
    sys.stderr.flush()
    result = run_job(
        job=job,
        work_root=default_work_root(),
        sandbox=sandbox_enabled(),
        on_phase=_on_phase,
        on_output=_on_output,
        should_stop=stop_requested.is_set,
    )
    sys.stderr.write(f"[agent] finished: {result.state}\n")
    _write_result(result, Path(argv[0]))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        raise SystemExit(main(sys.argv[1:]))
