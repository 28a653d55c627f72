"""A cell's log as the worker keeps it: the child's output, capped, with a live tail.

Reader threads fill a `LogBuffer` from the child's two streams: stderr is the log, stdout
carries phase events (`child.parse_phase_event`). The full log sent with the result keeps its
first and last `AGENT_LOG_MAX_CHARS / 2` characters; the tail is what progress shows.
"""

from __future__ import annotations

import collections
import threading
from typing import IO

from ci_runners.agent import contracts
from ci_runners.agent.child import parse_phase_event
from ci_runners.agent.contracts import CellState

PHASE_PREFIX = "[agent] phase: "
RECENT_LINES = 200


class LogBuffer:
    """The child's output: a capped full log and a rolling tail, filled by a reader thread."""

    def __init__(self) -> None:
        self.head: list[str] = []
        self.head_chars = 0
        self.tail: collections.deque[str] = collections.deque()
        self.tail_chars = 0
        self.cut = 0
        self.phase = CellState.PREPARING.value
        self.version = 0
        self.lock = threading.Lock()

    def set_phase(self, phase: str) -> None:
        with self.lock:
            self.phase = phase
        self.add(f"{PHASE_PREFIX}{phase}\n")

    def add(self, line: str) -> None:
        with self.lock:
            self.version += 1
            if self.head_chars < contracts.AGENT_LOG_MAX_CHARS // 2:
                self.head.append(line)
                self.head_chars += len(line)
                return
            self.tail.append(line)
            self.tail_chars += len(line)
            while self.tail_chars > contracts.AGENT_LOG_MAX_CHARS // 2:
                dropped = self.tail.popleft()
                self.tail_chars -= len(dropped)
                self.cut += len(dropped)

    def recent(self) -> str:
        """The live tail: the last lines, at most `LOG_TAIL_CHARS`."""
        with self.lock:
            if self.tail:
                lines = list(self.tail)[-RECENT_LINES:]
            else:
                lines = list(self.head[-RECENT_LINES:])
        return "".join(lines)[-contracts.LOG_TAIL_CHARS :]

    def full(self) -> str:
        with self.lock:
            middle = [f"[... {self.cut} characters cut ...]\n"] if self.cut else []
            return "".join(self.head + middle + list(self.tail))


def read_log(stream: IO[bytes], buffer: LogBuffer) -> None:
    """The child's stderr, line by line, until it closes."""
    for raw in iter(stream.readline, b""):
        buffer.add(raw.decode("utf-8", errors="replace"))
    stream.close()


def read_phase_events(stream: IO[bytes], buffer: LogBuffer) -> None:
    """The child's stdout: `phase <name>` lines from run_job's on_phase hook."""
    for raw in iter(stream.readline, b""):
        phase = parse_phase_event(raw.decode("utf-8", errors="replace"))
        if phase is not None:
            buffer.set_phase(phase)
    stream.close()
