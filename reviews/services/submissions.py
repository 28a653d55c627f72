"""Applications and the state machine: `submission_transition` is the only writer of
`Submission.state`. Also drafts, submitting, the TAC's bookkeeping and onboarding."""

from __future__ import annotations

import calendar
import logging
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Field
from django.utils import timezone

from registry import services as registry_services
from registry.models import Category, Project
from registry.repository_urls import InvalidRepositoryURL, Repository, parse_repository_url
from reviews import criteria, selectors
from reviews.models import (
    DESCRIPTION_MAX_WORDS,
    DESCRIPTION_MIN_WORDS,
    HOSTED_ANSWERS,
    REQUIRED_ANSWERS,
    Comment,
    CriterionResult,
    OnboardingTask,
    ReviewEvent,
    Submission,
)
from reviews.roles import user_roles
from reviews.services.answers import submission_answers_clean
from reviews.services.enqueue import RUN_AUTOMATED_CHECKS, task_enqueue
from reviews.services.events import review_event_record
from reviews.services.permissions import require_reviewer, roles_on
from reviews.states import (
    APPLICANT,
    COOLDOWN_STATES,
    EDITABLE_STATES,
    FINAL_STATES,
    OPEN_STATES,
    REVIEWER,
    STAFF,
    InvalidTransition,
    NotAllowed,
    PeriodicReviewState,
    ResubmissionTooSoon,
    ReviewError,
    SubmissionIncomplete,
    SubmissionState,
    UnresolvedCriteria,
    allowed_roles,
)

logger = logging.getLogger(__name__)
S = SubmissionState
P = PeriodicReviewState
Outcome = CriterionResult.Outcome

RESUBMIT_AFTER_MONTHS = 3


def vote_window() -> timedelta:
    return timedelta(days=getattr(settings, "REVIEWS_VOTE_WINDOW_DAYS", 14))


# --- helpers --------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _label(state: str) -> str:
    return S(state).label if state in S.values else state


# --- the state machine ------------------------------------------------------------------------


@transaction.atomic
def submission_transition(
    *, submission: Submission, to: str, actor: User | None, note: str = "", confirmed: bool = False
) -> Submission:
    """Move an application to `to`, if the table lets this actor; log it and notify.

    Opening the vote while criteria are unknown or not met needs `confirmed` (else
    UnresolvedCriteria, listing them); the event keeps which ones they were.
    """
    locked = Submission.objects.select_for_update().get(pk=submission.pk)
    frm = locked.state
    if to not in S.values:
        raise InvalidTransition(f"{to!r} is not a state of an application.")
    if frm == to:
        raise InvalidTransition(f"The application is already '{_label(to)}'.")
    allowed = allowed_roles(frm, to)
    if not allowed:
        raise InvalidTransition(
            f"An application cannot move from '{_label(frm)}' to '{_label(to)}'."
        )
    if not allowed & roles_on(submission=locked, actor=actor):
        raise NotAllowed(
            f"You may not move this application from '{_label(frm)}' to '{_label(to)}'."
        )
    if to == S.VOTING and locked.category_id is None:
        raise InvalidTransition("Choose the landscape category before opening the vote.")
    data: dict[str, Any] = {}
    if to == S.VOTING:
        summary = selectors.criteria_summary(submission=locked)
        if summary.unresolved and not confirmed:
            raise UnresolvedCriteria(
                f"Criteria still open ({summary}): "
                + ", ".join(f"{c.number}. {c.title}" for c in summary.unresolved)
                + ". Resolve them, or confirm to open the vote anyway.",
                summary.unresolved,
            )
        data["unresolved"] = {
            "unknown": [c.number for c in summary.unknown],
            "unmet": [c.number for c in summary.unmet],
        }
    if to in (S.CHANGES_REQUESTED, S.TOO_EARLY) and not note.strip():
        raise InvalidTransition("Say why: the applicant reads this note.")
    now = timezone.now()
    locked.state, locked.state_changed_at = to, now
    fields = ["state", "state_changed_at", "updated_at"]
    if to == S.SUBMITTED:
        locked.submitted_at = now
        fields.append("submitted_at")
    if to == S.VOTING:
        locked.vote_opened_at, locked.vote_closes_at = now, now + vote_window()
        fields += ["vote_opened_at", "vote_closes_at"]
    if to in FINAL_STATES:
        locked.decided_at = now
        fields.append("decided_at")
    _save_one_open_per_repository(locked, update_fields=fields)
    review_event_record(
        submission=locked,
        actor=actor,
        kind=ReviewEvent.Kind.TRANSITION,
        from_state=frm,
        to_state=to,
        note=note.strip()[:5000],
        data=data,
        public=True,
    )
    if to == S.ACCEPTED:
        _submission_onboard(submission=locked)
    project = locked.project
    if project is not None:
        registry_services.project_set_review_state(project=project, review_state=to)
    for field in fields + ["project_id"]:
        setattr(submission, field, getattr(locked, field))
    return locked


