"""A redis-server of a test session's own (a free port, no persistence), used as the Celery
broker, so flushing or restarting it never touches anyone else's."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


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
