"""Build the project under test into a wheel inside the sandbox.

A project's build (its setup.py, its build backend) is the project's own code, so it runs only
under bubblewrap: as the sandbox uid, in the job's cgroup limits, with a wall clock, a cleared
environment, the system read-only, and only its build dir writable (a copy of the checkout,
the output dir and a private uv cache; never the agent's shared cache or venvs). The agent then
installs the wheel it produced, which runs no project code.

Network: the build sees the host network only when a wheel source is remote (its build backend
may have to be downloaded); with local sources only (file:// indexes, find-links dirs, bound
read-only) it has none.

Built wheels are cached by commit SHA and build inputs (`wheel_cache_key`): a commit fixes the
whole source tree, so the same inputs build the same project.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tomllib
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from ci_runners.agent import sandbox as sandbox_module
from ci_runners.agent.sandbox import Limits, SandboxSpec

UV_IN_SANDBOX = "/opt/ecoreg-agent/bin/uv"
DEFAULT_BUILD_TIMEOUT_S = 600.0
MAX_WHEEL_BYTES = 1024**3
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")
_WHEEL_NAME = re.compile(
    r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?)-[A-Za-z0-9_.!+]+"
    r"(?:-\d[A-Za-z0-9_.]*)?-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+\.whl$"
)


class BuildError(Exception):
    """The project could not be built into a wheel (its own build, in the sandbox)."""


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


def _local_path(location: str) -> Path | None:
    if "://" not in location:
        return Path(location).expanduser()
    parsed = urlparse(location)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def source_binds(locations: list[str], index_urls: list[str]) -> tuple[list[Path], bool]:
    """Local wheel sources the build must see read-only, and whether any source is remote."""
    binds: list[Path] = []
    remote = False
    for location in [*locations, *index_urls]:
        path = _local_path(location)
        if path is None:
            remote = True
            continue
        if location in index_urls and path.name == "simple":
            path = path.parent  # a file:// index links to ../../files/
        path = path.resolve()
        if path.exists() and path not in binds:
            binds.append(path)
    return binds, remote


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


def build_wheel(
    *,
    project_dir: Path,
    build_root: Path,
    interpreter: str,
    uv: str,
    index_args: list[str],
    find_links: list[str],
    index_urls: list[str],
    sandbox: bool = True,
) -> Path:
    """Build `project_dir` into a wheel in the sandbox; return the wheel (root-owned copy).

    `build_root` must not exist; the caller removes it.
    """
    build_root.mkdir(mode=0o755)
    scratch = build_root / "sandbox"
    src, out, cache = scratch / "src", scratch / "out", scratch / "uv-cache"
    scratch.mkdir(mode=0o755)
    shutil.copytree(project_dir, src, symlinks=True)
    out.mkdir(mode=0o755)
    cache.mkdir(mode=0o755)
    sandbox_module.give_to_sandbox_user(scratch)

    binds, remote = source_binds(find_links, index_urls)
    uv_path = UV_IN_SANDBOX if sandbox else uv
    env = {
        "PATH": f"{Path(uv_path).parent}:/usr/local/bin:/usr/bin:/bin",
        "UV_CACHE_DIR": str(cache),
        "UV_NO_PROGRESS": "1",
        "UV_PYTHON_DOWNLOADS": "never",
    }
    if not remote:
        env["UV_OFFLINE"] = "1"
    command = [
        uv_path,
        "build",
        "--wheel",
        "--out-dir",
        str(out),
        "--python",
        interpreter,
        *index_args,
        str(src),
    ]
    timeout = build_timeout_s()
    spec = SandboxSpec(
        command=command,
        work_dir=scratch,
        cwd=src,
        ro_binds=[*binds, *_interpreter_binds(interpreter)],
        ro_binds_to={UV_IN_SANDBOX: Path(uv)},
        env=env,
        timeout_s=timeout,
        share_net=remote,
        gpu=False,
    )
    run = sandbox_module.run_sandboxed(spec=spec, limits=Limits.from_environment(), sandbox=sandbox)
    notes = "; ".join(note for note in run.notes if "WITHOUT sandbox" not in note)
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
    return _take_wheel(out=out, destination=build_root / "wheel")


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
