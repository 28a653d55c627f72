"""Per-job virtual environments built with uv from a shared cache.

A *base environment* (python, torch build, pytest and the project's declared requirements) is
built once per cache key, byte-compiled, and kept under the agent's cache dir. Each job gets
its own venv as a hard-linked copy of the base plus the project itself, so a warm build takes
about a second. Hard links share inodes with the base and the uv cache: the sandbox must mount
the job's venv read-only.

Nothing here runs a project's code: dependencies come from binary wheels only (`--no-build`),
and the project itself is built into a wheel inside the sandbox (`build.py`) before its wheel
is installed here.
"""

from __future__ import annotations

import configparser
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ci_runners.agent import build as build_module
from ci_runners.agent.build import BuildError
from ci_runners.agent.contracts import Job
from ci_runners.agent.process import run_tool

if TYPE_CHECKING:
    import subprocess  # noqa: S404 - the type of a finished tool run

ENV_BUILD_TIMEOUT_S = 1800
BASE_LAYOUT_VERSION = "2"
WHEEL_CACHE_LAYOUT_VERSION = "1"
_SPLIT = re.compile(r"[\s,]+")


class EnvBuildError(Exception):
    """The environment could not be built; an infrastructure error."""


class NotInstallable(Exception):
    """The project cannot be installed with the torch under test: its own metadata excludes it,
    or its dependencies (or its build) cannot be had with it. A compatibility fact, not an
    infrastructure error; the message is a one-line reason."""


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
    # None: no build system (or not built); True: the project's wheel came from the cache.
    wheel_cache_hit: bool | None = None


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


def _pip_config_files() -> list[Path]:
    """pip's config files in its own order (later files override earlier ones)."""
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":")
    config_home = os.environ.get("XDG_CONFIG_HOME", "~/.config")
    files = [Path(d) / "pip" / "pip.conf" for d in xdg_dirs if d]
    files += [
        Path("/etc/pip.conf"),
        Path("~/.pip/pip.conf").expanduser(),
        Path(config_home).expanduser() / "pip" / "pip.conf",
        Path(sys.prefix) / "pip.conf",
    ]
    if os.environ.get("PIP_CONFIG_FILE"):
        files.append(Path(os.environ["PIP_CONFIG_FILE"]))
    return files


