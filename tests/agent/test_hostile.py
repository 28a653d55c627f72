"""Hostile test suites: each must be contained by the sandbox, and the agent must carry on."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ci_runners.agent import environment, sandbox
from ci_runners.agent.contracts import CellState, Job, TestConfig
from ci_runners.agent.runner import run_job

pytestmark = pytest.mark.agent

MARKER = f"ecoreg-hostile-{uuid.uuid4().hex[:10]}"

HOSTILE_TESTS = {
    "tests/test_secrets.py": """
        import os


        def test_agent_environment_is_invisible():
            for name in ("AGENT_SECRET_TOKEN", "CELERY_BROKER_URL", "AGENT_CACHE_DIR"):
                assert name not in os.environ, name
            with open("/proc/self/environ", "rb") as handle:
                assert b"s3cr3t" not in handle.read()
            allowed = {"PATH", "HOME", "LANG", "VIRTUAL_ENV", "PYTHONPATH", "ECOREG_REPORT_PATH",
                       "SECRET_PATHS", "PYTEST_CURRENT_TEST", "PYTEST_VERSION", "PWD",
                       "ECOREG_EXPECTED_TORCH", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"}
            assert set(os.environ) <= allowed, set(os.environ) - allowed
            assert os.getuid() != 0 and os.geteuid() != 0
    """,
    "tests/test_host_files.py": """
        import os

        import pytest


        @pytest.mark.parametrize("path", os.environ["SECRET_PATHS"].split(":"))
        def test_host_file_is_unreadable(path):
            with pytest.raises(OSError):
                open(path).read()


        def test_no_host_tree():
            assert not os.path.exists("/root")
            assert not os.path.exists("/work/main")
    """,
    "tests/test_network.py": """
        import socket

        import pytest


        @pytest.mark.parametrize("port", [6379, 5432])
        def test_cannot_connect(port):
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=3)
    """,
    "tests/test_writes.py": """
        import os
        import sys
        import pathlib

        import pytest

        import pluggy


        def test_cannot_write_into_venv_through_a_hardlink():
            with pytest.raises(OSError):
                with open(pluggy.__file__, "a") as handle:
                    handle.write("# pwned")


        def test_cannot_create_files_in_venv_or_usr():
            for directory in (sys.prefix, "/usr", "/usr/lib"):
                with pytest.raises(OSError):
                    pathlib.Path(directory, "pwned").write_text("x")


        def test_uv_cache_is_out_of_reach():
            cache = os.environ["SECRET_PATHS"]
            assert not os.path.exists(cache)
    """,
    "tests/test_forkbomb.py": """
        import subprocess
        import time


        def test_fork_bomb():
            subprocess.Popen(["sh", "-c", "b() { b | b & }; b"])
            time.sleep(8)
            assert False, "the bomb went off"
    """,
    "tests/test_flood.py": """
        import os


        def test_flood():
            chunk = b"x" * (1 << 20)
            for _ in range(200):
                os.write(1, chunk)
    """,
    "tests/test_hang.py": f"""
        import signal
        import subprocess
        import time


        def test_hang():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            # a grandchild that also ignores SIGTERM, tagged so the host can look for it
            subprocess.Popen(["sh", "-c", "trap '' TERM; exec -a {MARKER} sleep 100000"])
            while True:
                time.sleep(1)
    """,
}


@pytest.fixture(scope="module")
def hostile_project(make_project) -> Path:
    return make_project(name="hostile", files=HOSTILE_TESTS)


def _run(
    project: Path,
    work_root: Path,
    test_file: str,
    *,
    timeout_s: float = 120,
    pytest_args: list[str] | None = None,
    env: dict[str, str] | None = None,
):
    job = Job(
        source=str(project),
        torch_version="2.13.0",
        torch_variant="cpu",
        timeout_s=timeout_s,
        test_config=TestConfig(
            test_paths=[f"tests/{test_file}"],
            pytest_args=pytest_args or [],
            env=env or {"SECRET_PATHS": "unused"},
        ),
    )
    return run_job(job=job, work_root=work_root)


def _our_cgroups() -> set[str]:
    """The cgroups of the jobs this test process ran (other agents may run on this host)."""
    return sandbox.owned_cgroups()


def test_secrets_in_agent_environment_are_not_visible(
    hostile_project, work_root, require_sandbox, monkeypatch
):
    monkeypatch.setenv("AGENT_SECRET_TOKEN", "s3cr3t-token")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://:s3cr3t@127.0.0.1:6379/0")

    result = _run(hostile_project, work_root, "test_secrets.py")

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.counts["passed"] == 1


def test_host_files_outside_the_work_dir_are_unreadable(
    hostile_project, work_root, require_sandbox, tmp_path
):
    secrets = [
        Path(f"/root/{MARKER}-secret.txt"),
        tmp_path / "secret.txt",
        work_root / "secret.txt",
    ]
    for path in secrets:
        path.write_text("s3cr3t")
        path.chmod(0o644)
    try:
        result = _run(
            hostile_project,
            work_root,
            "test_host_files.py",
            env={"SECRET_PATHS": ":".join(map(str, secrets))},
        )
    finally:
        for path in secrets:
            path.unlink()

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.counts["passed"] == 4


def test_no_network_to_redis_or_postgres(hostile_project, work_root, require_sandbox):
    # The services are up on the host (so the failure inside is the sandbox's doing).
    for port in (6379, 5432):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=3).close()
        except OSError:
            pytest.fail(f"nothing listens on 127.0.0.1:{port} on the host")

    result = _run(hostile_project, work_root, "test_network.py")

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.counts["passed"] == 2


def test_venv_uv_cache_and_usr_are_not_writable(hostile_project, work_root, require_sandbox):
    cache = environment.cache_dir()
    linked = sorted(cache.glob("bases/*/lib/python3.11/site-packages/pluggy/__init__.py"))
    assert linked, "no base environment with pluggy in the cache"
    before = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in linked}

    result = _run(hostile_project, work_root, "test_writes.py", env={"SECRET_PATHS": str(cache)})

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.counts["passed"] == 3
    after = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in linked}
    assert after == before


def test_fork_bomb_is_contained(hostile_project, work_root, require_sandbox):
    started = time.monotonic()

    result = _run(hostile_project, work_root, "test_forkbomb.py", timeout_s=60)

    assert result.state in (CellState.FAILED, CellState.TIMED_OUT), (result.error, result.log_tail)
    assert "process limit reached (pids.max=256)" in result.error
    assert time.monotonic() - started < 60
    assert _our_cgroups() == set()


def test_output_flood_is_capped(hostile_project, work_root, require_sandbox):
    result = _run(hostile_project, work_root, "test_flood.py", pytest_args=["-s"])

    assert result.state == CellState.PASSED, (result.error, result.log_tail[-2000:])
    assert "[agent] output capped:" in result.log_tail
    job_logs = sorted(work_root.glob("job-*/log.txt"), key=lambda p: p.stat().st_mtime)
    log = job_logs[-1].read_text()
    assert len(log) < 200 * 1024
    cut = int(log.split("[... output cut: ")[1].split(" bytes")[0])
    assert cut > 200 * (1 << 20) - 200 * 1024
    assert "1 passed" in result.log_tail


def test_hang_ignoring_sigterm_is_killed_at_the_wall_limit(
    hostile_project, work_root, require_sandbox
):
    before = _our_cgroups()
    started = time.monotonic()

    result = _run(hostile_project, work_root, "test_hang.py", timeout_s=8)

    elapsed = time.monotonic() - started
    assert result.state == CellState.TIMED_OUT
    assert result.exit_code is None
    assert "wall time limit of 8 s exceeded" in result.error
    assert result.timings["tests_s"] < 8 + 10
    assert elapsed < 60
    leftovers = subprocess.run(["pgrep", "-f", MARKER], capture_output=True, text=True)
    assert leftovers.stdout == "", f"processes left behind: {leftovers.stdout}"
    assert _our_cgroups() == before == set()


def test_agent_still_runs_a_normal_job_afterwards(make_project, work_root, require_sandbox):
    repo = make_project(
        name="afterwards",
        files={
            "tests/test_ok.py": "import torch\n\n\ndef test_ok():\n    assert torch.ones(2).sum()\n"
        },
    )

    result = run_job(
        job=Job(source=str(repo), torch_version="2.13.0", torch_variant="cpu", timeout_s=120),
        work_root=work_root,
    )

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.counts["passed"] == 1
    assert os.listdir(work_root)
