"""The periodic review's clock: every day it starts the reviews that are due (measuring the
project on GitHub and PyPI, and asking for a compatibility run) and re-measures failing ones
whose 30 days ended."""

from __future__ import annotations

from datetime import date

from django.db import IntegrityError, transaction
from django.utils import timezone

from registry.models import Project
from reviews import checks, criteria
from reviews.models import CriterionResult, PeriodicReview, ReviewEvent
from reviews.services.compat import review_compat_run_request
from reviews.services.events import review_event_record
from reviews.services.periodic import periodic_review_evaluate, periodic_review_results_merge
from reviews.states import PeriodicReviewState

P = PeriodicReviewState
Outcome = CriterionResult.Outcome


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
    rechecks = PeriodicReview.objects.filter(state=P.FAILING, grace_until__lte=today).exclude(
        # A compatibility run it asked for is still going: its result decides.
        compat_run__isnull=False,
        compat_run__finished_at__isnull=True,
    )
    for review in rechecks:
        with transaction.atomic():
            locked = PeriodicReview.objects.select_for_update().get(pk=review.pk)
            # The project may have fixed a break: its compatibility is measured again too.
            _measure(locked, request_run=True)
            periodic_review_evaluate(review=locked, today=today)
        rechecked.append(review.pk)
    return {"started": started, "rechecked": rechecked}


@transaction.atomic
def periodic_review_start(*, project: Project, today: date) -> PeriodicReview:
    review = PeriodicReview.objects.create(
        project=project, due_on=project.next_review_due or today, state=P.CHECKING
    )
    review_event_record(
        periodic_review=review,
        kind=ReviewEvent.Kind.PERIODIC,
        to_state=P.CHECKING,
        note="Periodic review started.",
        public=True,
        notify=False,
    )
    _measure(review, request_run=True)
    return periodic_review_evaluate(review=review, today=today)


def _measure(review: PeriodicReview, *, request_run: bool) -> None:
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
        run, why_not = review_compat_run_request(
            project=project, source_url="", on_complete_kwargs={"periodic_review_id": review.pk}
        )
        review.compat_run = run
        if run is not None:
            # Criteria 1 and 8 wait for this run; an earlier run's results do not count.
            review.results = [
                row for row in review.results if row["criterion"] not in criteria.COMPAT_CRITERIA
            ]
        else:
            measurements += [
                checks.Measurement(
                    n, Outcome.UNKNOWN, f"not measured: {why_not}", "", timezone.now()
                )
                for n in criteria.COMPAT_CRITERIA
            ]
    periodic_review_results_merge(review=review, measurements=measurements)
    review.save(update_fields=["results", "compat_run", "updated_at"])
