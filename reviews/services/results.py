"""Criteria results: automated checks (GitHub, PyPI, compatibility runs), reviewers'
answers to the human criteria, and overrides with a written reason."""

from __future__ import annotations

import logging

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from registry.models import Project
from reviews import checks, criteria
from reviews.models import (
    CriterionAnswer,
    CriterionResult,
    PeriodicReview,
    ReviewEvent,
    Submission,
)
from reviews.services.submissions import (
    _event,
    _require_reviewer,
    submission_transition,
)
from reviews.states import (
    FINAL_STATES,
    PeriodicReviewState,
    ReviewError,
    SubmissionState,
)

logger = logging.getLogger(__name__)
S = SubmissionState
P = PeriodicReviewState
Outcome = CriterionResult.Outcome


# --- criteria ---------------------------------------------------------------------------------


def _record(submission: Submission, measurement: checks.Measurement) -> CriterionResult:
    """Upsert an automated result; an override keeps its outcome but the evidence refreshes."""
    result, _ = CriterionResult.objects.select_for_update().get_or_create(
        submission=submission, criterion=measurement.criterion
    )
    result.automated = True
    result.automated_outcome = measurement.outcome
    result.evidence_value = measurement.value[:500]
    result.evidence_url = measurement.url[:500]
    result.measured_at = measurement.measured_at or timezone.now()
    if not result.overridden:
        if (
            measurement.criterion in criteria.REVIEWER_ANSWERED
            and measurement.outcome != Outcome.UNMET
        ):
            result.outcome = _outcome_from_answers(submission, measurement.criterion)
        else:
            result.outcome = measurement.outcome
    result.save()
    return result


def criteria_ensure_rows(*, submission: Submission) -> None:
    existing = set(submission.results.values_list("criterion", flat=True))
    CriterionResult.objects.bulk_create(
        [
            CriterionResult(submission=submission, criterion=c.number)
            for c in criteria.CRITERIA
            if c.number not in existing
        ],
        ignore_conflicts=True,
    )


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
    for measurement in measurements:
        _record(submission, measurement)
    run_id, why_not = _request_compat_run(
        project=submission.project,
        source_url=f"https://github.com/{submission.repo_owner}/{submission.repo_name}",
        requested_by=None,
        on_complete_kwargs={"submission_id": submission.pk},
    )
    if run_id:
        submission.compat_run_id_ref = run_id
        pending = f"compatibility run #{run_id} requested; waiting for its cells"
    else:
        pending = f"not measured: {why_not}"
    for number in criteria.COMPAT_CRITERIA:
        _record(
            submission,
            checks.Measurement(number, Outcome.UNKNOWN, pending, "", timezone.now()),
        )
    submission.checks_ran_at = timezone.now()
    submission.save(
        update_fields=["github_health", "checks_ran_at", "compat_run_id_ref", "updated_at"]
    )
    tally = {o: 0 for o in Outcome.values}
    for outcome in submission.results.values_list("outcome", flat=True):
        tally[outcome] += 1
    summary = f"{tally['met']} met, {tally['unmet']} not met, {tally['unknown']} unknown"
    ReviewEvent.objects.create(
        submission=submission,
        kind=ReviewEvent.Kind.CHECKS,
        note=f"Automated checks: {summary}.",
        data={"tally": tally, "compat_run_id": run_id},
    )
    if submission.state == S.CHECKING:
        submission = submission_transition(
            submission=submission,
            to=S.IN_REVIEW,
            actor=None,
            note=f"Automated checks finished ({summary}). Waiting for the reviewers.",
        )
    return submission


def _cell_url(cell_id: int | None) -> str:
    """Link to a compatibility cell's page (the evidence of criteria 1 and 8)."""
    if not cell_id:
        return ""
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("ci_runners:cell", kwargs={"cell_id": cell_id})
    except NoReverseMatch:
        return ""


def _request_compat_run(
    *, project: Project | None, source_url: str, requested_by, on_complete_kwargs: dict
) -> tuple[int | None, str]:
    """Ask ci_runners for a run on the latest two PyTorch minors; (run id, why not)."""
    try:
        from ci_runners.services import compat_run_request
    except ImportError:
        return None, "compatibility runs are not available"
    targets = checks.latest_two_minor_targets()
    if not targets:
        return None, "no active PyTorch targets are configured"
    try:
        run = compat_run_request(
            project=project,
            source_url="" if project else source_url,
            targets=targets,
            trigger="review",
            requested_by=requested_by,
            on_complete_task="reviews.compat_run_finished",
            on_complete_kwargs=on_complete_kwargs,
        )
    except Exception as error:  # another app's failure must not stop the review
        logger.exception("Compatibility run request failed")
        return None, f"the compatibility run could not be requested ({error})"
    return run.pk, ""


