"""The wire between the web side and the runner agents: the one place it is written down.

Both sides import this module and nothing else of each other: the web side builds a `Job`,
sends it by task name to a runner queue, and reads a `Result`; the agent reports progress,
results and heartbeats by task name to the results queue. Everything that must agree lives
here: task and queue names, the broker Redis keys, message fields, the cell-state
vocabulary, log caps and time allowances.

Standard library only: importing it loads nothing of the agent's runtime (sandbox, uv,
JUnit parsing), so the web side stays light.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, Self


def plain(value: Any) -> Any:
    """`dataclasses.asdict` for the wire's values (dataclasses, dicts, lists and tuples of
    JSON scalars), copied as deep, at a fraction of its cost: the web side turns thousands
    of jobs into messages per night."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(plain(item) for item in value)
    return value


# --- task names and queues ------------------------------------------------------------------

RUN_CELL_TASK = "ci_runners.agent.run_cell"
RESULT_TASK = "ci_runners.record_cell_result"
PROGRESS_TASK = "ci_runners.record_cell_progress"
HEARTBEAT_TASK = "ci_runners.runner_heartbeat"

RESULTS_QUEUE = "results"  # agent -> web side: progress, heartbeats
CELL_RESULTS_QUEUE = "results.cells"  # agent -> web side: results, recorded in batches


def reply_queue(task: str) -> str:
    """The queue of an agent's message to the web side: results have one of their own (the
    results worker consumes it in batches: ci_runners/result_batches.py)."""
    return CELL_RESULTS_QUEUE if task == RESULT_TASK else RESULTS_QUEUE


DEFAULT_QUEUE = "default"  # web side's own work (periodic tasks, on-complete tasks)
RUNNER_QUEUE_PREFIX = "runner."
DEFAULT_CAPABILITY = "cpu"


def runner_queue(capability: str) -> str:
    """The queue runners of one capability consume: `runner.cpu`, `runner.cuda.sm90`, ..."""
    return f"{RUNNER_QUEUE_PREFIX}{capability}"


CELL_TASK_ID_PREFIX = "compat-cell-"


def cell_task_id(*, cell_id: int, token: str, attempt: int) -> str:
    """The Celery task id of one attempt of a cell (revoke uses it). It carries the cell's
    token: a worker that outlived a database reset must not take a new cell for an old one it
    remembers as revoked."""
    return f"{CELL_TASK_ID_PREFIX}{cell_id}-{token.replace('-', '')}-{attempt}"


# --- broker Redis keys ------------------------------------------------------------------------
# Keyed by cell id AND the cell's random token: ids are reused after a database reset.

CELL_KEY = "ecoreg:compat:cell:{cell_id}:{token}"  # value: the wanted attempt, or CANCELLED
CLAIM_KEY = "ecoreg:compat:claim:{cell_id}:{token}:{attempt}"  # value: runner name, or "done"
CELL_KEY_TTL_S = 3 * 24 * 3600
CANCELLED = "cancelled"
CLAIM_DONE = "done"
# The claim is the runner's liveness: it holds the runner's name while the cell runs (refreshed
# every few seconds, expiring soon after the last refresh) and becomes CLAIM_DONE, for
# CELL_KEY_TTL_S, once the result is sent. The web side's reaper reads it.


def cell_key(*, cell_id: int, token: str) -> str:
    return CELL_KEY.format(cell_id=cell_id, token=token)


def claim_key(*, cell_id: int, token: str, attempt: int) -> str:
    return CLAIM_KEY.format(cell_id=cell_id, token=token, attempt=attempt)


def claim_done_for_s(*, ttl_s: int) -> int:
    """How long ago a claim became CLAIM_DONE, from the time it has left to live."""
    return CELL_KEY_TTL_S - ttl_s


# --- caps and time allowances -----------------------------------------------------------------

LOG_TAIL_CHARS = 8000  # the live tail of a cell, in progress and result messages
AGENT_LOG_MAX_CHARS = 2 * 1024 * 1024  # the full log an agent sends with a result
STORED_LOG_MAX_CHARS = 4 * 1024 * 1024  # the full log the web side keeps for a cell
# Slack above a cell's test wall time: checkout and environment build.
SETUP_ALLOWANCE_S = 2400
HARD_LIMIT_GRACE_S = 300