# --- the application --------------------------------------------------------------------------


def _apply_answers(submission: Submission, answers: dict[str, Any]) -> list[str]:
    changed = []
    for field, value in submission_answers_clean(answers=answers).items():
        if getattr(submission, field) != value:
            setattr(submission, field, value)
            changed.append(field)
    if "repository_url" in changed:
        if submission.repository_url:
            repository = parse_repository_url(submission.repository_url)  # clean: canonical
            submission.repo_owner, submission.repo_name = repository.owner, repository.name
        else:
            submission.repo_owner = submission.repo_name = ""
    return changed


def max_open_drafts() -> int:
    return getattr(settings, "REVIEWS_MAX_OPEN_DRAFTS", 10)


def _require_room_for_a_draft(applicant: User) -> None:
    """At most `max_open_drafts()` drafts per applicant. The applicant's row is locked first,
    so parallel requests of one applicant count one after another."""
    User.objects.select_for_update().filter(pk=applicant.pk).first()
    drafts = Submission.objects.filter(applicant=applicant, state=S.DRAFT).count()
    limit = max_open_drafts()
    if drafts >= limit:
        raise ReviewError(
            f"You have {drafts} open draft{'s' if drafts != 1 else ''}, the most one applicant "
            f"may keep ({limit}): submit or withdraw one before starting another."
        )


@transaction.atomic
def submission_create(*, applicant: User, answers: dict[str, Any]) -> Submission:
    """Save a new application as a draft (answers may still be missing, never unsafe)."""
    _require_room_for_a_draft(applicant)
    submission = Submission(applicant=applicant)
    _apply_answers(submission, answers)
    submission.save()
    review_event_record(
        submission=submission, actor=applicant, kind=ReviewEvent.Kind.CREATED, to_state=S.DRAFT
    )
    return submission


@transaction.atomic
def submission_update(
    *, submission: Submission, actor: User, answers: dict[str, Any]
) -> Submission:
    """The applicant edits the answers, while a draft or while changes are requested."""
    locked = Submission.objects.select_for_update().get(pk=submission.pk)
    if actor.pk != locked.applicant_id:
        raise NotAllowed("Only the applicant edits an application.")
    if locked.state not in EDITABLE_STATES:
        raise ReviewError(
            f"The application cannot be edited while '{_label(locked.state)}'; "
            "it can be edited as a draft or when the reviewers request changes."
        )
    changed = _apply_answers(locked, answers)
    if changed:
        _save_one_open_per_repository(locked)
        review_event_record(
            submission=locked,
            actor=actor,
            kind=ReviewEvent.Kind.EDITED,
            note="Changed: " + ", ".join(changed),
            data={"fields": changed},
        )
    return locked


def _field_label(name: str) -> str:
    field = Submission._meta.get_field(name)
    return str(field.verbose_name) if isinstance(field, Field) else name


def submission_missing_answers(*, submission: Submission) -> list[str]:
    """Names (labels) of the required answers still missing, and broken rules."""
    required = list(REQUIRED_ANSWERS)
    if submission.is_hosted:
        required += list(HOSTED_ANSWERS)
    problems = [_field_label(field) for field in required if not getattr(submission, field)]
    words = len(submission.description.split())
    if submission.description and not DESCRIPTION_MIN_WORDS <= words <= DESCRIPTION_MAX_WORDS:
        problems.append(
            f"description must be {DESCRIPTION_MIN_WORDS} to {DESCRIPTION_MAX_WORDS} words "
            f"(it has {words})"
        )
    return problems


