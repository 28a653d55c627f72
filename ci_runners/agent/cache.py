"""The agent's cache on disk: how big it is, and the eviction that keeps it under a size.

Under `environment.cache_dir()` live `uv/` (uv's own cache: the real files), and the entries
the agent builds, each `<area>/<key>`: `bases/` (torch bases), `envs/` (the environment of one
lock), `wheels/` (built project wheels), `build-envs/` (build requirement venvs) and
`compile/` (torch.compile caches). An entry is built under its lock file `<area>/<key>.lock`
(flock, exclusive) in a staging dir `<key>.tmp<pid>`, then renamed into place.

Size: every inode is counted once (the layers are hard links of each other and of uv's
cache), by the blocks it occupies. Removing an entry frees only the inodes no other entry (nor
uv's cache) still links: the eviction keeps that account as it goes.

Eviction (`evict`) removes whole entries, least recently used first: staging dirs that a dead
builder left, then entries of `envs/`, `wheels/`, `build-envs/` and `compile/`, then torch
bases (the dearest to rebuild), until the cache is under its cap (`AGENT_CACHE_MAX_BYTES`). An
entry in use is never removed: its lock is taken with LOCK_NB (a busy one is skipped) and held
while the entry is renamed away and deleted; lock files themselves are never deleted (a waiter
on a deleted lock file and a newcomer on a new one would both hold "the lock"). Entries used
within `min_idle_s` are kept too, for the moments a job reads an entry without its lock.
When every entry that may go is gone and the cache is still over, `uv cache prune` removes
what uv no longer references (given PRUNE_TIMEOUT_S); never `uv cache clean`, which would pull
files from under a concurrent build. The files a base or an environment hard-linked from uv's
cache stay theirs whatever uv removes.

Last use: the latest mtime of the marker `<area>/<key>.used` (`touch_used`, called on every
use), of the lock file (the builders open it with "w", which updates it on each use) and of the
entry itself. A job's venv is a hard-linked copy: once copied it needs no cache entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess  # noqa: S404 - uv, by its path, with an argument list
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Evicted first, mixed by last use; then the torch bases.
CHEAP_AREAS = ("envs", "wheels", "build-envs", "compile")
BASES_AREA = "bases"
LOCK_SUFFIX = ".lock"
USED_SUFFIX = ".used"
DEFAULT_MAX_BYTES = 50 * 1024**3
DEFAULT_MIN_IDLE_S = 600.0
PRUNE_TIMEOUT_S = 120
_STAGING = re.compile(r"^(?P<key>.+)\.tmp(?P<pid>\d+)$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """Bytes from `53687091200`, `50G`, `50GiB`, `512M` (binary units); ValueError with a
    one-line message for anything else."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (write bytes, or a number with K, M, G or T)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def configured_max_bytes(
    variable: str = "AGENT_CACHE_MAX_BYTES", default: int = DEFAULT_MAX_BYTES
) -> int:
    """AGENT_CACHE_MAX_BYTES (bytes, or `50G`-style; default 50 GiB): the cache's cap (or the
    cap in another `variable`). ValueError, with a one-line message, when it is not a size."""
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        return parse_size(raw)
    except ValueError as exc:
        raise ValueError(f"{variable}: {exc}") from None


def configured_min_idle_s() -> float:
    """AGENT_CACHE_MIN_IDLE_S (default 600): entries used more recently are not evicted (a job
    reads some entries, e.g. its cached wheel, without holding their lock). ValueError, with a
    one-line message, when it is not a number of seconds."""
    raw = os.environ.get("AGENT_CACHE_MIN_IDLE_S", "").strip()
    if not raw:
        return DEFAULT_MIN_IDLE_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ValueError(f"AGENT_CACHE_MIN_IDLE_S: not a number of seconds: {raw!r}")
    return value


