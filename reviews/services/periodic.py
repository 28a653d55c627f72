"""The six-monthly periodic review's state machine: `periodic_review_transition` is the only
writer of `PeriodicReview.state`; `periodic_review_evaluate` decides what measured results
mean; a TAC member decides a proposed retirement."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from registry import services as registry_services
from reviews import checks, criteria
from reviews.models import (
    CriterionResult,
    PeriodicReview,
    ReviewEvent,
)
from reviews.roles import user_roles
from reviews.services.events import review_event_record
from reviews.states import (
    PERIODIC_TRANSITIONS,
    REVIEWER,
    STAFF,
    SYSTEM,
    InvalidTransition,
    NotAllowed,
    PeriodicReviewState,
    SubmissionState,
)

logger = logging.getLogger(__name__)
S = SubmissionState
P = PeriodicReviewState
Outcome = CriterionResult.Outcome

GRACE_PERIOD = timedelta(days=30)
REVIEW_INTERVAL = registry_services.REVIEW_INTERVAL


# --- periodic review ----------------------------------------------------------------------------


@transaction.atomic
def periodic_review_transition(
    *, review: PeriodicReview, to: str, actor: User | None, note: str = ""
) -> PeriodicReview:
    """The only writer of PeriodicReview.state."""
    locked = PeriodicReview.objects.select_for_update().select_related("project").get(pk=review.pk)
    frm = locked.state
    allowed = PERIODIC_TRANSITIONS.get((frm, to), frozenset())
    if not allowed:
        raise InvalidTransition(f"A periodic review cannot move from '{P(frm).label}' to '{to}'.")
    roles = frozenset({SYSTEM}) if actor is None else user_roles(actor) & {REVIEWER, STAFF}
    if not allowed & roles:
        raise NotAllowed("Only the TAC's reviewers and staff decide this.")
    if actor is not None and not note.strip():
        raise InvalidTransition("Say why: the decision is recorded with your reason.")
    today = timezone.now().date()
    locked.state = to
    fields = ["state", "updated_at"]
    if to == P.FAILING:
        locked.grace_until = today + GRACE_PERIOD
        fields.append("grace_until")
    if actor is not None:
        locked.decided_by = actor
        fields.append("decided_by")
    locked.save(update_fields=fields)
    review_event_record(
        periodic_review=locked,
        actor=actor,
        kind=ReviewEvent.Kind.PERIODIC,
        from_state=frm,
        to_state=to,
        note=note.strip()[:5000],
        data={"failing": locked.failing_criteria},
        public=True,
    )
    project = locked.project
    if to in (P.PASSED, P.KEPT):
        registry_services.project_schedule_next_review(project=project, due=today + REVIEW_INTERVAL)
    if to == P.RETIRED:
        registry_services.project_retire(project=project)
    registry_services.project_set_review_state(project=project, review_state=f"periodic_{to}")
    review.state = locked.state
    review.grace_until = locked.grace_until
    return locked


def periodic_review_results_merge(
    *, review: PeriodicReview, measurements: list[checks.Measurement]
) -> None:
    """Put fresh measurements into the review's results (unsaved), one row per criterion."""
    by_number = {row["criterion"]: row for row in review.results}
    for m in measurements:
        by_number[m.criterion] = {
            "criterion": m.criterion,
            "outcome": m.outcome,
            "value": m.value,
            "url": m.url,
            "measured_at": (m.measured_at or timezone.now()).isoformat(),
        }
    review.results = [by_number[number] for number in sorted(by_number)]


def _failing(review: PeriodicReview) -> list[dict]:
    # Criterion 2's automated part is evidence for reviewers, never a reason to retire alone.
    return [
        row for row in review.results if row["outcome"] == Outcome.UNMET and row["criterion"] != 2
    ]


@transaction.atomic
def periodic_review_evaluate(*, review: PeriodicReview, today: date) -> PeriodicReview:
    """Decide what the measured results mean, once the compatibility run (if any) finished."""
    review = PeriodicReview.objects.select_for_update().select_related("project").get(pk=review.pk)
    measured = {row["criterion"] for row in review.results}
    if not set(criteria.COMPAT_CRITERIA) <= measured:
        return review  # waiting for the compatibility run
    failing = _failing(review)
    review.failing_criteria = [row["criterion"] for row in failing]
    review.save(update_fields=["failing_criteria", "updated_at"])
    summary = "; ".join(
        f"{row['criterion']}. {criteria.BY_NUMBER[row['criterion']].title}: {row['value']}"
        for row in failing
    )
    if review.state == P.CHECKING:
        if failing:
            return periodic_review_transition(
                review=review,
                to=P.FAILING,
                actor=None,
                note=f"Failing criteria: {summary}. The maintainers have 30 days to fix them.",
            )
        return periodic_review_transition(
            review=review, to=P.PASSED, actor=None, note="All measured criteria pass."
        )
    if review.state == P.FAILING:
        if not failing:
            return periodic_review_transition(
                review=review, to=P.PASSED, actor=None, note="Fixed: all measured criteria pass."
            )
        if review.grace_until and today >= review.grace_until:
            return periodic_review_transition(
                review=review,
                to=P.RETIREMENT_PROPOSED,
                actor=None,
                note=f"Still failing after 30 days: {summary}. A TAC member confirms retirement.",
            )
    return review


def periodic_review_decide(
    *, review: PeriodicReview, retire: bool, actor: User, note: str
) -> PeriodicReview:
    """A reviewer or staff confirms a proposed retirement, or keeps the project."""
    return periodic_review_transition(
        review=review, to=P.RETIRED if retire else P.KEPT, actor=actor, note=note
    )
