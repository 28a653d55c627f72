"""Mail to a project's maintainers (a periodic review's failure and its outcome, a change of the
maintainers) goes to the accounts whose verified GitHub handle the project lists, and to the
contact its repository file names; to no one who merely claims a handle."""

import pytest
from django.core import mail
from django.utils import timezone

from registry import listing
from reviews import services
from reviews.models import PeriodicReview
from tests.factories import UserFactory
from tests.registry.factories import MaintainerIdentityFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def identity(handle: str, email: str, *, verified: bool = True):
    return MaintainerIdentityFactory(
        github_handle=handle, verified=verified, user=UserFactory(email=email)
    )


@pytest.fixture
def project():
    project = ProjectFactory(
        name="TorchGood",
        maintainers=["Alice", "bob", "nobody-signed-in"],
        repo_config={"found": True, "contact": "team@torchgood.org"},
    )
    identity("alice", "alice@example.org")
    identity("bob", "bob@example.org", verified=False)  # claims the handle, never proved it
    identity("dave", "dave@example.org")  # verified, not a maintainer of this project
    return project


def fail(project, django_capture_on_commit_callbacks) -> PeriodicReview:
    review = PeriodicReview.objects.create(
        project=project,
        due_on=timezone.now().date(),
        failing_criteria=[14],
        results=[{"criterion": 14, "outcome": "unmet", "value": "50 stars"}],
    )
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.periodic_review_transition(
            review=review, to="failing", actor=None, note="Failing criteria: 14."
        )
    return review


def test_a_failing_review_is_mailed_to_verified_maintainers_and_the_file_contact(
    project, django_capture_on_commit_callbacks
):
    fail(project, django_capture_on_commit_callbacks)

    recipients = sorted(message.to[0] for message in mail.outbox)
    assert recipients == ["alice@example.org", "team@torchgood.org"]
    assert all("50 stars" in message.body for message in mail.outbox)


def test_the_outcome_of_the_review_reaches_them_too(
    project, reviewer, django_capture_on_commit_callbacks
):
    review = fail(project, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.periodic_review_transition(review=review, to="retirement_proposed", actor=None)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.periodic_review_decide(review=review, retire=True, actor=reviewer, note="Gone.")

    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.org", "team@torchgood.org"]


@pytest.mark.parametrize("contact", ["not an address", "", None, ["a@b.org"]])
def test_a_contact_that_is_no_address_is_left_out(project, contact):
    project.repo_config = {"contact": contact}

    assert listing.project_maintainer_emails(project=project) == {"alice@example.org"}


def test_a_change_of_the_maintainers_is_mailed_to_the_contact_as_well(
    project, django_capture_on_commit_callbacks
):
    owner = MaintainerIdentityFactory(github_handle="alice2", verified=True).user
    project.maintainers = ["alice2", *project.maintainers]
    project.save(update_fields=["maintainers"])
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        listing.listing_maintainer_add(project=project, actor=owner, handle="erin")

    recipients = {message.to[0] for message in mail.outbox}
    assert {"team@torchgood.org", "alice@example.org", owner.email} <= recipients
    assert "bob@example.org" not in recipients and "dave@example.org" not in recipients
