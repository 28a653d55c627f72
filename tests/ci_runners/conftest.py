"""Fixtures of the compatibility-run tests: a private Redis broker, targets, projects, users.

Every test here talks to its own redis-server (started on a free port), so flushing it or
restarting it never touches anyone else's broker.
"""

from __future__ import annotations

import pytest

from tests.ci_runners.factories import ProjectTestConfigFactory, TorchTargetFactory
from tests.factories import UserFactory
from tests.registry.factories import MaintainerIdentityFactory, ProjectFactory

PASSWORD = "pw"


@pytest.fixture(autouse=True)
def broker(broker):
    """Every test publishes to the private Redis, emptied before it starts (`tests/conftest.py`)."""
    return broker


@pytest.fixture
def targets(db):
    return [
        TorchTargetFactory(version="2.13.0", variant="cpu"),
        TorchTargetFactory(version="2.14.1", variant=""),
    ]


@pytest.fixture
def gpu_target(db):
    return TorchTargetFactory(version="2.14.1", variant="cu126", capability="cuda.sm90")


@pytest.fixture
def project(db):
    project = ProjectFactory(
        slug="torchthing",
        name="TorchThing",
        repository="thingorg/torchthing",
        maintainers=["alice-gh"],
    )
    ProjectTestConfigFactory(project=project, pytest_args=["-x"], timeout_s=300)
    return project


@pytest.fixture
def staff(db):
    return UserFactory(username="staff", password=PASSWORD, is_staff=True)


@pytest.fixture
def maintainer(db):
    """Maintains `project`: their verified GitHub handle is among its maintainers."""
    identity = MaintainerIdentityFactory(
        user__username="alice", user__password=PASSWORD, github_handle="alice-gh", verified=True
    )
    return identity.user


@pytest.fixture
def other_user(db):
    identity = MaintainerIdentityFactory(
        user__username="mallory", user__password=PASSWORD, github_handle="mallory-gh", verified=True
    )
    return identity.user
