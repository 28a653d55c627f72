"""The web under ASGI holds a bounded number of database connections, whatever the burst.

Each request's sync code runs in a thread of its own; a persistent connection (CONN_MAX_AGE)
would stay open per thread, idle, until the database refuses clients (pages then fail with
500). The web uses a bounded pool per process instead (config/asgi.py).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
BURST = 100
POOL_MAX = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


APPLICATION = "ecoreg-asgi-burst"


def _web_connections() -> int:
    """Connections the web under test holds (tagged with its application_name)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION]
        )
        return cursor.fetchone()[0]


@pytest.fixture
def asgi_web(transactional_db):
    """config.asgi under uvicorn with the deployed database settings (not the test ones)."""
    port = _free_port()
    db = connection.settings_dict
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_CONN_MAX_AGE"},
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "0",
        "DATABASE_POOL_MAX_SIZE": str(POOL_MAX),
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
            f"?application_name={APPLICATION}"
        ),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                requests.get(base + "/", timeout=30)
                break
            except requests.ConnectionError:
                if process.poll() is not None:
                    raise RuntimeError(process.stderr.read().decode()) from None
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_burst_of_requests_stays_within_the_pool(asgi_web):
    base = asgi_web
    peak = 0

    with ThreadPoolExecutor(max_workers=BURST) as pool:
        replies = [pool.submit(requests.get, base + "/", timeout=60) for _ in range(BURST)]
        while not all(reply.done() for reply in replies):
            peak = max(peak, _web_connections())
            time.sleep(0.01)
    statuses = [reply.result().status_code for reply in replies]

    assert statuses == [200] * BURST
    assert 0 < peak <= POOL_MAX
    assert _web_connections() <= POOL_MAX
