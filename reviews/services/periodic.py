"""The six-monthly periodic review; `periodic_review_transition` is the only writer of
`PeriodicReview.state`."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry import services as registry_services
from registry.models import Project
from reviews import checks, criteria
from reviews.models import (
    CriterionResult,
    PeriodicReview,
    ReviewEvent,
)
from reviews.roles import user_roles
from reviews.services.results import _request_compat_run
from reviews.services.submissions import _event
from reviews.states import (
    PERIODIC_TRANSITIONS,
    REVIEWER,
    STAFF,
    SYSTEM,
    InvalidTransition,
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
        raise InvalidTransition("Only the TAC's reviewers and staff decide this.")
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
    _event(
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


def _periodic_merge_results(review: PeriodicReview, measurements: list[checks.Measurement]) -> None:
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


def _periodic_measure(review: PeriodicReview, *, request_run: bool) -> None:
    project = review.project
    measurements: list[checks.Measurement] = []
    if project.repo_owner:
        try:
            health = checks.fetch_github_health(owner=project.repo_owner, name=project.repo_name)
        except checks.ChecksDeferred as deferred:
            health = checks.github_unreachable_measurements(f"GitHub unavailable: {deferred}")
        if isinstance(health, list):
            measurements += health
            measurements.append(
                checks.maintainers_measurement(project.maintainers, at=timezone.now())
            )
        else:
            measurements += checks.github_measurements(
                health, maintainer_handles=project.maintainers
            )
    else:
        measurements += checks.github_unreachable_measurements(
            "the project has no repository on record", outcome=Outcome.UNMET
        )
    measurements.append(checks.pypi_measurement(project.pypi_name or project.repo_name))
    if request_run and project.repo_owner:
        run_id, why_not = _request_compat_run(
            project=project,
            source_url="",
            requested_by=None,
            on_complete_kwargs={"periodic_review_id": review.pk},
        )
        review.compat_run_id_ref = run_id
        if not run_id:
            measurements += [
                checks.Measurement(
                    n, Outcome.UNKNOWN, f"not measured: {why_not}", "", timezone.now()
                )
                for n in criteria.COMPAT_CRITERIA
            ]
    _periodic_merge_results(review, measurements)
    review.save(update_fields=["results", "compat_run_id_ref", "updated_at"])


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


@transaction.atomic
def periodic_review_start(*, project: Project, today: date) -> PeriodicReview:
    review = PeriodicReview.objects.create(
        project=project, due_on=project.next_review_due or today, state=P.CHECKING
    )
    ReviewEvent.objects.create(
        periodic_review=review,
        kind=ReviewEvent.Kind.PERIODIC,
        to_state=P.CHECKING,
        note="Periodic review started.",
        public=True,
    )
    _periodic_measure(review, request_run=True)
    return periodic_review_evaluate(review=review, today=today)


def periodic_reviews_due(*, today: date | None = None) -> dict[str, list[int]]:
    """The daily clock: start reviews that are due; re-check failing ones whose grace ended."""
    today = today or timezone.now().date()
    started, rechecked = [], []
    due = (
        Project.objects.active()
        .filter(next_review_due__lte=today)
        .exclude(periodic_reviews__state__in=[P.CHECKING, P.FAILING, P.RETIREMENT_PROPOSED])
    )
    for project in due:
        try:
            started.append(periodic_review_start(project=project, today=today).pk)
        except IntegrityError:
            continue  # another clock started it
    for review in PeriodicReview.objects.filter(state=P.FAILING, grace_until__lte=today):
        with transaction.atomic():
            locked = PeriodicReview.objects.select_for_update().get(pk=review.pk)
            _periodic_measure(locked, request_run=False)
            periodic_review_evaluate(review=locked, today=today)
        rechecked.append(review.pk)
    return {"started": started, "rechecked": rechecked}


def periodic_review_decide(
    *, review: PeriodicReview, retire: bool, actor: User, note: str
) -> PeriodicReview:
    """A reviewer or staff confirms a proposed retirement, or keeps the project."""
    return periodic_review_transition(
        review=review, to=P.RETIRED if retire else P.KEPT, actor=actor, note=note
    )
