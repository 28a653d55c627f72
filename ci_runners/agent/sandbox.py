"""Run an untrusted command under bubblewrap with cgroup limits, a wall clock and an output cap.

The command runs as an unprivileged uid in its own user, pid, net, ipc and uts namespaces, sees
the system and the venv read-only and only its work dir (and a private /tmp, capped at
AGENT_TMP_BYTES, 1 GiB) writable. bwrap sets no other resource caps,
so each run gets its own cgroup v1 `pids` and `memory` groups, or on a cgroup v2 host its own
group under the agent's delegated subtree (`cgroups.py`); a run ends by killing every process in
them, which no child escapes.

It fails closed: where no per-job limits can be enforced, untrusted code is refused
(`SandboxLimitsUnavailable`) unless the operator sets AGENT_ALLOW_UNLIMITED=1, which each run
then logs as a warning and notes in its log. AGENT_CGROUP_ROOT moves the cgroup root (default
/sys/fs/cgroup).

A run's cgroups are named `ecoreg-<owner>-<id>` (`owners.Owner`: the agent's name, the pid and
start time of the process that made them). An agent killed with SIGKILL cannot remove its
groups; `reap_stale_cgroups` later removes those of this agent whose owner is gone (killing what
still runs in them), and never another agent's or a live job's.

The sandbox never shares the host network: 127.0.0.1 services (Redis, PostgreSQL) have no
passwords.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import select
import shutil
import signal
import subprocess  # noqa: S404 - bwrap is run with argument lists, never a shell
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISUID

from ci_runners.agent import cgroups, gpu
from ci_runners.agent.cgroups import JobCgroupV2, ProcessGroup, cgroup_root, unlimited_allowed
from ci_runners.agent.owners import Owner, agent_tag, process_start_time

logger = logging.getLogger(__name__)

BWRAP = "/usr/bin/bwrap"
SANDBOX_UID = 65534
SANDBOX_GID = 65534
SANDBOX_HOME = "/home/sandbox"
CGROUP_ROOT = cgroups.DEFAULT_CGROUP_ROOT
CGROUP_PREFIX = "ecoreg-"
DEFAULT_PIDS_MAX = 256
DEFAULT_MEMORY_BYTES = 4 * 1024**3
DEFAULT_OUTPUT_KEEP_BYTES = 64 * 1024
# The size cap of the sandbox's private /tmp (a tmpfs: it would otherwise fill the host's RAM).
DEFAULT_TMP_BYTES = 1024**3
DEFAULT_KILL_GRACE_S = 3.0
# At its wall time a run's command is interrupted (SIGINT: pytest then writes its reports) and
# everything is killed this much later.
DEFAULT_INTERRUPT_GRACE_S = 5.0
# The command's pid inside the sandbox: bwrap's own init is 1 (`--unshare-pid`).
COMMAND_PID_IN_SANDBOX = 2
STOP_POLL_S = 1.0
DEFAULT_DISK_BYTES = 10 * 1024**3
DISK_POLL_S = 2.0
_CGROUP_NAME = re.compile(
    r"^ecoreg-(?P<agent>[A-Za-z0-9_.-]+)-(?P<pid>\d+)-(?P<start>\d+)-(?P<id>[0-9a-f]{12})$"
)
_ETC_FILES = (
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "localtime",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
)


class SandboxUnavailable(Exception):
    """bwrap is missing or cannot start a trivial sandbox."""


class SandboxLimitsUnavailable(SandboxUnavailable):
    """No per-job limits can be enforced here, and AGENT_ALLOW_UNLIMITED is not set."""


@dataclass(frozen=True, kw_only=True)
class Limits:
    pids_max: int = DEFAULT_PIDS_MAX
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    output_keep_bytes: int = DEFAULT_OUTPUT_KEEP_BYTES
    kill_grace_s: float = DEFAULT_KILL_GRACE_S
    interrupt_grace_s: float = DEFAULT_INTERRUPT_GRACE_S
    # CPUs a run may use (cgroup v2 `cpu.max`); None: no cap.
    cpus: float | None = None
    # What a run may write into its work dir (checked every DISK_POLL_S; the run is killed
    # past it: `SandboxRun.disk_quota_exceeded`).
    disk_bytes: int = DEFAULT_DISK_BYTES

    @classmethod
    def from_environment(cls) -> Limits:
        return cls(
            pids_max=int(os.environ.get("AGENT_PIDS_MAX", DEFAULT_PIDS_MAX)),
            memory_bytes=int(os.environ.get("AGENT_MEMORY_BYTES", DEFAULT_MEMORY_BYTES)),
            cpus=_cpus_from_environment(),
            disk_bytes=int(os.environ.get("AGENT_JOB_DISK_BYTES", DEFAULT_DISK_BYTES)),
        )


def _cpus_from_environment() -> float | None:
    """AGENT_CPUS: how many CPUs a run may use (e.g. 2 or 1.5); unset or empty: no cap."""
    text = os.environ.get("AGENT_CPUS", "").strip()
    if not text:
        return None
    try:
        cpus = float(text)
    except ValueError:
        cpus = 0.0
    if not 0 < cpus < 1e6:
        raise ValueError(f"AGENT_CPUS must be a positive number of CPUs, not {text!r}")
    return cpus


def tmp_bytes_from_environment() -> int:
    """AGENT_TMP_BYTES: the size cap of the sandbox's /tmp, in bytes (default 1 GiB)."""
    text = os.environ.get("AGENT_TMP_BYTES", "").strip()
    if not text:
        return DEFAULT_TMP_BYTES
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"AGENT_TMP_BYTES must be a positive number of bytes, not {text!r}")
    return int(text)


