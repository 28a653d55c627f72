"""Per-job virtual environments built with uv, in cached layers keyed by what resolved.

1. The *torch base*: the exact torch build under test and pytest, installed and byte-compiled
   once per (python, torch build, pytest release): compiling torch costs half a minute.
2. The job's dependencies are resolved afresh every job (`lock.py`: wheels only, against the
   job's wheel sources) with torch constrained to exactly the base's build and its companions
   to their paired releases (`companions.py`), giving a lock of exact versions. So a new
   release of an unpinned dependency is picked up by the next job, and recorded.
3. The *environment of that lock*, cached under its hash: a hard-linked copy of the torch base
   synced to exactly the lock, only what is new byte-compiled.
4. The job's venv: a hard-linked copy of that environment, and the project's wheel installed
   `--no-deps` on top (its dependencies are in the lock). A warm job takes about a second.

Hard links share inodes with the cached layers and the uv cache: the sandbox must mount the
job's venv read-only. What is installed is read back from the venv and reported as its lock.

The torch that runs is the torch requested: nothing may replace or add one. When the project
cannot be had with it (its metadata excludes it, or no set of dependencies fits it) the build
raises `NotInstallable`, a compatibility fact; anything else is an `EnvBuildError`. When only
its declared torch range excludes it (`TorchExcluded`), the caller may build again with that
range overridden (`beyond_declared_range`: the resolver takes exactly the torch under test
despite the project's requirement) to learn whether the range could widen; such an environment
is cached apart from every normal one.

Nothing here runs a project's code: dependencies come from binary wheels only (`--no-build`),
and the project itself is built into a wheel inside the sandbox (`build.py`) before its wheel
is installed here.
"""

from __future__ import annotations

import configparser
import csv
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from packaging.markers import default_environment
from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from ci_runners.agent import build as build_module
from ci_runners.agent import cache as agent_cache
from ci_runners.agent import lock as lock_module
from ci_runners.agent.build import BuildError, BuildStopped
from ci_runners.agent.companions import (
    COMPANIONS,
    companion_constraints,
    mismatched_companion,
    no_matching_build,
)
from ci_runners.agent.contracts import Job
from ci_runners.agent.process import run_tool

if TYPE_CHECKING:
    import subprocess  # noqa: S404 - the type of a finished tool run

ENV_BUILD_TIMEOUT_S = 1800
BASE_LAYOUT_VERSION = "3"
LOCK_ENV_LAYOUT_VERSION = "1"
WHEEL_CACHE_LAYOUT_VERSION = "1"
_SPLIT = re.compile(r"[\s,]+")


class EnvBuildError(Exception):
    """The environment could not be built; an infrastructure error."""


class NotInstallable(Exception):
    """The project cannot be installed with the torch under test: its own metadata excludes it,
    or its dependencies (or its build) cannot be had with it. A compatibility fact, not an
    infrastructure error; the message is a one-line reason. `declared`: what the project's
    metadata declares (`declared_support`), empty when it was not read (no wheel yet)."""

    declared: dict[str, str]

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.declared = {}


class TorchExcluded(NotInstallable):
    """The project's own Requires-Dist torch range excludes the torch under test (not its
    Requires-Python, not a dependency conflict): the one exclusion that building with the
    range overridden (`build_environment(beyond_declared_range=True)`) can test beyond."""


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
    # True: the environment of this lock was cached; only the project was installed.
    cache_hit: bool
    # None: no build system (or not built); True: the project's wheel came from the cache.
    wheel_cache_hit: bool | None = None
    # Whether the torch base (torch + pytest, byte-compiled) was cached.
    base_cache_hit: bool | None = None
    # `name==version` of everything installed (read from the venv), sorted; and its hash.
    lock: list[str] = field(default_factory=list)
    lock_hash: str = ""
    # The exact torch build installed, local tag included (`2.13.0+cpu`).
    torch_version: str = ""
    # What the project's metadata declares (`declared_support`); empty: no build system.
    declared: dict[str, str] = field(default_factory=dict)


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


