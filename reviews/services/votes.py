"""The TAC vote: who may vote, the tally and its threshold, closing (by the clock or once
everyone voted) with the decision explained."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from registry.models import MaintainerIdentity
from reviews.models import (
    CriterionResult,
    ReviewEvent,
    Submission,
    Vote,
)
from reviews.roles import VOTING_GROUP, conflict_reason, maintainer_handles_of
from reviews.services.events import review_event_record
from reviews.services.permissions import require_reviewer
from reviews.services.submissions import submission_transition
from reviews.states import (
    InvalidTransition,
    NotAllowed,
    PeriodicReviewState,
    ReviewError,
    SubmissionState,
)

logger = logging.getLogger(__name__)
S = SubmissionState
P = PeriodicReviewState
Outcome = CriterionResult.Outcome


# --- the vote -----------------------------------------------------------------------------------


def eligible_voters(*, submission: Submission) -> list[User]:
    """Active voting members, less those who maintain the project (and the applicant)."""
    from django.contrib.auth import get_user_model

    members = list(
        get_user_model()
        .objects.filter(groups__name=VOTING_GROUP, is_active=True)
        .exclude(pk=submission.applicant_id)
        .distinct()
        .order_by("pk")
    )
    handles = maintainer_handles_of(submission)
    identities = dict(
        MaintainerIdentity.objects.filter(user__in=members).values_list("user_id", "github_handle")
    )
    return [m for m in members if identities.get(m.pk, "").lower() not in handles]


@dataclass(frozen=True)
class VoteTally:
    eligible: int
    approve: int
    reject: int
    abstain: int
    hosted: bool

    @property
    def not_voted(self) -> int:
        return self.eligible - self.approve - self.reject - self.abstain

    @property
    def required(self) -> int:
        """Approvals needed: more than half (hosted: at least two thirds) of all eligible."""
        if self.hosted:
            return -(-2 * self.eligible // 3)
        return self.eligible // 2 + 1

    @property
    def passes(self) -> bool:
        return self.eligible > 0 and self.approve >= self.required

    @property
    def rule(self) -> str:
        return "at least two thirds" if self.hosted else "more than half"

    def explain(self) -> str:
        return (
            f"{self.approve} of {self.eligible} eligible voting members approved, "
            f"{self.reject} rejected, {self.abstain} abstained, {self.not_voted} did not vote. "
            f"Acceptance needs {self.rule} of the eligible members: {self.required} approvals."
        )


def vote_tally(*, submission: Submission) -> VoteTally:
    eligible = {m.pk for m in eligible_voters(submission=submission)}
    counts = {choice: 0 for choice in Vote.Choice.values}
    for voter_id, choice in submission.votes.values_list("voter_id", "choice"):
        if voter_id in eligible:
            counts[choice] += 1
    return VoteTally(
        eligible=len(eligible),
        approve=counts[Vote.Choice.APPROVE],
        reject=counts[Vote.Choice.REJECT],
        abstain=counts[Vote.Choice.ABSTAIN],
        hosted=submission.is_hosted,
    )


@transaction.atomic
def vote_cast(*, submission: Submission, voter: User, choice: str) -> Vote:
    """A voting member votes, or changes their vote, while the window is open.

    The last vote of the eligible members closes the vote, with its decision, in the same
    transaction (`submission.state` says the outcome).
    """
    locked = Submission.objects.select_for_update().get(pk=submission.pk)
    if choice not in Vote.Choice.values:
        raise ReviewError("Vote approve, reject or abstain.")
    if locked.state != S.VOTING:
        raise ReviewError("The vote is not open for this application.")
    if locked.vote_closes_at and timezone.now() >= locked.vote_closes_at:
        raise ReviewError("The vote has closed.")
    if VOTING_GROUP not in set(voter.groups.values_list("name", flat=True)):
        raise NotAllowed("Only TAC voting members vote.")
    conflict = conflict_reason(submission=locked, user=voter)
    if conflict:
        raise NotAllowed(conflict)
    vote, created = Vote.objects.update_or_create(
        submission=locked, voter=voter, defaults={"choice": choice}
    )
    review_event_record(
        submission=locked,
        actor=voter,
        kind=ReviewEvent.Kind.VOTE,
        note=f"{'Voted' if created else 'Changed vote to'} {Vote.Choice(choice).label.lower()}.",
        data={"choice": choice},
        notify=False,
    )
    tally = vote_tally(submission=locked)
    if tally.eligible and not tally.not_voted:
        _vote_decide(locked, tally=tally, actor=None, why="every eligible member voted")
        submission.state = locked.state
    return vote


@transaction.atomic
def vote_close(*, submission: Submission, actor: User | None = None) -> Submission:
    """Close the vote and record the decision, explained (counts and threshold).

    The clock (actor None) closes it when the window ends; a reviewer or staff may close it
    earlier only once every eligible member has voted.
    """
    locked = Submission.objects.select_for_update().get(pk=submission.pk)
    if locked.state != S.VOTING:
        raise InvalidTransition("The vote is not open for this application.")
    tally = vote_tally(submission=locked)
    now = timezone.now()
    if actor is None:
        if locked.vote_closes_at and now < locked.vote_closes_at:
            raise ReviewError("The voting window is still open.")
    else:
        require_reviewer(submission=locked, actor=actor)
        if tally.not_voted and (not locked.vote_closes_at or now < locked.vote_closes_at):
            raise ReviewError(
                f"{tally.not_voted} eligible member(s) have not voted yet; the vote closes by "
                f"itself on {locked.vote_closes_at:%Y-%m-%d %H:%M} UTC."
            )
    ended = actor is None or tally.not_voted
    why = "the voting window ended" if ended else "every eligible member voted"
    result = _vote_decide(locked, tally=tally, actor=actor, why=why)
    submission.state = result.state
    return result


def _vote_decide(
    locked: Submission, *, tally: VoteTally, actor: User | None, why: str
) -> Submission:
    """Record the decision of a vote (the row is locked by the caller) and move the application
    to accepted or declined."""
    to = S.ACCEPTED if tally.passes else S.DECLINED
    explanation = f"{'Accepted' if tally.passes else 'Declined'} ({why}): {tally.explain()}"
    review_event_record(
        submission=locked,
        actor=actor,
        kind=ReviewEvent.Kind.DECISION,
        from_state=S.VOTING,
        to_state=to,
        note=explanation,
        data={
            "eligible": tally.eligible,
            "approve": tally.approve,
            "reject": tally.reject,
            "abstain": tally.abstain,
            "required": tally.required,
            "rule": tally.rule,
        },
        public=True,
        notify=False,
    )
    return submission_transition(submission=locked, to=to, actor=None, note=explanation)


def votes_close_due(*, now=None) -> list[int]:
    """Close every vote whose window has ended (the beat task); returns the ids closed."""
    now = now or timezone.now()
    closed = []
    due = Submission.objects.filter(state=S.VOTING, vote_closes_at__lte=now).values_list(
        "pk", flat=True
    )
    for pk in due:
        try:
            vote_close(submission=Submission.objects.get(pk=pk), actor=None)
        except ReviewError as error:
            logger.info("Vote of application %s not closed: %s", pk, error)
            continue
        closed.append(pk)
    return closed