@functools.cache
def pip_configured_sources() -> WheelSources:
    """The sources pip is configured with on this host (uv ignores pip's config).

    Reads what `pip config list` shows (config files, then PIP_* variables) without paying
    for pip's import on every job.
    """
    options = ("find-links", "index-url", "extra-index-url")
    values: dict[str, str] = {}
    for path in _pip_config_files():
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in ("global", "install"):
            for option in options:
                if parser.has_option(section, option):
                    values[option] = parser.get(section, option)
    for option in options:
        variable = "PIP_" + option.upper().replace("-", "_")
        if os.environ.get(variable):
            values[option] = os.environ[variable]
    index = _split(values.get("index-url", ""))
    return WheelSources(
        find_links=_split(values.get("find-links", "")),
        index_url=index[0] if index else None,
        extra_index_urls=_split(values.get("extra-index-url", "")),
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


def _explain_missing_wheel(uv_output: str) -> str | None:
    package = build_module.package_without_wheel(uv_output)
    if package is None:
        return None
    return (
        f"env build failed: {package} has no wheel; source builds run only in the "
        "sandbox, so dependencies must come as wheels"
    )


def _run(
    command: list[str], *, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run_tool(
        command,
        env=env,
        timeout_s=ENV_BUILD_TIMEOUT_S,
        what="env build",
        error=EnvBuildError,
        check=check,
        explain=_explain_missing_wheel,
    )


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
    static_dependencies: bool = False


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
        static_dependencies=bool(project)
        and not dynamic & {"dependencies", "optional-dependencies"},
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


@functools.cache
def _uv_version(uv: str) -> str:
    return _run([uv, "--version"], env=dict(os.environ)).stdout.strip()


@functools.cache
def _resolve_interpreter(interpreter: str, uv: str) -> tuple[str, str]:
    env = dict(os.environ)
    if not Path(interpreter).is_absolute():
        interpreter = _run([uv, "python", "find", interpreter], env=env).stdout.strip()
    version, _ = _python_version_of(interpreter, env)
    return interpreter, version


def _base_prefix_of(venv: Path) -> Path:
    """From pyvenv.cfg's `home` (the interpreter's bin dir), without starting python."""
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            return Path(value.strip()).parent
    raise EnvBuildError(f"env build failed: no home in {venv / 'pyvenv.cfg'}")


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
            [uv, "pip", "install", "--python", str(python), "--link-mode", "hardlink", "--no-build"]
            + sources.uv_args()
            + requirements,
            env=env,
        )
        # Compile once here: the job's venv is read-only, and importing torch without its
        # bytecode costs 20 s or more per test run.
        # Best effort: some wheels ship files for newer pythons that do not compile.
        _run(
            [str(python), "-m", "compileall", "-q", "-j", "0", str(staging / "lib")],
            env=env,
            check=False,
        )
        staging.rename(base)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass(frozen=True, kw_only=True)
class Toolchain:
    """What every step of one environment build uses: uv (its path, version and environment),
    the resolved interpreter and the wheel sources."""

    uv: str
    uv_version: str
    env: dict[str, str]
    interpreter: str
    interpreter_version: str
    sources: WheelSources


def _toolchain(*, job: Job, cache: Path) -> Toolchain:
    env = _uv_env(cache)
    uv = uv_executable()
    sources = wheel_sources(job=job)
    interpreter = _interpreter(job.python_version)
    uv_version = _uv_version(uv)
    interpreter, interpreter_version = _resolve_interpreter(interpreter, uv)
    return Toolchain(
        uv=uv,
        uv_version=uv_version,
        env=env,
        interpreter=interpreter,
        interpreter_version=interpreter_version,
        sources=sources,
    )


def _base_requirements(*, job: Job, metadata: ProjectMetadata, extras: list[str]) -> list[str]:
    """torch, pytest, the project's declared requirements and the job's extra ones."""
    requirements = [job.torch_requirement, "pytest", *metadata.dependencies]
    for extra in extras:
        requirements += metadata.optional.get(extra, [])
    requirements += list(job.test_config.extra_requirements)
    if metadata.name:
        # An extra may name the project itself ("proj[other]"): that comes with the project.
        own = _normalize(metadata.name)
        requirements = [r for r in requirements if _normalize(_requirement_name(r)) != own]
    return requirements


def _link_base(
    *, job: Job, tools: Toolchain, requirements: list[str], cache: Path, venv: Path
) -> bool:
    """Hard-link `venv` from the base environment of its cache key, built first if missing.

    Returns whether the base was there already.
    """
    key_material = json.dumps(
        {
            "layout": BASE_LAYOUT_VERSION,
            "python": [tools.interpreter, tools.interpreter_version],
            "torch": job.torch_requirement,
            "sources": tools.sources.uv_args(),
            "requirements": sorted(requirements),
            "uv": tools.uv_version,
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
                interpreter=tools.interpreter,
                requirements=requirements,
                sources=tools.sources,
                env=tools.env,
            )
            (base / "ecoreg-base-key.json").write_text(key_material)
        _run(["cp", "-al", str(base), str(venv)], env=tools.env)
    return cache_hit


def _wheel_key(*, commit: str | None, tools: Toolchain) -> str | None:
    """The built wheel's cache key: only a commit fixes the whole source tree."""
    if not build_module.is_commit(commit):
        return None
    wheel_material = json.dumps(
        {
            "layout": WHEEL_CACHE_LAYOUT_VERSION,
            "commit": commit,
            "python": [tools.interpreter, tools.interpreter_version],
            "sources": tools.sources.uv_args(),
            "uv": tools.uv_version,
        },
        sort_keys=True,
    )
    return hashlib.sha256(wheel_material.encode()).hexdigest()[:32]


@dataclass(frozen=True, kw_only=True)
class ProjectBuild:
    """How the project under test is built and installed into a job's venv."""

    project_dir: Path
    venv: Path
    extras: list[str]
    extra_requirements: list[str]
    static_dependencies: bool
    wheel_key: str | None
    sandbox: bool
    on_output: Callable[[bytes], None] | None
    should_stop: Callable[[], bool] | None


def _project_wheel(*, build: ProjectBuild, tools: Toolchain, build_root: Path) -> tuple[Path, bool]:
    """The project's wheel from the cache, else built in the sandbox (and cached); and whether
    it came from the cache."""
    wheels = cache_dir() / "wheels"
    if build.wheel_key:
        cached = build_module.cached_wheel(cache_root=wheels, key=build.wheel_key)
        if cached is not None:
            return cached, True
    try:
        wheel = build_module.build_wheel(
            project_dir=build.project_dir,
            build_root=build_root,
            interpreter=tools.interpreter,
            uv=tools.uv,
            index_args=tools.sources.uv_args(),
            env_cache_root=cache_dir() / "build-envs",
            tool_env=tools.env,
            key_extra=tools.uv_version,
            sandbox=build.sandbox,
            on_output=build.on_output,
            should_stop=build.should_stop,
        )
        if build.wheel_key:
            wheel = build_module.store_wheel(cache_root=wheels, key=build.wheel_key, wheel=wheel)
        build_module.wheel_name(wheel)  # a bad name is the build's fault: an env build error
    except BuildError as exc:
        raise EnvBuildError(f"env build failed: {exc}") from exc
    return wheel, False


def _install_wheel(*, build: ProjectBuild, tools: Toolchain, wheel: Path) -> None:
    """Install the project's wheel (with its extras) and the job's extra requirements."""
    suffix = f"[{','.join(build.extras)}]" if build.extras else ""
    project = f"{build_module.wheel_name(wheel)}{suffix} @ {wheel.resolve().as_uri()}"
    install = [tools.uv, "pip", "install", "--python", str(build.venv / "bin" / "python")]
    install += ["--link-mode", "hardlink", "--no-build", *tools.sources.uv_args()]
    wanted = [project, *build.extra_requirements]
    try:
        # Fast path: the base already holds every declared requirement, so neither the
        # indexes nor a resolution are needed.
        fast = ["--offline", "--no-deps"] if build.static_dependencies else ["--offline"]
        _run(install + fast + wanted, env=tools.env)
    except EnvBuildError:
        _run(install + wanted, env=tools.env)


def _install_project(*, build: ProjectBuild, tools: Toolchain) -> bool:
    """Build the project's wheel in the sandbox (or take it from the cache) and install it.

    Returns whether the wheel came from the cache.
    """
    build_root = build.venv.with_name(f"{build.venv.name}.build")
    try:
        wheel, from_cache = _project_wheel(build=build, tools=tools, build_root=build_root)
        _install_wheel(build=build, tools=tools, wheel=wheel)
    finally:
        shutil.rmtree(build_root, ignore_errors=True)
    return from_cache


def build_environment(
    *,
    job: Job,
    project_dir: Path,
    venv: Path,
    commit: str | None = None,
    sandbox: bool = True,
    on_output: Callable[[bytes], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BuiltEnvironment:
    """Build `venv` for `job` with the project at `project_dir` installed (not editable).

    `commit`: the git commit `project_dir` is a clean checkout of, so its built wheel may be
    cached; `sandbox=False` builds the project bare (local debugging only). `on_output` and
    `should_stop` are passed to the sandboxed project build (see `sandbox.run_sandboxed`);
    a stop there raises `build.BuildStopped`.
    """
    started = time.monotonic()
    cache = cache_dir()
    (cache / "bases").mkdir(parents=True, exist_ok=True)
    tools = _toolchain(job=job, cache=cache)
    metadata = read_project_metadata(project_dir=project_dir)
    extras = _extras(job=job, metadata=metadata)
    requirements = _base_requirements(job=job, metadata=metadata, extras=extras)
    cache_hit = _link_base(job=job, tools=tools, requirements=requirements, cache=cache, venv=venv)
    wheel_cache_hit = None
    if build_module.has_build_system(project_dir):
        project = ProjectBuild(
            project_dir=project_dir,
            venv=venv,
            extras=extras,
            extra_requirements=list(job.test_config.extra_requirements),
            static_dependencies=metadata.static_dependencies,
            wheel_key=_wheel_key(commit=commit, tools=tools),
            sandbox=sandbox,
            on_output=on_output,
            should_stop=should_stop,
        )
        wheel_cache_hit = _install_project(build=project, tools=tools)
    # else: no build system; the tests import the project from the checkout.
    return BuiltEnvironment(
        venv=venv,
        python=venv / "bin" / "python",
        base_prefix=_base_prefix_of(venv),
        env_s=round(time.monotonic() - started, 3),
        cache_hit=cache_hit,
        wheel_cache_hit=wheel_cache_hit,
    )
