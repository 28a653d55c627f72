"""Fixtures of the API tests: an API client, users in each role, a clean throttle."""

import pytest
from django.core.cache import cache
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from tests.factories import UserFactory

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def clean_throttle():
    connection = get_redis_connection("default")
    keys = list(connection.scan_iter(match=cache.make_key("throttle_*"), count=1000))
    if keys:
        connection.delete(*keys)


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def make_user(db):
    """`make_user(username, **fields)`: a user whose password is PASSWORD."""

    def make(username: str, **fields):
        return UserFactory(username=username, password=PASSWORD, **fields)

    return make
