"""The roles of the review process, held as Django groups (created by a data migration)."""

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
