"""Per-job cgroup v2 groups: where the agent may make them, and one job's group.

On a cgroup v2 host (`<root>/cgroup.controllers` exists) the agent may only write in the
subtree delegated to it: the cgroup it runs in (`0::/path` in /proc/self/cgroup), given to it
by systemd (`Delegate=yes`) or by a private cgroup namespace in a container. v2 lets processes
live only in leaves once a group hands controllers to its children, so the first job moves the
processes of the subtree into the leaf `<subtree>/agent` and enables `pids`, `memory` (and
`cpu` where offered) in `<subtree>/cgroup.subtree_control`; each run then gets its own child
`<subtree>/ecoreg-<owner>-<id>` with `pids.max`, `memory.max`, `memory.swap.max` (0) and
`cpu.max`, and ends by killing every process in it (`cgroup.kill` where the kernel has it).

The cgroup root is a parameter (AGENT_CGROUP_ROOT, default /sys/fs/cgroup) so that a plain
directory can stand in for it: the writers then write the same files into it, and remove the
directories they made even though a plain directory keeps the files written into it.

The cgroup v1 writer stays in `sandbox.py` (`JobCgroup`).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

DEFAULT_CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_ROOT_ENV = "AGENT_CGROUP_ROOT"
ALLOW_UNLIMITED_ENV = "AGENT_ALLOW_UNLIMITED"
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# The leaf the agent's own processes move into, beside its jobs' groups.
AGENT_LEAF = "agent"
REQUIRED_CONTROLLERS = ("pids", "memory")
OPTIONAL_CONTROLLERS = ("cpu",)
CPU_PERIOD_US = 100_000
ENABLE_ATTEMPTS = 3
NOT_DELEGATED_HINT = "not delegated to the agent (systemd Delegate=yes, or a private cgroupns)"


def cgroup_root() -> Path:
    """AGENT_CGROUP_ROOT, else /sys/fs/cgroup."""
    return Path(os.environ.get(CGROUP_ROOT_ENV) or DEFAULT_CGROUP_ROOT)


def unlimited_allowed() -> bool:
    """Whether the operator lets untrusted code run with only the wall time limit."""
    return os.environ.get(ALLOW_UNLIMITED_ENV, "").strip().lower() in ("1", "true", "yes")


def is_v2(root: Path) -> bool:
    """A unified (v2 only) hierarchy is mounted at `root`."""
    return (root / "cgroup.controllers").is_file()


def own_cgroup_path(proc_self_cgroup: Path = PROC_SELF_CGROUP) -> str | None:
    """This process's v2 cgroup (`/path`, relative to the mount), None when it has none."""
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            return line[3:] or "/"
    return None


def delegated_subtree(*, root: Path, own_path: str | None = None) -> Path | None:
    """The group the agent may make job groups in: the one it runs in, or the parent of the
    `agent` leaf it moved into. `own_path` defaults to this process's."""
    own = own_cgroup_path() if own_path is None else own_path
    if own is None:
        return None
    parts = [part for part in own.split("/") if part]
    if parts and parts[-1] == AGENT_LEAF:
        parts = parts[:-1]
    return root.joinpath(*parts)


def cpu_max(cpus: float | None) -> str:
    """`cpu.max` for `cpus` CPUs (quota and period in µs), "max" when unlimited."""
    if cpus is None:
        return "max"
    return f"{max(1000, round(cpus * CPU_PERIOD_US))} {CPU_PERIOD_US}"


def _words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def subtree_problem(subtree: Path | None) -> str | None:
    """Why job groups cannot be made under `subtree` (read only), None when they can."""
    if subtree is None:
        return "no cgroup v2 path in /proc/self/cgroup"
    if not subtree.is_dir():
        return f"cgroup v2 subtree {subtree} does not exist"
    control = subtree / "cgroup.subtree_control"
    if not os.access(subtree, os.W_OK) or not os.access(control, os.W_OK):
        return f"cgroup v2 subtree {subtree} is not writable: {NOT_DELEGATED_HINT}"
    missing = [c for c in REQUIRED_CONTROLLERS if c not in _words(subtree / "cgroup.controllers")]
    if missing:
        return (
            f"cgroup v2 subtree {subtree} lacks the {','.join(missing)} controller(s): "
            f"{NOT_DELEGATED_HINT}"
        )
    return None


def _move_processes_to_leaf(subtree: Path) -> None:
    """v2's no-internal-processes rule: before a group hands controllers to its children, the
    processes in it (the agent and its siblings) move into a leaf of their own."""
    leaf = subtree / AGENT_LEAF
    leaf.mkdir(exist_ok=True)
    for pid in sorted(_words(subtree / "cgroup.procs")):
        try:
            (leaf / "cgroup.procs").write_text(pid)
        except OSError as exc:
            if exc.errno not in (errno.ESRCH, errno.EINVAL):  # gone, or a kernel thread
                raise


def enabled_controllers(subtree: Path) -> list[str]:
    """The controllers job groups under `subtree` get, in a fixed order."""
    # The kernel lists them bare; a plain directory standing in keeps the "+pids" written.
    enabled = {word.removeprefix("+") for word in _words(subtree / "cgroup.subtree_control")}
    return [c for c in (*REQUIRED_CONTROLLERS, *OPTIONAL_CONTROLLERS) if c in enabled]


