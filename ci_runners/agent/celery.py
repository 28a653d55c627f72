"""The runner agent as a Celery worker: one compatibility cell per task, no Django, no database.

    celery -A ci_runners.agent worker -Q runner.cpu --concurrency=1 --hostname=runner-1@%h

Configured from the environment only:
    AGENT_BROKER_URL (else CELERY_BROKER_URL)  the broker Redis (the only service it reaches)
    AGENT_NAME                    this runner's name (default: the host name)
    AGENT_QUEUES                  queues it reports in heartbeats (default: those it consumes)
    AGENT_WORK_ROOT               where job dirs are made (default, as for the command line:
                                  <tempdir>/ecosystem-registry-agent, reachable by the
                                  sandbox's uid)
    AGENT_SANDBOX                 "0" runs tests without bubblewrap (local debugging only)
    AGENT_HEARTBEAT_S / AGENT_PROGRESS_S   heartbeat and progress periods (15 s / 3 s)
    AGENT_VISIBILITY_TIMEOUT_S    broker visibility timeout (default 6 h, above the longest cell)
    AGENT_MAX_CELL_S              Celery time limits default to this plus setup slack

Each task runs `runner.run_job` in a child process (`python -m ci_runners.agent.celery
--run-job`), so that a crash of the job's process (a segfault, the OOM killer) still ends in a
reported infrastructure error and Celery's time limits can end it. The child uses run_job's
hooks: `on_phase` writes `phase <name>` lines to its stdout (an event channel no job output
reaches), `on_output` copies the job's output to its stderr (the log), and `should_stop`
turns true on SIGUSR1. The task streams the log to the web side as a live tail and, when the
cell is cancelled (a key in the broker Redis that the web side sets), sends SIGUSR1 so the job
ends itself (SIGTERM, then SIGKILL, if it does not within CANCEL_GRACE_S). Results and
progress go back by task NAME to the `results` queue, consumed by the web-side worker.

At worker start, and before each job, the sandbox's cgroups that a killed job of this agent
(same AGENT_NAME) left behind are removed (`sandbox.reap_stale_cgroups`).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess  # noqa: S404 - our own interpreter, argument list, never a shell
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import redis
from celery import Celery, signals
from celery.exceptions import SoftTimeLimitExceeded

from ci_runners.agent import contracts
from ci_runners.agent.contracts import (
    HEARTBEAT_TASK,
    PROGRESS_TASK,
    RESULT_TASK,
    RESULTS_QUEUE,
    RUN_CELL_TASK,
    CellState,
    HeartbeatMessage,
    Job,
    ProgressMessage,
    Result,
    ResultMessage,
)

AGENT_VERSION = "1.0"
PHASE_PREFIX = "[agent] phase: "
PHASE_EVENT = "phase "
CHILD_STOP_GRACE_S = 10.0
CANCEL_GRACE_S = 20.0
PACKAGE_ROOT = Path(__file__).resolve().parents[2]

logger = logging.getLogger("ci_runners.agent")


def _setting(name: str, default: str) -> str:
    return os.environ.get(name) or default


BROKER_URL = _setting("AGENT_BROKER_URL", _setting("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
AGENT_NAME = _setting("AGENT_NAME", socket.gethostname())
HEARTBEAT_S = float(_setting("AGENT_HEARTBEAT_S", "15"))
PROGRESS_S = float(_setting("AGENT_PROGRESS_S", "3"))
VISIBILITY_TIMEOUT_S = int(_setting("AGENT_VISIBILITY_TIMEOUT_S", str(6 * 3600)))
MAX_CELL_S = int(_setting("AGENT_MAX_CELL_S", str(4 * 3600)))
CLAIM_TTL_S = max(30, int(3 * HEARTBEAT_S + 45))

app = Celery("ecoreg_agent")
app.conf.update(
    broker_url=BROKER_URL,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    broker_transport_options={
        "visibility_timeout": VISIBILITY_TIMEOUT_S,
        # How often an abandoned (unacked) message is looked for; see kombu's redis transport.
        "unacked_restore_interval": int(_setting("AGENT_RESTORE_INTERVAL_S", "10")),
        "unacked_restore_throttle": int(_setting("AGENT_RESTORE_THROTTLE", "10")),
    },
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    result_backend=None,
    task_default_queue=contracts.runner_queue(contracts.DEFAULT_CAPABILITY),
    task_serializer="json",
    accept_content=["json"],
    task_soft_time_limit=contracts.cell_time_limits(MAX_CELL_S)[0],
    task_time_limit=contracts.cell_time_limits(MAX_CELL_S)[1],
    worker_send_task_events=False,
)

_PUBLISH_RETRY = {"max_retries": 60, "interval_start": 0.5, "interval_step": 1, "interval_max": 5}


class _Current:
    """The cell this process is running, read by the heartbeat thread."""

    lock = threading.Lock()
    cell: tuple[int, int] | None = None


def runner_name() -> str:
    from billiard.process import current_process

    index = getattr(current_process(), "index", None)
    return f"{AGENT_NAME}#{index}" if index else AGENT_NAME


def consumed_queues() -> list[str]:
    configured = [q for q in _setting("AGENT_QUEUES", "").split(",") if q]
    if configured:
        return configured
    try:
        return sorted(app.amqp.queues.consume_from or []) or [app.conf.task_default_queue]
    except Exception:  # noqa: BLE001 - heartbeats must not die on introspection
        return [app.conf.task_default_queue]


def send(name: str, kwargs: dict[str, Any], *, patient: bool) -> None:
    """Send a task by name to `results`; `patient` waits out a broker outage (results)."""
    app.send_task(
        name,
        kwargs=kwargs,
        queue=RESULTS_QUEUE,
        retry=True,
        retry_policy=_PUBLISH_RETRY if patient else {"max_retries": 1, "interval_start": 0.2},
    )


def _redis() -> redis.Redis:
    return redis.Redis.from_url(BROKER_URL, socket_timeout=5, socket_connect_timeout=5)


def _heartbeat_loop(stop: threading.Event) -> None:
    while not stop.is_set():
        with _Current.lock:
            current = _Current.cell
        try:
            heartbeat = HeartbeatMessage(
                name=runner_name(),
                queues=consumed_queues(),
                version=AGENT_VERSION,
                cell_id=current[0] if current else None,
                attempt=current[1] if current else None,
            )
            send(HEARTBEAT_TASK, heartbeat.to_kwargs(), patient=False)
        except Exception as exc:  # noqa: BLE001 - a missed heartbeat is retried next period
            logger.warning("heartbeat not sent: %s", exc)
        stop.wait(HEARTBEAT_S)


_heartbeat_stop = threading.Event()


@signals.worker_init.connect
def _reap_stale_cgroups(**_: Any) -> None:
    from ci_runners.agent import sandbox

    try:
        removed = sandbox.reap_stale_cgroups()
    except OSError as exc:
        logger.warning("stale cgroups not reaped: %s", exc)
        return
    if removed:
        logger.info("removed %d stale cgroups: %s", len(removed), ", ".join(removed))


@signals.worker_process_init.connect
def _start_heartbeats(**_: Any) -> None:
    threading.Thread(
        target=_heartbeat_loop, args=(_heartbeat_stop,), name="heartbeat", daemon=True
    ).start()


class LogBuffer:
    """The child's output: a capped full log and a rolling tail, filled by a reader thread."""

    def __init__(self) -> None:
        self.head: list[str] = []
        self.head_chars = 0
        self.tail: collections.deque[str] = collections.deque()
        self.tail_chars = 0
        self.cut = 0
        self.phase = "preparing"
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
        with self.lock:
            lines = list(self.head[-200:]) if not self.tail else list(self.tail)[-200:]
        return "".join(lines)[-contracts.LOG_TAIL_CHARS :]

    def full(self) -> str:
        with self.lock:
            middle = [f"[... {self.cut} characters cut ...]\n"] if self.cut else []
            return "".join(self.head + middle + list(self.tail))


