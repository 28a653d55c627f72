"""Thin Celery tasks of the review process: each takes ids and calls one service.

The services send the tasks by name (`reviews.services.enqueue`), never importing this module.
"""

from celery import shared_task

from reviews import notifications, services
from reviews.checks import ChecksDeferred
from reviews.services.enqueue import (
    COMPAT_RUN_FINISHED,
    RUN_AUTOMATED_CHECKS,
    SEND_EVENT_NOTIFICATION,
)


@shared_task(bind=True, name=RUN_AUTOMATED_CHECKS, max_retries=5)
def run_automated_checks(self, submission_id: int) -> None:
    try:
        services.submission_run_checks(
            submission_id=submission_id, final_attempt=self.request.retries >= self.max_retries
        )
    except ChecksDeferred as deferred:
        raise self.retry(countdown=deferred.retry_in) from deferred


@shared_task(name=COMPAT_RUN_FINISHED)
def compat_run_finished(
    run_id: int, submission_id: int | None = None, periodic_review_id: int | None = None
) -> None:
    services.compat_run_record(
        run_id=run_id, submission_id=submission_id, periodic_review_id=periodic_review_id
    )


@shared_task(name="reviews.close_due_votes")
def close_due_votes() -> list[int]:
    return services.votes_close_due()


@shared_task(name="reviews.periodic_review_due")
def periodic_review_due() -> dict:
    return services.periodic_reviews_due()


@shared_task(
    name=SEND_EVENT_NOTIFICATION,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def send_event_notification(event_id: int) -> int:
    return notifications.notify_event(event_id=event_id)
