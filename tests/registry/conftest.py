"""Fixtures of the registry tests."""

from pathlib import Path

import pytest

from tests.registry.fake_github import FakeGitHub

REAL_LANDSCAPE = Path(__file__).resolve().parents[2] / "data" / "pytorch-landscape.yml"


@pytest.fixture
def real_landscape_path() -> Path:
    return REAL_LANDSCAPE


@pytest.fixture
def imported_landscape(db, real_landscape_path):
    from django.core.management import call_command

    call_command("import_landscape", str(real_landscape_path), stdout=open("/dev/null", "w"))


@pytest.fixture
def fake_github(settings):
    """GitHub's API served by the local fake (tests/registry/fake_github.py), no waiting."""
    with FakeGitHub() as fake:
        settings.GITHUB_API_URL = fake.url
        settings.GITHUB_TOKEN = ""
        settings.GITHUB_RATE_LIMIT_MAX_WAIT_S = 2
        settings.GITHUB_SECONDS_BETWEEN_REQUESTS = 0.0
        yield fake