def cell_time_limits(timeout_s: float) -> tuple[float, float]:
    """Celery's (soft, hard) time limits for a cell whose tests may run `timeout_s`."""
    soft = timeout_s + SETUP_ALLOWANCE_S
    return soft, soft + HARD_LIMIT_GRACE_S


# --- state vocabulary -----------------------------------------------------------------------


class CellState(enum.StrEnum):
    """A compatibility cell's state; the agent reports one of `RESULT_STATES`."""

    QUEUED = "queued"
    PREPARING = "preparing"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ERRORED = "errored"
    TIMED_OUT = "timed_out"
    # A compatibility fact, not an infrastructure problem: the project's own metadata excludes
    # this torch, or its dependencies (or its build) cannot be had with it.
    NOT_INSTALLABLE = "not_installable"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


RESULT_STATES = frozenset(
    {
        CellState.PASSED,
        CellState.FAILED,
        CellState.ERRORED,
        CellState.TIMED_OUT,
        CellState.NOT_INSTALLABLE,
    }
)
FINAL_STATES = RESULT_STATES | {CellState.CANCELLED}
ACTIVE_STATES = frozenset({CellState.QUEUED, CellState.PREPARING, CellState.RUNNING})
# Phases an agent reports while a cell runs.
PROGRESS_PHASES = (CellState.PREPARING.value, CellState.RUNNING.value)


class ErrorCode(enum.StrEnum):
    """Why a cell is `errored` (always infrastructure, never the project's tests)."""

    CHECKOUT_FAILED = "checkout_failed"
    SANDBOX_UNAVAILABLE = "sandbox_unavailable"
    SANDBOX_LIMITS_UNAVAILABLE = "sandbox_limits_unavailable"
    WHEEL_SOURCE_UNREACHABLE = "wheel_source_unreachable"
    ENV_BUILD_FAILED = "env_build_failed"
    TORCH_MISMATCH = "torch_mismatch"
    BAD_RECIPE = "bad_recipe"
    NO_TESTS = "no_tests"
    TEST_RUN_BROKEN = "test_run_broken"
    DISK_QUOTA = "disk_quota"
    CANCELLED = "cancelled"
    RUNNER_LOST = "runner_lost"
    AGENT_ERROR = "agent_error"


# The agent CLI's exit status for each result state (documented in the README).
CLI_EXIT_CODES = {
    CellState.PASSED: 0,
    CellState.FAILED: 1,
    CellState.ERRORED: 3,
    CellState.TIMED_OUT: 4,
    CellState.NOT_INSTALLABLE: 5,
}


# --- the job and its result -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TestConfig:
    """A maintainer's or operator's override of the test recipe the agent discovers from the
    repository (`recipe.py`): set fields win, lists of requirements, pytest args and deselected
    markers are added, env is merged.

    `extras=None` / `groups=None` mean: what the recipe discovered.
    `copy_tests` names a folder of the checkout that is copied out of it and run from the copy,
    so that the installed package is imported rather than the source tree.
    """

    __test__ = False  # not a pytest test class

    extra_requirements: list[str] = field(default_factory=list)
    extras: list[str] | None = None
    pytest_args: list[str] = field(default_factory=list)
    test_paths: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    copy_tests: str | None = None
    needs_gpu: bool = False
    # PEP 735 dependency groups to install; None means: what the recipe discovered.
    groups: list[str] | None = None
    # Markers whose tests are deselected (`-m "not gpu and not slow"`), added to the recipe's.
    deselect: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True, kw_only=True)
class Job:
    """One cell of the compatibility matrix: a project at a ref against one torch build."""

    source: str
    torch_version: str
    cell_id: int | None = None
    # The cell's random dispatch token: part of its broker keys (`cell_key`, `claim_key`).
    cell_token: str = ""
    attempt: int = 1
    ref: str | None = None
    torch_variant: str | None = None
    python_version: str = "3.11"
    test_config: TestConfig = field(default_factory=TestConfig)
    timeout_s: float = 900.0
    find_links: list[str] = field(default_factory=list)
    index_urls: list[str] = field(default_factory=list)
    # Who may reuse this job's torch.compile/inductor cache: a registry project's key (its
    # cells share one cache per torch build); None (applicant runs, local runs) = a fresh one.
    cache_scope: str | None = None
    # When the project's own metadata excludes this torch, install it anyway (its declared
    # torch range overridden) and run the tests: the result stays `not_installable`, with what
    # the tests did in `Result.beyond_range` (a range that could widen, or rightly excludes).
    test_beyond_declared_range: bool = False

    @property
    def torch_requirement(self) -> str:
        local = f"+{self.torch_variant}" if self.torch_variant else ""
        return f"torch=={self.torch_version}{local}"

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["test_config"] = TestConfig.from_dict(values.get("test_config") or {})
        return cls(**values)


