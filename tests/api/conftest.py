"""Fixtures of the API tests: an API client, users in each role, a clean throttle."""

import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def clean_throttle(clean_throttle):
    """tests/conftest.py's, for every API test."""
    return clean_throttle


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def make_user(db):
    """`make_user(username, **fields)`: a user whose password is PASSWORD."""

    def make(username: str, **fields):
        return UserFactory(username=username, password=PASSWORD, **fields)

    return make
