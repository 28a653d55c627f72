"""The worker's side of a cell: claim it, run it in a child, watch it, report it, cancel it.

`supervise_cell` is what the Celery task `run_cell` does, in pieces that each do one job:
    cell_still_wanted, claim_cell,   the cell's broker keys (`contracts.cell_key`, `claim_key`):
    keep_claim, finish_claim         wanted or cancelled, and one runner per attempt; the claim
                                     is the runner's liveness for the web side's reaper
    Reporter, CellReporter           messages to the web side, by task name, to `results`
    CurrentCell, start_heartbeats    a heartbeat thread per worker process, naming its cell,
                                     with the cache's size and the host's isolation
    evict_cache_after_job            after each job (its result sent): the cache back under
                                     AGENT_CACHE_MAX_BYTES (`cache.evict`)
    CellChild                        the job's child process (`child.py`): its log read into a
                                     `cell_log.LogBuffer`, cancel (SIGUSR1), stop, its Result
    watch_cell                       while it runs: keep the claim, send progress, cancel when
                                     the web side no longer wants the cell
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import signal
import subprocess  # noqa: S404 - our own interpreter, argument list, never a shell
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded

from ci_runners.agent import cache, contracts, worker_config, workspace
from ci_runners.agent.cell_log import LogBuffer, read_log, read_phase_events
from ci_runners.agent.child import PACKAGE_ROOT, start_command, start_environment
from ci_runners.agent.contracts import (
    HEARTBEAT_TASK,
    PROGRESS_TASK,
    RESULT_TASK,
    CellState,
    ErrorCode,
    HeartbeatMessage,
    Job,
    ProgressMessage,
    Result,
    ResultMessage,
    reply_queue,
)

CHILD_STOP_GRACE_S = 10.0
CANCEL_GRACE_S = 20.0
READER_JOIN_S = 10.0
# The cache's size in heartbeats is measured again at most this often (a walk of the cache).
CACHE_FIGURES_S = 300.0
_PUBLISH_RETRY = {"max_retries": 60, "interval_start": 0.5, "interval_step": 1, "interval_max": 5}

logger = logging.getLogger("ci_runners.agent")


def runner_name() -> str:
    """AGENT_NAME, with `#<n>` for the n-th process of a worker pool."""
    from billiard.process import current_process

    index = getattr(current_process(), "index", None)
    return f"{worker_config.AGENT_NAME}#{index}" if index else worker_config.AGENT_NAME


# --- the cell's broker keys -------------------------------------------------------------------


@functools.cache
def _redis() -> redis.Redis:
    """One client (and connection pool; redis-py renews it after a fork) per process."""
    return redis.Redis.from_url(
        worker_config.BROKER_URL, socket_timeout=5, socket_connect_timeout=5
    )


def cell_still_wanted(*, job: Job) -> bool:
    """False when the web side cancelled the cell or re-queued it as a later attempt.

    A missing key (e.g. the broker lost its data) counts as wanted: running a cell twice is
    harmless, results are recorded once per attempt; losing one is not.
    """
    if job.cell_id is None:
        return True
    try:
        value = _redis().get(contracts.cell_key(cell_id=job.cell_id, token=job.cell_token))
    except redis.RedisError:
        return True
    if value is None:
        return True
    wanted = value.decode() if isinstance(value, bytes) else str(value)
    return wanted != contracts.CANCELLED and wanted == str(job.attempt)


def _claim_key(job: Job) -> str | None:
    if job.cell_id is None:
        return None
    return contracts.claim_key(cell_id=job.cell_id, token=job.cell_token, attempt=job.attempt)


def claim_cell(*, job: Job) -> bool:
    """One runner per (cell, attempt): False when another runner holds this attempt (a
    redelivered message of a live attempt). A broker error counts as claimed."""
    key = _claim_key(job)
    if key is None:
        return True
    try:
        return bool(_redis().set(key, runner_name(), ex=worker_config.CLAIM_TTL_S, nx=True))
    except redis.RedisError:
        return True


def refresh_claim(*, job: Job) -> bool:
    """Keep this runner's claim alive while the cell runs; False when there was none to keep
    (the broker lost it). A broker error counts as kept."""
    key = _claim_key(job)
    if key is None:
        return True
    try:
        return bool(_redis().set(key, runner_name(), ex=worker_config.CLAIM_TTL_S, xx=True))
    except redis.RedisError:
        return True


def keep_claim(*, job: Job) -> None:
    """Refresh the claim, and take it again when the broker lost it (restarted without
    persistence): the reaper reads a cell without a claim as a lost runner's."""
    if not refresh_claim(job=job):
        claim_cell(job=job)