COUNT_KEYS = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed")


def _empty_counts() -> dict[str, int]:
    return {key: 0 for key in COUNT_KEYS}


def _empty_timings() -> dict[str, Any]:
    return {
        "checkout_s": None,
        "env_s": None,
        "env_cache_hit": None,
        "tests_s": None,
        "total_s": None,
    }


def _empty_environment() -> dict[str, str | None]:
    return {"python": None, "torch": None, "cuda": None, "gpu": None}


@dataclass(kw_only=True)
class Result:
    """What one job produced; `to_dict()` is the agent's JSON output."""

    state: CellState
    exit_code: int | None = None
    commit: str | None = None
    counts: dict[str, int] = field(default_factory=_empty_counts)
    failures: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=_empty_timings)
    environment: dict[str, str | None] = field(default_factory=_empty_environment)
    energy_j: float | None = None
    log_tail: str = ""
    error: str | None = None
    # `ErrorCode` of an errored result (and the resolver's/build's reason of not_installable).
    error_code: str | None = None
    # Tests pytest collected (None when the run never got that far).
    tests_collected: int | None = None
    # Tests that failed only because the sandbox has no network: never counted as breaks.
    needs_network: list[dict[str, str]] = field(default_factory=list)
    # The test recipe the job ran (`recipe.Recipe.to_dict()`: with its hash and provenance).
    recipe: dict[str, Any] = field(default_factory=dict)
    # `pip freeze`-style exact versions of the environment the tests ran in, and its hash.
    lock: list[str] = field(default_factory=list)
    lock_hash: str | None = None
    # What the project's own metadata declares: `torch` (its Requires-Dist specifier, "" when
    # it names no range) and `requires_python`; empty when no wheel was built.
    declared: dict[str, str] = field(default_factory=dict)
    # Tests that failed, then passed when re-run once in the same environment and sandbox:
    # counted once, as passed, and never as breaks ({test: node id, message: of the first
    # failure}, as in `failures`).
    flaky: list[dict[str, str]] = field(default_factory=list)
    # A not_installable result whose declared torch range excluded the torch under test, with
    # `Job.test_beyond_declared_range`: what the tests did with the range overridden
    # ({state, counts, failures, tests_collected}); empty otherwise.
    beyond_range: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = plain(self)
        data["state"] = str(CellState(self.state))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        """Raises ValueError for a state an agent may not report (or KeyError if none)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        state = CellState(values["state"])
        if state not in RESULT_STATES:
            raise ValueError(f"an agent cannot report the state {state!r}")
        values["state"] = state
        return cls(**values)


# --- messages from the agent (keyword arguments of the web side's tasks) -------------------------


class _Message:
    """A task's keyword arguments as a dataclass; unknown fields are ignored on receipt, so
    an agent newer than the web side (one more field) is still understood."""

    def to_kwargs(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> Self:
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in kwargs.items() if key in known})


@dataclass(frozen=True, kw_only=True)
class ProgressMessage(_Message):
    """`PROGRESS_TASK`: a cell's phase and live log tail (best effort)."""

    cell_id: int
    attempt: int
    runner: str
    phase: str
    log_tail: str = ""


@dataclass(frozen=True, kw_only=True)
class ResultMessage(_Message):
    """`RESULT_TASK`: a cell's `Result.to_dict()` and its full log (sent patiently)."""

    cell_id: int
    attempt: int
    runner: str
    result: dict[str, Any]
    log: str = ""


@dataclass(frozen=True, kw_only=True)
class HeartbeatMessage(_Message):
    """`HEARTBEAT_TASK`: a runner is alive, what it consumes, and which cell it runs; the size
    of its cache on disk (None: not measured, or an older agent) and how it isolates jobs (a
    short text, e.g. "bwrap + cgroup v1 pids,memory"; empty from an older agent)."""

    name: str
    queues: list[str]
    version: str = ""
    cell_id: int | None = None
    attempt: int | None = None
    cache_bytes: int | None = None
    isolation: str = ""
