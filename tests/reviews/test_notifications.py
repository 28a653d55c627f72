"""Review emails over real SMTP (aiosmtpd): one message per recipient, showing no other
recipient's address, with only the links that recipient may open."""

from __future__ import annotations

import email
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from reviews import services
from reviews.states import SubmissionState
from tests.reviews.factories import SubmissionFactory

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mailbox:
    """What the SMTP server received, and with which login."""

    def __init__(self) -> None:
        self.envelopes: list = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)


@pytest.fixture
def smtp(settings):
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=mailbox.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "registry", "smtp-secret"
    settings.SITE_URL = "https://registry.example.org"
    yield mailbox
    controller.stop()


def test_each_recipient_gets_a_message_of_their_own_with_their_links(
    smtp, applicant, reviewer, django_capture_on_commit_callbacks
):
    submission = SubmissionFactory(
        applicant=applicant,
        contact_emails=["lead@example.org"],
        state=SubmissionState.IN_REVIEW,
    )
    services.submission_assign_reviewer(submission=submission, reviewer=reviewer, actor=reviewer)
    smtp.envelopes.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.submission_transition(
            submission=submission, to="changes_requested", actor=reviewer, note="Add docs."
        )

    received = {}
    for envelope in smtp.envelopes:
        assert len(envelope.rcpt_tos) == 1
        message = email.message_from_bytes(envelope.content)
        assert message["To"] == envelope.rcpt_tos[0]
        assert message["Cc"] is None
        received[envelope.rcpt_tos[0]] = message.get_payload(decode=True).decode()
    everyone = {"lead@example.org", "applicant@example.org", "reviewer@example.org"}
    assert set(received) == everyone
    for address, body in received.items():
        assert not [other for other in everyone - {address} if other in body]
        assert "Add docs." in body
    application = f"https://registry.example.org/reviews/applications/{submission.pk}/"
    tac_page = f"https://registry.example.org/reviews/dashboard/{submission.pk}/"
    for address in ("lead@example.org", "applicant@example.org"):
        assert application in received[address] and tac_page not in received[address]
    assert tac_page in received["reviewer@example.org"]
    assert smtp.logins and set(smtp.logins) == {("registry", "smtp-secret")}


def test_production_takes_smtp_settings_from_the_environment():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "registry.example.org",
        "EMAIL_HOST": "smtp.example.org",
        "EMAIL_PORT": "465",
        "EMAIL_HOST_USER": "registry",
        "EMAIL_HOST_PASSWORD": "smtp-secret",
        "EMAIL_USE_SSL": "1",
    }
    code = (
        "import json, django; from django.conf import settings; django.setup();"
        "print(json.dumps([settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_HOST_USER,"
        " settings.EMAIL_HOST_PASSWORD, settings.EMAIL_USE_TLS, settings.EMAIL_USE_SSL]))"
    )
    printed = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout

    assert json.loads(printed) == ["smtp.example.org", 465, "registry", "smtp-secret", False, True]


SITE = "https://registry.example.org"
LINK = re.compile(re.escape(SITE) + r"(/[^\s]*)")