def _stop_if_asked(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise BuildStopped("environment build stopped on request")


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages"))
    if len(found) != 1:
        raise EnvBuildError(f"env build failed: no single site-packages dir in {venv}")
    return found[0]


def _key(material: dict[str, object]) -> tuple[str, str]:
    """A cache key and the JSON it was made from (kept beside the cached dir)."""
    text = json.dumps(material, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24], text


def _resolve(
    *,
    tools: Toolchain,
    requirements: list[str],
    constraints: list[str],
    scratch: Path,
    no_deps: bool = False,
    overrides: list[str] | None = None,
) -> list[str]:
    """`lock.resolve` for this toolchain; its failures become this module's exceptions
    (`lock.Unsatisfiable` stays one: the caller words it)."""
    request = lock_module.ResolveRequest(
        uv=tools.uv,
        env=tools.env,
        python=tools.interpreter,
        source_args=tools.sources.uv_args(),
        requirements=requirements,
        constraints=constraints,
        scratch=scratch,
        no_deps=no_deps,
        overrides=list(overrides or ()),
    )
    try:
        return lock_module.resolve(request)
    except lock_module.NoWheel as exc:
        raise EnvBuildError(
            f"env build failed: {exc} has no wheel; source builds run only in the "
            "sandbox, so dependencies must come as wheels"
        ) from exc
    except lock_module.SourceUnreachable as exc:
        raise EnvBuildError(f"wheel source unreachable: {exc}") from exc
    except lock_module.Unsatisfiable:
        raise
    except lock_module.ResolutionFailed as exc:
        raise EnvBuildError(f"env build failed: resolution failed: {exc}") from exc


# --- layer 1: the torch base ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TorchBase:
    """The torch build under test and pytest, installed and byte-compiled once per (python,
    exact torch build, pytest release, uv) and shared by every job on that torch. Not per
    wheel source: an exact version with its local tag names one build, wherever it is found
    (a job's own find-links dir must not cost another half-minute compile)."""

    path: Path
    key: str
    key_material: str
    torch_version: str
    pytest_version: str
    requirement: str  # the job's torch requirement that named this build


def _torch_base(*, job: Job, tools: Toolchain, cache: Path, scratch: Path) -> TorchBase:
    """Which torch build the job's requirement means on these sources (its exact version, with
    its local tag), and the base it is installed in. Resolving costs well under a second;
    nothing is built here (see `_ensure_torch_base`)."""
    try:
        pins = _resolve(
            tools=tools,
            requirements=[job.torch_requirement, "pytest"],
            constraints=[],
            scratch=scratch,
            no_deps=True,
        )
    except lock_module.Unsatisfiable as exc:
        raise EnvBuildError(
            f"env build failed: {job.torch_requirement} and pytest cannot be had from the "
            f"configured wheel sources: {exc}"
        ) from exc
    versions = lock_module.pinned_versions(pins)
    (cache / "bases").mkdir(parents=True, exist_ok=True)
    key, material = _key(
        {
            "layout": BASE_LAYOUT_VERSION,
            "python": [tools.interpreter, tools.interpreter_version],
            "torch": versions["torch"],
            "pytest": versions["pytest"],
            "uv": tools.uv_version,
        }
    )
    return TorchBase(
        path=cache / "bases" / key,
        key=key,
        key_material=material,
        torch_version=versions["torch"],
        pytest_version=versions["pytest"],
        requirement=job.torch_requirement,
    )


def _ensure_torch_base(*, base: TorchBase, tools: Toolchain) -> bool:
    """Build the torch base unless it is cached; returns whether it was. Two jobs building the
    same base wait for each other (flock) instead of colliding."""
    with open(base.path.with_name(f"{base.key}.lock"), "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if base.path.exists():
            return True
        staging = base.path.with_name(f"{base.key}.tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            _run(
                [tools.uv, "venv", "-q", "--relocatable", "-p", tools.interpreter, str(staging)],
                env=tools.env,
            )
            python = staging / "bin" / "python"
            _run(
                [tools.uv, "pip", "install", "--python", str(python), "--link-mode", "hardlink"]
                + ["--no-build", *tools.sources.uv_args()]
                + [f"torch==={base.torch_version}", f"pytest=={base.pytest_version}"],
                env=tools.env,
            )
            # Compile once here, for every job on this torch: the job's venv is read-only, and
            # importing torch without its bytecode costs 20 s or more per test run. Best
            # effort: some wheels ship files for newer pythons that do not compile.
            _run(
                [str(python), "-m", "compileall", "-q", "-j", "0", str(staging / "lib")],
                env=tools.env,
                check=False,
            )
            material = json.loads(base.key_material)
            material["requirements"] = sorted([base.requirement, "pytest"])
            (staging / "ecoreg-base-key.json").write_text(json.dumps(material, sort_keys=True))
            staging.rename(base.path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return False


# --- the project's declared support ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WheelMetadata:
    """What a built wheel declares: its name and version, Requires-Python and Requires-Dist."""

    name: str
    version: str
    requires_python: str | None
    requires_dist: list[str]


def read_wheel_metadata(wheel: Path) -> WheelMetadata:
    """The METADATA of `wheel` (the project's own build: a bad one is an env build error)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [
                name
                for name in archive.namelist()
                if name.count("/") == 1 and name.endswith(".dist-info/METADATA")
            ]
            if len(names) != 1:
                raise EnvBuildError(f"env build failed: {wheel.name} has no single METADATA")
            raw, _ = parse_email(archive.read(names[0]))
    except (zipfile.BadZipFile, OSError) as exc:
        raise EnvBuildError(f"env build failed: {wheel.name} cannot be read: {exc}") from exc
    return WheelMetadata(
        name=str(raw.get("name") or build_module.wheel_name(wheel)),
        version=str(raw.get("version") or ""),
        requires_python=raw.get("requires_python"),
        requires_dist=list(raw.get("requires_dist") or []),
    )


def _marker_environment(python_version: str) -> dict[str, str]:
    return {
        **cast(dict[str, str], default_environment()),
        "python_version": ".".join(python_version.split(".")[:2]),
        "python_full_version": python_version,
    }


def _torch_requirements(
    *, metadata: WheelMetadata, python_version: str, extras: list[str]
) -> list[Requirement]:
    """The project's Requires-Dist lines naming torch that apply to this job: their markers
    evaluated for the job's python, for the base dependencies and each extra it installs."""
    environment = _marker_environment(python_version)
    found: list[Requirement] = []
    for line in metadata.requires_dist:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) != "torch":
            continue
        if requirement.marker is not None and not any(
            requirement.marker.evaluate({**environment, "extra": extra}) for extra in ["", *extras]
        ):
            continue
        found.append(requirement)
    return found


def declared_support(
    *, metadata: WheelMetadata, python_version: str, extras: list[str]
) -> dict[str, str]:
    """What the project declares for this job, as `Result.declared`: `torch`, the specifier of
    its torch requirements ("" when it names torch without a range, or not at all), and
    `requires_python` (its Requires-Python, "" when none). Lower bounds are written first."""
    specifiers = [
        spec
        for requirement in _torch_requirements(
            metadata=metadata, python_version=python_version, extras=extras
        )
        for spec in requirement.specifier
    ]
    specifiers.sort(key=lambda spec: (not spec.operator.startswith(">"), str(spec)))
    return {
        "torch": ",".join(dict.fromkeys(str(spec) for spec in specifiers)),
        "requires_python": metadata.requires_python or "",
    }


def check_declared_support(
    *, metadata: WheelMetadata, torch_version: str, python_version: str, extras: list[str]
) -> None:
    """Raise NotInstallable when the project's own metadata excludes the torch under test (its
    public version) or the job's python: a fact it declares, so nothing is resolved for it.

    Requires-Dist markers are evaluated for the job's python, for the project's base
    dependencies and for each extra the job installs.
    """
    name = metadata.name
    if metadata.requires_python:
        try:
            allowed = SpecifierSet(metadata.requires_python)
        except InvalidSpecifier:
            allowed = None
        if allowed is not None and not allowed.contains(python_version, prereleases=True):
            raise NotInstallable(
                f"{name} requires Python{allowed} (its Requires-Python); "
                f"{python_version} is excluded"
            )
    torch = Version(torch_version).public
    for requirement in _torch_requirements(
        metadata=metadata, python_version=python_version, extras=extras
    ):
        if not requirement.specifier.contains(torch, prereleases=True):
            raise TorchExcluded(
                f"{name} requires torch{requirement.specifier} (its Requires-Dist); "
                f"{torch} is excluded"
            )


# --- layer 2: the job's resolved dependencies ------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class JobDependencies:
    """What a job installs besides its own project: extra requirements, and the project's
    wheel with its extras (None: no build system)."""

    requirements: list[str]
    wheel: Path | None = None
    project: str | None = None
    extras: list[str] = field(default_factory=list)
    # The project's declared torch range set aside: exactly the torch under test overrides
    # every requirement on torch (`Job.test_beyond_declared_range`).
    beyond_declared_range: bool = False

    def overrides(self, *, torch_version: str) -> list[str]:
        return [f"torch==={torch_version}"] if self.beyond_declared_range else []

    def wanted(self) -> list[str]:
        wanted = ["torch", "pytest", *self.requirements]
        if self.wheel is not None:
            suffix = f"[{','.join(self.extras)}]" if self.extras else ""
            wanted.append(f"{self.project}{suffix} @ {self.wheel.resolve().as_uri()}")
        return wanted


def _resolve_dependencies(
    *, dependencies: JobDependencies, tools: Toolchain, torch_version: str, scratch: Path
) -> list[str]:
    """The lock of everything the job installs but its own project: resolved afresh, with torch
    constrained to exactly the build under test and companions to their paired releases.

    Raises NotInstallable when no such set exists, or a companion's build does not match.
    """
    try:
        resolved = _resolve(
            tools=tools,
            requirements=dependencies.wanted(),
            constraints=[
                f"torch==={torch_version}",
                *companion_constraints(torch_version=torch_version),
            ],
            scratch=scratch,
            overrides=dependencies.overrides(torch_version=torch_version),
        )
    except lock_module.Unsatisfiable as exc:
        raise _unsatisfiable(
            reason=str(exc),
            dependencies=dependencies,
            tools=tools,
            torch_version=torch_version,
            scratch=scratch,
        ) from exc
    own = canonicalize_name(dependencies.project) if dependencies.project else None
    locked = [line for line in resolved if lock_module.lock_name(line) != own]
    versions = lock_module.pinned_versions(locked)
    if versions.get("torch") != torch_version:
        raise EnvBuildError(
            f"env build failed: the resolver chose torch {versions.get('torch')}, "
            f"not the build under test {torch_version}"
        )
    mismatch = mismatched_companion(locked=versions, torch_version=torch_version)
    if mismatch:
        raise NotInstallable(no_matching_build(companion=mismatch, torch_version=torch_version))
    return locked


def _unsatisfiable(
    *,
    reason: str,
    dependencies: JobDependencies,
    tools: Toolchain,
    torch_version: str,
    scratch: Path,
) -> Exception:
    """What an unsatisfiable resolution means. A companion with no build paired with this
    torch, or a set that resolves once torch is left free: NotInstallable, a fact about this
    torch. A set that resolves with no torch at all (a requirement no source has): an env
    build error, checked by resolving again, since it is not about torch."""
    own = dependencies.project or ""
    for companion in COMPANIONS:
        # A companion the project's own requirements do not enter into: no paired build.
        mentioned = re.search(rf"\b{companion.name}\b", reason)
        if mentioned and not (own and re.search(rf"\b{re.escape(own)}\b", reason)):
            return NotInstallable(
                no_matching_build(companion=companion.name, torch_version=torch_version)
            )
    try:
        _resolve(
            tools=tools,
            requirements=dependencies.wanted(),
            constraints=[],
            scratch=scratch / "unpinned",
        )
    except lock_module.Unsatisfiable:
        return EnvBuildError(f"env build failed: the dependencies cannot be resolved: {reason}")
    return NotInstallable(reason)


# --- layer 3: the environment of a lock ------------------------------------------------------


def _lock_env_key(
    *, base: TorchBase, locked: list[str], overrides: list[str] | None = None
) -> tuple[str, str]:
    """The key of the environment of `locked`; one resolved with `overrides` (a declared range
    set aside) has its own, so it never serves a normal job (normal keys stay as they were)."""
    material: dict[str, object] = {
        "layout": LOCK_ENV_LAYOUT_VERSION,
        "base": base.key,
        "lock": sorted(locked),
    }
    if overrides:
        material["overrides"] = sorted(overrides)
    return _key(material)


def _ensure_lock_env(
    *,
    base: TorchBase,
    locked: list[str],
    tools: Toolchain,
    cache: Path,
    overrides: list[str] | None = None,
) -> tuple[Path, bool]:
    """The environment of `locked` (resolved with `overrides`), cached under its hash: a
    hard-linked copy of the torch base synced to exactly the lock, with only what is new
    byte-compiled. Returns it and whether it was cached."""
    key, material = _lock_env_key(base=base, locked=locked, overrides=overrides)
    envs = cache / "envs"
    envs.mkdir(parents=True, exist_ok=True)
    path = envs / key
    with open(envs / f"{key}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if path.exists():
            return path, True
        staging = envs / f"{key}.tmp{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            with agent_cache.entry_in_use(base.path):  # never evicted while copied
                _run(["cp", "-al", str(base.path), str(staging)], env=tools.env)
            (staging / "ecoreg-base-key.json").unlink(missing_ok=True)
            _sync_to_lock(venv=staging, locked=locked, tools=tools)
            _compile_new(venv=staging, base=base.path, tools=tools)
            _check_installed(venv=staging, expected=locked)
            (staging / "ecoreg-lock.txt").write_text("".join(f"{line}\n" for line in locked))
            (staging / "ecoreg-env-key.json").write_text(material)
            staging.rename(path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return path, False


def _sync_to_lock(*, venv: Path, locked: list[str], tools: Toolchain) -> None:
    """Make `venv` hold exactly `locked`: install what is missing, remove what is not in it.
    Files of the base are hard links: removing one leaves the base's copy untouched."""
    lock_file = venv / "ecoreg-sync.txt"
    lock_file.write_text("".join(f"{line}\n" for line in locked))
    try:
        _run(
            [tools.uv, "pip", "sync", "--python", str(venv / "bin" / "python")]
            + ["--link-mode", "hardlink", "--no-build", *tools.sources.uv_args(), str(lock_file)],
            env=tools.env,
        )
    finally:
        lock_file.unlink(missing_ok=True)


def _compile_new(*, venv: Path, base: Path, tools: Toolchain) -> None:
    """Byte-compile the distributions the base does not have (torch's bytecode is there
    already: compiling it again would cost half a minute)."""
    site = _site_packages(venv)
    known = {entry.name for entry in _site_packages(base).iterdir()}
    sources = []
    for dist_info in site.glob("*.dist-info"):
        if dist_info.name in known or not (dist_info / "RECORD").is_file():
            continue
        for row in csv.reader((dist_info / "RECORD").read_text().splitlines()):
            if row and row[0].endswith(".py") and not row[0].startswith(("/", "..")):
                sources.append(str(site / row[0]))
    if not sources:
        return
    listing = venv / "ecoreg-compile.txt"
    listing.write_text("".join(f"{path}\n" for path in sources))
    try:
        python = str(venv / "bin" / "python")
        _run(
            [python, "-m", "compileall", "-q", "-j", "0", "-i", str(listing)],
            env=tools.env,
            check=False,
        )
    finally:
        listing.unlink(missing_ok=True)


def _check_installed(*, venv: Path, expected: list[str]) -> list[str]:
    """What `venv` holds (read from its dist-info dirs), checked against `expected`: a result
    must not claim a lock its environment does not have. Returns the installed lock."""
    installed = lock_module.installed_lock(_site_packages(venv))
    have = lock_module.pinned_versions(installed)
    want = {lock_module.lock_name(line): line for line in expected}
    differ = sorted(set(have) ^ set(want))
    for name, version in lock_module.pinned_versions(expected).items():
        if name in have and not lock_module.same_version(have[name], version):
            differ.append(f"{name} {have[name]} (locked {version})")
    if differ:
        raise EnvBuildError(
            "env build failed: the environment does not match its lock: " + ", ".join(differ)
        )
    return installed


# --- the project: built in the sandbox, its wheel cached by commit ---------------------------


def _wheel_key(*, commit: str | None, tools: Toolchain) -> str | None:
    """The built wheel's cache key: only a commit fixes the whole source tree."""
    if not build_module.is_commit(commit):
        return None
    key, _ = _key(
        {
            "layout": WHEEL_CACHE_LAYOUT_VERSION,
            "commit": commit,
            "python": [tools.interpreter, tools.interpreter_version],
            "sources": tools.sources.uv_args(),
            "uv": tools.uv_version,
        }
    )
    return key


@dataclass(frozen=True, kw_only=True)
class ProjectBuild:
    """How the project under test is built into a wheel."""

    project_dir: Path
    build_root: Path
    wheel_key: str | None
    sandbox: bool
    on_output: Callable[[bytes], None] | None
    should_stop: Callable[[], bool] | None


def _project_wheel(*, build: ProjectBuild, tools: Toolchain) -> tuple[Path, bool]:
    """The project's wheel from the cache, else built in the sandbox (and cached); and whether
    it came from the cache. A failing build is an env build error (even one that fails only
    against this torch: the build does not see the torch under test)."""
    wheels = cache_dir() / "wheels"
    if build.wheel_key:
        cached = build_module.cached_wheel(cache_root=wheels, key=build.wheel_key)
        if cached is not None:
            agent_cache.touch_used(cached.parent)
            return cached, True
    try:
        wheel = build_module.build_wheel(
            project_dir=build.project_dir,
            build_root=build.build_root,
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
            agent_cache.touch_used(wheels / build.wheel_key)
        build_module.wheel_name(wheel)  # a bad name is the build's fault: an env build error
    except BuildError as exc:
        raise EnvBuildError(f"env build failed: {exc}") from exc
    return wheel, False


def _install_project(*, venv: Path, wheel: Path, tools: Toolchain) -> None:
    """The project's wheel alone: its dependencies are in the lock, already installed."""
    _run(
        [tools.uv, "pip", "install", "--python", str(venv / "bin" / "python"), "--offline"]
        + ["--no-deps", "--link-mode", "hardlink", "--no-build", str(wheel)],
        env=tools.env,
    )


# --- the job's environment -------------------------------------------------------------------


def _checked_requirements(requirements: list[str]) -> list[str]:
    """The test requirements, each checked to be PEP 508 (else an EnvBuildError naming it)."""
    for requirement in requirements:
        try:
            Requirement(requirement)
        except InvalidRequirement as exc:
            raise EnvBuildError(
                f"env build failed: requirement {requirement!r} is not PEP 508: "
                + str(exc).splitlines()[0]
            ) from exc
    return list(requirements)


@dataclass(frozen=True, kw_only=True)
class ProjectWheel:
    """The project's built wheel, what it declares, and whether it came from the cache."""

    path: Path
    metadata: WheelMetadata
    cache_hit: bool
    declared: dict[str, str] = field(default_factory=dict)


def _prepare_project(
    *,
    build: ProjectBuild,
    tools: Toolchain,
    torch_version: str,
    extras: list[str],
    beyond_declared_range: bool = False,
) -> ProjectWheel | None:
    """The project's wheel (None: no build system, the tests import the checkout), refused
    (NotInstallable) when its metadata excludes this torch or this python; with
    `beyond_declared_range`, an exclusion by its torch range alone is set aside."""
    if not build_module.has_build_system(build.project_dir):
        return None
    wheel, cache_hit = _project_wheel(build=build, tools=tools)
    metadata = read_wheel_metadata(wheel)
    declared = declared_support(
        metadata=metadata, python_version=tools.interpreter_version, extras=extras
    )
    try:
        check_declared_support(
            metadata=metadata,
            torch_version=torch_version,
            python_version=tools.interpreter_version,
            extras=extras,
        )
    except NotInstallable as exc:
        exc.declared = declared
        if not (beyond_declared_range and isinstance(exc, TorchExcluded)):
            raise
    return ProjectWheel(path=wheel, metadata=metadata, cache_hit=cache_hit, declared=declared)


def build_environment(
    *,
    job: Job,
    project_dir: Path,
    venv: Path,
    commit: str | None = None,
    extras: list[str],
    requirements: list[str],
    sandbox: bool = True,
    on_output: Callable[[bytes], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    beyond_declared_range: bool = False,
) -> BuiltEnvironment:
    """Build `venv` for `job`: the project at `project_dir` installed (not editable) with its
    `extras` (their dependencies too) and the PEP 508 `requirements` the tests need (the
    test recipe's, `recipe.py`). `commit`: what `project_dir` is a clean checkout of (its
    wheel is cached by it); `sandbox=False` builds the project bare (local debugging only);
    `on_output`, `should_stop`: see `sandbox.run_sandboxed` (a stop raises
    `build.BuildStopped`). `beyond_declared_range`: the project's declared torch range is
    overridden, so exactly the torch under test is installed (Requires-Python still holds).
    Raises NotInstallable when the project cannot be had with the torch under test
    (`TorchExcluded`: its declared torch range alone excludes it), else EnvBuildError."""
    started = time.monotonic()
    requirements, extras = _checked_requirements(requirements), list(extras)
    cache = cache_dir()
    tools = _toolchain(job=job, cache=cache)
    scratch = venv.with_name(f"{venv.name}.build")
    scratch.mkdir(mode=0o755)
    try:
        base = _torch_base(job=job, tools=tools, cache=cache, scratch=scratch / "base")
        build = ProjectBuild(
            project_dir=project_dir,
            build_root=scratch / "project",
            wheel_key=_wheel_key(commit=commit, tools=tools),
            sandbox=sandbox,
            on_output=on_output,
            should_stop=should_stop,
        )
        project = _prepare_project(
            build=build, tools=tools, torch_version=base.torch_version, extras=extras,
            beyond_declared_range=beyond_declared_range,
        )  # fmt: skip
        try:
            layers = _build_layers(
                base=base,
                project=project,
                extras=extras,
                requirements=requirements,
                tools=tools,
                venv=venv,
                scratch=scratch,
                should_stop=should_stop,
                beyond_declared_range=beyond_declared_range,
            )
        except NotInstallable as exc:
            exc.declared = exc.declared or (project.declared if project else {})
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _built(venv=venv, started=started, base=base, project=project, layers=layers)


@dataclass(frozen=True, kw_only=True)
class Layers:
    """What `_build_layers` made: the job venv's lock, and which cached layers it reused."""

    lock: list[str]
    base_cache_hit: bool
    env_cache_hit: bool


def _built(
    *, venv: Path, started: float, base: TorchBase, project: ProjectWheel | None, layers: Layers
) -> BuiltEnvironment:
    return BuiltEnvironment(
        venv=venv,
        python=venv / "bin" / "python",
        base_prefix=_base_prefix_of(venv),
        env_s=round(time.monotonic() - started, 3),
        cache_hit=layers.env_cache_hit,
        base_cache_hit=layers.base_cache_hit,
        wheel_cache_hit=project.cache_hit if project else None,
        lock=layers.lock,
        lock_hash=lock_module.lock_hash(layers.lock),
        torch_version=base.torch_version,
        declared=dict(project.declared) if project else {},
    )


def _build_layers(
    *,
    base: TorchBase,
    project: ProjectWheel | None,
    extras: list[str],
    requirements: list[str],
    tools: Toolchain,
    venv: Path,
    scratch: Path,
    should_stop: Callable[[], bool] | None,
    beyond_declared_range: bool = False,
) -> Layers:
    """Resolve the job's dependencies, then hard-link its venv from the environment of that
    lock (built over the torch base if missing) and install the project's wheel on top."""
    dependencies = JobDependencies(
        requirements=requirements,
        wheel=project.path if project else None,
        project=project.metadata.name if project else None,
        extras=extras if project else [],
        beyond_declared_range=beyond_declared_range,
    )
    locked = _resolve_dependencies(
        dependencies=dependencies,
        tools=tools,
        torch_version=base.torch_version,
        scratch=scratch / "resolve",
    )
    _stop_if_asked(should_stop)
    base_cache_hit = _ensure_torch_base(base=base, tools=tools)
    _stop_if_asked(should_stop)
    env, env_cache_hit = _ensure_lock_env(
        base=base,
        locked=locked,
        tools=tools,
        cache=base.path.parents[1],
        overrides=dependencies.overrides(torch_version=base.torch_version),
    )
    with agent_cache.entry_in_use(env):  # never evicted while copied
        _run(["cp", "-al", str(env), str(venv)], env=tools.env)
    expected = list(locked)
    if project is not None:
        _install_project(venv=venv, wheel=project.path, tools=tools)
        name = canonicalize_name(project.metadata.name)
        expected.append(f"{name}=={project.metadata.version}")
    installed = _check_installed(venv=venv, expected=expected)
    return Layers(lock=installed, base_cache_hit=base_cache_hit, env_cache_hit=env_cache_hit)
