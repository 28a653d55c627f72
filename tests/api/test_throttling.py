"""API and badge throttles count atomically: parallel clients get no more than the rate
between them (a read-modify-write of the request history let about twice through)."""

import threading

import pytest
from django.db import connections
from django.test import Client
from rest_framework.throttling import SimpleRateThrottle

pytestmark = pytest.mark.django_db

CLIENTS = 16
REQUESTS_EACH = 5


def statuses_of_parallel_clients(path: str) -> list[tuple[int, str | None]]:
    start = threading.Barrier(CLIENTS)
    answers: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def client_run() -> None:
        client = Client()
        start.wait()
        try:
            for _ in range(REQUESTS_EACH):
                response = client.get(path)
                with lock:
                    answers.append((response.status_code, response.get("Retry-After")))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client_run) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@pytest.mark.parametrize("path", ["/api/v1/categories/", "/badges/ghost/compat.svg"])
def test_parallel_clients_get_no_more_than_the_rate(monkeypatch, path):
    monkeypatch.setattr(
        SimpleRateThrottle,
        "THROTTLE_RATES",
        {"anon": "20/minute", "user": None, "badge": "20/minute"},
    )
    answers = statuses_of_parallel_clients(path)
    assert len(answers) == CLIENTS * REQUESTS_EACH
    passed = [status for status, _ in answers if status == 200]
    refused = [retry for status, retry in answers if status == 429]
    assert len(passed) == 20
    assert len(refused) == CLIENTS * REQUESTS_EACH - 20
    assert all(retry and 1 <= int(retry) <= 60 for retry in refused)
