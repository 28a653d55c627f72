"""Build the project under test into a wheel inside the sandbox.

A project's build (its setup.py, its build backend) is the project's own code, so it runs only
under bubblewrap: as the sandbox uid, in the job's cgroup limits, with a wall clock, a cleared
environment, the system read-only, and only its build dir writable (a copy of the checkout,
the output dir and a private uv cache; never the agent's shared cache or venvs). The agent then
installs the wheel it produced, which runs no project code.

Network: the build never has any (`--unshare-net`; 127.0.0.1 services have no passwords). Its
build requirements (`[build-system].requires`, or setuptools and wheel for a setup.py project)
are installed beforehand, OUTSIDE the sandbox, from wheels only (`--no-build`: installing a
wheel runs no code) into a build venv cached by its inputs. The build then runs offline with
`--no-build-isolation` in a hard-linked copy of that venv, bound read-only. A backend that asks
for more requirements at build time (`get_requires_for_build_wheel`) does not get them: list
them in `[build-system].requires`.

Built wheels are cached by commit SHA and build inputs (`wheel_cache_key`): a commit fixes the
whole source tree, so the same inputs build the same project.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ci_runners.agent import sandbox as sandbox_module
from ci_runners.agent.process import run_tool
from ci_runners.agent.sandbox import Limits, SandboxRun, SandboxSpec

UV_IN_SANDBOX = "/opt/ecoreg-agent/bin/uv"
DEFAULT_BUILD_TIMEOUT_S = 600.0
BUILD_ENV_TIMEOUT_S = 900
BUILD_ENV_LAYOUT_VERSION = "1"
# What pip and uv assume for a project without [build-system] (PEP 517/518).
DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")
MAX_WHEEL_BYTES = 1024**3
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")
_WHEEL_NAME = re.compile(
    r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?)-[A-Za-z0-9_.!+]+"
    r"(?:-\d[A-Za-z0-9_.]*)?-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+\.whl$"
)


class BuildError(Exception):
    """The project could not be built into a wheel (its own build, in the sandbox)."""


class BuildStopped(Exception):
    """The build was ended early because the caller asked to stop."""


def build_timeout_s() -> float:
    return float(os.environ.get("AGENT_BUILD_TIMEOUT_S", DEFAULT_BUILD_TIMEOUT_S))


def has_build_system(project_dir: Path) -> bool:
    """A setup.py, or a pyproject.toml that declares a build system or a project."""
    if (project_dir / "setup.py").is_file():
        return True
    try:
        data = tomllib.loads((project_dir / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    return "build-system" in data or "project" in data


def is_commit(commit: str | None) -> bool:
    return bool(commit and _FULL_SHA.match(commit))


def wheel_name(wheel: Path) -> str:
    """The distribution name in a wheel's file name, normalized."""
    match = _WHEEL_NAME.match(wheel.name)
    if not match:
        raise BuildError(f"project build produced an invalid wheel name: {wheel.name!r}")
    return re.sub(r"[-_.]+", "-", match.group("name")).lower()


def build_requires(project_dir: Path) -> list[str]:
    """`[build-system].requires` of the checkout, else setuptools and wheel (PEP 518)."""
    pyproject = project_dir / "pyproject.toml"
    if not pyproject.is_file():
        return list(DEFAULT_BUILD_REQUIRES)
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BuildError(f"pyproject.toml cannot be read: {exc}") from exc
    system = data.get("build-system")
    if not isinstance(system, dict) or "requires" not in system:
        return list(DEFAULT_BUILD_REQUIRES)
    requires = system["requires"]
    if not isinstance(requires, list) or not all(isinstance(item, str) for item in requires):
        raise BuildError("pyproject.toml: [build-system].requires must be a list of strings")
    return [item.strip() for item in requires if item.strip()]


_NO_WHEEL = re.compile(
    r"Wheels are required for `([^`]+)`|([A-Za-z0-9._-]+)(?:==\S+)? has no usable wheels"
)


def package_without_wheel(uv_output: str) -> str | None:
    """The package uv refused to build from source (we install with --no-build), if any."""
    match = _NO_WHEEL.search(uv_output)
    return (match.group(1) or match.group(2)) if match else None


def _explain_missing_wheel(uv_output: str) -> str | None:
    package = package_without_wheel(uv_output)
    if package is None:
        return None
    return (
        f"build requirement {package} has no wheel; build requirements are installed "
        "from wheels only"
    )


def _run_build_tool(command: list[str], *, env: dict[str, str], what: str) -> None:
    run_tool(
        command,
        env=env,
        timeout_s=BUILD_ENV_TIMEOUT_S,
        what=what,
        error=BuildError,
        explain=_explain_missing_wheel,
    )


