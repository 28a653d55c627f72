"""Reads of the review process that span relations: the queue, a review page, histories."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from ci_runners.models import CompatCell
from registry.models import Project, ProjectExemption
from reviews import criteria
from reviews.models import (
    Comment,
    CriterionAnswer,
    CriterionResult,
    PeriodicReview,
    ReviewEvent,
    Submission,
)
from reviews.roles import can_vote, conflict_reason, conflicted_submission_ids
from reviews.services.permissions import roles_on
from reviews.states import (
    FINAL_STATES,
    PERIODIC_OPEN_STATES,
    REVIEWER,
    STAFF,
    STALE_AFTER_DAYS,
    PeriodicReviewState,
    SubmissionState,
    next_states,
)

CheckState = CriterionResult.CheckState


@dataclass(frozen=True)
class QueueFilters:
    state: str = ""  # "" = every open state; "all"; or one state
    assigned_to_me: bool = False
    query: str = ""


def applicant_submissions(*, user) -> QuerySet[Submission]:
    return Submission.objects.filter(applicant=user).order_by("-updated_at")


def applicant_submission(*, user, pk: int) -> Submission:
    """The user's own application (Submission.DoesNotExist for anyone else's)."""
    return Submission.objects.select_related("category__parent", "project").get(
        pk=pk, applicant=user
    )


@dataclass(frozen=True)
class QueueRow:
    submission: Submission  # annotated with `reviewer_count` and `assigned_to_me`
    waiting_days: int
    stale: bool


def tac_submissions(*, user) -> QuerySet[Submission]:
    """Applications past the draft stage that `user` may see as TAC: not those they applied
    for or maintain (`roles.conflicted_submission_ids`)."""
    return Submission.objects.exclude(state=SubmissionState.DRAFT).exclude(
        pk__in=conflicted_submission_ids(user=user)
    )


def dashboard_queue(*, user, filters: QueueFilters) -> list[QueueRow]:
    submissions = (
        tac_submissions(user=user)
        .select_related("applicant", "category")
        .annotate(
            reviewer_count=Count("reviewers", distinct=True),
            assigned_to_me=Count("reviewers", filter=Q(reviewers=user), distinct=True),
        )
    )
    if filters.state == "all":
        pass
    elif filters.state in SubmissionState.values:
        submissions = submissions.filter(state=filters.state)
    else:
        submissions = submissions.exclude(state__in=FINAL_STATES)
    if filters.assigned_to_me:
        submissions = submissions.filter(reviewers=user)
    if filters.query:
        query = filters.query[:100]
        submissions = submissions.filter(
            Q(project_name__icontains=query)
            | Q(repo_owner__icontains=query)
            | Q(repo_name__icontains=query)
            | Q(summary__icontains=query)
        )
    now = timezone.now()
    rows = []
    for submission in submissions.order_by("state_changed_at")[:300]:
        waiting = now - submission.state_changed_at
        limit = STALE_AFTER_DAYS.get(SubmissionState(submission.state))
        rows.append(
            QueueRow(
                submission=submission,
                waiting_days=waiting.days,
                stale=limit is not None and waiting > timedelta(days=limit),
            )
        )
    return rows


def dashboard_counts() -> dict[str, int]:
    counts = dict(
        Submission.objects.exclude(state=SubmissionState.DRAFT)
        .values_list("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    return {state: counts.get(state, 0) for state in SubmissionState.values if state != "draft"}


def open_periodic_reviews() -> QuerySet[PeriodicReview]:
    return (
        PeriodicReview.objects.filter(state__in=PERIODIC_OPEN_STATES)
        .select_related("project")
        .order_by("state", "grace_until")
    )


@dataclass(frozen=True)
class CheckStatus:
    """Where an automated criterion's check stands, in words (measured checks have none)."""

    state: str  # running, retrying or failed
    text: str  # "running", "retrying at 14:05 UTC because …", "failed: …"
    note: str  # the reason alone


