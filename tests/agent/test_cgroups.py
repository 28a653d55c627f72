"""Per-job limits: the cgroup v2 writer (on a plain directory standing in for the cgroup root),
and the sandbox failing closed where no limits can be enforced (for real, through run_job)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ci_runners.agent import cgroups, environment, sandbox
from ci_runners.agent.cgroups import JobCgroupV2
from ci_runners.agent.contracts import CellState, ErrorCode, Job
from ci_runners.agent.runner import run_job
from ci_runners.agent.sandbox import Limits, SandboxLimitsUnavailable, SandboxSpec

pytestmark = pytest.mark.agent

TINY_TESTS = {"tests/test_tiny.py": "def test_tiny():\n    assert 1 + 1 == 2\n"}


def _stand_in_root(tmp_path: Path, *, controllers: str = "cpuset cpu io memory pids") -> Path:
    """A plain directory laid out as a cgroup v2 root, with this process's own cgroup (as
    /proc/self/cgroup names it) as the delegated subtree."""
    root = tmp_path / "cgroup"
    subtree = cgroups.delegated_subtree(root=root)
    assert subtree is not None
    subtree.mkdir(parents=True)
    for directory in {root, subtree}:
        (directory / "cgroup.controllers").write_text(f"{controllers}\n")
        (directory / "cgroup.subtree_control").write_text("")
        (directory / "cgroup.procs").write_text(f"{os.getpid()}\n")
    return root


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan killed waits for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _job_dirs(subtree: Path) -> list[Path]:
    return sorted(subtree.glob(f"{sandbox.CGROUP_PREFIX}*"))


def test_subtree_is_the_agents_cgroup_or_the_parent_of_its_leaf(tmp_path):
    assert cgroups.delegated_subtree(root=tmp_path, own_path="/") == tmp_path
    assert cgroups.delegated_subtree(root=tmp_path, own_path="/system.slice/ecoreg.service") == (
        tmp_path / "system.slice" / "ecoreg.service"
    )
    assert cgroups.delegated_subtree(root=tmp_path, own_path="/ecoreg.service/agent") == (
        tmp_path / "ecoreg.service"
    )
    proc = tmp_path / "self-cgroup"
    proc.write_text("12:pids:/x\n0::/user.slice/agent.scope\n")
    assert cgroups.own_cgroup_path(proc) == "/user.slice/agent.scope"


def test_v2_job_group_gets_its_limits_and_is_removed(tmp_path):
    root = _stand_in_root(tmp_path)
    subtree = cgroups.delegated_subtree(root=root)
    assert subtree is not None and cgroups.subtree_problem(subtree) is None

    cgroups.prepare_subtree(subtree)
    group = JobCgroupV2(
        subtree=subtree,
        name=f"{sandbox.cgroup_name_prefix()}0123456789ab",
        pids_max=64,
        memory_bytes=512 * 1024**2,
        cpus=1.5,
        controllers=cgroups.enabled_controllers(subtree),
    )
    group.create()

    assert (subtree / "cgroup.subtree_control").read_text().split() == ["+pids", "+memory", "+cpu"]
    assert (group.directory / "pids.max").read_text() == "64"
    assert (group.directory / "memory.max").read_text() == str(512 * 1024**2)
    assert (group.directory / "memory.swap.max").read_text() == "0"
    assert (group.directory / "cpu.max").read_text() == "150000 100000"
    group.remove()
    assert not group.directory.exists()


def test_v2_cpu_max_is_max_without_agent_cpus_and_absent_without_cpu_controller(tmp_path):
    root = _stand_in_root(tmp_path, controllers="memory pids")
    subtree = cgroups.delegated_subtree(root=root)
    assert subtree is not None
    cgroups.prepare_subtree(subtree)
    assert cgroups.enabled_controllers(subtree) == ["pids", "memory"]
    capped = JobCgroupV2(
        subtree=subtree, name="ecoreg-a", pids_max=1, memory_bytes=1, cpus=2, controllers=["cpu"]
    )
    capped.create()
    assert (capped.directory / "cpu.max").read_text() == "200000 100000"
    uncapped = JobCgroupV2(
        subtree=subtree, name="ecoreg-b", pids_max=1, memory_bytes=1, cpus=None, controllers=["cpu"]
    )
    uncapped.create()
    assert (uncapped.directory / "cpu.max").read_text() == "max"
    no_cpu = JobCgroupV2(
        subtree=subtree, name="ecoreg-c", pids_max=1, memory_bytes=1, cpus=2, controllers=[]
    )
    no_cpu.create()
    assert not (no_cpu.directory / "cpu.max").exists()
    assert "cpu limit not applied: no cpu controller delegated" in no_cpu.events()


def test_v2_events_become_the_same_notes_as_v1(tmp_path):
    group = JobCgroupV2(
        subtree=tmp_path,
        name="ecoreg-x",
        pids_max=256,
        memory_bytes=1024,
        cpus=None,
        controllers=[],
    )
    group.create()
    assert group.events() == []
    (group.directory / "pids.events").write_text("max 7\n")
    (group.directory / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n")

    assert group.events() == [
        "process limit reached (pids.max=256)",
        "memory limit reached (1024 bytes)",
    ]


def test_v2_kill_all_kills_every_process_listed_in_the_group(tmp_path):
    group = JobCgroupV2(
        subtree=tmp_path, name="ecoreg-k", pids_max=8, memory_bytes=1024, cpus=None, controllers=[]
    )
    group.create()
    sleepers = [subprocess.Popen(["sleep", "1000"]) for _ in range(2)]  # noqa: S607
    (group.directory / "cgroup.procs").write_text("".join(f"{p.pid}\n" for p in sleepers))

    try:
        assert group.kill_all(deadline_s=20)
    finally:
        for sleeper in sleepers:
            sleeper.kill()
    assert [sleeper.wait() for sleeper in sleepers] == [-signal.SIGKILL] * 2
    group.remove()
    assert not group.directory.exists()


def test_v2_group_on_the_real_cgroup2_mount_is_killed_whole_and_removed():
    """The kernel's own v2 files (cgroup.procs, cgroup.kill, rmdir) on this hybrid host's
    cgroup2 mount, which has no pids or memory controller to write limits with."""
    unified = Path("/sys/fs/cgroup/unified")
    subtree = cgroups.delegated_subtree(root=unified)
    if not cgroups.is_v2(unified) or subtree is None or not subtree.is_dir():
        pytest.fail("this test needs the hybrid host's /sys/fs/cgroup/unified")
    group = JobCgroupV2(
        subtree=subtree,
        name=f"{sandbox.cgroup_name_prefix()}{os.urandom(6).hex()}",
        pids_max=8,
        memory_bytes=1024,
        cpus=None,
        controllers=[],
    )
    group.directory.mkdir()
    try:
        shell = subprocess.Popen(
            ["sh", "-c", "sleep 1000 & sleep 1000 & wait"],  # noqa: S607
            preexec_fn=group.join_current_process,  # noqa: PLW1509
        )
        while len(group.pids()) < 3 and shell.poll() is None:
            time.sleep(0.05)
        sleepers = group.pids() - {shell.pid}
        assert len(sleepers) == 2
        assert (group.directory / "cgroup.kill").exists()

        assert group.kill_all(deadline_s=20)

        assert shell.wait() == -signal.SIGKILL
        assert not any(_running(pid) for pid in sleepers)
        group.remove()
        assert not group.directory.exists()
    finally:
        group.kill_all(deadline_s=5)
        group.remove()


def test_v2_processes_move_into_the_agent_leaf_before_controllers_are_handed_down():
    """v2's no-internal-processes rule, for real: a group with a process in it cannot enable a
    domain controller (hugetlb, the one this host's cgroup2 mount has) until it moves out."""
    unified = Path("/sys/fs/cgroup/unified")
    if "hugetlb" not in (unified / "cgroup.controllers").read_text().split():
        pytest.fail("this test needs the hybrid host's /sys/fs/cgroup/unified with hugetlb")
    root_control = unified / "cgroup.subtree_control"
    handed_down = "hugetlb" in root_control.read_text().split()
    if not handed_down:  # the root may have processes of its own; we give it back after
        root_control.write_text("+hugetlb")
    subtree = unified / f"{sandbox.cgroup_name_prefix()}{os.urandom(6).hex()}"
    subtree.mkdir()
    sleeper = subprocess.Popen(["sleep", "1000"])  # noqa: S607
    try:
        (subtree / "cgroup.procs").write_text(str(sleeper.pid))

        cgroups.enable_controllers(subtree, ["hugetlb"])

        assert "hugetlb" in (subtree / "cgroup.subtree_control").read_text().split()
        assert (subtree / "cgroup.procs").read_text() == ""
        leaf = subtree / cgroups.AGENT_LEAF
        assert (leaf / "cgroup.procs").read_text().split() == [str(sleeper.pid)]
        own = Path(f"/proc/{sleeper.pid}/cgroup").read_text().splitlines()[-1]
        assert cgroups.delegated_subtree(root=unified, own_path=own[3:]) == subtree
    finally:
        sleeper.kill()
        sleeper.wait()
        for directory in (subtree / cgroups.AGENT_LEAF, subtree):
            cgroups.remove_group(directory)
        if not handed_down:
            root_control.write_text("-hugetlb")
    assert not subtree.exists()


def test_run_on_a_v2_host_joins_its_group_before_exec_and_removes_it(tmp_path, monkeypatch):
    root = _stand_in_root(tmp_path)
    subtree = cgroups.delegated_subtree(root=root)
    assert subtree is not None
    monkeypatch.setenv("AGENT_CGROUP_ROOT", str(root))
    seen: dict[str, str] = {}

    def look(chunk: bytes) -> None:
        (group,) = _job_dirs(subtree)
        seen.update({f.name: f.read_text() for f in group.iterdir()})

    run = sandbox.run_sandboxed(
        spec=SandboxSpec(command=["sh", "-c", "echo $$"], work_dir=tmp_path, cwd=tmp_path),
        limits=Limits(pids_max=32, memory_bytes=256 * 1024**2, cpus=0.5),
        sandbox=False,
        on_output=look,
    )

    assert run.exit_code == 0, run.output
    assert seen["pids.max"] == "32"
    assert seen["memory.max"] == str(256 * 1024**2)
    assert seen["cpu.max"] == "50000 100000"
    assert seen["cgroup.procs"].strip() == run.output.strip()  # the command's own pid
    assert _job_dirs(subtree) == []
    assert sandbox.owned_cgroups() == set()
    assert sandbox.limits_description() == "bwrap + cgroup v2 pids,memory,cpu"


def test_sandboxed_run_on_a_v2_host_is_not_refused(work_root, monkeypatch, require_sandbox):
    base = work_root / f"v2-sandboxed-{os.getpid()}"
    root = _stand_in_root(base)
    monkeypatch.setenv("AGENT_CGROUP_ROOT", str(root))
    monkeypatch.delenv("AGENT_ALLOW_UNLIMITED", raising=False)
    scratch = base / "work"
    scratch.mkdir(mode=0o755)
    sandbox.give_to_sandbox_user(scratch)

    run = sandbox.run_sandboxed(
        spec=SandboxSpec(command=["sh", "-c", "echo inside"], work_dir=scratch, cwd=scratch)
    )

    assert run.exit_code == 0, run.output
    assert run.output.strip() == "inside"
    assert not any("limits" in note for note in run.notes), run.notes
    subtree = cgroups.delegated_subtree(root=root)
    assert subtree is not None and _job_dirs(subtree) == []


def test_stale_v2_groups_of_this_agent_are_reaped_and_live_ones_kept(tmp_path, monkeypatch):
    root = _stand_in_root(tmp_path)
    subtree = cgroups.delegated_subtree(root=root)
    assert subtree is not None
    monkeypatch.setenv("AGENT_CGROUP_ROOT", str(root))
    finished = subprocess.Popen(["true"])  # noqa: S607
    finished.wait()
    tag = sandbox.agent_tag()
    stale = subtree / f"ecoreg-{tag}-{finished.pid}-12345-{os.urandom(6).hex()}"
    live = subtree / f"{sandbox.cgroup_name_prefix()}{os.urandom(6).hex()}"
    for group in (stale, live, subtree / cgroups.AGENT_LEAF):
        group.mkdir()
        (group / "cgroup.procs").write_text("")

    removed = sandbox.reap_stale_cgroups()

    assert removed == [f"cgroup2/{stale.name}"]
    assert not stale.exists()
    assert live.is_dir() and (subtree / cgroups.AGENT_LEAF).is_dir()
    assert sandbox.owned_cgroups() == {f"cgroup2/{live.name}"}


def test_v2_subtree_without_delegated_controllers_is_refused():
    """The real cgroup2 mount of this hybrid host offers none of pids and memory."""
    unified = Path("/sys/fs/cgroup/unified")
    if not cgroups.is_v2(unified):
        pytest.fail("this test needs the hybrid host's /sys/fs/cgroup/unified")
    why = sandbox.cgroups_usable(unified)

    assert why is not None
    assert "lacks the pids,memory controller(s)" in why
    assert "Delegate=yes" in why


def test_v2_subtree_not_writable_by_the_agent_is_refused(work_root):
    # Under the work root: reachable (not writable) by the unprivileged uid below.
    base = work_root / f"cgroup-stand-in-{os.getpid()}"
    root = _stand_in_root(base)
    for path in [base, *base.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    # As an unprivileged uid, as an agent without a delegated subtree runs.
    why = _as_unprivileged_uid(lambda: sandbox.cgroups_usable(root))

    assert "is not writable" in why
    assert "Delegate=yes" in why


def _as_unprivileged_uid(check: Callable[[], str | None]) -> str:
    """`check()`'s answer, asked in a forked child that dropped to the sandbox's uid."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.setgroups([])
            os.setgid(sandbox.SANDBOX_GID)
            os.setuid(sandbox.SANDBOX_UID)
            os.write(write_end, str(check()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        text = answer.read().decode()
    os.waitpid(pid, 0)
    return text


def test_bad_agent_cpus_is_a_clear_message(monkeypatch):
    monkeypatch.setenv("AGENT_CPUS", "lots")
    with pytest.raises(ValueError, match="AGENT_CPUS must be a positive number of CPUs"):
        Limits.from_environment()


# --- failing closed, for real ----------------------------------------------------------------


@pytest.fixture
def no_cgroups(tmp_path, monkeypatch) -> Path:
    """The cgroup root moved to an empty directory: neither v1 nor v2 limits can be had."""
    empty = tmp_path / "no-cgroups"
    empty.mkdir()
    monkeypatch.setenv("AGENT_CGROUP_ROOT", str(empty))
    monkeypatch.delenv("AGENT_ALLOW_UNLIMITED", raising=False)
    return empty


def _tiny_job(repo: Path) -> Job:
    return Job(source=str(repo), torch_version="2.13.0", torch_variant="cpu", timeout_s=120)


def test_job_is_refused_without_limits(make_project, work_root, no_cgroups, require_sandbox):
    repo = make_project(name="refused", files=TINY_TESTS)

    result = run_job(job=_tiny_job(repo), work_root=work_root)

    assert result.state == CellState.ERRORED
    assert result.error_code == ErrorCode.SANDBOX_LIMITS_UNAVAILABLE
    assert result.error.startswith("sandbox limits unavailable: no writable cgroup")
    assert str(no_cgroups) in result.error
    assert "AGENT_ALLOW_UNLIMITED=1" in result.error
    assert result.commit is None  # refused before the checkout: nothing of the job ran
    assert sum(result.counts.values()) == 0 and result.tests_collected is None
    assert sandbox.limits_description().startswith("bwrap, jobs refused: no writable cgroup")


def test_project_build_is_refused_without_limits(
    make_project, work_root, no_cgroups, require_sandbox
):
    repo = make_project(name="refused-build", files=TINY_TESTS)
    venv = work_root / f"refused-build-venv-{os.getpid()}"

    with pytest.raises(SandboxLimitsUnavailable, match="sandbox limits unavailable"):
        environment.build_environment(
            job=_tiny_job(repo), project_dir=repo, venv=venv, extras=[], requirements=[]
        )


def test_allow_unlimited_runs_the_job_and_says_so(
    make_project, work_root, no_cgroups, monkeypatch, caplog, require_sandbox
):
    monkeypatch.setenv("AGENT_ALLOW_UNLIMITED", "1")
    repo = make_project(name="unlimited", files=TINY_TESTS)

    with caplog.at_level(logging.WARNING, logger="ci_runners.agent.sandbox"):
        result = run_job(job=_tiny_job(repo), work_root=work_root)

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.counts["passed"] == 1
    assert "[agent] limits NOT enforced (AGENT_ALLOW_UNLIMITED=1): no writable cgroup" in (
        result.log_tail
    )
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("WITHOUT per-job limits" in r.getMessage() for r in warnings)
    assert sandbox.limits_description().startswith("bwrap, NO limits (AGENT_ALLOW_UNLIMITED)")


def test_this_hosts_cgroup_v1_limits_are_described():
    assert sandbox.limits_description() == "bwrap + cgroup v1 pids,memory"


# --- the sandbox's /tmp has a size cap --------------------------------------------------------

FILL_TMP_TESTS = {
    "tests/test_fill_tmp.py": """
        def test_fill_tmp():
            chunk = b"x" * (1 << 20)
            with open("/tmp/fill", "wb") as handle:
                for _ in range(64):
                    handle.write(chunk)
                handle.flush()
    """,
}


def test_writing_past_the_tmp_cap_is_a_failed_test(
    make_project, work_root, monkeypatch, require_sandbox
):
    monkeypatch.setenv("AGENT_TMP_BYTES", str(16 * 1024**2))
    repo = make_project(name="fill-tmp", files=FILL_TMP_TESTS)

    result = run_job(job=_tiny_job(repo), work_root=work_root)

    assert result.state == CellState.FAILED, (result.error, result.log_tail)
    assert result.counts["failed"] == 1
    (failure,) = result.failures
    assert "No space left on device" in str(failure), failure


def test_bad_agent_tmp_bytes_is_a_clear_message(monkeypatch):
    monkeypatch.setenv("AGENT_TMP_BYTES", "1G")
    with pytest.raises(ValueError, match="AGENT_TMP_BYTES must be a positive number of bytes"):
        sandbox.tmp_bytes_from_environment()


def test_writing_past_the_job_disk_quota_is_errored_disk_quota_and_fills_nothing(
    make_project, work_root, require_sandbox, monkeypatch
):
    monkeypatch.setenv("AGENT_JOB_DISK_BYTES", str(32 * 1024**2))
    repo = make_project(
        name="diskhog",
        files={
            "tests/test_hog.py": """
                import time


                def test_fills_the_work_dir():
                    with open("hog.bin", "wb") as handle:
                        for _ in range(4096):  # 4 GiB, slowly enough to be caught on the way
                            handle.write(b"x" * 1024**2)
                            handle.flush()
                            time.sleep(0.01)
            """,
        },
    )

    result = run_job(
        job=Job(source=str(repo), torch_version="2.13.0", torch_variant="cpu", timeout_s=300),
        work_root=work_root,
    )

    assert result.state == CellState.ERRORED, (result.error, result.log_tail)
    assert result.error_code == ErrorCode.DISK_QUOTA
    assert "disk quota exceeded" in result.error
    assert result.counts == dict.fromkeys(result.counts, 0)
    assert not list(work_root.glob("job-*/work"))  # the job's files are gone with it
