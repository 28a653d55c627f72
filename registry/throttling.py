"""Rate limits counted atomically in Redis: the API's and the badges' DRF throttles, and the
fixed-window counter under them that the login throttle (config/login_throttle.py) shares.

DRF's SimpleRateThrottle reads a list of timestamps from the cache, appends and writes it
back: parallel requests read the same list and let several times the rate through. Here one
Redis script increments a counter and gives its window an expiry, so each request is counted
exactly once, whatever runs beside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from django.core.cache import cache
from django_redis import get_redis_connection
from rest_framework import throttling

logger = logging.getLogger(__name__)

# INCR keeps a key's expiry; the first hit of a window (or a key that lost its expiry) sets it.
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""
# A hit handed back (a login that succeeded), only while its window is still open.
_RELEASE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('DECR', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class WindowCount:
    """Hits counted in a key's current window, and the seconds until that window closes."""

    count: int
    ttl_s: int


def window_hit(key: str, *, window_s: int) -> WindowCount | None:
    """Count one hit under `key` (a cache key, prefixed like the cache's own) in a fixed
    window that opens at its first hit and lasts `window_s` seconds.

    None when Redis cannot be reached: callers let the request through, as the cache
    (IGNORE_EXCEPTIONS) does for everything else.
    """
    try:
        count, ttl_s = _connection().eval(_HIT_SCRIPT, 1, cache.make_key(key), max(window_s, 1))
    except redis.RedisError:
        logger.exception("rate limit not counted: Redis unreachable")
        return None
    return WindowCount(count=int(count), ttl_s=max(int(ttl_s), 1))


def window_read(key: str) -> WindowCount | None:
    """The window under `key` without counting a hit (count 0 when no window is open)."""
    full_key = cache.make_key(key)
    try:
        with _connection().pipeline(transaction=False) as pipe:
            pipe.get(full_key)
            pipe.ttl(full_key)
            count, ttl_s = pipe.execute()
    except redis.RedisError:
        logger.exception("rate limit not read: Redis unreachable")
        return None
    if count is None:
        return WindowCount(count=0, ttl_s=0)
    return WindowCount(count=int(count), ttl_s=max(int(ttl_s), 1))


def window_release(key: str) -> None:
    """Hand back one hit counted under `key`, if its window is still open."""
    try:
        _connection().eval(_RELEASE_SCRIPT, 1, cache.make_key(key))
    except redis.RedisError:
        logger.exception("rate limit hit not released: Redis unreachable")


def _connection() -> redis.Redis:
    return get_redis_connection("default")


class FixedWindowRateThrottle(throttling.SimpleRateThrottle):
    """A DRF rate (`THROTTLE_RATES[scope]`, e.g. "120/minute") counted with `window_hit`: at
    most that many requests per window, then 429 with Retry-After until the window closes."""

    cache_format = "throttle_window_%(scope)s_%(ident)s"

    def allow_request(self, request, view) -> bool:
        self.retry_after_s: int | None = None
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        hit = window_hit(key, window_s=int(self.duration))
        if hit is None or hit.count <= self.num_requests:
            return True
        self.retry_after_s = hit.ttl_s
        return False

    def wait(self) -> int | None:
        return self.retry_after_s


class AnonRateThrottle(FixedWindowRateThrottle, throttling.AnonRateThrottle):
    """Anonymous requests per client address: the `anon` rate."""


class UserRateThrottle(FixedWindowRateThrottle, throttling.UserRateThrottle):
    """Requests per signed-in user (per address when anonymous): the `user` rate."""
