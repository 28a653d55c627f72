"""The Celery task's child process (`python -m ci_runners.agent.child RESULT_PATH`).

It runs run_job with its hooks: phases as events on stdout, the job's output on stderr, and
SIGUSR1 (sent by the task when the cell is cancelled) ends the job as cancelled.
"""

from __future__ import annotations

import json
import os
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
