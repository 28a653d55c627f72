"""Fixtures of the API tests: an API client, users in each role, a clean throttle."""

import pytest
from django.core.cache import cache
from django_redis import get_redis_connection
from rest_framework.test import APIClient


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
def make_user(db, django_user_model):
    def make(username: str, **fields):
        return django_user_model.objects.create_user(
            username=username, password="correct horse battery", **fields
        )

    return make