def finish_claim(*, job: Job) -> None:
    """The attempt is done: a later redelivery of its message is dropped."""
    key = _claim_key(job)
    if key is None:
        return
    with contextlib.suppress(redis.RedisError):
        _redis().set(key, contracts.CLAIM_DONE, ex=contracts.CELL_KEY_TTL_S)


# --- messages to the web side -------------------------------------------------------------------


class Reporter:
    """Sends the agent's messages by task name to the results queue (the web side's worker)."""

    def __init__(self, *, app: Celery) -> None:
        self.app = app

    def send(self, name: str, kwargs: dict[str, Any], *, patient: bool) -> None:
        """`patient` waits out a broker outage (results); else one quick retry."""
        self.app.send_task(
            name,
            kwargs=kwargs,
            queue=reply_queue(name),
            retry=True,
            retry_policy=_PUBLISH_RETRY if patient else {"max_retries": 1, "interval_start": 0.2},
        )


class CellReporter:
    """One cell's progress (best effort) and result (patient); nothing for a local job."""

    def __init__(self, *, job: Job, runner: str, reporter: Reporter) -> None:
        self.job = job
        self.runner = runner
        self.reporter = reporter

    def progress(self, *, phase: str, log_tail: str = "") -> None:
        if self.job.cell_id is None:
            return
        try:
            progress = ProgressMessage(
                cell_id=self.job.cell_id,
                attempt=self.job.attempt,
                runner=self.runner,
                phase=phase,
                log_tail=log_tail,
            )
            self.reporter.send(PROGRESS_TASK, progress.to_kwargs(), patient=False)
        except Exception as exc:  # noqa: BLE001 - progress is best effort
            logger.warning("progress not sent: %s", exc)

    def result(self, *, result: Result, log: str) -> None:
        if self.job.cell_id is None:
            return
        message = ResultMessage(
            cell_id=self.job.cell_id,
            attempt=self.job.attempt,
            runner=self.runner,
            result=result.to_dict(),
            log=log,
        )
        self.reporter.send(RESULT_TASK, message.to_kwargs(), patient=True)


# --- heartbeats -------------------------------------------------------------------------------


