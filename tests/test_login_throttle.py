"""Failed logins are throttled before any password is checked (config/login_throttle.py): per
client address a 429 with Retry-After, per account a short wait instead of a lockout; the API
token login (HTTP Basic or JSON) and the HTML sign-in (allauth) share one count."""

import base64
import threading
import time

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.cache import cache
from django.db import connections
from django.test import Client
from django_redis import get_redis_connection

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

API_LOGIN = "/api/v1/auth/login/"
HTML_LOGIN = "/accounts/login/"
ATTACKER = "203.0.113.66"
MEMBER = "198.51.100.7"
NEWCOMER = "198.51.100.99"


class CountingHasher(MD5PasswordHasher):
    """Counts password hashes: checking a password hashes it, so does Django's dummy check
    for an unknown user."""

    hashed = 0

    def encode(self, password, salt):
        CountingHasher.hashed += 1
        return super().encode(password, salt)


@pytest.fixture(autouse=True)
def login_rule(settings):
    settings.PASSWORD_HASHERS = ["tests.test_login_throttle.CountingHasher"]
    settings.LOGIN_FAILURES_PER_IP = 10
    settings.LOGIN_FAILURE_WINDOW_S = 900
    settings.LOGIN_ACCOUNT_FREE_FAILURES = 5
    settings.LOGIN_ACCOUNT_DELAY_MAX_S = 2
    _drop_counts()
    yield
    _drop_counts()


def _drop_counts() -> None:
    connection = get_redis_connection("default")
    for pattern in ("throttle_*", "allauth:rl:*"):
        keys = list(connection.scan_iter(match=cache.make_key(pattern), count=1000))
        if keys:
            connection.delete(*keys)


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def api_login(ip: str, username: str, password: str):
    return Client(REMOTE_ADDR=ip).post(API_LOGIN, HTTP_AUTHORIZATION=basic(username, password))


def html_login(ip: str, email: str, password: str):
    return Client(REMOTE_ADDR=ip).post(HTML_LOGIN, {"login": email, "password": password})


def assert_refused(response, *, at_most_s: int) -> None:
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= at_most_s


def test_an_address_gets_429_after_ten_failures_before_any_password_check():
    users = [UserFactory() for _ in range(12)]
    for user in users[:10]:  # password spraying: one guess per account
        assert api_login(ATTACKER, user.username, "guess").status_code == 401

    hashed = CountingHasher.hashed
    refused = api_login(ATTACKER, users[10].username, "guess")
    assert_refused(refused, at_most_s=900)
    assert "Too many failed logins" in refused.json()["detail"]
    assert_refused(api_login(ATTACKER, users[11].username, PASSWORD), at_most_s=900)
    assert CountingHasher.hashed == hashed  # refused before any password was hashed

    # The right password from another address still logs in.
    assert api_login(MEMBER, users[0].username, PASSWORD).status_code == 200


def test_parallel_failures_from_one_address_stop_at_ten():
    usernames = [UserFactory().username for _ in range(16)]
    start = threading.Barrier(len(usernames))
    statuses = []

    def guess(username: str) -> None:
        start.wait()
        try:
            statuses.append(api_login(ATTACKER, username, "guess").status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=guess, args=(name,)) for name in usernames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [401] * 10 + [429] * 6


def test_api_and_html_logins_share_the_count():
    user = UserFactory()
    for attempt in range(10):  # within the account's free failures, one per account
        victim = UserFactory()
        if attempt % 2:
            assert api_login(ATTACKER, victim.username, "guess").status_code == 401
        else:
            assert html_login(ATTACKER, victim.email, "guess").status_code == 200  # form error

    hashed = CountingHasher.hashed
    page = html_login(ATTACKER, user.email, PASSWORD)
    assert_refused(page, at_most_s=900)
    assert "Try again in" in page.content.decode()
    assert_refused(api_login(ATTACKER, user.username, PASSWORD), at_most_s=900)
    assert CountingHasher.hashed == hashed

    assert html_login(MEMBER, user.email, PASSWORD).status_code == 302  # signed in


def test_html_failures_block_the_api_login():
    user = UserFactory()
    for _ in range(10):
        assert html_login(ATTACKER, UserFactory().email, "guess").status_code == 200
    assert_refused(api_login(ATTACKER, user.username, PASSWORD), at_most_s=900)


def test_the_window_expires(settings):
    settings.LOGIN_FAILURE_WINDOW_S = 2
    user = UserFactory()
    for _ in range(10):
        assert api_login(ATTACKER, UserFactory().username, "guess").status_code == 401
    assert_refused(api_login(ATTACKER, user.username, PASSWORD), at_most_s=2)

    time.sleep(2.2)
    assert api_login(ATTACKER, user.username, PASSWORD).status_code == 200


def test_an_account_under_attack_slows_down_and_its_member_still_logs_in():
    member = UserFactory()
    assert html_login(MEMBER, member.email, PASSWORD).status_code == 302  # a known address

    # One guess from each of 20 addresses, through both logins: the account takes its free
    # failures, then one guess per delay (1 s here); the rest wait, nobody is locked out.
    answers = []
    began = time.monotonic()
    for n in range(20):
        ip, hashed = f"203.0.113.{n + 1}", CountingHasher.hashed
        if n % 2:
            answer = api_login(ip, member.username, f"guess-{n}")
        else:
            answer = html_login(ip, member.email, f"guess-{n}")
        answers.append((answer, CountingHasher.hashed - hashed))
    elapsed_s = time.monotonic() - began
    checked = [answer for answer, _ in answers if answer.status_code != 429]
    assert len(checked) <= 5 + 1 + int(elapsed_s)
    for answer, hashes in answers:
        if answer.status_code == 429:
            assert_refused(answer, at_most_s=2)
            assert hashes == 0

    # The member, from an address they signed in from before, is not made to wait.
    assert api_login(MEMBER, member.username, PASSWORD).status_code == 200
    assert html_login(MEMBER, member.email, PASSWORD).status_code == 302

    # From a new address they wait their turn (at most LOGIN_ACCOUNT_DELAY_MAX_S), then log in.
    first = api_login(NEWCOMER, member.username, PASSWORD)
    if first.status_code == 429:
        assert_refused(first, at_most_s=2)
        time.sleep(int(first["Retry-After"]) + 0.1)
        first = api_login(NEWCOMER, member.username, PASSWORD)
    assert first.status_code == 200
