"""Job dirs under the agent's work root: made per job, emptied after it, big trees deleted later.

A job dir keeps only `log.txt` and `result.json` once its job has finished. Its venv (thousands
of hard links into the shared cache) is moved to `<work root>/.trash` and deleted in the
background, so deleting it is not part of the job's time.

A job dir names the process that made it in its `.owner` file, and the worker's scratch dir for
a cell (`make_scratch_dir`, in the system's temp dir) carries its owner in its name
(`owners.Owner`). `sweep_stale` removes, at worker start, what a killed job of this agent left:
job dirs that never finished and scratch dirs whose owner is gone, and the trash.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from ci_runners.agent.contracts import Job
from ci_runners.agent.owners import Owner

OWNER_FILE = ".owner"
JOB_DIR_PREFIX = "job-"
SCRATCH_PREFIX = "ecoreg-cell-"


def default_work_root() -> Path:
    """AGENT_WORK_ROOT, else `<tempdir>/ecosystem-registry-agent`: the sandbox's uid must
    reach the job dirs, so never under a 0700 home."""
    configured = os.environ.get("AGENT_WORK_ROOT")
    if configured:
        return Path(configured).expanduser()
    return Path(tempfile.gettempdir()) / "ecosystem-registry-agent"


def compile_cache_root(work_root: Path) -> Path:
    """Where the projects' torch.compile caches live (`<root>/compile/<key>`, see
    `pytest_run.compile_cache_dir`): under the work root, which the sandbox's uid reaches, and
    evicted as a cache of its own (`cache.evict`, AGENT_COMPILE_CACHE_MAX_BYTES)."""
    return work_root / "cache"


@dataclass(frozen=True, kw_only=True)
class JobPaths:
    """One job's dir and what goes in it."""

    root: Path

    @property
    def work(self) -> Path:
        """The checkout and the test reports: the test run's only writable dir."""
        return self.root / "work"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def plugin(self) -> Path:
        """The warnings plugin, bound read-only into the sandbox."""
        return self.root / "plugin"

    @property
    def log(self) -> Path:
        return self.root / "log.txt"

    @property
    def result(self) -> Path:
        return self.root / "result.json"

    @property
    def owner(self) -> Path:
        """Who made the dir (`owners.Owner`), while its job runs; removed once it finished."""
        return self.root / OWNER_FILE


def prepare_job_dir(*, job: Job, work_root: Path, owner: Owner | None = None) -> JobPaths:
    """A new dir for `job` under `work_root`, reachable by the sandbox's uid, owned by `owner`
    (default: this process)."""
    work_root.mkdir(parents=True, exist_ok=True)
    label = f"{job.cell_id}-{job.attempt}" if job.cell_id is not None else "local"
    job_dir = work_root / f"{JOB_DIR_PREFIX}{label}-{uuid.uuid4().hex[:8]}"
    job_dir.mkdir(mode=0o755)
    job_dir.chmod(0o755)
    paths = JobPaths(root=job_dir)
    paths.owner.write_text(str(owner or Owner.current()))
    return paths


def make_scratch_dir(*, root: Path | None = None, owner: Owner | None = None) -> Path:
    """A private dir (in the system's temp dir, or `root`) for one cell's worker-side files,
    named after its owner (default: this process) so that a later agent can sweep it."""
    prefix = f"{SCRATCH_PREFIX}{owner or Owner.current()}-"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def sweep_stale(*, work_root: Path, scratch_root: Path | None = None) -> list[Path]:
    """Remove what killed jobs of this agent left; returns the job and scratch dirs removed.

    A job dir goes when its owner is gone and its job never finished (no `result.json`); a
    scratch dir when its owner is gone. Other agents' dirs, live owners' dirs, finished jobs'
    records and dirs that name no owner stay. The trash is emptied too.
    """
    removed = [path for path in _stale_job_dirs(work_root) if _remove(path)]
    scratch_root = scratch_root or Path(tempfile.gettempdir())
    removed += [path for path in _stale_scratch_dirs(scratch_root) if _remove(path)]
    trash = work_root / ".trash"
    if trash.is_dir():
        for leftover in trash.iterdir():
            remove_tree(leftover)
    return removed


def _stale_job_dirs(work_root: Path) -> list[Path]:
    stale = []
    for job_dir in sorted(work_root.glob(f"{JOB_DIR_PREFIX}*")):
        paths = JobPaths(root=job_dir)
        try:
            owner = Owner.parse(paths.owner.read_text())
        except OSError:
            continue
        finished = paths.result.exists()
        if owner is not None and not finished and owner.is_stale_for_this_agent():
            stale.append(job_dir)
    return stale


def _stale_scratch_dirs(scratch_root: Path) -> list[Path]:
    stale = []
    for scratch in sorted(scratch_root.glob(f"{SCRATCH_PREFIX}*")):
        # `<prefix><owner>-<random>`: the random part never holds a dash.
        owner = Owner.parse(scratch.name[len(SCRATCH_PREFIX) :].rpartition("-")[0])
        if owner is not None and scratch.is_dir() and owner.is_stale_for_this_agent():
            stale.append(scratch)
    return stale


def _remove(path: Path) -> bool:
    remove_tree(path)
    return not path.exists()


_deleting: set[Path] = set()
_deleting_lock = threading.Lock()


def _delete_in_background(path: Path) -> None:
    with _deleting_lock:
        if path in _deleting:
            return
        _deleting.add(path)

    def delete() -> None:
        try:
            remove_tree(path)
        finally:
            with _deleting_lock:
                _deleting.discard(path)

    threading.Thread(target=delete, daemon=True).start()


def discard_later(*, path: Path, work_root: Path) -> None:
    """Move a big tree (a venv: thousands of hard links) aside and delete it in the background.

    The rename is instant; deleting takes a second or more and is not part of the job.
    """
    if not path.exists():
        return
    trash = work_root / ".trash"
    trash.mkdir(exist_ok=True)
    target = trash / uuid.uuid4().hex
    try:
        path.rename(target)
    except OSError:
        remove_tree(path)
        return
    _delete_in_background(target)


def sweep_trash(*, work_root: Path) -> None:
    """Trees an earlier process did not finish deleting."""
    trash = work_root / ".trash"
    if trash.is_dir():
        for leftover in trash.iterdir():
            _delete_in_background(leftover)


def remove_tree(path: Path) -> None:
    """Remove `path` and all in it, also dirs the sandbox left read-only; never raises."""

    def retry_writable(function, failed_path, _exc_info):  # noqa: ANN001
        if function not in (os.unlink, os.rmdir, os.remove):
            return  # os.open / os.scandir on something gone already
        try:
            os.chmod(os.path.dirname(failed_path), stat.S_IRWXU)
            function(failed_path)
        except OSError:
            pass  # gone already, or truly stuck: the sweep tries again next job

    try:
        shutil.rmtree(path, onerror=retry_writable)
    except OSError:
        pass
