"""Job dirs under the agent's work root: made per job, emptied after it, big trees deleted later.

A job dir keeps only `log.txt` and `result.json` once its job has finished. Its venv (thousands
of hard links into the shared cache) is moved to `<work root>/.trash` and deleted in the
background, so deleting it is not part of the job's time.
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


def default_work_root() -> Path:
    """AGENT_WORK_ROOT, else `<tempdir>/ecosystem-registry-agent`: the sandbox's uid must
    reach the job dirs, so never under a 0700 home."""
    configured = os.environ.get("AGENT_WORK_ROOT")
    if configured:
        return Path(configured).expanduser()
    return Path(tempfile.gettempdir()) / "ecosystem-registry-agent"


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


def prepare_job_dir(*, job: Job, work_root: Path) -> JobPaths:
    """A new dir for `job` under `work_root`, reachable by the sandbox's uid."""
    work_root.mkdir(parents=True, exist_ok=True)
    label = f"{job.cell_id}-{job.attempt}" if job.cell_id is not None else "local"
    job_dir = work_root / f"job-{label}-{uuid.uuid4().hex[:8]}"
    job_dir.mkdir(mode=0o755)
    job_dir.chmod(0o755)
    return JobPaths(root=job_dir)


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