def _read_lines(stream: Any, buffer: LogBuffer) -> None:
    for raw in iter(stream.readline, b""):
        buffer.add(raw.decode("utf-8", errors="replace"))
    stream.close()


def _read_events(stream: Any, buffer: LogBuffer) -> None:
    """The child's stdout: `phase <name>` lines from run_job's on_phase hook."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").strip()
        if line.startswith(PHASE_EVENT) and line[len(PHASE_EVENT) :] in contracts.PROGRESS_PHASES:
            buffer.set_phase(line[len(PHASE_EVENT) :])
    stream.close()


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


def _claim(*, job: Job, refresh: bool = False, done: bool = False) -> bool:
    """One runner per (cell, attempt): a redelivered message of a live attempt is dropped."""
    if job.cell_id is None:
        return True
    key = contracts.claim_key(cell_id=job.cell_id, token=job.cell_token, attempt=job.attempt)
    try:
        client = _redis()
        if done:
            client.set(key, contracts.CLAIM_DONE, ex=contracts.CELL_KEY_TTL_S)
            return True
        if refresh:
            client.set(key, runner_name(), ex=CLAIM_TTL_S, xx=True)
            return True
        return bool(client.set(key, runner_name(), ex=CLAIM_TTL_S, nx=True))
    except redis.RedisError:
        return True


class CellRunner:
    """Runs one job in a child process and reports on it."""

    def __init__(self, *, job: Job) -> None:
        self.job = job
        self.log = LogBuffer()
        self.runner = runner_name()
        self.cancelled = False

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
            send(PROGRESS_TASK, progress.to_kwargs(), patient=False)
        except Exception as exc:  # noqa: BLE001 - progress is best effort
            logger.warning("progress not sent: %s", exc)

    def run(self) -> str:
        job = self.job
        if not cell_still_wanted(job=job):
            logger.info("cell %s attempt %s no longer wanted; skipped", job.cell_id, job.attempt)
            return "skipped"
        if not _claim(job=job):
            logger.info("cell %s attempt %s already claimed; skipped", job.cell_id, job.attempt)
            return "duplicate"
        with _Current.lock:
            _Current.cell = (job.cell_id, job.attempt) if job.cell_id is not None else None
        self.progress(phase="preparing", log_tail=f"[agent] {self.runner} picked the cell up\n")
        try:
            result = self._run_child()
        finally:
            with _Current.lock:
                _Current.cell = None
        if self.cancelled:
            _claim(job=job, done=True)
            return "cancelled"
        if job.cell_id is not None:
            message = ResultMessage(
                cell_id=job.cell_id,
                attempt=job.attempt,
                runner=self.runner,
                result=result.to_dict(),
                log=self.log.full(),
            )
            send(RESULT_TASK, message.to_kwargs(), patient=True)
        _claim(job=job, done=True)
        return str(result.state)

    def _run_child(self) -> Result:
        with tempfile.TemporaryDirectory(prefix="ecoreg-cell-") as scratch:
            result_path = Path(scratch) / "result.json"
            env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT), "PYTHONUNBUFFERED": "1"}
            child = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "ci_runners.agent.celery", "--run-job", str(result_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=str(PACKAGE_ROOT),
            )
            assert child.stdin and child.stdout and child.stderr  # noqa: S101 - PIPEs
            child.stdin.write(json.dumps(self.job.to_dict()).encode())
            child.stdin.close()
            reader = threading.Thread(
                target=_read_lines, args=(child.stderr, self.log), daemon=True
            )
            reader.start()
            events = threading.Thread(
                target=_read_events, args=(child.stdout, self.log), daemon=True
            )
            events.start()
            problem: str | None = None
            try:
                self._watch(child)
            except SoftTimeLimitExceeded:
                problem = "Celery soft time limit exceeded; the cell was stopped"
                self._stop(child)
            except BaseException:
                self._stop(child)
                raise
            reader.join(timeout=10)
            events.join(timeout=10)
            if problem:
                return Result(state=CellState.TIMED_OUT, error=problem, log_tail=self.log.recent())
            try:
                return Result.from_dict(json.loads(result_path.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                return Result(
                    state=CellState.ERRORED,
                    error=f"agent child ended (exit {child.returncode}) without a result: {exc}",
                    log_tail=self.log.recent(),
                )

    def _watch(self, child: subprocess.Popen) -> None:
        sent_version, sent_phase = -1, "preparing"
        while True:
            try:
                child.wait(timeout=PROGRESS_S)
                return
            except subprocess.TimeoutExpired:
                pass
            _claim(job=self.job, refresh=True)
            if not cell_still_wanted(job=self.job):
                self.cancelled = True
                self.log.add("[agent] cell cancelled; stopping it\n")
                self._cancel(child)
                return
            if self.log.version != sent_version or self.log.phase != sent_phase:
                sent_version, sent_phase = self.log.version, self.log.phase
                self.progress(phase=sent_phase, log_tail=self.log.recent())

    def _cancel(self, child: subprocess.Popen) -> None:
        """Ask the job to end itself (run_job's should_stop); force it if it does not."""
        if child.poll() is not None:
            return
        child.send_signal(signal.SIGUSR1)
        try:
            child.wait(timeout=CANCEL_GRACE_S)
        except subprocess.TimeoutExpired:
            self.log.add("[agent] the job did not stop in time; terminating it\n")
            self._stop(child)

    @staticmethod
    def _stop(child: subprocess.Popen) -> None:
        """SIGTERM lets run_job's cleanup kill the sandbox's cgroup; SIGKILL if it lingers."""
        if child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=CHILD_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@app.task(
    name=RUN_CELL_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def run_cell(self: Any, job: dict[str, Any]) -> str:
    """Run one cell; the job is the contracts' `Job.to_dict()`."""
    return CellRunner(job=Job.from_dict(job)).run()


# --- the child process ------------------------------------------------------------------------


def _child_main(result_path: str) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="[agent] %(message)s")

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    stop_requested = threading.Event()
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: stop_requested.set())
    from ci_runners.agent.runner import default_work_root, run_job

    job = Job.from_dict(json.loads(sys.stdin.read()))
    sandbox = _setting("AGENT_SANDBOX", "1") != "0"
    sys.stderr.write(
        f"[agent] cell {job.cell_id} attempt {job.attempt}: {job.source} "
        f"with {job.torch_requirement} on python {job.python_version}\n"
    )
    sys.stderr.flush()

    def on_phase(phase: str) -> None:
        sys.stdout.write(f"{PHASE_EVENT}{phase}\n")
        sys.stdout.flush()

    def on_output(chunk: bytes) -> None:
        sys.stderr.buffer.write(chunk)
        sys.stderr.buffer.flush()

    result = run_job(
        job=job,
        work_root=default_work_root(),
        sandbox=sandbox,
        on_phase=on_phase,
        on_output=on_output,
        should_stop=stop_requested.is_set,
    )
    sys.stderr.write(f"[agent] finished: {result.state}\n")
    partial = Path(result_path + ".partial")
    partial.write_text(json.dumps(result.to_dict()))
    partial.replace(result_path)
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--run-job"]:
    with contextlib.suppress(BrokenPipeError):
        raise SystemExit(_child_main(sys.argv[2]))
