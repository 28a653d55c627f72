"""Review emails over real SMTP (aiosmtpd): one message per recipient, showing no other
recipient's address, with only the links that recipient may open."""

from __future__ import annotations

import email
import json
import os
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
