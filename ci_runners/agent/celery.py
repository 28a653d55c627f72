"""The runner agent as a Celery worker: one compatibility cell per task, no Django, no database.

    celery -A ci_runners.agent worker -Q runner.cpu --concurrency=1 --hostname=runner-1@%h

Configured from the environment only (see `worker_config`). This module holds the Celery app,
its signals and the thin task `run_cell`; `supervision.supervise_cell` does the work: each
cell runs in a child process (`python -m ci_runners.agent.child`, see `child.py`) that the
task watches, streaming its log to the web side as a live tail and, when the cell is cancelled
(a key in the broker Redis that the web side sets), asking the job to end itself. Results,
progress and heartbeats go back by task NAME to the `results` queue, consumed by the web-side
worker.

Nothing of a job outlives its agent: the pool processes end with the worker's main process
(Celery's prefork gives them SIGKILL as their parent-death signal), a cell's child with its pool
process (`process.die_with_parent`, SIGTERM: the job's cleanup kills its cgroup), and bwrap with
the child (`--die-with-parent`). At worker start what killed jobs of this agent (same
AGENT_NAME) left behind is removed: their cgroups (`sandbox.reap_stale_cgroups`, also before
each job), job dirs that never finished and scratch dirs (`workspace.sweep_stale`).

Prefetch: one cell per pool process, also after a broker reconnect. `worker_prefetch_multiplier=1`
with late acks is not enough there: the new channel's prefetch count (1; Celery skips its
reduction for Redis's per-consumer QoS, and could not go below 1) does not count the cell still
running from the lost channel, so a worker with one process reserved another message (the
running cell's own, which kombu had put back in its queue, or the next cell's) while its only
process was busy. `worker_disable_prefetch` (Redis only) takes a message only while fewer
requests are reserved than there are pool processes, whatever the channel.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from ci_runners.agent import contracts, worker_config
from ci_runners.agent.contracts import RUN_CELL_TASK, Job
from ci_runners.agent.supervision import Reporter, start_heartbeats, supervise_cell

logger = logging.getLogger("ci_runners.agent")

app = Celery("ecoreg_agent")
app.conf.update(
    broker_url=worker_config.BROKER_URL,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    broker_transport_options={
        "visibility_timeout": worker_config.VISIBILITY_TIMEOUT_S,
        # How often an abandoned (unacked) message is looked for; see kombu's redis transport.
        "unacked_restore_interval": worker_config.RESTORE_INTERVAL_S,
        "unacked_restore_throttle": worker_config.RESTORE_THROTTLE,
    },
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_disable_prefetch=True,
    # A broker blip must not stop every running cell (Celery 6 will default to True): the
    # cell runs on, and its claim keeps a redelivered copy of its message from running twice.
    worker_cancel_long_running_tasks_on_connection_loss=False,
    task_ignore_result=True,
    result_backend=None,
    task_default_queue=contracts.runner_queue(contracts.DEFAULT_CAPABILITY),
    task_serializer="json",
    accept_content=["json"],
    task_soft_time_limit=contracts.cell_time_limits(worker_config.MAX_CELL_S)[0],
    task_time_limit=contracts.cell_time_limits(worker_config.MAX_CELL_S)[1],
    worker_send_task_events=False,
)
reporter = Reporter(app=app)


def consumed_queues() -> list[str]:
    """AGENT_QUEUES, else the queues this worker consumes (for its heartbeats)."""
    configured = worker_config.configured_queues()
    if configured:
        return configured
    try:
        return sorted(app.amqp.queues.consume_from or []) or [app.conf.task_default_queue]
    except Exception:  # noqa: BLE001 - heartbeats must not die on introspection
        return [app.conf.task_default_queue]


@signals.worker_init.connect
def _sweep_what_killed_jobs_left(**_: Any) -> None:
    from ci_runners.agent import sandbox, workspace

    try:
        removed = sandbox.reap_stale_cgroups()
    except OSError as exc:
        logger.warning("stale cgroups not reaped: %s", exc)
        removed = []
    if removed:
        logger.info("removed %d stale cgroups: %s", len(removed), ", ".join(removed))
    swept = workspace.sweep_stale(work_root=workspace.default_work_root())
    if swept:
        logger.info("removed %d stale job dirs: %s", len(swept), ", ".join(map(str, swept)))


@signals.worker_process_init.connect
def _take_pool_gpu(**_: Any) -> None:
    """Pool process i runs its jobs on the i-th GPU of AGENT_GPUS (see `gpu`)."""
    from celery.utils.log import current_process_index

    from ci_runners.agent import gpu

    gpu.assign_pool_gpu(current_process_index(base=0) or 0)


@signals.worker_process_init.connect
def _start_heartbeats(**_: Any) -> None:
    start_heartbeats(reporter=reporter, queues=consumed_queues)


@app.task(
    name=RUN_CELL_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def run_cell(self: Any, job: dict[str, Any]) -> str:
    """Run one cell; the job is the contracts' `Job.to_dict()`."""
    return supervise_cell(job=Job.from_dict(job), reporter=reporter)
