"""The roles of the review process, held as Django groups (created by a data migration), and
the conflict of interest that keeps a TAC member out of one application."""

from __future__ import annotations

from django.db.models import Q

from registry.models import MaintainerIdentity
from reviews.models import Submission
from reviews.states import REVIEWER, STAFF

REVIEWERS_GROUP = "TAC reviewers"
VOTING_GROUP = "TAC voting members"
STAFF_GROUP = "staff"
VOTER = "voter"
GROUPS = (REVIEWERS_GROUP, VOTING_GROUP, STAFF_GROUP)


def user_roles(user) -> frozenset[str]:
    """TAC roles of a user: subsets of {"reviewer", "voter", "staff"} (cached on the user)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_review_roles", None)
    if cached is not None:
        return cached
    names = set(user.groups.values_list("name", flat=True))
    roles = set()
    if REVIEWERS_GROUP in names:
        roles.add(REVIEWER)
    if VOTING_GROUP in names:
        roles.add(VOTER)
    if STAFF_GROUP in names or user.is_staff or user.is_superuser:
        roles.add(STAFF)
    user._review_roles = frozenset(roles)
    return user._review_roles


def is_tac(user) -> bool:
    return bool(user_roles(user))


def can_review(user) -> bool:
    return bool(user_roles(user) & {REVIEWER, STAFF})


def can_vote(user) -> bool:
    return VOTER in user_roles(user)


# --- conflict of interest -----------------------------------------------------------------------


def maintainer_handles_of(submission: Submission) -> set[str]:
    """The GitHub handles (lower case) that maintain the application's project."""
    handles = {handle.lower() for handle in submission.maintainer_handles}
    if submission.project is not None:
        handles |= {handle.lower() for handle in submission.project.maintainers}
    return handles


def _github_handle(user) -> str:
    identity = MaintainerIdentity.objects.filter(user_id=user.pk).first()
    return identity.github_handle if identity else ""


def conflict_reason(*, submission: Submission, user) -> str:
    """Why `user` has a conflict of interest on this application ("" if none)."""
    if user.pk == submission.applicant_id:
        return "You applied for this project, so you do not vote on it."
    handle = _github_handle(user)
    if handle and handle.lower() in maintainer_handles_of(submission):
        return "You maintain this project, so you do not vote on it."
    return ""


def conflicted_submission_ids(*, user) -> set[int]:
    """The applications `user` applied for or maintains: the TAC's views of them are closed to
    them (dashboard, review page, API), as is their vote."""
    conflicted = set(Submission.objects.filter(applicant_id=user.pk).values_list("pk", flat=True))
    handle = _github_handle(user)
    if handle:
        # A text match narrows the rows; the exact, case-insensitive handle match decides.
        candidates = Submission.objects.filter(
            Q(maintainer_handles__icontains=handle) | Q(project__maintainers__icontains=handle)
        ).select_related("project")
        conflicted |= {
            candidate.pk
            for candidate in candidates
            if handle.lower() in maintainer_handles_of(candidate)
        }
    return conflicted
