"""Who may act on an application: the roles an actor holds on it, and the refusal
(`NotAllowed`) when the role an action needs is missing."""

from __future__ import annotations

from django.contrib.auth.models import User

from reviews.models import Submission
from reviews.roles import user_roles
from reviews.states import APPLICANT, REVIEWER, STAFF, SYSTEM, NotAllowed


def roles_on(*, submission: Submission, actor: User | None) -> frozenset[str]:
    """The roles `actor` holds on this application. An applicant never reviews their own."""
    if actor is None:
        return frozenset({SYSTEM})
    if actor.pk == submission.applicant_id:
        return frozenset({APPLICANT})
    return user_roles(actor) & {REVIEWER, STAFF}


def require_reviewer(*, submission: Submission, actor: User) -> None:
    """Refuse (NotAllowed) unless `actor` reviews this application as a TAC reviewer or staff."""
    if not roles_on(submission=submission, actor=actor) & {REVIEWER, STAFF}:
        raise NotAllowed("Only TAC reviewers and staff may do this.")
