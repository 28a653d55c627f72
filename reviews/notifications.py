"""Emails about review events: to the applicant's contacts, the assigned reviewers, the voting
members (when a vote opens) and, for periodic reviews, the project's maintainers.

Each recipient gets a message of their own (no one sees another's address), written for their
audience, with only the links that recipient can open: the applicant's side links the
application page (not for a contact who signs in with an account of their own: the page is the
applicant's), the TAC's side the review page (not for a member with a conflict of interest, who
cannot open it), the maintainers the project's public page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db.models.functions import Lower
from django.urls import reverse

from registry.listing import project_maintainer_emails
from reviews.models import PeriodicReview, ReviewEvent, Submission
from reviews.roles import REVIEWERS_GROUP, STAFF_GROUP, VOTING_GROUP, conflict_reason
from reviews.states import PeriodicReviewState, SubmissionState

logger = logging.getLogger(__name__)
SUBJECT_PREFIX = "[Ecosystem Registry]"
# Events the applicant hears about (the TAC's internal bookkeeping is not mailed to them).
APPLICANT_KINDS = {
    ReviewEvent.Kind.TRANSITION,
    ReviewEvent.Kind.DECISION,
    ReviewEvent.Kind.OVERRIDE,
}


@dataclass(frozen=True)
class Mail:
    """One text for one audience; sent as a message per recipient."""

    subject: str
    body: str
    recipients: set[str]


def _site_url(path: str) -> str:
    return getattr(settings, "SITE_URL", "").rstrip("/") + path


def _emails_of(users) -> set[str]:
    return {user.email for user in users if user.email}


def applicant_contacts(submission: Submission) -> set[str]:
    emails = {email for email in submission.contact_emails if email}
    if submission.applicant.email:
        emails.add(submission.applicant.email)
    return emails


def group_emails(*names: str) -> set[str]:
    return _emails_of(group_members(*names))


def group_members(*names: str):
    return get_user_model().objects.filter(groups__name__in=names, is_active=True).distinct()


def tac_emails(submission: Submission, users) -> set[str]:
    """Emails of the TAC members among `users` who can open the application's review page:
    active, and with no conflict of interest (those never see the TAC's view of it)."""
    return _emails_of(
        user
        for user in users
        if user.is_active and not conflict_reason(submission=submission, user=user)
    )


def contacts_with_other_accounts(submission: Submission, contacts: set[str]) -> set[str]:
    """The contacts who sign in with an account that is not the applicant's: the application's
    page is not theirs to open."""
    lowered = {email.lower(): email for email in contacts}
    others = (
        get_user_model()
        .objects.annotate(email_lower=Lower("email"))
        .filter(email_lower__in=list(lowered))
        .exclude(pk=submission.applicant_id)
        .values_list("email_lower", flat=True)
    )
    return {lowered[email] for email in others}


def maintainer_emails(review: PeriodicReview) -> set[str]:
    """Emails of a project's maintainers: the accounts whose verified GitHub handle the project
    lists as a maintainer and its repository file's contact (`project_maintainer_emails`), plus
    the contacts of its accepted application."""
    project = review.project
    emails = project_maintainer_emails(project=project)
    application = (
        Submission.objects.filter(project=project, state=SubmissionState.ACCEPTED)
        .order_by("-decided_at")
        .first()
    )
    if application:
        emails |= applicant_contacts(application)
    return emails


def _applicant_mails(submission: Submission, subject: str, text: list[str]) -> list[Mail]:
    """The applicant's side: the application page for the applicant's own addresses."""
    link = _site_url(reverse("reviews:application", kwargs={"pk": submission.pk}))
    contacts = applicant_contacts(submission)
    others = contacts_with_other_accounts(submission, contacts)
    return [
        Mail(subject, "\n".join([*text, f"Your application: {link}"]), contacts - others),
        Mail(
            subject,
            "\n".join(
                [
                    *text,
                    "You are a contact of this application; its page is open to the "
                    "account that filed it.",
                ]
            ),
            others,
        ),
    ]


def _submission_mails(event: ReviewEvent) -> list[Mail]:
    submission = event.submission
    if submission is None:
        return []
    reviewers = tac_emails(submission, submission.reviewers.all())
    link_tac = _site_url(reverse("reviews:review", kwargs={"pk": submission.pk}))
    name = str(submission)
    if event.kind == ReviewEvent.Kind.COMMENT:
        if event.data.get("shared") and event.actor_id == submission.applicant_id:
            return [Mail(f"{name}: the applicant wrote", f"Read it at {link_tac}", reviewers)]
        if event.data.get("shared"):
            subject = f"{name}: a message from the TAC"
            return _applicant_mails(submission, subject, ["The TAC wrote to you."])
        return []
    if event.kind == ReviewEvent.Kind.ASSIGNMENT:
        if not event.data.get("assigned"):
            return []
        reviewer = get_user_model().objects.filter(pk=event.data.get("reviewer_id")).first()
        recipients = tac_emails(submission, [reviewer] if reviewer else [])
        return [Mail(f"{name}: assigned to you for review", f"Review it at {link_tac}", recipients)]
    if event.kind not in APPLICANT_KINDS:
        return []
    if event.kind == ReviewEvent.Kind.OVERRIDE:
        subject = f"{name}: a criterion result was changed by a reviewer"
    else:
        subject = f"{name}: {SubmissionState(event.to_state).label}"
    text = [subject, ""]
    if event.note:
        text += ["Reason / note:", event.note, ""]
    tac = set(reviewers)
    if event.to_state == SubmissionState.VOTING:
        tac |= tac_emails(submission, group_members(VOTING_GROUP))
        text.append(f"The vote closes on {submission.vote_closes_at:%Y-%m-%d %H:%M} UTC.")
    applicant = applicant_contacts(submission)
    return [
        *_applicant_mails(submission, subject, text),
        # An address the applicant listed as a contact gets the applicant's text only.
        Mail(subject, "\n".join([*text, f"TAC review page: {link_tac}"]), tac - applicant),
    ]


def _periodic_mails(event: ReviewEvent) -> list[Mail]:
    review = event.periodic_review
    if review is None:
        return []
    project = review.project
    subject = (
        f"{project.name}: periodic review {PeriodicReviewState(event.to_state).label.lower()}"
        if event.to_state
        else ""
    )
    if not event.to_state or event.to_state == PeriodicReviewState.CHECKING:
        return []
    body = [subject, "", event.note, ""]
    # The maintainers' link: the public project page (its review history), which anyone opens.
    project_page = f"The project's page: {_site_url(project.get_absolute_url())}"
    if event.to_state == PeriodicReviewState.FAILING:
        body += [
            "These criteria of the ecosystem process are not met:",
            *[
                f"- {row['criterion']}: {row['value']}"
                for row in review.results
                if row["criterion"] in review.failing_criteria
            ],
            "",
            f"Please fix them by {review.grace_until:%Y-%m-%d}; the project is checked again "
            "then, and proposed for retirement if they still fail.",
            "",
            project_page,
        ]
        return [Mail(subject, "\n".join(body), maintainer_emails(review))]
    if event.to_state == PeriodicReviewState.RETIREMENT_PROPOSED:
        body.append(_site_url(reverse("reviews:periodic_review", kwargs={"pk": review.pk})))
        return [Mail(subject, "\n".join(body), group_emails(REVIEWERS_GROUP, STAFF_GROUP))]
    if event.to_state == PeriodicReviewState.RETIRED:
        body.append(
            "The project is retired from the ecosystem; please remove the ecosystem references "
            "(badges, README mentions) from the repository."
        )
    body.append(project_page)
    return [Mail(subject, "\n".join(body), maintainer_emails(review))]


def notify_event(*, event_id: int) -> int:
    """Send the email an event calls for; returns the number of recipients."""
    event = (
        ReviewEvent.objects.select_related(
            "submission__applicant", "periodic_review__project", "actor"
        )
        .filter(pk=event_id)
        .first()
    )
    if event is None:
        return 0
    mails = _submission_mails(event) if event.submission_id else _periodic_mails(event)
    # A comment's author is not told of their own comment.
    author = event.actor.email if event.actor and event.kind == ReviewEvent.Kind.COMMENT else ""
    messages = [
        EmailMessage(
            f"{SUBJECT_PREFIX} {mail.subject}"[:200],
            mail.body,
            settings.DEFAULT_FROM_EMAIL,
            [recipient],
        )
        for mail in mails
        for recipient in sorted(mail.recipients - {"", author})
    ]
    if messages:
        get_connection().send_messages(messages)
    return len(messages)
