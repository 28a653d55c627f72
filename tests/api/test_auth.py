"""Token authentication (knox): login with Basic or session, tokens stored hashed and expiring,
logout revokes."""

import base64

import pytest
from django.utils import timezone
from knox.models import AuthToken

from tests.api.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_login_issues_a_hashed_expiring_token(api):
    user = UserFactory(username="ada", password=PASSWORD)
    response = api.post("/api/v1/auth/login/", HTTP_AUTHORIZATION=basic("ada", PASSWORD))
    assert response.status_code == 200
    token = response.json()["token"]
    stored = AuthToken.objects.get(user=user)
    assert token not in (stored.digest, stored.token_key)  # only a digest and a prefix kept
    assert stored.expiry > timezone.now()
    assert stored.expiry < timezone.now() + timezone.timedelta(days=31)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.post("/api/v1/auth/logout/").status_code == 204
    assert api.post("/api/v1/auth/logout/").status_code == 401
    assert not AuthToken.objects.filter(user=user).exists()


def test_login_refuses_bad_password_and_anonymous(api):
    UserFactory(username="ada", password=PASSWORD)
    bad = api.post("/api/v1/auth/login/", HTTP_AUTHORIZATION=basic("ada", "wrong"))
    assert bad.status_code == 401
    assert api.post("/api/v1/auth/login/").status_code in (401, 403)


def test_login_with_a_session(api):
    user = UserFactory(username="ada")
    api.force_login(user)
    assert api.post("/api/v1/auth/login/").status_code == 200


def test_expired_token_is_refused(api):
    user = UserFactory(username="ada")
    _, token = AuthToken.objects.create(user=user, expiry=timezone.timedelta(seconds=-1))
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.post("/api/v1/auth/logout/").status_code == 401


def test_nul_byte_in_basic_credentials_is_a_401(api):
    UserFactory(username="ada", password=PASSWORD)
    response = api.post("/api/v1/auth/login/", HTTP_AUTHORIZATION=basic("a\x00da", "x\x00"))
    assert response.status_code == 401


def test_login_with_a_json_body(api):
    UserFactory(username="ada", password=PASSWORD)
    response = api.post(
        "/api/v1/auth/login/", {"username": "ada", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200 and response.json()["token"]
    wrong = api.post("/api/v1/auth/login/", {"username": "ada", "password": "x"}, format="json")
    assert wrong.status_code == 401


def test_login_with_a_json_body_naming_the_email(api):
    UserFactory(username="grace", email="grace@example.org", password=PASSWORD)

    response = api.post(
        "/api/v1/auth/login/", {"email": "grace@example.org", "password": PASSWORD}, format="json"
    )

    assert response.status_code == 200 and response.json()["token"]