class CurrentCell:
    """The cell this worker process runs, read by its heartbeat thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cell: tuple[int, int] | None = None

    def get(self) -> tuple[int, int] | None:
        with self._lock:
            return self._cell

    @contextlib.contextmanager
    def running(self, job: Job) -> Iterator[None]:
        with self._lock:
            self._cell = (job.cell_id, job.attempt) if job.cell_id is not None else None
        try:
            yield
        finally:
            with self._lock:
                self._cell = None


current_cell = CurrentCell()


cache_gauge = cache.CacheSizeGauge(max_age_s=CACHE_FIGURES_S)
COMPILE_CACHE_MAX_BYTES = 10 * 1024**3


def agent_cache_root() -> Path:
    """`environment.cache_dir()`, imported late: the worker needs none of the env builder."""
    from ci_runners.agent.environment import cache_dir

    return cache_dir()


@functools.cache
def isolation_summary() -> str:
    """How this host isolates jobs, in a few words for the fleet page (read only: probes
    bwrap once per process, and whether per-job cgroups can be made)."""
    from ci_runners.agent import sandbox

    if not worker_config.sandbox_enabled():
        return "none (AGENT_SANDBOX=0)"
    try:
        sandbox.check_sandbox()
    except sandbox.SandboxUnavailable as exc:
        return str(exc)[:200]
    return sandbox.limits_description()[:200]


def heartbeat_message(*, queues: list[str]) -> HeartbeatMessage:
    """This worker process's heartbeat: its cell, its cache's size, its isolation."""
    current = current_cell.get()
    return HeartbeatMessage(
        name=runner_name(),
        queues=queues,
        version=worker_config.AGENT_VERSION,
        cell_id=current[0] if current else None,
        attempt=current[1] if current else None,
        cache_bytes=cache_gauge.read(agent_cache_root()),
        isolation=isolation_summary(),
    )


def _heartbeat_loop(
    *, stop: threading.Event, reporter: Reporter, queues: Callable[[], list[str]]
) -> None:
    while not stop.is_set():
        try:
            heartbeat = heartbeat_message(queues=queues())
            reporter.send(HEARTBEAT_TASK, heartbeat.to_kwargs(), patient=False)
        except Exception as exc:  # noqa: BLE001 - a missed heartbeat is retried next period
            logger.warning("heartbeat not sent: %s", exc)
        stop.wait(worker_config.HEARTBEAT_S)


def start_heartbeats(*, reporter: Reporter, queues: Callable[[], list[str]]) -> threading.Event:
    """A daemon thread that sends a heartbeat every HEARTBEAT_S; set the event to end it."""
    stop = threading.Event()
    threading.Thread(
        target=_heartbeat_loop,
        kwargs={"stop": stop, "reporter": reporter, "queues": queues},
        name="heartbeat",
        daemon=True,
    ).start()
    return stop


# --- the job's child process --------------------------------------------------------------------


class CellChild:
    """The child process that runs one job; its stderr and stdout are read into `log`."""

    def __init__(self, *, process: subprocess.Popen[bytes], log: LogBuffer, result_path: Path):
        self.process = process
        self.log = log
        self.result_path = result_path
        self.cancelled = False
        self.readers: list[threading.Thread] = []

    @classmethod
    def start(cls, *, job: Job, log: LogBuffer, result_path: Path) -> CellChild:
        process = subprocess.Popen(  # noqa: S603
            start_command(result_path),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=start_environment(),
            cwd=str(PACKAGE_ROOT),
        )
        assert process.stdin and process.stdout and process.stderr  # noqa: S101 - PIPEs
        process.stdin.write(json.dumps(job.to_dict()).encode())
        process.stdin.close()
        child = cls(process=process, log=log, result_path=result_path)
        for target, stream in ((read_log, process.stderr), (read_phase_events, process.stdout)):
            reader = threading.Thread(target=target, args=(stream, log), daemon=True)
            reader.start()
            child.readers.append(reader)
        return child

    def wait(self, *, timeout: float) -> bool:
        """True once the child has ended."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def cancel(self) -> None:
        """Ask the job to end itself (run_job's should_stop); force it if it does not."""
        self.cancelled = True
        self.log.add("[agent] cell cancelled; stopping it\n")
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGUSR1)
        if not self.wait(timeout=CANCEL_GRACE_S):
            self.log.add("[agent] the job did not stop in time; terminating it\n")
            self.stop()

    def stop(self) -> None:
        """SIGTERM lets run_job's cleanup kill the sandbox's cgroup; SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        if not self.wait(timeout=CHILD_STOP_GRACE_S):
            self.process.kill()
            self.process.wait()

    def join_readers(self) -> None:
        for reader in self.readers:
            reader.join(timeout=READER_JOIN_S)

    def result(self) -> Result:
        """The Result the child wrote, or an errored one when it wrote none."""
        try:
            return Result.from_dict(json.loads(self.result_path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return Result(
                state=CellState.ERRORED,
                error=(
                    f"agent child ended (exit {self.process.returncode}) without a result: {exc}"
                ),
                error_code=str(ErrorCode.AGENT_ERROR),
                log_tail=self.log.recent(),
            )


def watch_cell(*, child: CellChild, job: Job, report: CellReporter) -> None:
    """Until the child ends: keep the claim alive, send progress when the log moved, and
    cancel the cell once the web side no longer wants it."""
    sent_version, sent_phase = -1, CellState.PREPARING.value
    while not child.wait(timeout=worker_config.PROGRESS_S):
        keep_claim(job=job)
        if not cell_still_wanted(job=job):
            child.cancel()
            return
        log = child.log
        if log.version != sent_version or log.phase != sent_phase:
            sent_version, sent_phase = log.version, log.phase
            report.progress(phase=sent_phase, log_tail=log.recent())


def _run_in_child(*, job: Job, log: LogBuffer, report: CellReporter) -> tuple[Result, bool]:
    """The job's Result, and whether the cell was cancelled while it ran."""
    # Named after this process: should it be killed, the next agent sweeps the dir.
    scratch = workspace.make_scratch_dir()
    try:
        child = CellChild.start(job=job, log=log, result_path=scratch / "result.json")
        problem: str | None = None
        try:
            watch_cell(child=child, job=job, report=report)
        except SoftTimeLimitExceeded:
            problem = "Celery soft time limit exceeded; the cell was stopped"
            child.stop()
        except BaseException:
            child.stop()
            raise
        child.join_readers()
        if problem:
            result = Result(state=CellState.TIMED_OUT, error=problem, log_tail=log.recent())
            return result, child.cancelled
        return child.result(), child.cancelled
    finally:
        workspace.remove_tree(scratch)


