"""Thin Celery tasks of the web side: each takes primitives and calls one service.

Runner agents send `record_cell_progress`, `record_cell_result` and `runner_heartbeat` by name
to the `results` queue, consumed by a worker of its own (config/celery.py); beat sends the
periodic ones to `default`. Results are acknowledged late, after the service's transaction has
committed: a worker killed in the middle leaves the message to come back (in about a minute).
"""

import logging
from typing import Any

from celery import shared_task

from ci_runners import services
from ci_runners.agent import contracts
from ci_runners.pypi import PyPIUnavailable

logger = logging.getLogger(__name__)


# The agent's messages: their fields are the wire's (`contracts.*Message`) and the services'
# keyword arguments.


@shared_task(name=contracts.RESULT_TASK, acks_late=True)
def record_cell_result(**fields: Any) -> None:
    services.cell_record_result(**contracts.ResultMessage.from_kwargs(fields).to_kwargs())


@shared_task(name=contracts.PROGRESS_TASK, acks_late=True)
def record_cell_progress(**fields: Any) -> None:
    services.cell_record_progress(**contracts.ProgressMessage.from_kwargs(fields).to_kwargs())


@shared_task(name=contracts.HEARTBEAT_TASK, ignore_result=True)
def runner_heartbeat(**fields: Any) -> None:
    services.runner_heartbeat_record(**contracts.HeartbeatMessage.from_kwargs(fields).to_kwargs())


@shared_task(name="ci_runners.reap_stale_cells")
def reap_stale_cells() -> dict:
    return services.reap_stale_cells()


@shared_task(name="ci_runners.nightly_runs")
def nightly_runs() -> int:
    return services.nightly_runs()


@shared_task(
    name="ci_runners.check_torch_releases",
    autoretry_for=(PyPIUnavailable,),
    retry_backoff=60,
    max_retries=3,
)
def check_torch_releases() -> list[str]:
    return [target.label for target in services.torch_releases_check()]