@dataclass(frozen=True, kw_only=True)
class SandboxSpec:
    command: list[str]
    work_dir: Path
    cwd: Path
    ro_binds: list[Path] = field(default_factory=list)
    ro_binds_to: dict[str, Path] = field(default_factory=dict)
    # Writable dirs besides `work_dir`, bound at the given path (the project's compile cache).
    rw_binds_to: dict[str, Path] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 900.0
    gpu: bool = True
    # The size cap of the sandbox's /tmp: writing past it fails with ENOSPC.
    tmp_bytes: int = field(default_factory=tmp_bytes_from_environment)


@dataclass(frozen=True, kw_only=True)
class SandboxRun:
    exit_code: int | None
    timed_out: bool
    # Ended early because `should_stop` said so (exit_code is then None too).
    stopped: bool
    duration_s: float
    output: str
    output_bytes: int
    cut_bytes: int
    notes: list[str]
    # Killed for writing more than `Limits.disk_bytes` into its work dir.
    disk_quota_exceeded: bool = False


def dir_size_bytes(path: Path) -> int:
    """Bytes `path` takes on disk (allocated blocks), without following links; 0 if gone."""
    total = 0
    pending = [str(path)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += info.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
    return total


class OutputCap:
    """Keeps the first and last `keep` bytes of a stream and counts what was cut."""

    def __init__(self, *, keep: int) -> None:
        self.keep = keep
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > 4 * self.keep:
                del self.tail[: len(self.tail) - self.keep]

    @property
    def cut(self) -> int:
        return max(0, self.total - len(self.head) - min(len(self.tail), self.keep))

    def text(self) -> str:
        tail = bytes(self.tail[-self.keep :]) if self.tail else b""
        middle = b""
        if self.cut:
            middle = f"\n[... output cut: {self.cut} bytes not kept ...]\n".encode()
        return (bytes(self.head) + middle + tail).decode("utf-8", errors="replace")


def cgroup_name_prefix(*, pid: int | None = None) -> str:
    """`ecoreg-<agent>-<pid>-<start>-`: the start of the names of the cgroups `pid` makes."""
    pid = os.getpid() if pid is None else pid
    return f"{CGROUP_PREFIX}{agent_tag()}-{pid}-{process_start_time(pid) or 0}-"


class JobCgroup(ProcessGroup):
    """A cgroup v1 `pids` + `memory` pair for one run, named after its agent and owner."""

    def __init__(self, *, limits: Limits, root: Path = CGROUP_ROOT) -> None:
        name = f"{cgroup_name_prefix()}{uuid.uuid4().hex[:12]}"
        self.name = name
        self.pids_dir = root / "pids" / name
        self.memory_dir = root / "memory" / name
        self.limits = limits

    @property
    def dirs(self) -> list[Path]:
        return [self.pids_dir, self.memory_dir]

    def create(self) -> None:
        try:
            for directory in self.dirs:
                directory.mkdir()
            (self.pids_dir / "pids.max").write_text(str(self.limits.pids_max))
            (self.memory_dir / "memory.limit_in_bytes").write_text(str(self.limits.memory_bytes))
            swap = self.memory_dir / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(str(self.limits.memory_bytes))
        except OSError:
            self.remove()
            raise

    def join_current_process(self) -> None:
        """Called in the child between fork and exec."""
        for directory in self.dirs:
            with open(directory / "cgroup.procs", "w") as procs:
                procs.write(str(os.getpid()))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for directory in self.dirs:
            try:
                text = (directory / "cgroup.procs").read_text()
            except OSError:
                continue
            found.update(int(line) for line in text.split())
        return found

    def events(self) -> list[str]:
        notes = []
        try:
            events = (self.pids_dir / "pids.events").read_text().split()
            if len(events) >= 2 and events[0] == "max" and int(events[1]) > 0:
                notes.append(f"process limit reached (pids.max={self.limits.pids_max})")
        except (OSError, ValueError):
            pass
        try:
            oom = (self.memory_dir / "memory.oom_control").read_text()
            for line in oom.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    notes.append(f"memory limit reached ({self.limits.memory_bytes} bytes)")
        except (OSError, ValueError):
            pass
        return notes

    def remove(self) -> None:
        for directory in self.dirs:
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass


RunCgroup = JobCgroup | JobCgroupV2


def _group_parents(root: Path) -> list[tuple[str, Path]]:
    """Where this host's job groups are made, each with the label they are reported under:
    v1 `pids/` and `memory/`, or v2 `cgroup2/` (the agent's delegated subtree)."""
    if cgroups.is_v2(root):
        subtree = cgroups.delegated_subtree(root=root)
        return [("cgroup2", subtree)] if subtree is not None else []
    return [("pids", root / "pids"), ("memory", root / "memory")]


def owned_cgroups(*, pid: int | None = None, root: Path | None = None) -> set[str]:
    """`controller/name` of the cgroups that process `pid` (default: this one) made.

    For a process that is gone, those of any process that had its pid.
    """
    root = cgroup_root() if root is None else root
    pid = os.getpid() if pid is None else pid
    prefix = cgroup_name_prefix(pid=pid)
    if process_start_time(pid) is None:
        prefix = f"{CGROUP_PREFIX}{agent_tag()}-{pid}-"
    found: set[str] = set()
    for label, parent in _group_parents(root):
        found |= {f"{label}/{group.name}" for group in parent.glob(f"{prefix}*")}
    return found


def _empty_and_remove(directory: Path, *, deadline_s: float = 10.0) -> bool:
    end = time.monotonic() + deadline_s
    while True:
        try:
            pids = [int(line) for line in (directory / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return True
        except (OSError, ValueError):
            pids = []
        if not pids:
            break
        if time.monotonic() >= end:
            return False
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    return cgroups.remove_group(directory)


def reap_stale_cgroups(*, root: Path | None = None) -> list[str]:
    """Remove this agent's cgroups whose owning process is gone (an agent killed mid-job).

    Their processes are killed first. Other agents' groups, groups whose owner still runs
    (another pool process's live job) and groups named otherwise are left alone. Returns the
    `controller/name` of the groups removed.
    """
    root = cgroup_root() if root is None else root
    if cgroups_usable(root) is not None:
        return []
    tag = agent_tag()
    removed: list[str] = []
    for controller, parent in _group_parents(root):
        try:
            candidates = sorted(parent.glob(f"{CGROUP_PREFIX}*"))
        except OSError:
            continue
        for directory in candidates:
            match = _CGROUP_NAME.match(directory.name)
            if not match or match.group("agent") != tag or not directory.is_dir():
                continue
            owner = Owner(agent=tag, pid=int(match.group("pid")), start=int(match.group("start")))
            if owner.alive():
                continue
            if _empty_and_remove(directory):
                removed.append(f"{controller}/{directory.name}")
    return removed


def cgroups_usable(root: Path | None = None) -> str | None:
    """None when per-job cgroups can be made (v1, or v2 in the agent's delegated subtree),
    else why not. Read only; `root` defaults to AGENT_CGROUP_ROOT, else /sys/fs/cgroup."""
    root = cgroup_root() if root is None else root
    if cgroups.is_v2(root):
        return cgroups.subtree_problem(cgroups.delegated_subtree(root=root))
    if os.geteuid() != 0:
        return "not running as root"
    for controller in ("pids", "memory"):
        if not os.access(root / controller, os.W_OK):
            return (
                f"no writable cgroup: no cgroup v2 hierarchy ({root}/cgroup.controllers) and "
                f"no writable cgroup v1 '{controller}' controller ({root}/{controller})"
            )
    return None


def limits_refusal(why_not: str) -> str:
    """The message of a job refused for want of limits."""
    return (
        f"sandbox limits unavailable: {why_not}; untrusted code is not run without per-job "
        f"limits (AGENT_ALLOW_UNLIMITED=1 runs it with only the wall time limit)"
    )


def check_limits() -> None:
    """Raise SandboxLimitsUnavailable unless per-job limits can be enforced here or the
    operator allows running without them (AGENT_ALLOW_UNLIMITED=1)."""
    why_not = cgroups_usable()
    if why_not and not unlimited_allowed():
        raise SandboxLimitsUnavailable(limits_refusal(why_not))


def limits_description() -> str:
    """The per-job limits this host enforces, in a few words for the fleet page:
    "bwrap + cgroup v1 pids,memory", "bwrap + cgroup v2 pids,memory,cpu",
    "bwrap, NO limits (AGENT_ALLOW_UNLIMITED): <why>" or "bwrap, jobs refused: <why>"."""
    root = cgroup_root()
    why_not = cgroups_usable(root)
    if why_not:
        if unlimited_allowed():
            return f"bwrap, NO limits (AGENT_ALLOW_UNLIMITED): {why_not}"
        return f"bwrap, jobs refused: {why_not}"
    if not cgroups.is_v2(root):
        return "bwrap + cgroup v1 pids,memory"
    subtree = cgroups.delegated_subtree(root=root)
    offered = cgroups.offered_controllers(subtree) if subtree else []
    return f"bwrap + cgroup v2 {','.join(offered)}"


def runs_as_root() -> bool:
    return os.geteuid() == 0


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in _ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


@functools.cache
def tmpfs_size_supported() -> bool:
    """bwrap 0.7 and later can cap a tmpfs (`--size`); without it the job's memory limit still
    bounds the sandbox's /tmp (tmpfs pages are charged to the job's memory cgroup). A setuid
    bwrap refuses `--size`."""
    try:
        if os.stat(BWRAP).st_mode & S_ISUID:
            return False
        completed = subprocess.run(  # noqa: S603
            [BWRAP, "--help"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return "--size" in completed.stdout + completed.stderr


DEV_ROOT = Path("/dev")
# The driver's shared nodes every CUDA process opens (besides its GPU's /dev/nvidiaN).
GPU_CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")


class NoGpuAvailable(SandboxUnavailable):
    """The job needs a GPU (`needs_gpu`) and this runner has none, or not the one assigned."""


def _host_gpu(*, dev_root: Path, index: int) -> gpu.GpuInfo | None:
    """What NVML (or nvidia-smi) says of GPU `index`; None for a stand-in dev root (tests),
    which no driver stands behind."""
    return gpu.gpu_info(index) if dev_root == DEV_ROOT else None


def job_gpu_node(*, dev_root: Path = DEV_ROOT, index: int | None = None) -> Path | None:
    """The /dev/nvidiaN node of the job's GPU (N: its minor number, from NVML; where NVML
    cannot tell, the host index), or None when this host has no such node."""
    index = gpu.job_gpu_index() if index is None else index
    info = _host_gpu(dev_root=dev_root, index=index)
    minor = info.minor if info is not None and info.minor is not None else index
    node = dev_root / f"nvidia{minor}"
    return node if node.exists() else None


def check_gpu(*, needs_gpu: bool, dev_root: Path = DEV_ROOT) -> None:
    """Refuse (NoGpuAvailable) a job that needs a GPU on a runner without the job's GPU."""
    if needs_gpu and job_gpu_node(dev_root=dev_root) is None:
        raise NoGpuAvailable(
            f"no GPU here: the job needs one (needs_gpu) and {dev_root}/nvidia"
            f"{gpu.job_gpu_index()} does not exist; run it on a runner.cuda.* queue"
        )


def gpu_device_args(
    *, dev_root: Path = DEV_ROOT, index: int | None = None
) -> tuple[list[str], dict[str, str]]:
    """On NVIDIA hosts: ONLY the job's GPU node, the driver's control nodes, /sys read-only,
    and CUDA_VISIBLE_DEVICES naming that GPU; nothing on hosts without it.

    No other /dev/nvidiaN exists in the sandbox, so the CUDA driver cannot open the other GPUs
    and skips them (as in a container given one GPU): the job's GPU is CUDA device 0 in the
    sandbox whatever its host index. CUDA_VISIBLE_DEVICES is therefore its UUID when NVML
    knows it (right however the driver enumerates), else "0"; never the host index, which for
    GPU N > 0 would hide the only GPU the job can open."""
    index = gpu.job_gpu_index() if index is None else index
    node = job_gpu_node(dev_root=dev_root, index=index)
    if node is None:
        return [], {}
    nodes = [node, *(dev_root / name for name in GPU_CONTROL_NODES)]
    nodes += sorted((dev_root / "nvidia-caps").glob("*"))  # MIG access capabilities
    args: list[str] = []
    for path in nodes:
        if path.exists():
            inside = Path("/dev") / path.relative_to(dev_root)
            args += ["--dev-bind", str(path), str(inside)]
    args += ["--ro-bind", "/sys", "/sys"]
    info = _host_gpu(dev_root=dev_root, index=index)
    visible = info.uuid if info is not None and info.uuid else "0"
    return args, {"CUDA_VISIBLE_DEVICES": visible}


def bwrap_command(*, spec: SandboxSpec) -> tuple[list[str], dict[str, str]]:
    """The bwrap argument list and the (only) environment the command sees."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": SANDBOX_HOME,
        "LANG": "C.UTF-8",
    }
    gpu_args, gpu_env = gpu_device_args() if spec.gpu else ([], {})
    env.update(spec.env)
    env.update(gpu_env)
    args = [
        BWRAP,
        "--unshare-user",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_GID),
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        *_system_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        *(["--size", str(spec.tmp_bytes)] if tmpfs_size_supported() else []),
        "--tmpfs",
        "/tmp",  # noqa: S108 - a private tmpfs inside the sandbox
        "--tmpfs",
        "/home",
        "--dir",
        SANDBOX_HOME,
        *gpu_args,
    ]
    for path in spec.ro_binds:
        args += ["--ro-bind", str(path), str(path)]
    for destination, source in spec.ro_binds_to.items():
        args += ["--ro-bind", str(source), destination]
    for destination, source in spec.rw_binds_to.items():
        args += ["--bind", str(source), destination]
    args += ["--bind", str(spec.work_dir), str(spec.work_dir), "--chdir", str(spec.cwd)]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return [*args, "--", *spec.command], env


def _preexec(cgroup: RunCgroup | None, *, drop_privileges: bool = True) -> Callable[[], None]:
    """Join the job's cgroup before exec (so no child starts outside it), then drop root."""

    def prepare_child() -> None:
        if cgroup is not None:
            cgroup.join_current_process()
        if drop_privileges and runs_as_root():
            os.setgroups([])
            os.setgid(SANDBOX_GID)
            os.setuid(SANDBOX_UID)

    return prepare_child


def give_to_sandbox_user(path: Path) -> None:
    """The work dir must be writable by the unprivileged uid the sandbox runs as."""
    if not runs_as_root():
        return
    os.chown(path, SANDBOX_UID, SANDBOX_GID, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), SANDBOX_UID, SANDBOX_GID, follow_symlinks=False)


@functools.cache
def _probe() -> str | None:
    if not Path(BWRAP).exists() and not shutil.which("bwrap"):
        return f"{BWRAP} not found"
    scratch = Path(f"/tmp/ecoreg-probe-{uuid.uuid4().hex[:8]}")  # noqa: S108
    scratch.mkdir(mode=0o755)
    try:
        give_to_sandbox_user(scratch)
        command, env = bwrap_command(
            spec=SandboxSpec(command=["true"], work_dir=scratch, cwd=scratch)
        )
        completed = subprocess.run(  # noqa: S603
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=_preexec(None),  # noqa: PLW1509
            check=False,
        )
    except (OSError, ValueError, subprocess.SubprocessError) as exc:  # ValueError: a bad setting
        return str(exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if completed.returncode != 0:
        return (completed.stderr.strip() or f"exit {completed.returncode}")[-500:]
    return None


def check_sandbox() -> None:
    """Raise SandboxUnavailable unless bwrap can start a trivial sandbox here."""
    why = _probe()
    if why:
        raise SandboxUnavailable(f"sandbox unavailable: {why}")


def _path_reachable_by_sandbox_user(path: Path) -> bool:
    """bwrap runs as the unprivileged uid, so it must be able to reach what it binds."""
    if not runs_as_root():
        return True
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            return False
        if not mode & 0o001 and parent.stat().st_uid != SANDBOX_UID:
            return False
    return True


def _parent_pids() -> dict[int, int]:
    """pid -> parent pid of every process this host shows."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            parents[int(entry)] = int(fields[1])
    return parents


def _pid_in_innermost_namespace(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                ids = line.split()[1:]
                return int(ids[-1]) if len(ids) > 1 else None
    except (OSError, ValueError):
        pass
    return None


def sandboxed_command_pid(bwrap_pid: int) -> int | None:
    """The host pid of the command bwrap runs: bwrap's child is its init (pid 1 inside) and the
    command is the init's child that is pid 2 inside (other children of the init are orphans
    it adopted). None when it is gone."""
    parents = _parent_pids()
    inits = {pid for pid, parent in parents.items() if parent == bwrap_pid}
    for pid, parent in sorted(parents.items()):
        if parent in inits and _pid_in_innermost_namespace(pid) == COMMAND_PID_IN_SANDBOX:
            return pid
    return None


def run_sandboxed(
    *,
    spec: SandboxSpec,
    limits: Limits | None = None,
    sandbox: bool = True,
    on_output: Callable[[bytes], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SandboxRun:
    """Run `spec.command`; `sandbox=False` runs it bare (local debugging only).

    `on_output` gets every chunk of the command's output as it is read (before any cap).
    At its wall time limit the command itself gets SIGINT (pytest then stops and writes its
    reports) and, `interrupt_grace_s` later, all its processes SIGKILL; `timed_out` is set.
    `should_stop` is asked about every `STOP_POLL_S`; once it returns True the run ends at once
    (SIGTERM to all its processes, SIGKILL after the grace) with `stopped` set.
    Exceptions from either callback are the caller's: they end the run (and its processes).
    """
    limits = limits or Limits.from_environment()
    notes: list[str] = []
    command, env = _command_and_env(spec=spec, sandbox=sandbox, notes=notes)
    cgroup = _job_cgroup(limits=limits, notes=notes, required=sandbox)
    capture = OutputCap(keep=limits.output_keep_bytes)
    started = time.monotonic()
    process = _start(command=command, env=env, spec=spec, sandbox=sandbox, cgroup=cgroup)
    watch = _RunWatch(
        process=process,
        cgroup=cgroup,
        started=started,
        timeout_s=spec.timeout_s,
        limits=limits,
        sandboxed=sandbox,
        work_dir=spec.work_dir,
    )
    try:
        watch.pump(capture=capture, on_output=on_output, should_stop=should_stop, notes=notes)
        process.wait()
    finally:
        _end_run(process=process, cgroup=cgroup, notes=notes)
    if capture.cut:
        notes.append(f"output capped: {capture.cut} bytes cut")
    return SandboxRun(
        exit_code=None if watch.timed_out or watch.stopped else process.returncode,
        timed_out=watch.timed_out,
        stopped=watch.stopped,
        duration_s=round(time.monotonic() - started, 3),
        output=capture.text(),
        output_bytes=capture.total,
        cut_bytes=capture.cut,
        notes=notes,
        disk_quota_exceeded=watch.disk_quota_exceeded,
    )


def _command_and_env(
    *, spec: SandboxSpec, sandbox: bool, notes: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The bwrap command line, checked to be able to work here; or the bare command."""
    if not sandbox:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(spec.work_dir), "LANG": "C.UTF-8"}
        env.update(spec.env)
        notes.append("ran WITHOUT sandbox (--unsafe-no-sandbox)")
        return list(spec.command), env
    check_sandbox()
    if not tmpfs_size_supported():
        notes.append("sandbox /tmp not size-capped: this bwrap has no --size (bwrap < 0.7)")
    for path in [spec.work_dir, *spec.ro_binds, *spec.ro_binds_to.values()]:
        if not _path_reachable_by_sandbox_user(path):
            raise SandboxUnavailable(
                f"sandbox unavailable: {path} is not reachable by uid {SANDBOX_UID}"
            )
    return bwrap_command(spec=spec)


def _job_cgroup(*, limits: Limits, notes: list[str], required: bool) -> RunCgroup | None:
    """The run's own cgroups. Where they cannot be made, a sandboxed (`required`) run is
    refused (SandboxLimitsUnavailable) unless AGENT_ALLOW_UNLIMITED is set, which is logged
    as a warning and noted; a bare run (local debugging) only gets the note."""
    root = cgroup_root()
    why_not = cgroups_usable(root)
    if why_not is None:
        try:
            return _make_cgroup(limits=limits, root=root)
        except OSError as exc:
            why_not = f"cgroup creation failed: {exc}"
    if not required:
        notes.append(f"limits reduced: {why_not}; only the wall time limit holds")
        return None
    if not unlimited_allowed():
        raise SandboxLimitsUnavailable(limits_refusal(why_not))
    logger.warning(
        "running untrusted code WITHOUT per-job limits (AGENT_ALLOW_UNLIMITED=1): %s", why_not
    )
    notes.append(
        f"limits NOT enforced (AGENT_ALLOW_UNLIMITED=1): {why_not}; only the wall time limit holds"
    )
    return None


def _make_cgroup(*, limits: Limits, root: Path) -> RunCgroup:
    """A v2 group under the delegated subtree (made ready first) on a v2 host, else the v1
    pair; created with its limits written."""
    cgroup: RunCgroup
    subtree = cgroups.delegated_subtree(root=root) if cgroups.is_v2(root) else None
    if subtree is not None:
        cgroups.prepare_subtree(subtree)
        cgroup = JobCgroupV2(
            subtree=subtree,
            name=f"{cgroup_name_prefix()}{uuid.uuid4().hex[:12]}",
            pids_max=limits.pids_max,
            memory_bytes=limits.memory_bytes,
            cpus=limits.cpus,
            controllers=cgroups.enabled_controllers(subtree),
        )
    else:
        cgroup = JobCgroup(limits=limits, root=root)
    cgroup.create()
    return cgroup


def _start(
    *,
    command: list[str],
    env: dict[str, str],
    spec: SandboxSpec,
    sandbox: bool,
    cgroup: RunCgroup | None,
) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(  # noqa: S603
            command,
            cwd=spec.cwd if not sandbox else None,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_preexec(cgroup, drop_privileges=sandbox),  # noqa: PLW1509
        )
    except (OSError, subprocess.SubprocessError) as exc:
        if cgroup:
            cgroup.remove()
        raise SandboxUnavailable(f"sandbox unavailable: {exc}") from exc


class _RunWatch:
    """Reads a started run's output until it ends, and ends it: at its wall time limit (SIGINT
    to the command, SIGKILL to all its processes after the interrupt grace), or when
    `should_stop` says so (SIGTERM to all its processes, SIGKILL after the kill grace)."""

    def __init__(
        self,
        *,
        process: subprocess.Popen[bytes],
        cgroup: RunCgroup | None,
        started: float,
        timeout_s: float,
        limits: Limits,
        sandboxed: bool,
        work_dir: Path,
    ) -> None:
        self.process = process
        self.work_dir = work_dir
        self.disk_bytes = limits.disk_bytes
        self.next_disk_poll = started + DISK_POLL_S
        self.disk_quota_exceeded = False
        self.sandboxed = sandboxed
        self.cgroup = cgroup
        self.deadline = started + timeout_s
        self.next_stop_poll = started + STOP_POLL_S
        self.kill_grace_s = limits.kill_grace_s
        self.interrupt_grace_s = limits.interrupt_grace_s
        self.terminated_at: float | None = None
        self.timed_out = False
        self.stopped = False

    def pump(
        self,
        *,
        capture: OutputCap,
        on_output: Callable[[bytes], None] | None,
        should_stop: Callable[[], bool] | None,
        notes: list[str],
    ) -> None:
        assert self.process.stdout is not None  # noqa: S101 - Popen(stdout=PIPE) guarantees it
        stream = self.process.stdout.fileno()
        while True:
            now = time.monotonic()
            self._enforce(now=now, should_stop=should_stop, notes=notes)
            ready, _, _ = select.select([stream], [], [], self._wait_s(now))
            if ready:
                chunk = os.read(stream, 1 << 20)
                if not chunk:
                    return
                capture.feed(chunk)
                if on_output is not None:
                    on_output(chunk)
            elif self.process.poll() is not None and self.terminated_at is None:
                # The command ended but something still holds the pipe open.
                self.terminated_at = time.monotonic() - self.kill_grace_s

    def _enforce(
        self, *, now: float, should_stop: Callable[[], bool] | None, notes: list[str]
    ) -> None:
        if not self.timed_out and not self.stopped and now >= self.deadline:
            self.timed_out = True
            # The kill comes once the interrupt grace is over (`terminated_at` + kill grace).
            self.terminated_at = now + self.interrupt_grace_s - self.kill_grace_s
            self._interrupt_command()
        if should_stop is not None and self.terminated_at is None and now >= self.next_stop_poll:
            self.next_stop_poll = now + STOP_POLL_S
            if should_stop():
                self.stopped = True
                self.terminated_at = now
                notes.append("stopped on request")
                self._signal_all(signal.SIGTERM)
        if self.terminated_at is None and now >= self.next_disk_poll:
            self._enforce_disk_quota(now=now, notes=notes)
        if self.terminated_at is not None and now >= self.terminated_at + self.kill_grace_s:
            self._signal_all(signal.SIGKILL)

    def _enforce_disk_quota(self, *, now: float, notes: list[str]) -> None:
        """Past its disk quota a run is killed at once: the disk is filling, nothing waits."""
        self.next_disk_poll = now + DISK_POLL_S
        used = dir_size_bytes(self.work_dir)
        if used <= self.disk_bytes:
            return
        self.disk_quota_exceeded = True
        self.terminated_at = now - self.kill_grace_s
        notes.append(f"disk quota exceeded: {used} bytes written (limit {self.disk_bytes})")
        self._signal_all(signal.SIGKILL)

    def _wait_s(self, now: float) -> float:
        wait = 0.5 if self.terminated_at is None else 0.1
        return min(wait, max(0.0, self.deadline - now)) if not self.timed_out else wait

    def _interrupt_command(self) -> None:
        """SIGINT to the command alone: pytest ends the test it is in, writes its JUnit file
        and plugin report, and exits."""
        pid = sandboxed_command_pid(self.process.pid) if self.sandboxed else self.process.pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGINT)
        except (ProcessLookupError, PermissionError):
            pass

    def _signal_all(self, signum: int) -> None:
        if self.cgroup:
            self.cgroup.signal_all(signum)
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _end_run(
    *, process: subprocess.Popen[bytes], cgroup: RunCgroup | None, notes: list[str]
) -> None:
    """Kill whatever of the run is left and remove its cgroups (noting what they saw)."""
    if cgroup:
        notes.extend(cgroup.events())
        if not cgroup.kill_all():
            notes.append("some processes could not be killed")
        cgroup.remove()
    else:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if process.poll() is None:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()
