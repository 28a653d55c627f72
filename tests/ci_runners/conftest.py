"""Fixtures of the compatibility-run tests: a private Redis broker, targets, projects, users.

Every test here talks to its own redis-server (started on a free port), so flushing it or
restarting it never touches anyone else's broker.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.ci_runners.factories import ProjectTestConfigFactory, TorchTargetFactory
from tests.factories import UserFactory
from tests.registry.factories import MaintainerIdentityFactory, ProjectFactory

PASSWORD = "pw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own: no persistence, restartable on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client()
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def messages(self, queue: str) -> list[dict]:
        """The Celery messages waiting in a queue, decoded (oldest first)."""
        found = []
        for raw in reversed(self.client().lrange(queue, 0, -1)):
            envelope = json.loads(raw)
            body = json.loads(base64.b64decode(envelope["body"]))
            found.append(
                {
                    "task": envelope["headers"]["task"],
                    "id": envelope["headers"]["id"],
                    "args": body[0],
                    "kwargs": body[1],
                }
            )
        return found


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory):
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def broker(private_redis, settings):
    """Every test publishes to the private Redis, emptied before it starts."""
    private_redis.client().flushall()
    settings.CELERY_BROKER_URL = private_redis.url
    return private_redis


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