def evict_cache_after_job() -> cache.EvictionReport | None:
    """Bring the agent's cache back under AGENT_CACHE_MAX_BYTES, after a job (its result sent:
    not on the job's time), and keep the heartbeat's figure. Never raises: a failed eviction
    is logged, and the next job tries again."""
    from ci_runners.agent.environment import EnvBuildError, uv_executable

    try:
        max_bytes = cache.configured_max_bytes()
        min_idle_s = cache.configured_min_idle_s()
    except ValueError as exc:
        logger.warning("cache not evicted: %s", exc)
        return None
    try:
        uv: str | None = uv_executable()
    except EnvBuildError:
        uv = None
    try:
        report = cache.evict(agent_cache_root(), max_bytes=max_bytes, min_idle_s=min_idle_s, uv=uv)
        compile_max = cache.configured_max_bytes(
            "AGENT_COMPILE_CACHE_MAX_BYTES", COMPILE_CACHE_MAX_BYTES
        )
        compile_root = workspace.compile_cache_root(workspace.default_work_root())
        cache.evict(compile_root, max_bytes=compile_max, min_idle_s=min_idle_s)
    except Exception as exc:  # noqa: BLE001 - the job is done; eviction is housekeeping
        logger.warning("cache eviction failed: %s", exc)
        return None
    cache_gauge.set(report.after_bytes)
    if report.removed:
        logger.info("cache: evicted %s", ", ".join(report.removed))
    if report.over_cap:
        logger.warning(
            "cache still over its cap (%d > %d bytes): %d in use, %d used recently%s",
            report.after_bytes,
            report.max_bytes,
            len(report.busy),
            len(report.recent),
            f"; {report.prune_error}" if report.prune_error else "",
        )
    return report


def supervise_cell(*, job: Job, reporter: Reporter) -> str:
    """Run one cell in a child process and report on it.

    Returns what became of it: "skipped" (no longer wanted), "duplicate" (another runner has
    this attempt), "cancelled", or the state of its Result (sent to the web side).
    """
    runner = runner_name()
    if not cell_still_wanted(job=job):
        logger.info("cell %s attempt %s no longer wanted; skipped", job.cell_id, job.attempt)
        return "skipped"
    if not claim_cell(job=job):
        logger.info("cell %s attempt %s already claimed; skipped", job.cell_id, job.attempt)
        return "duplicate"
    report = CellReporter(job=job, runner=runner, reporter=reporter)
    log = LogBuffer()
    with current_cell.running(job):
        report.progress(
            phase=CellState.PREPARING.value, log_tail=f"[agent] {runner} picked the cell up\n"
        )
        result, cancelled = _run_in_child(job=job, log=log, report=report)
    if cancelled:
        finish_claim(job=job)
        evict_cache_after_job()
        return "cancelled"
    keep_claim(job=job)  # alive until the result is out; then "done"
    report.result(result=result, log=log.full())
    finish_claim(job=job)
    evict_cache_after_job()
    return str(result.state)