def check_status(
    *, info: criteria.Criterion, result: CriterionResult | None, submission: Submission, now=None
) -> CheckStatus | None:
    if not info.automated:
        return None
    state = result.check_state if result else ""
    if not state and submission.state in (SubmissionState.SUBMITTED, SubmissionState.CHECKING):
        state = CheckState.RUNNING  # the checks task has not written this row yet
    note = result.check_note if result else ""
    if state == CheckState.RUNNING:
        return CheckStatus(state, "running", "")
    if state == CheckState.RETRYING and result is not None and result.check_retry_at:
        at = result.check_retry_at
        if at < (now or timezone.now()) - timedelta(minutes=1):
            return CheckStatus(
                state, f"retry was due at {at:%H:%M} UTC and has not run yet: {note}", note
            )
        return CheckStatus(state, f"retrying at {at:%H:%M} UTC because {note}", note)
    if state == CheckState.FAILED:
        return CheckStatus(state, f"failed: {note}", note)
    return None


@dataclass
class CriterionRow:
    info: criteria.Criterion
    result: CriterionResult | None
    answers: list[CriterionAnswer]
    my_answer: CriterionAnswer | None
    check: CheckStatus | None = None
    exemption: ProjectExemption | None = None


def standing_exemptions(*, project_id: int | None) -> dict[int, ProjectExemption]:
    """The project's standing exemptions (not withdrawn), by criterion number; only the
    criteria of `reviews.criteria` (a claim on an unknown number is not shown)."""
    if project_id is None:
        return {}
    exemptions = ProjectExemption.objects.filter(
        project_id=project_id, withdrawn_at__isnull=True, criterion__in=list(criteria.BY_NUMBER)
    )
    return {exemption.criterion: exemption for exemption in exemptions}


def criteria_rows(*, submission: Submission, user=None) -> list[CriterionRow]:
    results = {r.criterion: r for r in submission.results.select_related("overridden_by")}
    exemptions = standing_exemptions(project_id=submission.project_id)
    answers: dict[int, list[CriterionAnswer]] = {}
    now = timezone.now()
    for answer in submission.answers.select_related("reviewer"):
        answers.setdefault(answer.criterion, []).append(answer)
    rows = []
    for info in criteria.CRITERIA:
        mine = [
            a for a in answers.get(info.number, []) if user is not None and a.reviewer_id == user.pk
        ]
        result = results.get(info.number)
        rows.append(
            CriterionRow(
                info,
                result,
                answers.get(info.number, []),
                mine[0] if mine else None,
                check_status(info=info, result=result, submission=submission, now=now),
                exemptions.get(info.number),
            )
        )
    return rows


@dataclass(frozen=True)
class PeriodicRow:
    """A criterion of a periodic review: what was measured, and the project's exemption."""

    criterion: int
    title: str
    outcome: str  # "" when not measured
    value: str
    exemption: ProjectExemption | None


def periodic_review_rows(*, review: PeriodicReview) -> list[PeriodicRow]:
    """The review's measured results, in order, each beside the project's standing exemption
    of that criterion; an exempted criterion not measured gets a row of its own."""
    exemptions = standing_exemptions(project_id=review.project_id)
    measured = {
        row["criterion"]: row
        for row in review.results
        if isinstance(row, dict) and row.get("criterion") in criteria.BY_NUMBER
    }
    return [
        PeriodicRow(
            criterion=number,
            title=criteria.BY_NUMBER[number].title,
            outcome=str(measured.get(number, {}).get("outcome", "")),
            value=str(measured.get(number, {}).get("value", "")),
            exemption=exemptions.get(number),
        )
        for number in sorted(set(measured) | set(exemptions))
    ]


# --- what a TAC member may do on an application (the review page and the API) ---


def reviewer_moves(*, submission: Submission, user) -> list[str]:
    """The states `user` may move the application to from the TAC's side: the transition
    table's moves for their roles on it; withdrawing there is staff's alone (the applicant
    withdraws from their own portal)."""
    on_this = roles_on(submission=submission, actor=user)
    return [
        to
        for to in next_states(submission.state, on_this)
        if to != SubmissionState.WITHDRAWN or STAFF in on_this
    ]


def vote_open_to(*, submission: Submission, user) -> bool:
    """Whether `user` may cast a vote on the application now (a voting member without a
    conflict of interest, while the vote is open)."""
    return (
        can_vote(user)
        and submission.state == SubmissionState.VOTING
        and not conflict_reason(submission=submission, user=user)
    )


