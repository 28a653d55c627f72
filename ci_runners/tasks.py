"""Thin Celery tasks of the web side: each takes primitives and calls one service.

Runner agents send `record_cell_progress` and `runner_heartbeat` by name to the `results`
queue, consumed by a worker of its own (config/celery.py); their results go to
`results.cells`, which that worker takes in batches (ci_runners/result_batches.py), not
through `record_cell_result` (kept for a result that reaches `results`, e.g. from an older
agent). Beat sends the periodic ones to `default`. Results are acknowledged late, after the
service's transaction has committed: a worker killed in the middle leaves the message to come
back (in about a minute), and recording it again changes nothing that was committed.
"""

import logging
from typing import Any

from celery import shared_task

from ci_runners import services
from ci_runners.agent import contracts
from ci_runners.services.webhooks import webhook_deliveries_prune
from registry.models import Project
from registry.sources.pypi import PyPIUnavailable

logger = logging.getLogger(__name__)


# The agent's messages: their fields are the wire's (`contracts.*Message`) and the services'
# keyword arguments.


@shared_task(name=contracts.RESULT_TASK, acks_late=True)
def record_cell_result(**fields: Any) -> None:
    """One result that came by the task path (results normally come in batches: see the
    module's docstring), through the same recorder (`cells_record_results_or_resend`): what
    the database could not take for want of a connection is sent again, never dropped."""
    message = contracts.ResultMessage.from_kwargs(fields)
    services.cells_record_results_or_resend(messages=[message])


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


@shared_task(name="ci_runners.prune_webhook_deliveries")
def prune_webhook_deliveries() -> int:
    return webhook_deliveries_prune()


@shared_task(
    name="ci_runners.check_torch_releases",
    autoretry_for=(PyPIUnavailable,),
    retry_backoff=60,
    max_retries=3,
)
def check_torch_releases() -> list[str]:
    return [target.label for target in services.torch_releases_check()]


# Bisection (first bad release): the names are `Bisection.STEP_TASK` / `.AUTOSTART_TASK`.


@shared_task(name="ci_runners.bisection_step", acks_late=True)
def bisection_step(run_id: int, bisection_id: int) -> str | None:
    """A probe run finished (its on-complete task); idempotent, so late acks are safe."""
    bisection = services.bisection_step(run_id=run_id, bisection_id=bisection_id)
    return bisection.state if bisection is not None else None


@shared_task(
    name="ci_runners.bisections_start_for_new_breaks",
    autoretry_for=(PyPIUnavailable,),
    retry_backoff=60,
    max_retries=3,
)
def bisections_start_for_new_breaks(project_id: int) -> int | None:
    """A matrix run of the project finished with a break no bisection has searched yet."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return None
    bisection = services.bisections_start_for_new_breaks(project=project)
    return bisection.pk if bisection is not None else None
