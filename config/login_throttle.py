"""Failed logins, throttled before any password is checked: one rule, one count, for the API
token login (HTTP Basic or JSON, config/api.py) and the HTML sign-in (allauth,
config/accounts.py).

- Per client address: at most LOGIN_FAILURES_PER_IP failed logins in a window of
  LOGIN_FAILURE_WINDOW_S seconds; after that every login from the address is refused with its
  Retry-After until the window closes.
- Per account, a slowdown and never a lockout: after LOGIN_ACCOUNT_FREE_FAILURES failures in
  the window, the account takes one password check per delay (1 s, doubling with each further
  failure, at most LOGIN_ACCOUNT_DELAY_MAX_S) from addresses it has not signed in from; other
  attempts within the delay are refused with the delay's Retry-After. An address the account
  signed in from (remembered KNOWN_ADDRESS_DAYS) is not made to wait, so an attacker
  hammering a TAC member's account from elsewhere cannot keep the member out.

The server never sleeps to slow a login down: every sleeping request would hold a worker
thread, at the attacker's command. Each count is a Redis window (registry/throttling.py) that
an attempt joins before its password is checked and leaves again if it succeeds, so parallel
attempts cannot slip past a limit between the check and the count.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.http import HttpRequest

from registry.throttling import window_hit, window_read, window_release

KNOWN_ADDRESS_DAYS = 30
# One IPv6 client holds a whole /64, so it counts as one address.
IPV6_PREFIX = 64
# The doubling of the per-account delay stops long before any sane maximum matters.
_MAX_DOUBLINGS = 16

User = TypeVar("User")


class LoginThrottled(Exception):
    """A login refused before its password was checked; it may try again after
    `retry_after_s` seconds."""

    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"Too many failed logins. Try again in {_wait_in_words(retry_after_s)}.")


@dataclass(frozen=True)
class LoginAttempt:
    """One login under way: whose account, from where (both as counted)."""

    address: str
    account: str

    @property
    def address_key(self) -> str:
        return f"throttle_login_address_{self.address}"

    @property
    def account_key(self) -> str:
        return f"throttle_login_account_{self.account}"

    @property
    def turn_key(self) -> str:
        return f"throttle_login_turn_{self.account}"

    @property
    def known_key(self) -> str:
        return f"throttle_login_known_{self.account}_{self.address}"


def password_check_throttled(
    *, request: HttpRequest, login: str, check: Callable[[], User | None]
) -> User | None:
    """Run `check` (a password check: the user, or None) only if the rule lets this login
    try, and count its outcome. Raises LoginThrottled, before `check`, when it may not."""
    attempt = login_attempt_begin(address=client_address(request), login=login)
    user = check()
    login_attempt_end(attempt, succeeded=user is not None)
    return user


def login_attempt_begin(*, address: str, login: str) -> LoginAttempt:
    """Count an attempt for the address and the account (as a failure until it succeeds), or
    raise LoginThrottled when either may not try now."""
    attempt = LoginAttempt(address=address, account=_account_of(login))
    window_s = settings.LOGIN_FAILURE_WINDOW_S
    by_address = window_hit(attempt.address_key, window_s=window_s)
    if by_address is not None and by_address.count > settings.LOGIN_FAILURES_PER_IP:
        window_release(attempt.address_key)
        raise LoginThrottled(by_address.ttl_s)
    by_account = window_hit(attempt.account_key, window_s=window_s)
    if by_account is None or _address_is_known(attempt):
        return attempt
    failures_before = by_account.count - 1  # earlier failures and attempts still under way
    free = settings.LOGIN_ACCOUNT_FREE_FAILURES
    if failures_before < free:
        return attempt
    delay_s = min(2 ** min(failures_before - free, _MAX_DOUBLINGS), _delay_max_s())
    turn = window_hit(attempt.turn_key, window_s=delay_s)
    if turn is not None and turn.count > 1:  # another attempt holds the account's turn
        window_release(attempt.account_key)
        window_release(attempt.address_key)
        raise LoginThrottled(min(turn.ttl_s, _delay_max_s()))
    return attempt


def login_attempt_end(attempt: LoginAttempt, *, succeeded: bool) -> None:
    """A failure stays counted. A success hands its attempt back to both counts and makes its
    address known to the account; it does not wipe the account's earlier failures, or the
    member's own logins would give an attacker fresh free guesses."""
    if not succeeded:
        return
    window_release(attempt.address_key)
    window_release(attempt.account_key)
    window_hit(attempt.known_key, window_s=KNOWN_ADDRESS_DAYS * 24 * 3600)


def client_address(request: HttpRequest) -> str:
    """The address the connection came from (REMOTE_ADDR: behind a proxy, the server sets it
    from the forwarded headers of trusted proxies only); an IPv6 address as its /64."""
    raw = request.META.get("REMOTE_ADDR") or "unknown"
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64]
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False).network_address)
    return str(address)


def _account_of(login: str) -> str:
    """The account a login names, by username or email (the API logs in with the one, the
    HTML sign-in with the other); an unknown login counts under its own name."""
    login = login.strip()
    if login:
        user_model = get_user_model()
        pk = (
            user_model._default_manager.filter(
                Q(**{user_model.USERNAME_FIELD: login})
                | Q(email__iexact=login)
                | Q(emailaddress__email__iexact=login)
            )
            .order_by("pk")
            .values_list("pk", flat=True)
            .first()
        )
        if pk is not None:
            return f"user-{pk}"
    return "login-" + hashlib.sha256(login.lower().encode()).hexdigest()[:32]


def _address_is_known(attempt: LoginAttempt) -> bool:
    known = window_read(attempt.known_key)
    return known is not None and known.count > 0


def _delay_max_s() -> int:
    return max(int(settings.LOGIN_ACCOUNT_DELAY_MAX_S), 1)


def _wait_in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{-(-seconds // 60)} minutes"
