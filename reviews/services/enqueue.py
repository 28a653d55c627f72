"""Tasks of the review process are sent by name once the transaction commits, so no service
imports `reviews.tasks` (which imports the services)."""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction

from ci_runners import broker

# The names declared in reviews/tasks.py.
RUN_AUTOMATED_CHECKS = "reviews.run_automated_checks"
SEND_EVENT_NOTIFICATION = "reviews.send_event_notification"
COMPAT_RUN_FINISHED = "reviews.compat_run_finished"


def task_enqueue(*, name: str, kwargs: dict[str, Any], queue: str | None = None) -> None:
    """Send the task `name` with `kwargs` when the current transaction commits.

    Sent to `queue`, by default the default queue (CELERY_TASK_DEFAULT_QUEUE).
    """
    chosen = queue or settings.CELERY_TASK_DEFAULT_QUEUE
    transaction.on_commit(lambda: _send(name=name, kwargs=kwargs, queue=chosen))


def _send(*, name: str, kwargs: dict[str, Any], queue: str) -> None:
    app = current_app
    if not app.conf.task_always_eager:
        broker.send_by_name(name=name, kwargs=kwargs, queue=queue)
        return
    # Celery never runs `send_task` eagerly; run the registered task here, as `.delay()` would.
    if name not in app.tasks:
        app.loader.import_default_modules()  # the workers' task autodiscovery
    app.tasks[name].apply(kwargs=kwargs)