def resubmission_opens_on(*, owner: str, name: str, exclude_pk: int | None = None) -> date | None:
    """The day a repository may apply again after a decline / too early, or None if it may."""
    decided = Submission.objects.filter(
        repo_owner__iexact=owner, repo_name__iexact=name, state__in=COOLDOWN_STATES
    ).exclude(decided_at__isnull=True)
    if exclude_pk is not None:
        decided = decided.exclude(pk=exclude_pk)
    last = decided.order_by("-decided_at").first()
    if last is None or last.decided_at is None:
        return None
    opens_on = add_months(last.decided_at.date(), RESUBMIT_AFTER_MONTHS)
    return opens_on if timezone.now().date() < opens_on else None


@transaction.atomic
def submission_submit(*, submission: Submission, actor: User) -> Submission:
    """Send a complete draft to the TAC; the automated checks start when this commits."""
    locked = Submission.objects.select_for_update().get(pk=submission.pk)
    if actor.pk != locked.applicant_id:
        raise NotAllowed("Only the applicant submits an application.")
    if locked.state != S.DRAFT:
        raise InvalidTransition(
            f"Only a draft can be submitted (this one is '{_label(locked.state)}')."
        )
    missing = submission_missing_answers(submission=locked)
    if missing:
        raise SubmissionIncomplete("Complete the application first: " + "; ".join(missing) + ".")
    opens_on = resubmission_opens_on(owner=locked.repo_owner, name=locked.repo_name)
    if opens_on:
        raise ResubmissionTooSoon(
            f"{locked.repository} was declined or found too early less than "
            f"{RESUBMIT_AFTER_MONTHS} months ago; you can apply again from "
            f"{opens_on:%Y-%m-%d}, with measurable improvements.",
            opens_on,
        )
    other = (
        Submission.objects.filter(
            repo_owner__iexact=locked.repo_owner,
            repo_name__iexact=locked.repo_name,
            state__in=OPEN_STATES,
        )
        .exclude(pk=locked.pk)
        .first()
    )
    if other:
        raise ReviewError(f"An application for {locked.repository} is already under review.")
    project = Project.objects.filter(
        repo_owner__iexact=locked.repo_owner, repo_name__iexact=locked.repo_name
    ).first()
    if project and locked.project_id != project.pk:
        locked.project = project
        locked.save(update_fields=["project", "updated_at"])
    submission_transition(submission=locked, to=S.SUBMITTED, actor=actor, note="Submitted.")
    task_enqueue(name=RUN_AUTOMATED_CHECKS, kwargs={"submission_id": locked.pk})
    submission.state = locked.state
    return locked


def submission_withdraw(*, submission: Submission, actor: User, note: str = "") -> Submission:
    return submission_transition(
        submission=submission, to=S.WITHDRAWN, actor=actor, note=note or "Withdrawn."
    )


# --- TAC bookkeeping --------------------------------------------------------------------------


@transaction.atomic
def submission_assign_reviewer(
    *,
    submission: Submission,
    reviewer: User,
    actor: User,
    assign: bool = True,
) -> None:
    require_reviewer(submission=submission, actor=actor)
    if assign and not user_roles(reviewer) & {REVIEWER, STAFF}:
        raise ReviewError(f"{reviewer} is not a TAC reviewer.")
    if assign and reviewer.pk == submission.applicant_id:
        raise ReviewError("The applicant cannot review their own application.")
    is_assigned = submission.reviewers.filter(pk=reviewer.pk).exists()
    if assign == is_assigned:
        return
    if assign:
        submission.reviewers.add(reviewer)
    else:
        submission.reviewers.remove(reviewer)
    review_event_record(
        submission=submission,
        actor=actor,
        kind=ReviewEvent.Kind.ASSIGNMENT,
        note=f"{reviewer.get_username()} {'assigned' if assign else 'unassigned'}.",
        data={"reviewer_id": reviewer.pk, "assigned": assign},
    )


@transaction.atomic
def submission_set_category(*, submission: Submission, category: Category, actor: User) -> None:
    require_reviewer(submission=submission, actor=actor)
    if submission.state in FINAL_STATES:
        raise ReviewError("The application is decided; its category can no longer change.")
    if submission.category_id == category.pk:
        return
    submission.category = category
    submission.save(update_fields=["category", "updated_at"])
    review_event_record(
        submission=submission,
        actor=actor,
        kind=ReviewEvent.Kind.CATEGORY,
        note=f"Landscape category: {category}.",
        data={"category_id": category.pk},
    )


