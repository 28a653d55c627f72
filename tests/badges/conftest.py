"""Fixtures of the badge tests: a clean badge cache (projects come from ProjectFactory)."""

import pytest
from django.core.cache import cache
from django_redis import get_redis_connection

from registry.badge_cache import badge_key_prefix


def _drop_keys(pattern: str) -> None:
    connection = get_redis_connection("default")
    keys = list(connection.scan_iter(match=pattern, count=1000))
    if keys:
        connection.delete(*keys)


@pytest.fixture(autouse=True)
def clean_badge_cache():
    _drop_keys(badge_key_prefix() + ":*")
    _drop_keys(cache.make_key("throttle_*"))
    yield
    _drop_keys(badge_key_prefix() + ":*")
