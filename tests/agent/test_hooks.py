"""run_job's hooks (phase, live output, stop), and what a killed agent leaves behind: its
cgroups, job dirs and scratch dirs, removed by the next agent of the same name."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from ci_runners.agent import owners, sandbox, workspace
from ci_runners.agent.contracts import CellState, Job, TestConfig
from ci_runners.agent.runner import CANCELLED_ERROR, run_job

pytestmark = pytest.mark.agent

MARKER = f"ecoreg-hooks-{uuid.uuid4().hex[:10]}"

TICKING_TESTS = {
    "tests/test_tick.py": f"""
        import signal
        import subprocess
        import time


        def test_ticks():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            subprocess.Popen(["sh", "-c", "trap '' TERM; exec -a {MARKER} sleep 100000"])
            for second in range(600):
                print("tick", second, flush=True)
                time.sleep(0.2)
    """,
    "tests/test_quick.py": """
        def test_quick():
            print("hello from the sandbox", flush=True)
    """,
}


@pytest.fixture(scope="module")
def ticking_project(make_project) -> Path:
    return make_project(name="ticking", files=TICKING_TESTS)


def _job(project: Path, test_file: str, **overrides) -> Job:
    values = {
        "source": str(project),
        "torch_version": "2.13.0",
        "torch_variant": "cpu",
        "timeout_s": 120,
        "test_config": TestConfig(test_paths=[f"tests/{test_file}"], pytest_args=["-s"]),
    }
    values.update(overrides)
    return Job(**values)


def test_phases_and_live_output_reach_the_hooks(ticking_project, work_root, require_sandbox):
    phases: list[str] = []
    chunks: list[bytes] = []
    groups_while_running: list[set[str]] = []

    def on_output(chunk: bytes) -> None:
        chunks.append(chunk)
        if phases[-1:] == ["running"]:
            groups_while_running.append(sandbox.owned_cgroups())

    result = run_job(
        job=_job(ticking_project, "test_quick.py"),
        work_root=work_root,
        on_phase=phases.append,
        on_output=on_output,
        should_stop=lambda: False,
    )

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert phases == ["preparing", "running"]
    output = b"".join(chunks).decode()
    assert "hello from the sandbox" in output
    assert "1 passed" in output
    # The job's cgroups carry this agent's name and this process's pid, and are gone after.
    assert groups_while_running and all(len(g) == 2 for g in groups_while_running)
    prefix = f"ecoreg-{sandbox.agent_tag()}-{os.getpid()}-"
    assert all(name.split("/")[1].startswith(prefix) for name in groups_while_running[0])
    assert sandbox.owned_cgroups() == set()


def test_should_stop_ends_a_running_job_as_cancelled(ticking_project, work_root, require_sandbox):
    seen = bytearray()

    def stop_after_ticks() -> bool:
        return b"tick 3" in seen

    result = run_job(
        job=_job(ticking_project, "test_tick.py"),
        work_root=work_root,
        on_output=seen.extend,
        should_stop=stop_after_ticks,
    )

    assert result.state == CellState.ERRORED
    assert result.error == CANCELLED_ERROR
    assert result.exit_code is None
    assert result.counts["passed"] == 0
    assert "job stopped on request" in result.log_tail
    assert "tick 3" in result.log_tail
    assert result.timings["tests_s"] is None or result.timings["tests_s"] < 60
    leftovers = subprocess.run(["pgrep", "-f", MARKER], capture_output=True, text=True)
    assert leftovers.stdout == "", f"processes left behind: {leftovers.stdout}"
    assert sandbox.owned_cgroups() == set()


def test_should_stop_before_the_job_starts_does_nothing(ticking_project, work_root):
    phases: list[str] = []

    result = run_job(
        job=_job(ticking_project, "test_quick.py"),
        work_root=work_root,
        on_phase=phases.append,
        should_stop=lambda: True,
    )

    assert (result.state, result.error, result.commit) == (CellState.ERRORED, CANCELLED_ERROR, None)
    assert phases == []


def test_a_failing_hook_is_an_agent_error(ticking_project, work_root):
    def broken(_phase: str) -> None:
        raise RuntimeError("hook broke")

    result = run_job(
        job=_job(ticking_project, "test_quick.py"), work_root=work_root, on_phase=broken
    )

    assert result.state == CellState.ERRORED
    assert result.error == "agent error: RuntimeError: hook broke"


def _cgroup_with_sleeper(name: str) -> tuple[list[Path], subprocess.Popen]:
    dirs = [sandbox.CGROUP_ROOT / controller / name for controller in ("pids", "memory")]
    sleeper = subprocess.Popen(["sleep", "100000"])
    for directory in dirs:
        directory.mkdir()
        (directory / "cgroup.procs").write_text(str(sleeper.pid))
    return dirs, sleeper


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_stale_cgroups_of_this_agent_are_reaped_and_no_others(require_sandbox):
    tag = sandbox.agent_tag()
    live = subprocess.Popen(["sleep", "100000"])
    live_start = sandbox.process_start_time(live.pid)
    names = {
        # this agent, owner killed: reaped, its process killed
        "stale": f"ecoreg-{tag}-{_dead_pid()}-12345-{uuid.uuid4().hex[:12]}",
        # this agent, owner alive (another pool process's job): kept
        "live": f"ecoreg-{tag}-{live.pid}-{live_start}-{uuid.uuid4().hex[:12]}",
        # this agent's pid reused by another process (start time differs): reaped
        "reused": f"ecoreg-{tag}-{live.pid}-1-{uuid.uuid4().hex[:12]}",
        # another agent's, owner dead: its own agent reaps it, not this one
        "other": f"ecoreg-other-agent-{_dead_pid()}-12345-{uuid.uuid4().hex[:12]}",
    }
    made = {label: _cgroup_with_sleeper(name) for label, name in names.items()}
    try:
        removed = sandbox.reap_stale_cgroups()

        for label in ("stale", "reused"):
            dirs, sleeper = made[label]
            assert not any(d.exists() for d in dirs), label
            assert sleeper.wait(timeout=10) == -signal.SIGKILL
            for controller in ("pids", "memory"):
                assert f"{controller}/{names[label]}" in removed
        for label in ("live", "other"):
            dirs, sleeper = made[label]
            assert all(d.exists() for d in dirs), label
            assert sleeper.poll() is None
    finally:
        for dirs, sleeper in made.values():
            sleeper.kill()
            sleeper.wait()
            for directory in dirs:
                for _ in range(100):
                    try:
                        directory.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.05)
        live.kill()
        live.wait()


def test_default_work_root_is_the_same_for_cli_and_worker(monkeypatch):
    monkeypatch.delenv("AGENT_WORK_ROOT", raising=False)
    root = workspace.default_work_root()

    assert root == Path(tempfile.gettempdir()) / "ecosystem-registry-agent"
    assert not str(root).startswith(str(Path.home()))
    monkeypatch.setenv("AGENT_WORK_ROOT", "/srv/agent-work")
    assert workspace.default_work_root() == Path("/srv/agent-work")


def test_what_killed_jobs_left_behind_is_swept_for_this_agent_only(tmp_path):
    """Job dirs and scratch dirs of this agent's processes that are gone are removed at worker
    start; live ones, finished ones, other agents' and unmarked ones are left alone."""
    work_root, scratch_root = tmp_path / "work", tmp_path / "tmp"
    scratch_root.mkdir()
    tag = owners.agent_tag()
    me = owners.Owner.current()
    dead = owners.Owner(agent=tag, pid=_dead_pid(), start=12345)
    reused = owners.Owner(agent=tag, pid=os.getpid(), start=1)  # this pid, another process
    other = owners.Owner(agent="other-agent", pid=_dead_pid(), start=12345)
    zombie = subprocess.Popen(["true"])  # killed, not yet reaped by its parent: not running
    while _state(zombie.pid) != "Z":
        time.sleep(0.02)
    undead = owners.Owner(agent=tag, pid=zombie.pid, start=owners.process_start_time(zombie.pid))
    job = Job(source=".", torch_version="2.13.0", cell_id=7)

    def job_dir(owner: owners.Owner, *, finished: bool = False) -> Path:
        paths = workspace.prepare_job_dir(job=job, work_root=work_root, owner=owner)
        (paths.work / "src").mkdir(parents=True)
        paths.venv.mkdir()
        if finished:
            paths.result.write_text("{}")
        return paths.root

    stale = {job_dir(dead), job_dir(reused)}
    stale |= {workspace.make_scratch_dir(root=scratch_root, owner=o) for o in (dead, undead)}
    kept = {job_dir(me), job_dir(other), job_dir(dead, finished=True)}
    kept |= {workspace.make_scratch_dir(root=scratch_root, owner=o) for o in (me, other)}
    unmarked = work_root / "job-7-1-0123abcd"  # made by an agent before owners were written
    unmarked.mkdir()
    kept.add(unmarked)

    removed = workspace.sweep_stale(work_root=work_root, scratch_root=scratch_root)
    zombie.wait()

    assert set(removed) == stale
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None