def build_env(
    *,
    cache_root: Path,
    requires: list[str],
    interpreter: str,
    uv: str,
    index_args: list[str],
    key_extra: str = "",
    env: dict[str, str],
) -> Path:
    """A venv with `requires` installed from wheels only, cached under `cache_root`.

    Runs outside the sandbox but runs no project code: only wheels are installed.
    """
    material = json.dumps(
        {
            "layout": BUILD_ENV_LAYOUT_VERSION,
            "interpreter": interpreter,
            "requires": sorted(requires),
            "sources": index_args,
            "extra": key_extra,
        },
        sort_keys=True,
    )
    key = hashlib.sha256(material.encode()).hexdigest()[:24]
    cache_root.mkdir(parents=True, exist_ok=True)
    final = cache_root / key
    with open(cache_root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.is_dir():
            return final
        staging = cache_root / f"{key}.tmp{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            what = "build requirements install"
            _run_build_tool(
                [uv, "venv", "-q", "--relocatable", "-p", interpreter, str(staging)],
                env=env,
                what=what,
            )
            if requires:
                _run_build_tool(
                    [uv, "pip", "install", "--python", str(staging / "bin" / "python")]
                    + ["--link-mode", "hardlink", "--no-build", *index_args, *requires],
                    env=env,
                    what=what,
                )
            (staging / "ecoreg-build-env.json").write_text(material)
            staging.rename(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


def _copy_build_env(*, cached: Path, destination: Path, env: dict[str, str]) -> None:
    """Hard-linked copy (instant) of the cached build venv, reachable by the sandbox uid."""
    try:
        _run_build_tool(
            ["cp", "-al", str(cached), str(destination)], env=env, what="build env copy"
        )
    except BuildError:
        shutil.rmtree(destination, ignore_errors=True)
        shutil.copytree(cached, destination, symlinks=True)  # another filesystem


def _local_path(location: str) -> Path | None:
    if "://" not in location:
        return Path(location).expanduser()
    parsed = urlparse(location)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def _interpreter_binds(interpreter: str) -> list[Path]:
    """A python outside /usr (uv-managed, pyenv) must be bound into the sandbox."""
    resolved = Path(interpreter).resolve()
    if str(resolved).startswith("/usr/"):
        return []
    return [resolved.parents[1]]


def _take_wheel(*, out: Path, destination: Path) -> Path:
    """Copy the one wheel the build left in `out` to a root-owned dir, trusting nothing."""
    try:
        entries = [entry for entry in out.iterdir() if entry.name.endswith(".whl")]
    except OSError as exc:
        raise BuildError(f"project build left no readable output: {exc}") from exc
    if len(entries) != 1:
        raise BuildError(f"project build produced {len(entries)} wheels, expected one")
    source = entries[0]
    wheel_name(source)
    info = source.lstat()
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        raise BuildError(f"project build produced a wheel that is not a plain file: {source.name}")
    if info.st_size > MAX_WHEEL_BYTES:
        raise BuildError(f"project build produced a wheel over {MAX_WHEEL_BYTES} bytes")
    destination.mkdir(mode=0o755, exist_ok=True)
    target = destination / source.name
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as reader, open(target, "xb") as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)
    _check_wheel_archive(target)
    return target


def _check_wheel_archive(wheel: Path) -> None:
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise BuildError(f"project build produced a broken wheel: {exc}") from exc
    for name in names:
        parts = name.replace("\\", "/").split("/")
        if name.startswith("/") or ".." in parts:
            raise BuildError(f"project wheel holds a path outside its install dir: {name!r}")
    if not any(name.endswith(".dist-info/METADATA") for name in names):
        raise BuildError("project build produced a wheel without METADATA")


@dataclass(frozen=True, kw_only=True)
class BuildDirs:
    """A build's dirs under its build root: the copied build venv, and the sandbox's scratch
    dir (the only one it may write) holding a copy of the source, the output dir and a
    private uv cache."""

    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "build-env"

    @property
    def scratch(self) -> Path:
        return self.root / "sandbox"

    @property
    def src(self) -> Path:
        return self.scratch / "src"

    @property
    def out(self) -> Path:
        return self.scratch / "out"

    @property
    def cache(self) -> Path:
        return self.scratch / "uv-cache"

    @property
    def wheel(self) -> Path:
        return self.root / "wheel"


def build_wheel(
    *,
    project_dir: Path,
    build_root: Path,
    interpreter: str,
    uv: str,
    index_args: list[str],
    env_cache_root: Path,
    tool_env: dict[str, str],
    key_extra: str = "",
    sandbox: bool = True,
    on_output: Callable[[bytes], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Path:
    """Build `project_dir` into a wheel in the sandbox; return the wheel (root-owned copy).

    The build requirements are installed first, outside the sandbox and from wheels only, into
    a build venv cached under `env_cache_root` (`index_args` are the wheel sources, `tool_env`
    the environment uv runs in there, `key_extra` more cache key material such as uv's version).
    The build itself has no network. `build_root` must not exist; the caller removes it.
    Raises BuildStopped when `should_stop` ended the build.
    """
    build_root.mkdir(mode=0o755)
    dirs = BuildDirs(root=build_root)
    cached_env = build_env(
        cache_root=env_cache_root,
        requires=build_requires(project_dir),
        interpreter=interpreter,
        uv=uv,
        index_args=index_args,
        key_extra=key_extra,
        env=tool_env,
    )
    _copy_build_env(cached=cached_env, destination=dirs.venv, env=tool_env)
    _prepare_scratch(dirs=dirs, project_dir=project_dir)
    timeout = build_timeout_s()
    spec = _build_spec(dirs=dirs, interpreter=interpreter, uv=uv, sandbox=sandbox, timeout=timeout)
    run = sandbox_module.run_sandboxed(
        spec=spec,
        limits=Limits.from_environment(),
        sandbox=sandbox,
        on_output=on_output,
        should_stop=should_stop,
    )
    _check_build_run(run=run, timeout=timeout)
    return _take_wheel(out=dirs.out, destination=dirs.wheel)


def _prepare_scratch(*, dirs: BuildDirs, project_dir: Path) -> None:
    """A copy of the source, the output dir and a private uv cache, all the sandbox uid's."""
    dirs.scratch.mkdir(mode=0o755)
    shutil.copytree(project_dir, dirs.src, symlinks=True)
    dirs.out.mkdir(mode=0o755)
    dirs.cache.mkdir(mode=0o755)
    sandbox_module.give_to_sandbox_user(dirs.scratch)


def _build_spec(
    *, dirs: BuildDirs, interpreter: str, uv: str, sandbox: bool, timeout: float
) -> SandboxSpec:
    """`uv build --wheel`, offline and without build isolation, in the copied build venv."""
    uv_path = UV_IN_SANDBOX if sandbox else uv
    env = {
        "PATH": f"{dirs.venv / 'bin'}:{Path(uv_path).parent}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(dirs.venv),
        "UV_CACHE_DIR": str(dirs.cache),
        "UV_NO_PROGRESS": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_OFFLINE": "1",
    }
    command = [
        uv_path,
        "build",
        "--wheel",
        "--no-build-isolation",
        "--out-dir",
        str(dirs.out),
        "--python",
        str(dirs.venv / "bin" / "python"),
        str(dirs.src),
    ]
    return SandboxSpec(
        command=command,
        work_dir=dirs.scratch,
        cwd=dirs.src,
        ro_binds=[dirs.venv, *_interpreter_binds(interpreter)],
        ro_binds_to={UV_IN_SANDBOX: Path(uv)},
        env=env,
        timeout_s=timeout,
        gpu=False,
    )


def _check_build_run(*, run: SandboxRun, timeout: float) -> None:
    """Raise BuildStopped or BuildError unless the sandboxed build succeeded."""
    notes = "; ".join(note for note in run.notes if "WITHOUT sandbox" not in note)
    if run.stopped:
        raise BuildStopped("project build stopped on request")
    if run.timed_out:
        raise BuildError(
            f"project build exceeded its wall time limit of {timeout:g} s"
            + (f"; {notes}" if notes else "")
        )
    if run.exit_code != 0:
        tail = "\n".join(run.output.strip().splitlines()[-12:])
        reason = f"; {notes}" if notes else ""
        raise BuildError(
            f"project build failed in the sandbox (exit {run.exit_code}){reason}:\n{tail}"
        )


def cached_wheel(*, cache_root: Path, key: str) -> Path | None:
    wheels = sorted((cache_root / key).glob("*.whl"))
    return wheels[0] if len(wheels) == 1 else None


def store_wheel(*, cache_root: Path, key: str, wheel: Path) -> Path:
    """Keep `wheel` under `key`; returns the cached copy (first writer wins)."""
    cache_root.mkdir(parents=True, exist_ok=True)
    final = cache_root / key
    staging = cache_root / f"{key}.tmp{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o755)
    shutil.copyfile(wheel, staging / wheel.name)
    try:
        staging.rename(final)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another job stored it first
    return cached_wheel(cache_root=cache_root, key=key) or wheel
