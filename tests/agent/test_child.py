"""The Celery task's child process (`python -m ci_runners.agent.child RESULT_PATH`).

It runs run_job with its hooks: phases as events on stdout, the job's output on stderr, and
SIGUSR1 (sent by the task when the cell is cancelled) ends the job as cancelled.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ci_runners.agent import sandbox
from ci_runners.agent.contracts import Job, TestConfig

pytestmark = pytest.mark.agent
ROOT = Path(__file__).resolve().parents[2]

TESTS = {
    "tests/test_tick.py": """
        import time


        def test_ticks():
            print("phase passed", flush=True)  # job output never counts as an event
            for second in range(600):
                print("tick", second, flush=True)
                time.sleep(0.2)
    """,
}


def test_child_reports_phases_streams_output_and_stops_on_sigusr1(
    make_project, work_root, tmp_path, require_sandbox
):
    repo = make_project(name="childtick", files=TESTS)
    job = Job(
        source=str(repo),
        torch_version="2.13.0",
        torch_variant="cpu",
        cell_id=7,
        timeout_s=120,
        test_config=TestConfig(pytest_args=["-s"]),
    )
    result_path = tmp_path / "result.json"
    child = subprocess.Popen(
        [sys.executable, "-m", "ci_runners.agent.child", str(result_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "AGENT_WORK_ROOT": str(work_root), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    child.stdin.write(json.dumps(job.to_dict()).encode())
    child.stdin.close()
    events: list[str] = []
    log = bytearray()
    readers = [
        threading.Thread(target=lambda: events.extend(child.stdout.read().decode().splitlines())),
        threading.Thread(target=lambda: [log.extend(c) for c in iter(child.stderr.readline, b"")]),
    ]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 180
        while b"tick 3" not in log and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert b"tick 3" in log, log.decode(errors="replace")[-3000:]
        child.send_signal(signal.SIGUSR1)
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for reader in readers:
            reader.join(timeout=10)

    assert events == ["phase preparing", "phase running"]
    result = json.loads(result_path.read_text())
    assert (result["state"], result["error"]) == ("errored", "cancelled")
    text = log.decode(errors="replace")
    assert "[agent] cell 7 attempt 1" in text
    assert "[agent] finished: errored" in text
    assert sandbox.owned_cgroups(pid=child.pid) == set()


STARTS_A_CHILD_THEN_WAITS = """
import os, subprocess, sys, time
child = subprocess.Popen(
    [sys.executable, "-m", "ci_runners.agent.child", sys.argv[1]],
    stdin=subprocess.PIPE,
    env={**os.environ, "AGENT_PARENT_PID": str(os.getpid())},
)
# The child's stdin stays open in a process that outlives this one: the child waits for its job.
subprocess.Popen(["sleep", "600"], pass_fds=[child.stdin.fileno()], start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def test_the_job_child_dies_with_the_worker_process_that_started_it(tmp_path):
    """kill -9 of the worker must not leave the job running (and holding a GPU) beside the
    retry: the child gets a parent-death signal and ends through its cleanup."""
    worker = subprocess.Popen(
        [sys.executable, "-c", STARTS_A_CHILD_THEN_WAITS, str(tmp_path / "result.json")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    holders: list[int] = []
    ready, _, _ = select.select([worker.stdout], [], [], 30)
    assert ready, "the worker did not start its child"
    child_pid = int(worker.stdout.readline())
    try:
        time.sleep(1)  # the child is up and reading its stdin
        assert _state(child_pid) not in (None, "Z")
        holders = [pid for pid in _children_of(worker.pid) if pid != child_pid]

        worker.kill()
        worker.wait()

        deadline = time.monotonic() + 10
        while _state(child_pid) not in (None, "Z", "X") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _state(child_pid) in (None, "Z", "X"), "the job child outlived its worker"
    finally:
        worker.kill()
        worker.wait()
        for pid in [child_pid, *holders]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found
