"""The services send review tasks by name once the transaction commits (never importing
`reviews.tasks`); with Celery eager, as in the other review tests, they run in-process."""

import pytest
from celery import current_app

from reviews import services
from tests.reviews.conftest import answers


@pytest.fixture
def sent_tasks(monkeypatch):
    """Celery as in production (not eager); what is sent is recorded instead of published."""
    app = current_app._get_current_object()
    sent: list[tuple[str, dict, str]] = []
    monkeypatch.setattr(
        app, "send_task", lambda name, kwargs, queue: sent.append((name, kwargs, queue))
    )
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    yield sent
    app.conf.task_always_eager = eager


def test_submit_sends_the_notification_and_the_checks_by_name_on_commit(
    applicant, django_capture_on_commit_callbacks, sent_tasks
):
    submission = services.submission_create(applicant=applicant, answers=answers())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.submission_submit(submission=submission, actor=applicant)
    assert sent_tasks == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()
    event = submission.events.get(to_state="submitted")
    assert sent_tasks == [
        ("reviews.send_event_notification", {"event_id": event.pk}, "default"),
        ("reviews.run_automated_checks", {"submission_id": submission.pk}, "default"),
    ]
    submission.refresh_from_db()
    assert submission.state == "submitted"  # the checks were sent, not run here