def offered_controllers(subtree: Path) -> list[str]:
    """The controllers of ours that `subtree` may hand to job groups, in a fixed order."""
    offered = _words(subtree / "cgroup.controllers")
    return [c for c in (*REQUIRED_CONTROLLERS, *OPTIONAL_CONTROLLERS) if c in offered]


def prepare_subtree(subtree: Path) -> None:
    """Enable pids, memory (and cpu where offered) for `subtree`'s children, first moving its
    processes into the `agent` leaf if the kernel asks for it (EBUSY). Idempotent."""
    enabled = enabled_controllers(subtree)
    missing = [c for c in offered_controllers(subtree) if c not in enabled]
    if missing:
        enable_controllers(subtree, missing)


def enable_controllers(subtree: Path, controllers: list[str]) -> None:
    """Hand `controllers` to `subtree`'s children; where the kernel refuses because processes
    live in `subtree` itself (EBUSY), move them into the `agent` leaf and try again."""
    control = subtree / "cgroup.subtree_control"
    text = " ".join(f"+{c}" for c in controllers)
    for attempt in range(ENABLE_ATTEMPTS):
        try:
            control.write_text(text)
            return
        except OSError as exc:
            # A process may start in the subtree while the others move: move it too.
            if exc.errno != errno.EBUSY or attempt == ENABLE_ATTEMPTS - 1:
                raise
            _move_processes_to_leaf(subtree)


def _alive(pid: int) -> bool:
    """Running (a zombie is only waiting for its parent to read its status)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rpartition(")")[2].split()
    return bool(fields) and fields[0] not in ("Z", "X")


class ProcessGroup:
    """What a run's cgroups (v1's `sandbox.JobCgroup`, v2's `JobCgroupV2`) do with the
    processes they list (`pids`): signal them all, and kill them until none is left."""

    def pids(self) -> set[int]:
        raise NotImplementedError

    def signal_all(self, signum: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def kill_all(self, *, deadline_s: float = 30.0) -> bool:
        """SIGKILL until the group is empty; True when it is."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if not self.pids():
                return True
            self.signal_all(signal.SIGKILL)
            time.sleep(0.02)
        return not self.pids()


class JobCgroupV2(ProcessGroup):
    """One run's cgroup v2 group: its limits, its processes, its end."""

    def __init__(
        self,
        *,
        subtree: Path,
        name: str,
        pids_max: int,
        memory_bytes: int,
        cpus: float | None,
        controllers: list[str],
    ) -> None:
        self.name = name
        self.controllers = controllers
        self.directory = subtree / name
        self.pids_max = pids_max
        self.memory_bytes = memory_bytes
        self.cpus = cpus
        self.notes: list[str] = []

    @property
    def dirs(self) -> list[Path]:
        return [self.directory]

    def create(self) -> None:
        """Make the group and write its limits; removes it again if any write fails."""
        try:
            self.directory.mkdir()
            (self.directory / "pids.max").write_text(str(self.pids_max))
            (self.directory / "memory.max").write_text(str(self.memory_bytes))
            self._write_swap_max()
            if "cpu" in self.controllers:
                (self.directory / "cpu.max").write_text(cpu_max(self.cpus))
            elif self.cpus is not None:
                self.notes.append("cpu limit not applied: no cpu controller delegated")
        except OSError:
            self.remove()
            raise

    def _write_swap_max(self) -> None:
        try:
            (self.directory / "memory.swap.max").write_text("0")
        except OSError:
            # Without swap accounting the kernel offers no memory.swap.max.
            self.notes.append("swap not limited: no memory.swap.max")

    def join_current_process(self) -> None:
        """Called in the child between fork and exec."""
        with open(self.directory / "cgroup.procs", "w") as procs:
            procs.write(str(os.getpid()))

    def pids(self) -> set[int]:
        try:
            text = (self.directory / "cgroup.procs").read_text()
        except OSError:
            return set()
        return {int(word) for word in text.split() if word.isdigit() and _alive(int(word))}

    def kill_all(self, *, deadline_s: float = 30.0) -> bool:
        """Kill the whole group (`cgroup.kill`, else SIGKILL to each process) until it is
        empty; True when it is."""
        kill_file = self.directory / "cgroup.kill"
        if kill_file.exists():
            try:
                kill_file.write_text("1")
            except OSError:
                pass
        return super().kill_all(deadline_s=deadline_s)

    def events(self) -> list[str]:
        """What the kernel counted: the process limit hit, processes killed for memory."""
        notes = list(self.notes)
        if _event_count(self.directory / "pids.events", "max") > 0:
            notes.append(f"process limit reached (pids.max={self.pids_max})")
        if _event_count(self.directory / "memory.events", "oom_kill") > 0:
            notes.append(f"memory limit reached ({self.memory_bytes} bytes)")
        return notes

    def remove(self) -> None:
        remove_group(self.directory)


def _event_count(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def remove_group(directory: Path) -> bool:
    """rmdir a group (its interface files go with it); a plain directory standing in for a
    cgroup keeps the files written into it, so those are unlinked first. True when gone."""
    try:
        directory.rmdir()
        return True
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:
            return False
    for entry in directory.iterdir():
        if entry.is_file() and not entry.is_symlink():
            try:
                entry.unlink()
            except OSError:
                return False
    try:
        directory.rmdir()
    except OSError:
        return False
    return True
