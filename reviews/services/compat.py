"""Compatibility runs for the review: asking ci_runners for a run of a project (or an
applicant's repository) on the latest two PyTorch minors, and recording a finished run's cells
as criteria 1 and 8 of the application or periodic review that asked for it."""

from __future__ import annotations

import logging

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from ci_runners.models import CompatCell, CompatRun
from ci_runners.services import compat_run_request
from ci_runners.states import CellState
from registry.models import Project
from reviews import checks
from reviews.models import PeriodicReview, ReviewEvent, Submission
from reviews.services.enqueue import COMPAT_RUN_FINISHED
from reviews.services.events import review_event_record
from reviews.services.periodic import periodic_review_evaluate, periodic_review_results_merge
from reviews.services.results import criterion_result_record

logger = logging.getLogger(__name__)

EVIDENCE_FIRST = frozenset({CellState.FAILED, CellState.TIMED_OUT, CellState.NOT_INSTALLABLE})


def review_compat_run_request(
    *, project: Project | None, source_url: str, on_complete_kwargs: dict[str, int]
) -> tuple[CompatRun | None, str]:
    """Ask for a run on the latest two PyTorch minors; (the run, or None and why not).

    When the run finishes, ci_runners sends `reviews.compat_run_finished` with
    `on_complete_kwargs` (which review asked), and `compat_run_record` takes it from there.
    """
    targets = checks.latest_two_minor_targets()
    if not targets:
        return None, "no active PyTorch targets are configured"
    try:
        run = compat_run_request(
            project=project,
            source_url="" if project else source_url,
            targets=targets,
            trigger="review",
            on_complete_task=COMPAT_RUN_FINISHED,
            on_complete_kwargs=on_complete_kwargs,
        )
    except Exception as error:  # another app's failure must not stop the review
        logger.exception("Compatibility run request failed")
        return None, f"the compatibility run could not be requested ({error})"
    return run, ""


@transaction.atomic
def compat_run_record(
    *, run_id: int, submission_id: int | None = None, periodic_review_id: int | None = None
) -> None:
    """A compatibility run finished: criteria 1 and 8 from its cells, for whoever asked."""
    measurements = _measure_run(run_id)
    if submission_id is not None:
        _record_for_submission(submission_id, run_id=run_id, measurements=measurements)
    if periodic_review_id is not None:
        _record_for_periodic_review(periodic_review_id, run_id=run_id, measurements=measurements)


def _measure_run(run_id: int) -> list[checks.Measurement]:
    cells = list(CompatCell.objects.filter(run_id=run_id).select_related("target"))
    # The evidence: a cell that counts against the project first, then one that could not be
    # judged (infrastructure), then any.
    against = [c for c in cells if c.state in EVIDENCE_FIRST]
    unjudged = [c for c in cells if c.state != CellState.PASSED]
    evidence_cell = next(iter(against or unjudged or cells), None)
    return checks.compat_measurements(
        cells, run_url=_cell_url(evidence_cell.pk if evidence_cell else None)
    )


def _cell_url(cell_id: int | None) -> str:
    """Link to a compatibility cell's page (the evidence of criteria 1 and 8)."""
    if not cell_id:
        return ""
    return reverse("ci_runners:cell", kwargs={"cell_id": cell_id})


def _record_for_submission(
    submission_id: int, *, run_id: int, measurements: list[checks.Measurement]
) -> None:
    submission = Submission.objects.select_for_update().filter(pk=submission_id).first()
    if submission is None or submission.compat_run_id != run_id:
        return  # a newer run was asked for since
    for measurement in measurements:
        criterion_result_record(submission=submission, measurement=measurement)
    review_event_record(
        submission=submission,
        kind=ReviewEvent.Kind.CHECKS,
        note=f"Compatibility run #{run_id}: {measurements[0].value}.",
        data={"compat_run_id": run_id},
        notify=False,
    )


def _record_for_periodic_review(
    review_id: int, *, run_id: int, measurements: list[checks.Measurement]
) -> None:
    review = PeriodicReview.objects.select_for_update().filter(pk=review_id).first()
    if review is None or review.compat_run_id != run_id:
        return  # a newer run was asked for since
    periodic_review_results_merge(review=review, measurements=measurements)
    review.save(update_fields=["results", "updated_at"])
    periodic_review_evaluate(review=review, today=timezone.now().date())
