"""The web under ASGI holds a bounded number of database connections, whatever the burst.

Each request's sync code runs in a thread of its own; a persistent connection (CONN_MAX_AGE)
would stay open per thread, idle, until the database refuses clients (pages then fail with
500). The web uses a bounded pool per process instead (config/asgi.py).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from tests.uvicorn_server import session_database_url, uvicorn_serving

BURST = 100
POOL_MAX = 4
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
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "0",
        "DATABASE_POOL_MAX_SIZE": str(POOL_MAX),
        "DATABASE_URL": session_database_url(f"application_name={APPLICATION}"),
    }
    with uvicorn_serving(env=env, warmup_path="/") as base:
        yield base


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