@transaction.atomic
def comment_post(
    *, submission: Submission, author: User, body: str, shared_with_applicant: bool
) -> Comment:
    body = (body or "").strip()
    if not body:
        raise ReviewError("Write a message first.")
    if len(body) > 10000:
        raise ReviewError("A message is at most 10,000 characters.")
    roles = roles_on(submission=submission, actor=author)
    if APPLICANT in roles:
        shared_with_applicant = True
    elif not user_roles(author):
        raise NotAllowed("Only the applicant and the TAC take part in the discussion.")
    comment = Comment.objects.create(
        submission=submission, author=author, body=body, shared_with_applicant=shared_with_applicant
    )
    review_event_record(
        submission=submission,
        actor=author,
        kind=ReviewEvent.Kind.COMMENT,
        data={"comment_id": comment.pk, "shared": shared_with_applicant},
    )
    return comment


# --- onboarding ---------------------------------------------------------------------------------


def _submission_onboard(*, submission: Submission) -> Project:
    """On acceptance: the registry project, and the onboarding checklist."""
    additional = []
    for url in submission.additional_repos:
        try:
            additional.append(parse_repository_url(url).url)
        except InvalidRepositoryURL:
            continue
    project = registry_services.project_onboard(
        name=submission.project_name,
        repository=Repository(owner=submission.repo_owner, name=submission.repo_name),
        category=submission.category,
        kind=Project.Kind.HOSTED if submission.is_hosted else Project.Kind.ECOSYSTEM,
        description=submission.summary,
        homepage_url=submission.website_url,
        documentation_url=submission.documentation_url,
        pypi_name=submission.pypi_name,
        maintainers=list(submission.maintainer_handles),
        additional_repos=additional,
        accepted_on=timezone.now().date(),
    )
    submission.project = project
    submission.save(update_fields=["project", "updated_at"])
    OnboardingTask.objects.bulk_create(
        [
            OnboardingTask(
                submission=submission,
                key=key,
                label=label,
                suggested=suggested,
                for_applicant=for_applicant,
                position=i,
            )
            for i, (key, label, suggested, for_applicant) in enumerate(criteria.ONBOARDING_TASKS)
        ],
        ignore_conflicts=True,
    )
    review_event_record(
        submission=submission,
        kind=ReviewEvent.Kind.ONBOARDING,
        note=(
            f"Listed as {project.name} ({project.get_kind_display()}); next periodic review "
            f"due {project.next_review_due:%Y-%m-%d}. Onboarding checklist created."
        ),
        data={"project_id": project.pk},
        public=True,
        notify=False,
    )
    return project


@transaction.atomic
def onboarding_task_set(*, task: OnboardingTask, done: bool, actor: User) -> None:
    """Tick (or untick) a row of the checklist: the applicant their own tasks, TAC reviewers
    and staff every task."""
    locked = (
        OnboardingTask.objects.select_for_update(of=("self",))
        .select_related("submission")
        .get(pk=task.pk)
    )
    roles = roles_on(submission=locked.submission, actor=actor)
    if APPLICANT in roles:
        if not locked.for_applicant:
            raise NotAllowed(f"'{locked.label}' is the foundation's task; its staff tick it.")
    else:
        require_reviewer(submission=locked.submission, actor=actor)
    onboarding_task_mark(locked=locked, task=task, done=done, actor=actor)


def onboarding_task_mark(
    *, locked: OnboardingTask, task: OnboardingTask, done: bool, actor: User, by: str = ""
) -> None:
    """Write the tick of a task the caller locked and may tick (nothing when it stands so
    already), copy it to `task`, and leave the event (`by` adds who, e.g. "a maintainer")."""
    if locked.done == done:
        return
    locked.done_at, locked.done_by = (timezone.now(), actor) if done else (None, None)
    locked.save(update_fields=["done_at", "done_by"])
    task.done_at, task.done_by = locked.done_at, locked.done_by
    who = f" (by {by})" if by else ""
    review_event_record(
        submission=locked.submission,
        actor=actor,
        kind=ReviewEvent.Kind.ONBOARDING,
        note=f"{locked.label}: {'done' if done else 'not done'}{who}.",
        data={"task": locked.key, "done": done},
        notify=False,
    )


def _save_one_open_per_repository(
    submission: Submission, *, update_fields: list[str] | None = None
) -> None:
    """Save; the database's one-open-application-per-repository rule becomes a clear error."""
    try:
        with transaction.atomic():
            submission.save(update_fields=update_fields)
    except IntegrityError:
        raise ReviewError(
            f"Another application for {submission.repository} is already under review."
        ) from None
