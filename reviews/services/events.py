"""The audit log: every write of the review process records its `ReviewEvent` here, and the
events people hear about are mailed once the transaction commits."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from reviews.models import PeriodicReview, ReviewEvent, Submission
from reviews.services.enqueue import SEND_EVENT_NOTIFICATION, task_enqueue


def review_event_record(
    *,
    kind: str,
    submission: Submission | None = None,
    periodic_review: PeriodicReview | None = None,
    actor: User | None = None,
    from_state: str = "",
    to_state: str = "",
    note: str = "",
    data: dict[str, Any] | None = None,
    public: bool = False,
    notify: bool = True,
) -> ReviewEvent:
    """Write one audit row; with `notify`, its notification is sent on commit."""
    event = ReviewEvent.objects.create(
        kind=kind,
        submission=submission,
        periodic_review=periodic_review,
        actor=actor,
        from_state=from_state,
        to_state=to_state,
        note=note,
        data=data if data is not None else {},
        public=public,
    )
    if notify:
        task_enqueue(name=SEND_EVENT_NOTIFICATION, kwargs={"event_id": event.pk})
    return event