class CacheSizeGauge:
    """The cache's size for heartbeats: measured at most every `max_age_s` (walking a large
    cache takes seconds), and set from each eviction's report in between. Thread-safe."""

    def __init__(self, *, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._value: int | None = None
        self._at = 0.0

    def set(self, value: int) -> None:
        with self._lock:
            self._value, self._at = value, time.monotonic()

    def read(self, root: Path) -> int | None:
        """The last figure, measured again when older than `max_age_s`; None if unreadable."""
        with self._lock:
            if self._value is not None and time.monotonic() - self._at < self.max_age_s:
                return self._value
        try:
            value = cache_size_bytes(root)
        except OSError:
            return None
        self.set(value)
        return value


def touch_used(entry_dir: Path) -> None:
    """Record that `entry_dir` (a cache entry, `<area>/<key>`) was used now: its marker
    `<key>.used` beside it. Best effort: a job never fails for its bookkeeping."""
    marker = entry_dir.with_name(entry_dir.name + USED_SUFFIX)
    with contextlib.suppress(OSError):
        marker.touch()
        os.utime(marker)


@contextlib.contextmanager
def entry_in_use(entry_dir: Path) -> Iterator[None]:
    """Keep the cache entry `entry_dir` from eviction while the block runs (e.g. a compile cache
    bound into a running job): its lock taken shared (builders and the eviction take it
    exclusively: a build waits for the block, an eviction skips the entry), and its use
    recorded at both ends. Take it before looking at the entry: it may have been evicted just
    before, and is then made again under it."""
    entry_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = entry_dir.with_name(entry_dir.name + LOCK_SUFFIX)
    descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        touch_used(entry_dir)
        try:
            yield
        finally:
            touch_used(entry_dir)
    finally:
        os.close(descriptor)


def _walk(path: Path) -> Iterator[tuple[int, int, bool]]:
    """Every inode under `path` (itself included, symlinks not followed): its number, the
    bytes its blocks occupy, and whether it may be linked elsewhere too (a file with more than
    one link; a dir never is). What vanishes meanwhile (a concurrent build) is left out. One
    filesystem is assumed: hard links cannot cross one anyway."""
    with contextlib.suppress(OSError):
        info = path.lstat()
        yield info.st_ino, info.st_blocks * 512, info.st_nlink > 1 and not path.is_dir()
    stack = [path]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        continue
                    yield info.st_ino, info.st_blocks * 512, info.st_nlink > 1 and not is_dir
                    if is_dir:
                        stack.append(Path(entry.path))
        except (NotADirectoryError, FileNotFoundError, PermissionError):
            continue


def cache_size_bytes(root: Path) -> int:
    """The disk space the cache at `root` takes: each inode once, hard links or not."""
    seen: set[int] = set()
    total = 0
    for inode, size, shared in _walk(root):
        if not shared:
            total += size
        elif inode not in seen:
            seen.add(inode)
            total += size
    return total


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One removable thing in the cache: an entry `<area>/<key>`, or a staging dir that a
    builder left (`staging_pid`: whose it was)."""

    path: Path
    area: str
    key: str
    last_used: float
    staging_pid: int | None = None

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.key + LOCK_SUFFIX)

    @property
    def marker_path(self) -> Path:
        return self.path.with_name(self.key + USED_SUFFIX)


def _mtime(path: Path) -> float | None:
    try:
        return path.lstat().st_mtime
    except OSError:
        return None


def _entry(path: Path, area: str) -> Entry | None:
    name = path.name
    if name.endswith((LOCK_SUFFIX, USED_SUFFIX)):
        return None
    staging = _STAGING.match(name)
    key = staging.group("key") if staging else name
    times = [_mtime(path.with_name(key + suffix)) for suffix in (USED_SUFFIX, LOCK_SUFFIX)]
    times.append(_mtime(path))
    known = [value for value in times if value is not None]
    if not known:
        return None  # gone meanwhile
    return Entry(
        path=path,
        area=area,
        key=key,
        last_used=max(known),
        staging_pid=int(staging.group("pid")) if staging else None,
    )


def cache_entries(root: Path) -> list[Entry]:
    """The entries of every area, in the order they are evicted: staging dirs first, then the
    cheap areas' entries and then the torch bases, each least recently used first."""
    found: list[Entry] = []
    for area in (*CHEAP_AREAS, BASES_AREA):
        try:
            children = sorted((root / area).iterdir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        found += [entry for child in children if (entry := _entry(child, area))]

    def order(entry: Entry) -> tuple[int, float]:
        if entry.staging_pid is not None:
            return 0, entry.last_used
        return (2 if entry.area == BASES_AREA else 1), entry.last_used

    return sorted(found, key=order)


@dataclass(kw_only=True)
class Usage:
    """The cache's space, and what removing each entry frees: the bytes only it holds (its dirs,
    its files of one link), and its files of several links, each counted once across the cache
    and freed with its last link under the root."""

    links: dict[int, int] = field(default_factory=dict)  # links under the root, by inode
    sizes: dict[int, int] = field(default_factory=dict)
    own_bytes: dict[Path, int] = field(default_factory=dict)
    shared: dict[Path, array[int]] = field(default_factory=dict)
    total: int = 0

    def add(self, path: Path, *, entry: bool) -> None:
        own = 0
        linked = array("Q")
        for inode, size, shared in _walk(path):
            if not shared:
                own += size
                continue
            count = self.links.get(inode, 0)
            if count == 0:
                self.sizes[inode] = size
                self.total += size
            self.links[inode] = count + 1
            linked.append(inode)
        self.total += own
        if entry:
            self.own_bytes[path] = own
            self.shared[path] = linked

    def remove(self, path: Path) -> int:
        """Account for `path` (an entry) being deleted; returns the bytes that frees."""
        freed = self.own_bytes.pop(path, 0)
        for inode in self.shared.pop(path, array("Q")):
            self.links[inode] -= 1
            if self.links[inode] == 0:
                freed += self.sizes.pop(inode)
                del self.links[inode]
        self.total -= freed
        return freed


def _count_one(usage: Usage, directory: Path) -> None:
    """A dir's own inode, without its content."""
    with contextlib.suppress(OSError):
        usage.total += directory.lstat().st_blocks * 512


def _children(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def measure(root: Path, entries: list[Entry]) -> Usage:
    """The usage of the whole cache at `root`, with the inodes of each of `entries` noted."""
    usage = Usage()
    paths = {entry.path for entry in entries}
    for path in paths:
        usage.add(path, entry=True)
    _count_one(usage, root)
    for top in _children(root):
        if top.name not in (*CHEAP_AREAS, BASES_AREA) or top.is_symlink() or not top.is_dir():
            usage.add(top, entry=False)
            continue
        _count_one(usage, top)  # an area: its own dir, lock files, markers; entries apart
        for child in _children(top):
            if child not in paths:
                usage.add(child, entry=False)
    return usage


# --- eviction ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EvictionReport:
    """What one eviction did. Paths are relative to the cache root."""

    max_bytes: int
    before_bytes: int
    after_bytes: int
    removed: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # in use (lock held): kept
    recent: list[str] = field(default_factory=list)  # used within min_idle_s: kept
    pruned: bool = False  # `uv cache prune` ran
    prune_error: str = ""

    @property
    def over_cap(self) -> bool:
        return self.after_bytes > self.max_bytes


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_entry(entry: Entry) -> bool:
    """Remove `entry` under its lock, taken without waiting; False (and nothing removed) when
    the lock is held: someone builds or copies the entry. The entry is first renamed away, so a
    reader that takes no lock sees it whole or not at all."""
    entry.path.parent.mkdir(parents=True, exist_ok=True)
    # O_RDWR without O_TRUNC: opening must not touch the lock file's mtime (a last-use signal).
    descriptor = os.open(entry.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if entry.staging_pid is not None:
            _delete(entry.path)
            return True
        trash = entry.path.with_name(f"{entry.key}.tmp{os.getpid()}")
        _delete(trash)
        try:
            entry.path.rename(trash)
        except FileNotFoundError:
            return True  # removed meanwhile
        _delete(trash)
        entry.marker_path.unlink(missing_ok=True)
        return True
    finally:
        os.close(descriptor)  # releases the lock


def _prune_uv(*, root: Path, uv: str) -> str:
    """`uv cache prune` on the cache's uv dir; returns why it failed ("" when it did not)."""
    uv_cache = root / "uv"
    if not uv_cache.is_dir():
        return ""
    env = {key: value for key, value in os.environ.items() if not key.startswith("UV_")}
    env.update({"UV_CACHE_DIR": str(uv_cache), "UV_NO_PROGRESS": "1"})
    try:
        completed = subprocess.run(  # noqa: S603
            [uv, "cache", "prune", "--cache-dir", str(uv_cache)],
            env=env,
            capture_output=True,
            text=True,
            timeout=PRUNE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"uv cache prune did not finish in {PRUNE_TIMEOUT_S} s"
    except OSError as exc:
        return f"uv cache prune could not run: {exc}"
    if completed.returncode != 0:
        lines = (completed.stderr or completed.stdout).strip().splitlines()
        return f"uv cache prune failed: {lines[-1] if lines else completed.returncode}"
    return ""


def _remove_stale_staging(entries: list[Entry], usage: Usage, removed: list[str]) -> None:
    """Staging dirs whose builder is dead (a killed job): garbage, removed whatever the size."""
    for entry in entries:
        if entry.staging_pid is None or _pid_alive(entry.staging_pid):
            continue
        if remove_entry(entry):
            usage.remove(entry.path)
            removed.append(f"{entry.area}/{entry.path.name}")


def evict(
    root: Path, *, max_bytes: int, min_idle_s: float = 0.0, uv: str | None = None
) -> EvictionReport:
    """Bring the cache at `root` under `max_bytes`: remove entries, least recently used first,
    bases last; skip those in use (lock held) or used within `min_idle_s`; then, if still
    over and `uv` (its executable) is given, `uv cache prune`. See the module's docstring."""
    entries = cache_entries(root)
    usage = measure(root, entries)
    before = usage.total
    removed: list[str] = []
    busy: list[str] = []
    recent: list[str] = []
    _remove_stale_staging(entries, usage, removed)
    cutoff = time.time() - min_idle_s
    for entry in entries:
        if usage.total <= max_bytes:
            break
        if entry.staging_pid is not None:
            continue
        name = f"{entry.area}/{entry.key}"
        if entry.last_used > cutoff:
            recent.append(name)
        elif remove_entry(entry):
            usage.remove(entry.path)
            removed.append(name)
        else:
            busy.append(name)
    after, pruned, prune_error = usage.total, False, ""
    if after > max_bytes and uv:
        prune_error = _prune_uv(root=root, uv=uv)
        pruned, after = not prune_error, cache_size_bytes(root)
    return EvictionReport(
        max_bytes=max_bytes,
        before_bytes=before,
        after_bytes=after,
        removed=removed,
        busy=busy,
        recent=recent,
        pruned=pruned,
        prune_error=prune_error,
    )
