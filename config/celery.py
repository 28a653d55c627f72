"""The web-side Celery app: its workers (`worker` on `default`, `results` on `results`) and beat.

The `results` queue (the agents' results, progress and heartbeats) has a worker of its own
with broker options of its own (`configure_worker`): its tasks take seconds, so a message that
a killed worker left unacknowledged must come back within about a minute, while elsewhere the
broker's visibility timeout is hours (cells run that long). kombu's Redis transport keeps one
`unacked` hash per database and every consumer restores it with its own visibility timeout, so
the results worker keeps its unacknowledged messages under keys of its own and restores them
after CELERY_RESULTS_VISIBILITY_TIMEOUT. A worker asked to consume `results` beside another
queue does not start.
"""

import os
from typing import Any

from celery import Celery, signals

from ci_runners.agent.contracts import RESULTS_QUEUE
from ci_runners.result_batches import ResultBatches

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("ecosystem_registry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

RESULTS_UNACKED_KEYS = {
    "unacked_key": f"unacked:{RESULTS_QUEUE}",
    "unacked_index_key": f"unacked_index:{RESULTS_QUEUE}",
    "unacked_mutex_key": f"unacked_mutex:{RESULTS_QUEUE}",
}
RESULTS_RESTORE_EVERY_S = 5


def _queue_names(queues: Any) -> set[str]:
    """`-Q` as the worker got it: a comma-separated string or a list of names."""
    if not queues:
        return set()
    if isinstance(queues, str):
        queues = queues.split(",")
    return {str(queue).strip() for queue in queues if str(queue).strip()}


def configure_worker(*, conf: Any, options: dict[str, Any]) -> None:
    """Give a worker that consumes `results` the results queue's broker options."""
    from django.conf import settings

    queues = _queue_names(options.get("queues"))
    if RESULTS_QUEUE not in queues:
        return
    if queues != {RESULTS_QUEUE}:
        raise SystemExit(
            f"The {RESULTS_QUEUE!r} queue needs a worker of its own (Procfile `{RESULTS_QUEUE}`):"
            f" its short visibility timeout would re-deliver other queues' long tasks, theirs"
            f" would hold a result for hours. Asked for: -Q {','.join(sorted(queues))}"
        )
    conf.broker_transport_options = {
        **(conf.broker_transport_options or {}),
        **RESULTS_UNACKED_KEYS,
        "visibility_timeout": settings.CELERY_RESULTS_VISIBILITY_TIMEOUT,
        # Look for abandoned messages every few seconds (kombu's default: 10 x 10 s).
        "unacked_restore_interval": RESULTS_RESTORE_EVERY_S,
        "unacked_restore_throttle": 1,
    }


app.steps["consumer"].add(ResultBatches)


@signals.celeryd_init.connect
def _configure_worker(*, conf: Any, options: dict[str, Any], **_: Any) -> None:
    configure_worker(conf=conf, options=options)
