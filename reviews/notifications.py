"""Emails about review events: to the applicant's contacts, the assigned reviewers, the voting
members (when a vote opens) and, for periodic reviews, the project's maintainers.

Each recipient gets a message of their own (no one sees another's address), written for their
audience: the applicant's side links the application page, the TAC's side the review page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.urls import reverse

from registry.models import MaintainerIdentity
from reviews.models import PeriodicReview, ReviewEvent, Submission
from reviews.roles import REVIEWERS_GROUP, STAFF_GROUP, VOTING_GROUP
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
    users = get_user_model().objects.filter(groups__name__in=names, is_active=True).distinct()
    return _emails_of(users)


def maintainer_emails(review: PeriodicReview) -> set[str]:
    """Emails of a project's maintainers: linked accounts, plus the contacts of its application."""
    project = review.project
    handles = [handle.lower() for handle in project.maintainers]
    emails = {
        identity.user.email
        for identity in MaintainerIdentity.objects.select_related("user")
        if identity.github_handle.lower() in handles and identity.user.email
    }
    application = (
        Submission.objects.filter(project=project, state=SubmissionState.ACCEPTED)
        .order_by("-decided_at")
        .first()
    )
    if application:
        emails |= applicant_contacts(application)
    return emails


def _submission_mails(event: ReviewEvent) -> list[Mail]:
    submission = event.submission
    if submission is None:
        return []
    reviewers = _emails_of(submission.reviewers.all())
    link_applicant = _site_url(reverse("reviews:application", kwargs={"pk": submission.pk}))
    link_tac = _site_url(reverse("reviews:review", kwargs={"pk": submission.pk}))
    name = str(submission)
    if event.kind == ReviewEvent.Kind.COMMENT:
        if event.data.get("shared") and event.actor_id == submission.applicant_id:
            return [Mail(f"{name}: the applicant wrote", f"Read it at {link_tac}", reviewers)]
        if event.data.get("shared"):
            contacts = applicant_contacts(submission)
            return [
                Mail(f"{name}: a message from the TAC", f"Read it at {link_applicant}", contacts)
            ]
        return []
    if event.kind == ReviewEvent.Kind.ASSIGNMENT:
        if not event.data.get("assigned"):
            return []
        reviewer = get_user_model().objects.filter(pk=event.data.get("reviewer_id")).first()
        if reviewer is None or not reviewer.email:
            return []
        return [
            Mail(
                f"{name}: assigned to you for review", f"Review it at {link_tac}", {reviewer.email}
            )
        ]
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
        tac |= group_emails(VOTING_GROUP)
        text.append(f"The vote closes on {submission.vote_closes_at:%Y-%m-%d %H:%M} UTC.")
    applicant = applicant_contacts(submission)
    return [
        Mail(subject, "\n".join([*text, f"Your application: {link_applicant}"]), applicant),
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
