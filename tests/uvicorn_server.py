"""The real web entry point (config.asgi under uvicorn) on a free port, for tests that need
the deployed process rather than Django's test client."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def session_database_url(query: str = "") -> str:
    """The URL of the database this test session uses, for a child process."""
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"{url}?{query}" if query else url


@contextlib.contextmanager
def uvicorn_serving(
    *, env: dict[str, str], warmup_path: str, options: Sequence[str] = ()
) -> Iterator[str]:
    """Start `config.asgi:application` with `env` over ours and uvicorn `options`; yield its
    base URL once `warmup_path` answers; stop it after."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", *options]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                requests.get(base + warmup_path, timeout=30)
                break
            except requests.ConnectionError:
                if process.poll() is not None:
                    raise RuntimeError(process.stderr.read().decode()) from None
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
