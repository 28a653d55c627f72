"""The services send review tasks by name once the transaction commits (never importing
`reviews.tasks`); with Celery eager, as in the other review tests, they run in-process."""

import pytest
from celery import current_app

from reviews import services
from tests.reviews.conftest import answers


@pytest.fixture
def broker(private_redis, settings):
    """Celery as in production (not eager), publishing to this session's private Redis."""
    private_redis.client().flushall()
    settings.CELERY_BROKER_URL = private_redis.url
    app = current_app._get_current_object()
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    yield private_redis
    app.conf.task_always_eager = eager


def sent(broker) -> list[tuple[str, dict]]:
    return [(message["task"], message["kwargs"]) for message in broker.messages("default")]


def test_submit_sends_the_notification_and_the_checks_by_name_on_commit(
    applicant, django_capture_on_commit_callbacks, broker
):
    submission = services.submission_create(applicant=applicant, answers=answers())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.submission_submit(submission=submission, actor=applicant)
    assert sent(broker) == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()
    event = submission.events.get(to_state="submitted")
    assert sent(broker) == [
        ("reviews.send_event_notification", {"event_id": event.pk}),
        ("reviews.run_automated_checks", {"submission_id": submission.pk}),
    ]
    submission.refresh_from_db()
    assert submission.state == "submitted"  # the checks were sent, not run here
