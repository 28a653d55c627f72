"""Fixtures for the runner agent's tests: real git, uv, bwrap, cgroups and torch; no Django."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from ci_runners.agent import sandbox
from tests.standin_wheels import write_wheel

# Shared across test sessions, so only the very first run builds torch environments cold.
TEST_CACHE_DIR = Path("/tmp/ecoreg-agent-tests-cache")  # noqa: S108


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "agent: runner agent tests (real uv, bwrap, torch)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/agent/" in str(item.fspath):
            item.add_marker(pytest.mark.agent)


@pytest.fixture(scope="session", autouse=True)
def agent_cache_dir() -> Path:
    previous = os.environ.get("AGENT_CACHE_DIR")
    os.environ["AGENT_CACHE_DIR"] = str(TEST_CACHE_DIR)
    yield TEST_CACHE_DIR
    if previous is None:
        os.environ.pop("AGENT_CACHE_DIR", None)
    else:
        os.environ["AGENT_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def work_root() -> Path:
    # Not under pytest's tmp dir: that is 0700 and the sandbox's uid could not reach it.
    root = Path(f"/tmp/ecoreg-agent-tests-work-{uuid.uuid4().hex[:8]}")  # noqa: S108
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def require_sandbox() -> None:
    """bwrap and per-job cgroups must work here: fail loudly, never skip."""
    why = sandbox.cgroups_usable()
    if why:
        pytest.fail(f"cgroups needed by the sandbox tests are unavailable: {why}")
    try:
        sandbox.check_sandbox()
    except sandbox.SandboxUnavailable as exc:
        pytest.fail(str(exc))


def git_commit(repo: Path, message: str = "commit") -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo, check=True, env=env)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


ProjectFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def make_project(tmp_path_factory: pytest.TempPathFactory) -> ProjectFactory:
    """A small real project (hatchling, src layout) in its own git repo."""

    def make(*, name: str, files: dict[str, str], package: str = "") -> Path:
        repo = tmp_path_factory.mktemp(name)
        module = name.replace("-", "_")
        (repo / "pyproject.toml").write_text(
            textwrap.dedent(
                f"""
                [build-system]
                requires = ["hatchling"]
                build-backend = "hatchling.build"

                [project]
                name = "{name}"
                version = "0.1.0"

                [project.optional-dependencies]
                test = ["pytest"]

                [tool.hatch.build.targets.wheel]
                packages = ["src/{module}"]
                """
            )
        )
        (repo / "src" / module).mkdir(parents=True)
        (repo / "src" / module / "__init__.py").write_text(textwrap.dedent(package))
        for relative, text in files.items():
            path = repo / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        git_commit(repo, "initial")
        return repo

    return make


def make_wheel(
    directory: Path,
    *,
    name: str,
    version: str,
    requires: tuple[str, ...] = (),
    extras: tuple[str, ...] = (),
    requires_python: str | None = None,
) -> Path:
    """A tiny pure-Python wheel (`<name>/__init__.py` with `VERSION`), written with zipfile:
    a package for a local find-links dir, with the dependencies it declares."""
    module = name.replace("-", "_")
    return write_wheel(
        directory,
        name=name,
        version=version,
        files={f"{module}/__init__.py": f"VERSION = {version!r}\n"},
        requires=requires,
        extras=extras,
        requires_python=requires_python,
    )


def run_agent_cli(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m ci_runners.agent ARGS` as an operator runs it: output captured, never raises."""
    return subprocess.run(
        [sys.executable, "-m", "ci_runners.agent", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )
