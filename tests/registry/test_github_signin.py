"""Signing in with GitHub links the account to its GitHub handle (a verified MaintainerIdentity)
and makes the user a maintainer of the projects whose candidates name them. End to end: the
Django test client goes through allauth's real GitHub provider against a local fake GitHub
(tests/registry/fake_github_oauth.py); the browser's visit to GitHub's authorize page is a real
HTTP request to the fake."""

from urllib.parse import urlsplit

import pytest
import requests
from allauth.socialaccount.providers.github.views import GitHubOAuth2Adapter
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.urls import reverse

from registry.models import ListingChange, MaintainerIdentity, Project
from tests.factories import PASSWORD, UserFactory
from tests.registry.factories import MaintainerIdentityFactory, ProjectFactory
from tests.registry.fake_github_oauth import FakeGitHubOAuth

pytestmark = pytest.mark.django_db


@pytest.fixture
def github(settings, monkeypatch):
    """allauth's GitHub provider pointed at the fake (as GITHUB_OAUTH_URL would point it; allauth
    derives its endpoints from that setting once, at import, so the test sets the derived ones)."""
    with FakeGitHubOAuth() as fake:
        settings.SOCIALACCOUNT_PROVIDERS = {
            "github": {
                "SCOPE": ["read:user", "user:email"],
                "APP": {"client_id": fake.client_id, "secret": fake.client_secret, "key": ""},
            }
        }
        for name, value in fake.adapter_urls().items():
            monkeypatch.setattr(GitHubOAuth2Adapter, name, value)
        yield fake


def github_sign_in(client, github, *, process: str = "login"):
    """The browser's round trip: our login view -> GitHub's authorize page -> our callback."""
    query = "?process=connect" if process == "connect" else ""
    start = client.post(reverse("github_login") + query)
    assert start.status_code == 302, start.content[:500]
    assert start["Location"].startswith(f"{github.url}/login/oauth/authorize?")
    authorized = requests.get(start["Location"], allow_redirects=False, timeout=10)
    assert authorized.status_code == 302
    callback = urlsplit(authorized.headers["Location"])
    assert callback.path == reverse("github_callback")
    return client.get(f"{callback.path}?{callback.query}", follow=True)


def test_sign_in_creates_a_verified_identity_and_lists_the_projects(client, github):
    named = ProjectFactory(
        name="TorchNamed", maintainer_candidates=[{"handle": "ALICE-dev", "source": "CODEOWNERS"}]
    )
    already = ProjectFactory(name="TorchListed", maintainers=["alice-dev", "bob"])
    other = ProjectFactory(name="TorchOther", maintainers=["bob"])
    github.sign_in("alice-dev", 4242, email="alice@example.org")

    response = github_sign_in(client, github)

    assert response.status_code == 200
    user = get_user_model().objects.get(email="alice@example.org")
    assert response.wsgi_request.user == user
    identity = MaintainerIdentity.objects.get(user=user)
    assert (identity.github_handle, identity.verified) == ("alice-dev", True)
    named.refresh_from_db()
    assert named.maintainers == ["alice-dev"]
    assert named.maintainer_candidates == []
    change = ListingChange.objects.get(project=named)
    assert (change.field, change.old_value, change.new_value) == ("maintainers", [], ["alice-dev"])
    assert change.actor == user
    # The code was exchanged once, with the app's secret.
    assert len(github.token_requests) == 1
    page = client.get(reverse("reviews:my_projects")).content.decode()
    assert "TorchNamed" in page and "TorchListed" in page and other.name not in page
    assert reverse("reviews:project_manage", args=[already.slug]) in page


def test_signing_in_again_keeps_the_link(client, github):
    github.sign_in("carol", 7, email="carol@example.org")
    github_sign_in(client, github)
    client.logout()
    project = ProjectFactory(maintainer_candidates=[{"handle": "carol", "source": "MAINTAINERS"}])

    response = github_sign_in(client, github)

    user = get_user_model().objects.get(email="carol@example.org")
    assert response.wsgi_request.user == user
    assert MaintainerIdentity.objects.filter(user=user, verified=True).count() == 1
    project.refresh_from_db()
    assert project.maintainers == ["carol"]


def test_a_handle_linked_to_another_account_is_not_taken(client, github):
    holder = MaintainerIdentityFactory(github_handle="Dave", verified=False)
    project = ProjectFactory(maintainer_candidates=[{"handle": "dave", "source": "CODEOWNERS"}])
    github.sign_in("dave", 99, email="dave@example.org")

    response = github_sign_in(client, github)

    newcomer = get_user_model().objects.get(email="dave@example.org")
    assert response.wsgi_request.user == newcomer
    assert not MaintainerIdentity.objects.filter(user=newcomer).exists()
    holder.refresh_from_db()
    assert (holder.github_handle, holder.verified) == ("Dave", False)
    project.refresh_from_db()
    assert project.maintainers == [] and project.maintainer_candidates
    assert "already linked to another account" in response.content.decode()


def test_a_signed_in_user_connects_github(client, github):
    user = UserFactory(email="erin@example.org")
    # A password sign-in (allauth asks a user who just signed in for no re-authentication).
    signed_in = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    assert signed_in.status_code == 302
    project = ProjectFactory(maintainers=["erin-gh"])
    github.sign_in("erin-gh", 5, email="erin@example.org")

    github_sign_in(client, github, process="connect")

    identity = MaintainerIdentity.objects.get(user=user)
    assert (identity.github_handle, identity.verified) == ("erin-gh", True)
    page = client.get(reverse("reviews:my_projects")).content.decode()
    assert project.name in page


def test_staff_verify_by_hand_with_a_reason(client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    identity = MaintainerIdentityFactory(github_handle="frank", verified=False)
    project = ProjectFactory(maintainer_candidates=[{"handle": "Frank", "source": "CODEOWNERS"}])
    client.force_login(staff)
    url = reverse("admin:registry_maintaineridentity_change", args=[identity.pk])
    data = {"user": identity.user.pk, "github_handle": "frank", "verified": "on"}

    refused = client.post(url, {**data, "verification_reason": ""})
    assert refused.status_code == 200
    assert "Say why" in refused.content.decode()
    identity.refresh_from_db()
    assert not identity.verified

    done = client.post(url, {**data, "verification_reason": "Confirmed on a call, ticket 12"})
    assert done.status_code == 302
    identity.refresh_from_db()
    assert identity.verified
    assert LogEntry.objects.filter(
        object_id=str(identity.pk), change_message__contains="ticket 12"
    ).exists()
    assert Project.objects.get(pk=project.pk).maintainers == ["frank"]
