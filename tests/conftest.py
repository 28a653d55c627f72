"""Shared fixtures for every test package (each package keeps its own conftest too)."""

import asyncio

import pytest
from django.core.cache import cache
from django_redis import get_redis_connection

from tests.private_redis import PrivateRedis


@pytest.fixture(autouse=True)
def no_event_loop_left_running():
    """A test must not leave an asyncio loop marked running in the main thread.

    A leaked running loop makes every later `asyncio.run()` in this process fail; this check
    points at the test that leaked it instead of at its innocent successors.
    """
    assert asyncio.events._get_running_loop() is None, "an earlier test leaked a running loop"
    yield
    assert asyncio.events._get_running_loop() is None, "this test left an event loop running"


@pytest.fixture
def clean_throttle():
    """No request counts left by an earlier test (the API and sign-in throttles count in the
    cache); the API tests use it for every test (`tests/api/conftest.py`)."""
    connection = get_redis_connection("default")
    keys = list(connection.scan_iter(match=cache.make_key("throttle_*"), count=1000))
    if keys:
        connection.delete(*keys)


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory):
    """A Celery broker of this test session's own (see `tests.private_redis`)."""
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broker(private_redis, settings):
    """Celery publishes to this session's private Redis, emptied before the test starts (the
    compatibility-run tests use it for every test: `tests/ci_runners/conftest.py`)."""
    private_redis.client().flushall()
    settings.CELERY_BROKER_URL = private_redis.url
    return private_redis