@transaction.atomic
def compat_run_record(
    *, run_id: int, submission_id: int | None = None, periodic_review_id: int | None = None
) -> None:
    """A compatibility run finished: criteria 1 and 8 from its cells."""
    from ci_runners.models import CompatCell

    cells = list(CompatCell.objects.filter(run_id=run_id).select_related("target"))
    failing = [c for c in cells if c.state != "passed"]
    evidence_cell = failing[0] if failing else (cells[0] if cells else None)
    measurements = checks.compat_measurements(
        cells, run_url=_cell_url(evidence_cell.pk if evidence_cell else None)
    )
    if submission_id is not None:
        submission = Submission.objects.select_for_update().filter(pk=submission_id).first()
        if submission is None or submission.compat_run_id_ref != run_id:
            return  # a newer run was asked for since
        for measurement in measurements:
            _record(submission, measurement)
        ReviewEvent.objects.create(
            submission=submission,
            kind=ReviewEvent.Kind.CHECKS,
            note=f"Compatibility run #{run_id}: {measurements[0].value}.",
            data={"compat_run_id": run_id},
        )
    if periodic_review_id is not None:
        from reviews.services.periodic import _periodic_merge_results, periodic_review_evaluate

        review = PeriodicReview.objects.select_for_update().filter(pk=periodic_review_id).first()
        if review is None or review.compat_run_id_ref != run_id:
            return
        _periodic_merge_results(review, measurements)
        review.save(update_fields=["results", "updated_at"])
        periodic_review_evaluate(review=review, today=timezone.now().date())


def _outcome_from_answers(submission: Submission, criterion: int) -> str:
    outcomes = list(
        CriterionAnswer.objects.filter(submission=submission, criterion=criterion).values_list(
            "outcome", flat=True
        )
    )
    if not outcomes:
        return Outcome.UNKNOWN
    if Outcome.UNMET in outcomes:
        return Outcome.UNMET
    if all(o == Outcome.NOT_APPLICABLE for o in outcomes):
        return Outcome.NOT_APPLICABLE
    if all(o in (Outcome.MET, Outcome.NOT_APPLICABLE) for o in outcomes):
        return Outcome.MET
    return Outcome.UNKNOWN


@transaction.atomic
def criterion_answer(
    *,
    submission: Submission,
    criterion: int,
    reviewer: User,
    outcome: str,
    justification: str,
) -> CriterionAnswer:
    """A reviewer's judgement of a human criterion, with a justification."""
    _require_reviewer(submission=submission, actor=reviewer)
    if criterion not in criteria.REVIEWER_ANSWERED:
        raise ReviewError(f"Criterion {criterion} is measured automatically, not answered.")
    if outcome not in Outcome.values:
        raise ReviewError("Choose met, not met, unknown or not applicable.")
    justification = (justification or "").strip()
    if not justification:
        raise ReviewError("Give a justification for your answer.")
    if len(justification) > 2000:
        raise ReviewError("A justification is at most 2,000 characters.")
    if submission.state in FINAL_STATES or submission.state == S.DRAFT:
        raise ReviewError("Criteria are answered only while the application is under review.")
    answer, _ = CriterionAnswer.objects.update_or_create(
        submission=submission,
        criterion=criterion,
        reviewer=reviewer,
        defaults={"outcome": outcome, "justification": justification},
    )
    criteria_ensure_rows(submission=submission)
    result = CriterionResult.objects.select_for_update().get(
        submission=submission, criterion=criterion
    )
    if not result.overridden and not (
        result.automated and result.automated_outcome == Outcome.UNMET
    ):
        result.outcome = _outcome_from_answers(submission, criterion)
        result.save(update_fields=["outcome", "updated_at"])
    ReviewEvent.objects.create(
        submission=submission,
        actor=reviewer,
        kind=ReviewEvent.Kind.ANSWER,
        note=f"Criterion {criterion}: {Outcome(outcome).label}. {justification}"[:5000],
        data={"criterion": criterion, "outcome": outcome},
    )
    return answer


@transaction.atomic
def criterion_override(
    *, submission: Submission, criterion: int, outcome: str, reason: str, actor: User
) -> CriterionResult:
    """A reviewer overrides an automated result; the written reason is kept and logged."""
    _require_reviewer(submission=submission, actor=actor)
    if criterion not in criteria.BY_NUMBER or not criteria.BY_NUMBER[criterion].automated:
        raise ReviewError(f"Criterion {criterion} is not measured automatically.")
    if outcome not in Outcome.values:
        raise ReviewError("Choose met, not met, unknown or not applicable.")
    reason = (reason or "").strip()
    if not reason:
        raise ReviewError("Overriding an automated result needs a written reason.")
    if len(reason) > 2000:
        raise ReviewError("A reason is at most 2,000 characters.")
    if submission.state in FINAL_STATES or submission.state == S.DRAFT:
        raise ReviewError("Results change only while the application is under review.")
    criteria_ensure_rows(submission=submission)
    result = CriterionResult.objects.select_for_update().get(
        submission=submission, criterion=criterion
    )
    before = result.outcome
    result.outcome, result.overridden_by, result.override_reason = outcome, actor, reason
    result.save()
    _event(
        submission=submission,
        actor=actor,
        kind=ReviewEvent.Kind.OVERRIDE,
        note=f"Criterion {criterion} overridden from '{before}' to '{outcome}': {reason}"[:5000],
        data={"criterion": criterion, "from": before, "to": outcome},
    )
    return result
