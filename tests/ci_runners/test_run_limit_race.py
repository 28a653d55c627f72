"""The maintainers' hourly allowance of runs holds when two requests for the last run of the
hour arrive at once: the service counts under a lock of the project's row, in the transaction
that creates the run, so the second request waits for the first to commit and is refused."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from ci_runners.models import CompatRun
from ci_runners.services.runs import RunLimitReached, compat_run_request_manual

WAIT_S = 10


def _a_backend_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0] > 0


def _until(condition, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.django_db(transaction=True)
def test_two_requests_at_once_for_the_last_run_of_the_hour_start_exactly_one(
    settings, project, targets, maintainer, staff
):
    settings.COMPAT_MAINTAINER_RUNS_PER_HOUR = 2
    compat_run_request_manual(project=project, requested_by=maintainer)  # the limit - 1
    created, commit, second_done = threading.Event(), threading.Event(), threading.Event()
    outcomes: dict[str, object] = {}

    def first() -> None:
        try:
            with transaction.atomic():  # created, then held uncommitted until told
                outcomes["first"] = compat_run_request_manual(
                    project=project, requested_by=maintainer
                )
                created.set()
                commit.wait(WAIT_S)
        finally:
            connection.close()

    def second() -> None:
        try:
            outcomes["second"] = compat_run_request_manual(project=project, requested_by=maintainer)
        except RunLimitReached as refused:
            outcomes["second"] = refused
        finally:
            second_done.set()
            connection.close()

    threads = [threading.Thread(target=first, daemon=True)]
    threads[0].start()
    assert created.wait(WAIT_S)
    threads.append(threading.Thread(target=second, daemon=True))
    threads[1].start()
    # The first commits once the second is waiting on the project's row (or, were the count
    # not locked, once the second has already counted and created its run).
    _until(lambda: second_done.is_set() or _a_backend_waits_for_a_lock())
    commit.set()
    for thread in threads:
        thread.join(WAIT_S)

    assert isinstance(outcomes["first"], CompatRun)
    assert isinstance(outcomes["second"], RunLimitReached), outcomes["second"]
    assert 3500 < outcomes["second"].retry_after_s <= 3601
    assert CompatRun.objects.filter(project=project).count() == 2
    # Staff are not limited, and take no lock to find it out.
    assert isinstance(compat_run_request_manual(project=project, requested_by=staff), CompatRun)
