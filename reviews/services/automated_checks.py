"""The automated checks of an application: GitHub and PyPI measured now, a compatibility run
asked for (criteria 1 and 8 follow when it finishes, see `compat`).

Each criterion's check says where it stands (`CriterionResult.check_state`): running, retrying
at a given time and why (GitHub unavailable: the task tries again), failed and why, measured.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from reviews import checks, criteria
from reviews.models import CriterionResult, ReviewEvent, Submission
from reviews.services.compat import review_compat_run_request
from reviews.services.enqueue import RUN_AUTOMATED_CHECKS, task_enqueue
from reviews.services.events import review_event_record
from reviews.services.permissions import require_reviewer
from reviews.services.results import (
    criteria_checks_retrying,
    criteria_checks_running,
    criteria_ensure_rows,
    criterion_result_record,
)
from reviews.services.submissions import submission_transition
from reviews.states import FINAL_STATES, ReviewError, SubmissionState

S = SubmissionState
Outcome = CriterionResult.Outcome


@transaction.atomic
def submission_request_checks(*, submission: Submission, actor: User) -> None:
    """A reviewer asks for the automated checks again; their criteria show them running."""
    require_reviewer(submission=submission, actor=actor)
    if submission.state in FINAL_STATES or submission.state == S.DRAFT:
        raise ReviewError("Checks run only on an application under review.")
    criteria_checks_running(submission=submission)
    task_enqueue(name=RUN_AUTOMATED_CHECKS, kwargs={"submission_id": submission.pk})


def submission_run_checks(*, submission_id: int, final_attempt: bool = True) -> Submission | None:
    """Measure the automated criteria (GitHub, PyPI; ask for a compatibility run).

    When GitHub is unavailable and this is not the final attempt, the attempt is undone, the
    GitHub criteria record when they are tried again and why, and checks.ChecksDeferred is
    raised (the task retries after its `retry_in` seconds). On the final attempt they record
    the failure and its reason.
    """
    try:
        return _submission_measure(submission_id=submission_id, final_attempt=final_attempt)
    except checks.ChecksDeferred as deferred:
        _submission_checks_deferred(submission_id=submission_id, deferred=deferred)
        raise


@transaction.atomic
def _submission_measure(*, submission_id: int, final_attempt: bool) -> Submission | None:
    submission = Submission.objects.select_for_update().filter(pk=submission_id).first()
    if submission is None or submission.state in FINAL_STATES or submission.state == S.DRAFT:
        return None
    if submission.state == S.SUBMITTED:
        submission = _checks_started(submission)
    criteria_ensure_rows(submission=submission)
    for measurement in _measure_repository(submission, final_attempt=final_attempt):
        criterion_result_record(submission=submission, measurement=measurement)
    run_id = _request_compat_run(submission)
    submission.checks_ran_at = timezone.now()
    submission.save(update_fields=["github_health", "checks_ran_at", "compat_run", "updated_at"])
    summary = _log_tally(submission, run_id=run_id)
    if submission.state == S.CHECKING:
        submission = submission_transition(
            submission=submission,
            to=S.IN_REVIEW,
            actor=None,
            note=f"Automated checks finished ({summary}). Waiting for the reviewers.",
        )
    return submission


def _checks_started(submission: Submission) -> Submission:
    return submission_transition(
        submission=submission, to=S.CHECKING, actor=None, note="Automated checks started."
    )


@transaction.atomic
def _submission_checks_deferred(*, submission_id: int, deferred: checks.ChecksDeferred) -> None:
    """Record the deferred attempt (in a transaction of its own: the attempt was undone)."""
    submission = Submission.objects.select_for_update().filter(pk=submission_id).first()
    if submission is None or submission.state in FINAL_STATES or submission.state == S.DRAFT:
        return
    if submission.state == S.SUBMITTED:
        submission = _checks_started(submission)
    retry_at = timezone.now() + timedelta(seconds=deferred.retry_in)
    reason = str(deferred)
    criteria_checks_retrying(
        submission=submission, numbers=criteria.GITHUB_CRITERIA, retry_at=retry_at, reason=reason
    )
    review_event_record(
        submission=submission,
        kind=ReviewEvent.Kind.CHECKS,
        note=f"Automated checks wait for GitHub: {reason} Retrying at {retry_at:%H:%M} UTC.",
        data={"retry_at": retry_at.isoformat(), "reason": reason},
        notify=False,
    )


def _measure_repository(submission: Submission, *, final_attempt: bool) -> list[checks.Measurement]:
    """GitHub health and PyPI; keeps the health figures on the application (unsaved)."""
    try:
        health = checks.fetch_github_health(owner=submission.repo_owner, name=submission.repo_name)
    except checks.ChecksDeferred as deferred:
        if not final_attempt:
            raise
        health = checks.github_unreachable_measurements(f"GitHub unavailable: {deferred}")
    if isinstance(health, list):
        measurements = [
            *health,
            checks.maintainers_measurement(submission.maintainer_handles, at=timezone.now()),
        ]
    else:
        measurements = checks.github_measurements(
            health, maintainer_handles=submission.maintainer_handles
        )
        submission.github_health = checks.health_figures(health)
    measurements.append(checks.pypi_measurement(submission.pypi_name or submission.repo_name))
    return measurements


def _request_compat_run(submission: Submission) -> int | None:
    """Ask for the run of criteria 1 and 8; until it finishes they say why they are unknown."""
    run, why_not = review_compat_run_request(
        project=submission.project,
        source_url=f"https://github.com/{submission.repo_owner}/{submission.repo_name}",
        on_complete_kwargs={"submission_id": submission.pk},
    )
    if run is not None:
        submission.compat_run = run
        pending, check = (
            f"compatibility run #{run.pk} requested; waiting for its cells",
            checks.RUNNING,
        )
    else:
        pending, check = f"not measured: {why_not}", checks.FAILED
    for number in criteria.COMPAT_CRITERIA:
        criterion_result_record(
            submission=submission,
            measurement=checks.Measurement(
                number, Outcome.UNKNOWN, pending, "", timezone.now(), check
            ),
        )
    return run.pk if run is not None else None


def _log_tally(submission: Submission, *, run_id: int | None) -> str:
    tally = {o: 0 for o in Outcome.values}
    for outcome in submission.results.values_list("outcome", flat=True):
        tally[outcome] += 1
    summary = f"{tally['met']} met, {tally['unmet']} not met, {tally['unknown']} unknown"
    review_event_record(
        submission=submission,
        kind=ReviewEvent.Kind.CHECKS,
        note=f"Automated checks: {summary}.",
        data={"tally": tally, "compat_run_id": run_id},
        notify=False,
    )
    return summary
