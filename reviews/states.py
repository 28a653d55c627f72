"""The review state machine: every state of an application, and who may make each move.

`reviews.services.submission_transition` is the only writer of `Submission.state`; it checks
this table. Roles: "applicant" (the owner of the application), "reviewer" (TAC reviewers),
"staff", and "system" (automated checks, the vote clock).
"""

from django.db import models


class SubmissionState(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    CHECKING = "checking", "Automated checks"
    IN_REVIEW = "in_review", "In review"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    VOTING = "voting", "TAC vote"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    TOO_EARLY = "too_early", "Too early"
    WITHDRAWN = "withdrawn", "Withdrawn"


S = SubmissionState
APPLICANT, REVIEWER, STAFF, SYSTEM = "applicant", "reviewer", "staff", "system"

# (from, to) -> roles that may make the move.
TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
    (S.DRAFT, S.SUBMITTED): frozenset({APPLICANT}),
    (S.SUBMITTED, S.CHECKING): frozenset({SYSTEM, REVIEWER, STAFF}),
    (S.CHECKING, S.IN_REVIEW): frozenset({SYSTEM, REVIEWER, STAFF}),
    (S.IN_REVIEW, S.CHANGES_REQUESTED): frozenset({REVIEWER, STAFF}),
    (S.CHANGES_REQUESTED, S.IN_REVIEW): frozenset({APPLICANT, REVIEWER, STAFF}),
    (S.IN_REVIEW, S.VOTING): frozenset({REVIEWER, STAFF}),
    (S.VOTING, S.ACCEPTED): frozenset({SYSTEM}),
    (S.VOTING, S.DECLINED): frozenset({SYSTEM}),
    (S.VOTING, S.TOO_EARLY): frozenset({REVIEWER, STAFF}),
    **{
        (state, S.WITHDRAWN): frozenset({APPLICANT, STAFF})
        for state in (S.DRAFT, S.SUBMITTED, S.CHECKING, S.IN_REVIEW, S.CHANGES_REQUESTED, S.VOTING)
    },
}

# An application in one of these states blocks another one for the same repository.
OPEN_STATES = (S.SUBMITTED, S.CHECKING, S.IN_REVIEW, S.CHANGES_REQUESTED, S.VOTING)
# Decisions: after these nothing moves.
FINAL_STATES = (S.ACCEPTED, S.DECLINED, S.TOO_EARLY, S.WITHDRAWN)
# After these the maintainers wait RESUBMIT_AFTER before applying again for the repository.
COOLDOWN_STATES = (S.DECLINED, S.TOO_EARLY)
# The applicant may edit the answers in these states.
EDITABLE_STATES = (S.DRAFT, S.CHANGES_REQUESTED)

# How long an application may wait in a state before the dashboard warns (days).
STALE_AFTER_DAYS = {S.SUBMITTED: 2, S.CHECKING: 2, S.IN_REVIEW: 21, S.CHANGES_REQUESTED: 30}


def allowed_roles(from_state: str, to_state: str) -> frozenset[str]:
    return TRANSITIONS.get((from_state, to_state), frozenset())


def next_states(from_state: str, roles: frozenset[str] | set[str]) -> list[str]:
    """The states the holder of `roles` may move an application to from `from_state`."""
    return [
        to for (frm, to), allowed in TRANSITIONS.items() if frm == from_state and allowed & roles
    ]


class PeriodicReviewState(models.TextChoices):
    CHECKING = "checking", "Checking"
    PASSED = "passed", "Passed"
    FAILING = "failing", "Failing (30 days to fix)"
    RETIREMENT_PROPOSED = "retirement_proposed", "Retirement proposed"
    RETIRED = "retired", "Retired"
    KEPT = "kept", "Kept by the TAC"


P = PeriodicReviewState
PERIODIC_TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
    (P.CHECKING, P.PASSED): frozenset({SYSTEM}),
    (P.CHECKING, P.FAILING): frozenset({SYSTEM}),
    (P.FAILING, P.PASSED): frozenset({SYSTEM}),
    (P.FAILING, P.RETIREMENT_PROPOSED): frozenset({SYSTEM}),
    (P.RETIREMENT_PROPOSED, P.RETIRED): frozenset({REVIEWER, STAFF}),
    (P.RETIREMENT_PROPOSED, P.KEPT): frozenset({REVIEWER, STAFF}),
}
PERIODIC_OPEN_STATES = (P.CHECKING, P.FAILING, P.RETIREMENT_PROPOSED)


class ReviewError(Exception):
    """A refused review action; the message is shown to the user as it is."""


class SubmissionIncomplete(ReviewError):
    pass


class InvalidAnswers(ReviewError):
    """Answers that may not be saved, even in a draft; `errors` maps each refused answer (a
    field name) to the message shown next to it."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__(
            "Check these answers: "
            + "; ".join(f"{field}: {message}" for field, message in errors.items())
        )


class ResubmissionTooSoon(ReviewError):
    def __init__(self, message: str, opens_on):
        super().__init__(message)
        self.opens_on = opens_on


class NotAllowed(ReviewError):
    """The actor does not hold the role this action (or this move) needs: every permission
    refusal of the services, a 403 in the API."""


class InvalidTransition(ReviewError):
    """A move the table does not allow from this state, or one missing what it needs (a
    category, a note); the message says why."""


class UnresolvedCriteria(InvalidTransition):
    """The vote would open while criteria are unknown or not met: the reviewer confirms first.
    `criteria` lists them (each with `number`, `title`, `outcome`)."""

    def __init__(self, message: str, criteria: list):
        super().__init__(message)
        self.criteria = criteria