def vote_closable_by(*, submission: Submission, user, tally) -> bool:
    """Whether `user` may close the vote early: a reviewer or staff, once every eligible
    member voted (`tally`: `reviews.services.vote_tally` of the application)."""
    return (
        bool(roles_on(submission=submission, actor=user) & {REVIEWER, STAFF})
        and submission.state == SubmissionState.VOTING
        and tally.eligible > 0
        and tally.not_voted == 0
    )


@dataclass(frozen=True)
class UnresolvedCriterion:
    number: int
    title: str
    outcome: str  # "unknown" or "unmet"
    evidence: str

    @property
    def outcome_label(self) -> str:
        return CriterionResult.Outcome(self.outcome).label


@dataclass(frozen=True)
class CriteriaSummary:
    """The criteria a vote would leave open: unknown, or not met."""

    unresolved: list[UnresolvedCriterion]

    @property
    def unknown(self) -> list[UnresolvedCriterion]:
        return [c for c in self.unresolved if c.outcome == CriterionResult.Outcome.UNKNOWN]

    @property
    def unmet(self) -> list[UnresolvedCriterion]:
        return [c for c in self.unresolved if c.outcome == CriterionResult.Outcome.UNMET]

    def __str__(self) -> str:
        return f"{len(self.unknown)} unknown, {len(self.unmet)} not met"


def criteria_summary(*, submission: Submission) -> CriteriaSummary:
    """Unknown and unmet criteria, in order; a criterion never measured counts as unknown."""
    results = {r.criterion: r for r in submission.results.all()}
    unresolved = []
    for info in criteria.CRITERIA:
        result = results.get(info.number)
        outcome = result.outcome if result else CriterionResult.Outcome.UNKNOWN
        if outcome in (CriterionResult.Outcome.UNKNOWN, CriterionResult.Outcome.UNMET):
            evidence = result.evidence_value if result else "not measured yet"
            unresolved.append(UnresolvedCriterion(info.number, info.title, outcome, evidence))
    return CriteriaSummary(unresolved)


def comments_for(*, submission: Submission, tac: bool) -> QuerySet[Comment]:
    comments = submission.comments.select_related("author")
    return comments if tac else comments.filter(shared_with_applicant=True)


def events_for(*, submission: Submission, public_only: bool = False) -> QuerySet[ReviewEvent]:
    events = submission.events.select_related("actor")
    if public_only:
        events = events.filter(
            Q(public=True) | Q(kind__in=[ReviewEvent.Kind.CREATED, ReviewEvent.Kind.EDITED])
        )
    return events


def compat_cells_of(*, run_id: int | None) -> list[CompatCell]:
    if not run_id:
        return []
    return list(CompatCell.objects.filter(run_id=run_id).select_related("target"))


@dataclass
class HistoryEntry:
    when: object
    title: str
    detail: str


def project_review_history(*, project: Project) -> list[HistoryEntry]:
    """The public parts of a project's reviews: state changes, decisions, periodic reviews."""
    submissions = Submission.objects.filter(
        Q(project=project)
        | (
            Q(repo_owner__iexact=project.repo_owner, repo_name__iexact=project.repo_name)
            & ~Q(repo_owner="")
        )
    ).exclude(state=SubmissionState.DRAFT)
    entries: list[HistoryEntry] = []
    events = ReviewEvent.objects.filter(
        Q(submission__in=submissions) | Q(periodic_review__project=project), public=True
    ).order_by("created_at", "id")
    for event in events:
        if event.periodic_review_id:
            label = (
                PeriodicReviewState(event.to_state).label if event.to_state else "Periodic review"
            )
            entries.append(HistoryEntry(event.created_at, f"Periodic review: {label}", event.note))
        elif event.kind == ReviewEvent.Kind.DECISION:
            entries.append(HistoryEntry(event.created_at, "TAC vote closed", event.note))
        elif event.kind == ReviewEvent.Kind.TRANSITION:
            label = SubmissionState(event.to_state).label
            detail = event.note if event.to_state in (SubmissionState.TOO_EARLY,) else ""
            entries.append(HistoryEntry(event.created_at, f"Application: {label}", detail))
        elif event.kind == ReviewEvent.Kind.ONBOARDING:
            entries.append(HistoryEntry(event.created_at, "Onboarded", event.note))
    return entries
