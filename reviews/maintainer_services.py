"""What maintainers do with their listing that crosses the apps: the test recipe override
(ci_runners), exemptions from a review criterion (known here), the onboarding checklist of the
project's accepted application, and staff's revert of any audited change.

The registry fields are written by `registry.listing`; every change here leaves a
`registry.models.ListingChange` as well, so the listing has one audit trail.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from ci_runners.models import ProjectTestConfig
from ci_runners.services import project_test_config_update
from ci_runners.services.test_configs import TestConfigInvalid, test_config_values
from registry import listing
from registry.models import ListingChange, Project, ProjectExemption
from registry.sources.repo_config import TEST_KEYS
from reviews import criteria
from reviews.models import OnboardingTask, Submission
from reviews.services.permissions import roles_on
from reviews.services.submissions import onboarding_task_mark, onboarding_task_set
from reviews.states import APPLICANT, REVIEWER, STAFF, NotAllowed, SubmissionState

# The recipe fields a maintainer may override, and the cells' timeout (10 s to 4 h, the
# model's constraint): those the repository file may set. The source (a URL or path staff may
# set), the concurrency limit and the GPU flag stay with staff.
MAINTAINER_RECIPE_FIELDS = TEST_KEYS


# --- the test recipe ----------------------------------------------------------------------


def maintainer_recipe_of(*, project: Project) -> dict[str, Any]:
    """The maintainer-editable part of the project's test override, JSON-ready."""
    config = ProjectTestConfig.objects.filter(project=project).first()
    current = test_config_values(config)
    return {name: current[name] for name in MAINTAINER_RECIPE_FIELDS}


@transaction.atomic
def maintainer_recipe_update(
    *, project: Project, actor: User, changes: dict[str, Any], reverts: ListingChange | None = None
) -> dict[str, Any]:
    """Override some recipe fields (TestConfigInvalid says what is wrong, field by field);
    the change is audited on the listing with the fields' values before and after."""
    unknown = sorted(set(changes) - set(MAINTAINER_RECIPE_FIELDS))
    if unknown:
        raise TestConfigInvalid({"non_field_errors": [f"Not editable: {', '.join(unknown)}."]})
    before = maintainer_recipe_of(project=project)
    project_test_config_update(project=project, actor=actor, changes=changes)
    after = maintainer_recipe_of(project=project)
    changed = [name for name in MAINTAINER_RECIPE_FIELDS if before[name] != after[name]]
    if changed:
        listing.listing_change_record(
            project=project,
            actor=actor,
            field="test_recipe",
            old={name: before[name] for name in changed},
            new={name: after[name] for name in changed},
            reverts=reverts,
        )
    return after


# --- exemptions ---------------------------------------------------------------------------


def maintainer_exemption_claim(
    *, project: Project, actor: User, criterion: int, reason: str
) -> ProjectExemption:
    """Claim an exemption from one of the review criteria, with a public reason."""
    if criterion not in criteria.BY_NUMBER:
        raise listing.ListingRefused(f"There is no criterion {criterion}.")
    return listing.project_exemption_claim(
        project=project, actor=actor, criterion=criterion, reason=reason
    )


# --- staff revert -------------------------------------------------------------------------


@transaction.atomic
def listing_change_revert_any(*, change: ListingChange, actor: User) -> None:
    """Staff revert any audited listing change: the test recipe here, the rest in the
    registry."""
    if change.field not in listing.FOREIGN_FIELDS:
        listing.listing_change_revert(change=change, actor=actor)
        return
    if not actor.is_staff:
        raise listing.ListingNotAllowed("Only staff revert a change of a listing.")
    locked = ListingChange.objects.select_for_update().select_related("project").get(pk=change.pk)
    if locked.reverted_by.exists():
        raise listing.ListingRefused("This change was already reverted.")
    maintainer_recipe_update(
        project=locked.project, actor=actor, changes=dict(locked.old_value or {}), reverts=locked
    )


# --- onboarding ---------------------------------------------------------------------------


def project_accepted_submission(*, project: Project) -> Submission | None:
    return (
        Submission.objects.filter(project=project, state=SubmissionState.ACCEPTED)
        .order_by("-decided_at", "-pk")
        .first()
    )


def project_onboarding_tasks(*, project: Project) -> list[OnboardingTask]:
    """The checklist of the project's accepted application (empty when it has none)."""
    submission = project_accepted_submission(project=project)
    if submission is None:
        return []
    return list(submission.onboarding_tasks.select_related("done_by"))


@transaction.atomic
def maintainer_onboarding_task_set(*, task: OnboardingTask, done: bool, actor: User) -> None:
    """A maintainer of the project ticks (or unticks) a task of its checklist that is theirs
    to do; the applicant, TAC reviewers and staff go through the checklist's own rule."""
    locked = (
        OnboardingTask.objects.select_for_update(of=("self",))
        .select_related("submission__project")
        .get(pk=task.pk)
    )
    submission = locked.submission
    if roles_on(submission=submission, actor=actor) & {APPLICANT, REVIEWER, STAFF}:
        onboarding_task_set(task=task, done=done, actor=actor)
        return
    project = submission.project
    if project is None or not listing.user_manages(user=actor, project=project):
        raise NotAllowed("Only the project's maintainers tick its onboarding tasks.")
    if not locked.for_applicant:
        raise NotAllowed(f"'{locked.label}' is the foundation's task; its staff tick it.")
    onboarding_task_mark(locked=locked, task=task, done=done, actor=actor, by="a maintainer")
