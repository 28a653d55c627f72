"""Per-job virtual environments built with uv from a shared cache.

A *base environment* (python, torch build, pytest and the project's declared requirements) is
built once per cache key, byte-compiled, and kept under the agent's cache dir. Each job gets
its own venv as a hard-linked copy of the base plus the project itself, so a warm build takes
about a second. Hard links share inodes with the base and the uv cache: the sandbox must mount
the job's venv read-only.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess  # noqa: S404 - uv and pip are run with argument lists, never a shell
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ci_runners.agent.contracts import Job

ENV_BUILD_TIMEOUT_S = 1800
BASE_LAYOUT_VERSION = "1"
_SPLIT = re.compile(r"[\s,]+")


class EnvBuildError(Exception):
    """The environment could not be built; an infrastructure error."""


@dataclass(frozen=True, kw_only=True)
class WheelSources:
    find_links: list[str] = field(default_factory=list)
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)

    def uv_args(self) -> list[str]:
        args: list[str] = []
        for link in self.find_links:
            args += ["--find-links", link]
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        if args:
            # The torch build must come from the configured sources, not PyPI's newest.
            args += ["--index-strategy", "unsafe-best-match"]
        return args


@dataclass(frozen=True, kw_only=True)
class BuiltEnvironment:
    venv: Path
    python: Path
    base_prefix: Path
    env_s: float
    cache_hit: bool


def cache_dir() -> Path:
    configured = os.environ.get("AGENT_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path("~/.cache/ecosystem-registry-agent").expanduser()


def uv_executable() -> str:
    candidate = Path(sys.executable).with_name("uv")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("uv")
    if not found:
        raise EnvBuildError("env build failed: uv not found")
    return found


def _split(value: str) -> list[str]:
    return [part for part in _SPLIT.split(value.strip()) if part]


def pip_configured_sources() -> WheelSources:
    """The sources pip is configured with on this host (uv ignores pip's config)."""
    try:
        completed = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return WheelSources()
    values: dict[str, list[str]] = {"find-links": [], "index-url": [], "extra-index-url": []}
    for line in completed.stdout.splitlines():
        key, _, raw = line.partition("=")
        option = key.rpartition(".")[2]
        if option in values:
            for item in _split(raw.strip().strip("'\"")):
                if item not in values[option]:
                    values[option].append(item)
    return WheelSources(
        find_links=values["find-links"],
        index_url=values["index-url"][0] if values["index-url"] else None,
        extra_index_urls=values["extra-index-url"],
    )


def wheel_sources(*, job: Job) -> WheelSources:
    """Job's own sources, else AGENT_FIND_LINKS / AGENT_INDEX_URLS, else pip's config."""
    if job.find_links or job.index_urls:
        return WheelSources(find_links=list(job.find_links), extra_index_urls=list(job.index_urls))
    links = _split(os.environ.get("AGENT_FIND_LINKS", ""))
    indexes = _split(os.environ.get("AGENT_INDEX_URLS", ""))
    if links or indexes:
        return WheelSources(find_links=links, extra_index_urls=indexes)
    return pip_configured_sources()


def _run(command: list[str], *, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        completed = subprocess.run(  # noqa: S603
            command,
            capture_output=True,
            text=True,
            env=env,
            timeout=ENV_BUILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise EnvBuildError(f"env build failed: timed out after {exc.timeout} s") from exc
    except OSError as exc:
        raise EnvBuildError(f"env build failed: {exc}") from exc
    if completed.returncode != 0:
        lines = (completed.stderr or completed.stdout).strip().splitlines()[-8:]
        raise EnvBuildError("env build failed: " + "\n".join(lines))
    return completed


def _uv_env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    env.update({"UV_CACHE_DIR": str(cache / "uv"), "UV_NO_PROGRESS": "1"})
    return env


def _interpreter(python_version: str) -> str:
    """Prefer the system interpreter: it lives under /usr, which the sandbox binds anyway."""
    if not re.fullmatch(r"\d+\.\d+", python_version):
        raise EnvBuildError(f"env build failed: bad python version {python_version!r}")
    system = Path(f"/usr/bin/python{python_version}")
    return str(system) if system.exists() else python_version


@dataclass(frozen=True, kw_only=True)
class ProjectMetadata:
    name: str | None
    dependencies: list[str]
    optional: dict[str, list[str]]


def read_project_metadata(*, project_dir: Path) -> ProjectMetadata:
    pyproject = project_dir / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return ProjectMetadata(name=None, dependencies=[], optional={})
    project = data.get("project") or {}
    dynamic = set(project.get("dynamic") or [])
    dependencies = [] if "dependencies" in dynamic else list(project.get("dependencies") or [])
    optional = project.get("optional-dependencies") or {}
    return ProjectMetadata(
        name=project.get("name"),
        dependencies=[str(item) for item in dependencies],
        optional={str(k): [str(i) for i in v] for k, v in optional.items()},
    )


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return match.group(1) if match else requirement


def _extras(*, job: Job, metadata: ProjectMetadata) -> list[str]:
    if job.test_config.extras is not None:
        return list(job.test_config.extras)
    return ["test"] if "test" in metadata.optional else []


def _python_version_of(python: str, env: dict[str, str]) -> tuple[str, str]:
    completed = _run(
        [python, "-c", "import sys; print(sys.version.split()[0]); print(sys.base_prefix)"],
        env=env,
    )
    version, base_prefix = completed.stdout.split()[:2]
    return version, base_prefix


def _build_base(
    *, base: Path, interpreter: str, requirements: list[str], sources: WheelSources, env: dict
) -> None:
    uv = uv_executable()
    staging = base.with_name(base.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _run([uv, "venv", "-q", "--relocatable", "-p", interpreter, str(staging)], env=env)
        python = staging / "bin" / "python"
        _run(
            [uv, "pip", "install", "--python", str(python), "--link-mode", "hardlink"]
            + sources.uv_args()
            + requirements,
            env=env,
        )
        # Compile once here: the job's venv is read-only, and importing torch without its
        # bytecode costs 20 s or more per test run.
        _run([str(python), "-m", "compileall", "-q", "-j", "0", str(staging / "lib")], env=env)
        staging.rename(base)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_environment(*, job: Job, project_dir: Path, venv: Path) -> BuiltEnvironment:
    """Build `venv` for `job` with the project at `project_dir` installed (not editable)."""
    started = time.monotonic()
    cache = cache_dir()
    (cache / "bases").mkdir(parents=True, exist_ok=True)
    env = _uv_env(cache)
    uv = uv_executable()
    sources = wheel_sources(job=job)
    metadata = read_project_metadata(project_dir=project_dir)
    extras = _extras(job=job, metadata=metadata)
    interpreter = _interpreter(job.python_version)
    requirements = [job.torch_requirement, "pytest", *metadata.dependencies]
    for extra in extras:
        requirements += metadata.optional.get(extra, [])
    requirements += list(job.test_config.extra_requirements)
    if metadata.name:
        # An extra may name the project itself ("proj[other]"): that comes with the project.
        own = _normalize(metadata.name)
        requirements = [r for r in requirements if _normalize(_requirement_name(r)) != own]

    uv_version = _run([uv, "--version"], env=env).stdout.strip()
    if not Path(interpreter).is_absolute():
        interpreter = _run([uv, "python", "find", interpreter], env=env).stdout.strip()
    interpreter_version, _ = _python_version_of(interpreter, env)
    key_material = json.dumps(
        {
            "layout": BASE_LAYOUT_VERSION,
            "python": [interpreter, interpreter_version],
            "torch": job.torch_requirement,
            "sources": sources.uv_args(),
            "requirements": sorted(requirements),
            "uv": uv_version,
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_material.encode()).hexdigest()[:24]
    base = cache / "bases" / key
    with open(cache / "bases" / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache_hit = base.exists()
        if not cache_hit:
            _build_base(
                base=base,
                interpreter=interpreter,
                requirements=requirements,
                sources=sources,
                env=env,
            )
            (base / "ecoreg-base-key.json").write_text(key_material)
        _run(["cp", "-al", str(base), str(venv)], env=env)

    python = venv / "bin" / "python"
    project = str(project_dir)
    if metadata.name:
        suffix = f"[{','.join(extras)}]" if extras else ""
        project = f"{metadata.name}{suffix} @ {project_dir.resolve().as_uri()}"
    _run(
        [uv, "pip", "install", "--python", str(python), "--link-mode", "hardlink"]
        + sources.uv_args()
        + [project, *job.test_config.extra_requirements],
        env=env,
    )
    _, base_prefix = _python_version_of(str(python), env)
    return BuiltEnvironment(
        venv=venv,
        python=python,
        base_prefix=Path(base_prefix),
        env_s=round(time.monotonic() - started, 3),
        cache_hit=cache_hit,
    )
