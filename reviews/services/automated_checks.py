"""The automated checks of an application: GitHub and PyPI measured now, a compatibility run
asked for (criteria 1 and 8 follow when it finishes, see `compat`)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from reviews import checks, criteria
from reviews.models import CriterionResult, ReviewEvent, Submission
from reviews.services.compat import review_compat_run_request
from reviews.services.events import review_event_record
from reviews.services.results import criteria_ensure_rows, criterion_result_record
from reviews.services.submissions import submission_transition
from reviews.states import FINAL_STATES, SubmissionState

S = SubmissionState
Outcome = CriterionResult.Outcome


@transaction.atomic
def submission_run_checks(*, submission_id: int, final_attempt: bool = True) -> Submission | None:
    """Measure the automated criteria (GitHub, PyPI; ask for a compatibility run).

    Raises checks.ChecksDeferred when GitHub is unavailable and this is not the final attempt.
    """
    submission = Submission.objects.select_for_update().filter(pk=submission_id).first()
    if submission is None or submission.state in FINAL_STATES or submission.state == S.DRAFT:
        return None
    if submission.state == S.SUBMITTED:
        submission = submission_transition(
            submission=submission, to=S.CHECKING, actor=None, note="Automated checks started."
        )
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
        pending = f"compatibility run #{run.pk} requested; waiting for its cells"
    else:
        pending = f"not measured: {why_not}"
    for number in criteria.COMPAT_CRITERIA:
        criterion_result_record(
            submission=submission,
            measurement=checks.Measurement(number, Outcome.UNKNOWN, pending, "", timezone.now()),
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
