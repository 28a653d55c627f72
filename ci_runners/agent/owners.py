"""Which agent process made something it leaves on the host, and whether that process runs.

A job's cgroups, its job dir and the worker's scratch dir for a cell name their owner, written
`<agent>-<pid>-<start>`: the agent's name (AGENT_NAME, else the host name), the process that
made them and that process's start time (which tells a reused pid apart). A process killed
with SIGKILL cannot clean up after itself; the next agent of the same name removes what
belongs to owners that are gone (`sandbox.reap_stale_cgroups`, `workspace.sweep_stale`), and
never another agent's, nor anything of a process that still runs.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

_OWNER = re.compile(r"^(?P<agent>[A-Za-z0-9_.-]+)-(?P<pid>\d+)-(?P<start>\d+)$")


def agent_tag() -> str:
    """This agent's name as it appears in the names of what it makes."""
    name = os.environ.get("AGENT_NAME") or socket.gethostname() or "agent"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:48] or "agent"


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state first); [] when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot): tells a reused pid apart."""
    try:
        return int(_stat(pid)[19])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True, kw_only=True)
class Owner:
    """An agent process, as written into the names (or marker files) of what it makes."""

    agent: str
    pid: int
    start: int  # 0: unknown, any process with this pid counts as the owner

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(agent=agent_tag(), pid=pid, start=process_start_time(pid) or 0)

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        match = _OWNER.match(text.strip())
        if match is None:
            return None
        return cls(agent=match["agent"], pid=int(match["pid"]), start=int(match["start"]))

    def __str__(self) -> str:
        return f"{self.agent}-{self.pid}-{self.start}"

    def alive(self) -> bool:
        """The process runs (a zombie, killed and not yet reaped, does not)."""
        fields = _stat(self.pid)
        if len(fields) < 20 or fields[0] in ("Z", "X"):
            return False
        return self.start == 0 or fields[19] == str(self.start)

    def is_stale_for_this_agent(self) -> bool:
        """This agent's, and its process is gone: what it left may be removed."""
        return self.agent == agent_tag() and not self.alive()
