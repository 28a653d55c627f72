"""Who a user is on GitHub: the `MaintainerIdentity` linking an account to a GitHub handle.

A GitHub sign-in proves the handle (`maintainer_identity_link_github`, called by the social
account adapter, config/accounts.py); staff may verify one by hand in the admin, with a reason
(`maintainer_identity_set_verified`, logged in the admin's history, Django's `LogEntry`). Once
verified, the handle's places among the projects' maintainer candidates (found on sync) become
places among their maintainers (`maintainer_candidates_promote`), each an audited listing change.
A handle already linked to another account is never taken over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.db import transaction

from registry.listing import handle_in, listing_change_record
from registry.models import MaintainerIdentity, Project
from registry.repository_urls import OWNER_RE

logger = logging.getLogger(__name__)


class LinkResult(StrEnum):
    LINKED = "linked"  # the handle is now the user's, verified
    TAKEN = "taken"  # another account holds the handle: nothing changed
    INVALID = "invalid"  # not a GitHub user name: nothing changed


@dataclass
class LinkOutcome:
    result: LinkResult
    identity: MaintainerIdentity | None = None
    promoted: list[Project] = field(default_factory=list)


@transaction.atomic
def maintainer_identity_link_github(*, user: Any, github_handle: str) -> LinkOutcome:
    """Record that `user` signed in as `github_handle` on GitHub: their identity (created or
    updated: a GitHub rename follows the account) is verified, and the handle's candidate
    places become maintainer places. A handle another account holds stays with it."""
    if not isinstance(github_handle, str) or not OWNER_RE.fullmatch(github_handle):
        logger.warning("GitHub sign-in of user %s gave no usable login", user.pk)
        return LinkOutcome(LinkResult.INVALID)
    holder = (
        MaintainerIdentity.objects.select_for_update()
        .filter(github_handle__iexact=github_handle)
        .exclude(user=user)
        .first()
    )
    if holder is not None:
        logger.warning(
            "GitHub sign-in: @%s is linked to user %s; user %s was not linked to it",
            github_handle,
            holder.user_id,
            user.pk,
        )
        return LinkOutcome(LinkResult.TAKEN)
    identity = MaintainerIdentity.objects.select_for_update().filter(user=user).first()
    if identity is None:
        identity = MaintainerIdentity(user=user)
    identity.github_handle = github_handle
    identity.verified = True
    identity.save()
    promoted = maintainer_candidates_promote(handle=github_handle, actor=user)
    return LinkOutcome(LinkResult.LINKED, identity, promoted)


@transaction.atomic
def maintainer_identity_set_verified(
    *, identity: MaintainerIdentity, verified: bool, actor: Any, reason: str
) -> MaintainerIdentity:
    """Staff verify (or unverify) an identity by hand; the reason goes to the admin's history.
    A verified handle's candidate places become maintainer places."""
    reason = reason.strip()
    if not reason:
        raise ValueError("Say why the identity is verified by hand.")
    locked = MaintainerIdentity.objects.select_for_update().get(pk=identity.pk)
    if locked.verified != verified:
        locked.verified = verified
        locked.save(update_fields=["verified"])
    identity.verified = verified
    LogEntry.objects.log_actions(
        user_id=actor.pk,
        queryset=[locked],
        action_flag=CHANGE,
        change_message=[
            {"changed": {"fields": ["verified"]}},
            {"verification": {"verified": verified, "reason": reason[:1000]}},
        ],
        single_object=True,
    )
    if verified:
        maintainer_candidates_promote(handle=locked.github_handle, actor=actor)
    return locked


def maintainer_candidates_promote(*, handle: str, actor: Any) -> list[Project]:
    """Every project naming `handle` among its maintainer candidates gets it among its
    maintainers (spelled as given; an audited change), and loses the candidate entry."""
    lowered = handle.lower()
    found = (
        Project.objects.select_for_update()
        .filter(maintainer_candidates__icontains=handle)
        .order_by("pk")  # one locking order for every caller
    )
    promoted = []
    for project in found:
        named = [
            c
            for c in project.maintainer_candidates
            if isinstance(c, dict) and str(c.get("handle", "")).lower() == lowered
        ]
        if not named:
            continue
        project.maintainer_candidates = [c for c in project.maintainer_candidates if c not in named]
        update = ["maintainer_candidates", "updated_at"]
        if not handle_in(handle, project.maintainers):
            old = list(project.maintainers)
            project.maintainers = [*old, handle]
            update.append("maintainers")
            listing_change_record(
                project=project,
                actor=actor,
                field="maintainers",
                old=old,
                new=project.maintainers,
                reverts=None,
            )
            promoted.append(project)
        project.save(update_fields=update)
    return promoted
