"""Criteria results of an application: automated measurements recorded as evidence,
reviewers' answers to the human criteria, and overrides with a written reason."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from reviews import checks, criteria
from reviews.models import (
    CriterionAnswer,
    CriterionResult,
    ReviewEvent,
    Submission,
)
from reviews.services.events import review_event_record
from reviews.services.permissions import require_reviewer
from reviews.states import (
    FINAL_STATES,
    ReviewError,
    SubmissionState,
)

logger = logging.getLogger(__name__)
S = SubmissionState
Outcome = CriterionResult.Outcome
CheckState = CriterionResult.CheckState
AUTOMATED_CRITERIA = tuple(c.number for c in criteria.CRITERIA if c.automated)


# --- criteria ---------------------------------------------------------------------------------


def criterion_result_record(
    *, submission: Submission, measurement: checks.Measurement
) -> CriterionResult:
    """Upsert an automated result; an override keeps its outcome but the evidence refreshes.

    The check's state comes with it: measured, running (the value says what it waits for) or
    failed (the value says why); a retry time is only ever set by `criteria_checks_retrying`.
    """
    result, _ = CriterionResult.objects.select_for_update().get_or_create(
        submission=submission, criterion=measurement.criterion
    )
    result.automated = True
    result.automated_outcome = measurement.outcome
    result.evidence_value = measurement.value[:500]
    result.evidence_url = measurement.url[:500]
    result.measured_at = measurement.measured_at or timezone.now()
    result.check_state = measurement.check
    result.check_retry_at = None
    result.check_note = measurement.value[:500] if measurement.check == CheckState.FAILED else ""
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


def criteria_checks_running(*, submission: Submission) -> None:
    """Every automated criterion's check is queued again (a reviewer asked for a re-run)."""
    criteria_ensure_rows(submission=submission)
    submission.results.filter(criterion__in=AUTOMATED_CRITERIA).update(
        check_state=CheckState.RUNNING,
        check_retry_at=None,
        check_note="",
        updated_at=timezone.now(),
    )


def criteria_checks_retrying(
    *, submission: Submission, numbers: Iterable[int], retry_at: datetime, reason: str
) -> None:
    """These criteria's checks could not run now (`reason`); they are tried again at
    `retry_at`. Their earlier outcome and evidence, if any, stay as they were."""
    criteria_ensure_rows(submission=submission)
    submission.results.filter(criterion__in=list(numbers)).update(
        check_state=CheckState.RETRYING,
        check_retry_at=retry_at,
        check_note=reason[:500],
        updated_at=timezone.now(),
    )


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
    require_reviewer(submission=submission, actor=reviewer)
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
    review_event_record(
        submission=submission,
        actor=reviewer,
        kind=ReviewEvent.Kind.ANSWER,
        note=f"Criterion {criterion}: {Outcome(outcome).label}. {justification}"[:5000],
        data={"criterion": criterion, "outcome": outcome},
        notify=False,
    )
    return answer


@transaction.atomic
def criterion_override(
    *, submission: Submission, criterion: int, outcome: str, reason: str, actor: User
) -> CriterionResult:
    """A reviewer overrides an automated result; the written reason is kept and logged."""
    require_reviewer(submission=submission, actor=actor)
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
    review_event_record(
        submission=submission,
        actor=actor,
        kind=ReviewEvent.Kind.OVERRIDE,
        note=f"Criterion {criterion} overridden from '{before}' to '{outcome}': {reason}"[:5000],
        data={"criterion": criterion, "from": before, "to": outcome},
    )
    return result
