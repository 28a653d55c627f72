"""Benchmark of the runner agent's environments: pip baseline vs uv cold (torch base built and
compiled) vs a new lock on a warm base vs uv warm (the lock's environment cached).

Run from the repo root: `.venv/bin/python bench/agent_env.py`. Prints one JSON object.
Everything is measured in this run, on this machine, for one small torch project.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ci_runners.agent import sandbox  # noqa: E402
from ci_runners.agent.contracts import Job, TestConfig  # noqa: E402
from ci_runners.agent.environment import build_environment  # noqa: E402
from ci_runners.agent.runner import run_job  # noqa: E402

TORCH_VERSION = "2.13.0"
TORCH_VARIANT = "cpu"


def _make_project(root: Path) -> Path:
    repo = root / "benchproj"
    (repo / "src" / "benchproj").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "benchproj"
            version = "0.1.0"
            """
        )
    )
    (repo / "src" / "benchproj" / "__init__.py").write_text("import torch\n")
    (repo / "tests" / "test_a.py").write_text(
        "import torch\n\n\ndef test_a():\n    assert torch.ones(1).item() == 1\n"
    )
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@example.org",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@example.org",
    }
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "b"], cwd=repo, check=True, env=env)
    return repo


def _pip_baseline(root: Path) -> float:
    """`python -m venv` + `pip install torch==2.13.0 pytest` with pip's own config."""
    venv = root / "pip-venv"
    started = time.monotonic()
    subprocess.run(["/usr/bin/python3.11", "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            f"torch=={TORCH_VERSION}",
            "pytest",
        ],
        check=True,
    )
    return time.monotonic() - started


def _uv_build(
    job: Job, project: Path, venv: Path, commit: str | None, requirements: list[str] | None = None
) -> tuple[float, bool]:
    """As the runner does: the project is a checkout of `commit` (its built wheel is cached)."""
    built = build_environment(
        job=job,
        project_dir=project,
        venv=venv,
        commit=commit,
        extras=[],
        requirements=requirements or [],
    )
    return built.env_s, built.cache_hit


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="ecoreg-agent-bench-"))
    root.chmod(0o755)
    os.environ["AGENT_CACHE_DIR"] = str(root / "cache")  # empty: a cold first build
    try:
        project = _make_project(root)
        job = Job(
            source=str(project),
            torch_version=TORCH_VERSION,
            torch_variant=TORCH_VARIANT,
            test_config=TestConfig(copy_tests="tests"),
            timeout_s=300,
        )
        pip_env_s = _pip_baseline(root)
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project, check=True, capture_output=True, text=True
        ).stdout.strip()
        uv_cold_s, cold_hit = _uv_build(job, project, root / "venv-cold", commit)
        uv_warm_s, warm_hit = _uv_build(job, project, root / "venv-warm", commit)
        # A commit not seen before: warm base, but the project's wheel built in the sandbox.
        uv_warm_build_s, _ = _uv_build(job, project, root / "venv-warm-build", None)
        # A new lock (one more dependency) on the warm torch base: no torch compile.
        uv_new_lock_s, new_lock_hit = _uv_build(job, project, root / "venv-lock", commit, ["six"])
        assert not cold_hit and warm_hit and not new_lock_hit  # noqa: S101 - measures what it says

        spawn_dir = root / "spawn"
        spawn_dir.mkdir(mode=0o755)
        sandbox.give_to_sandbox_user(spawn_dir)
        sandbox.check_sandbox()  # the one-time probe is not part of a spawn
        spawns = []
        for _ in range(5):
            run = sandbox.run_sandboxed(
                spec=sandbox.SandboxSpec(
                    command=["true"], work_dir=spawn_dir, cwd=spawn_dir, timeout_s=30
                )
            )
            spawns.append(run.duration_s)

        work_root = root / "jobs"
        result = run_job(job=job, work_root=work_root)
        assert result.state == "passed", result.error  # noqa: S101
        timings = result.timings
        print(
            json.dumps(
                {
                    "pip_env_s": round(pip_env_s, 2),
                    "uv_env_cold_s": round(uv_cold_s, 2),
                    "uv_env_warm_s": round(uv_warm_s, 2),
                    "uv_env_warm_sandboxed_build_s": round(uv_warm_build_s, 2),
                    "uv_env_new_lock_on_warm_base_s": round(uv_new_lock_s, 2),
                    "sandbox_spawn_s": round(sorted(spawns)[len(spawns) // 2], 3),
                    "overhead_warm_s": round(timings["total_s"] - timings["tests_s"], 2),
                    "speedup_vs_pip": round(pip_env_s / uv_warm_s, 1),
                }
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
