"""Thin Celery tasks of the review process: each takes ids and calls one service."""

from celery import shared_task

from reviews import notifications, services
from reviews.checks import ChecksDeferred


@shared_task(bind=True, name="reviews.run_automated_checks", max_retries=5)
def run_automated_checks(self, submission_id: int) -> None:
    try:
        services.submission_run_checks(
            submission_id=submission_id, final_attempt=self.request.retries >= self.max_retries
        )
    except ChecksDeferred as deferred:
        raise self.retry(countdown=deferred.retry_in) from deferred


@shared_task(name="reviews.compat_run_finished")
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
    name="reviews.send_event_notification",
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def send_event_notification(event_id: int) -> int:
    return notifications.notify_event(event_id=event_id)