def test_every_link_of_every_email_opens_for_its_recipient(
    settings, client, applicant, reviewer, staff_user, voters, category, make_user,
    github, pypi, django_capture_on_commit_callbacks,
):  # fmt: skip
    """The whole journey's emails, each link opened with its recipient's own session. A voting
    member who maintains the project (no TAC page for them), and a co-maintainer with an account
    of their own listed as a contact (no applicant page for them), get no link they cannot
    open; the maintainers' periodic-review mails link the public project page."""
    from django.contrib.auth import get_user_model
    from django.core import mail
    from django.utils import timezone

    from registry.models import MaintainerIdentity
    from reviews.models import PeriodicReview
    from reviews.roles import VOTING_GROUP
    from tests.reviews.conftest import answers, healthy_repository

    settings.SITE_URL = SITE
    healthy_repository(github)
    pypi.publish("torchgood")
    colleague = make_user("bob")  # a co-maintainer with an account of their own
    maintainer_voter = make_user("alice", VOTING_GROUP)
    MaintainerIdentity.objects.create(user=maintainer_voter, github_handle="alice", verified=True)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        submission = services.submission_create(
            applicant=applicant,
            answers=answers(contact_emails=["lead@example.org", colleague.email]),
        )
    with django_capture_on_commit_callbacks(execute=True):
        services.submission_submit(submission=submission, actor=applicant)
    steps = [
        lambda: services.submission_assign_reviewer(
            submission=submission, reviewer=reviewer, actor=staff_user
        ),
        lambda: services.submission_transition(
            submission=submission, to="changes_requested", actor=reviewer, note="Add docs."
        ),
        lambda: services.comment_post(
            submission=submission, author=applicant, body="Done.", shared_with_applicant=True
        ),
        lambda: services.comment_post(
            submission=submission, author=reviewer, body="Thanks.", shared_with_applicant=True
        ),
        lambda: services.submission_transition(
            submission=submission, to="in_review", actor=applicant, note="Docs added."
        ),
        lambda: services.criterion_override(
            submission=submission, criterion=1, outcome="met", reason="Ran it.", actor=reviewer
        ),
        lambda: services.submission_set_category(
            submission=submission, category=category, actor=reviewer
        ),
        lambda: services.submission_transition(
            submission=submission, to="voting", actor=reviewer, confirmed=True
        ),
        *[
            (lambda voter=voter: services.vote_cast(
                submission=submission, voter=voter, choice="approve"
            ))
            for voter in voters
        ],
    ]  # fmt: skip
    for step in steps:
        with django_capture_on_commit_callbacks(execute=True):
            step()
    submission.refresh_from_db()
    assert submission.state == "accepted"
    review = PeriodicReview.objects.create(
        project=submission.project, due_on=timezone.now().date(), failing_criteria=[14],
        results=[{"criterion": 14, "outcome": "unmet", "value": "50 stars"}],
    )  # fmt: skip
    for to, actor, note in (
        ("failing", None, "Failing criteria: 14."),
        ("retirement_proposed", None, "Still failing."),
        ("retired", reviewer, "Inactive."),
    ):
        with django_capture_on_commit_callbacks(execute=True):
            services.periodic_review_transition(review=review, to=to, actor=actor, note=note)

    users = {user.email: user for user in get_user_model().objects.all()}
    opened, kinds = [], set()
    for message in mail.outbox:
        (recipient,) = message.to
        links = LINK.findall(message.body)
        kinds.add(message.subject.split(":")[-1].strip())
        user = users.get(recipient)
        if user is None:  # a contact with no account: public pages, or the applicant's page
            client.logout()  # (which asks them to sign in, as the applicant)
            for path in links:
                if not path.startswith("/reviews/applications/"):
                    assert client.get(path).status_code == 200, (recipient, path)
            continue
        client.force_login(user)
        for path in links:
            status = client.get(path).status_code
            assert status == 200, (recipient, message.subject, path, status)
            opened.append((recipient, path))
    people = {recipient for recipient, _ in opened}
    assert {applicant.email, reviewer.email, staff_user.email, voters[0].email} <= people
    assert maintainer_voter.email in people  # the project page, as a maintainer
    # A contact, not the applicant: no link to the application (the project page, yes).
    assert {path for r, path in opened if r == colleague.email} == {
        f"/projects/{submission.project.slug}/"
    }
    assert {m.to[0] for m in mail.outbox} >= {colleague.email, "lead@example.org"}
    paths = {path for _, path in opened}
    assert f"/reviews/applications/{submission.pk}/" in paths
    assert f"/reviews/dashboard/{submission.pk}/" in paths
    assert f"/reviews/periodic/{review.pk}/" in paths
    assert f"/projects/{submission.project.slug}/" in paths
