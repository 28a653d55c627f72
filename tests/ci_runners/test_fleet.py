"""The fleet's heartbeats: each runner's cache size and isolation, recorded and shown, from
agents that send them and from older ones that do not."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ci_runners import tasks
from ci_runners.agent.contracts import HeartbeatMessage
from ci_runners.models import RunnerHost

pytestmark = pytest.mark.django_db

ISOLATION = "bwrap + cgroup v1 pids,memory"


def _beat(**kwargs) -> None:
    """A heartbeat as the web side's worker receives it: the task's keyword arguments."""
    tasks.runner_heartbeat.apply(kwargs=kwargs).get()


def test_heartbeat_records_the_runners_cache_size_and_isolation():
    beat = HeartbeatMessage(
        name="cpu-1", queues=["runner.cpu"], cache_bytes=3 * 1024**3 + 1, isolation=ISOLATION
    )
    _beat(**beat.to_kwargs())

    host = RunnerHost.objects.get(name="cpu-1")
    assert host.cache_bytes == 3 * 1024**3 + 1
    assert host.isolation == ISOLATION


def test_heartbeat_of_an_older_agent_leaves_both_unknown():
    _beat(name="old-1", queues=["runner.cpu"], version="0.9", cell_id=None, attempt=None)

    host = RunnerHost.objects.get(name="old-1")
    assert host.cache_bytes is None
    assert host.isolation == ""


def test_a_nonsense_cache_size_is_recorded_as_unknown_not_as_an_error():
    _beat(name="odd-1", queues=[], cache_bytes=-5, isolation="x" * 500)

    host = RunnerHost.objects.get(name="odd-1")
    assert host.cache_bytes is None
    assert host.isolation == "x" * 200


def test_fleet_page_shows_each_runners_cache_in_human_units_and_its_isolation(client):
    _beat(
        **HeartbeatMessage(
            name="cpu-1", queues=["runner.cpu"], cache_bytes=int(1.5 * 1024**3), isolation=ISOLATION
        ).to_kwargs()
    )
    _beat(name="old-1", queues=["runner.cpu"], version="0.9")

    page = client.get(reverse("ci_runners:fleet")).content.decode()

    cpu_row = page[page.index("<td>cpu-1</td>") : page.index("</tr>", page.index("cpu-1"))]
    old_row = page[page.index("<td>old-1</td>") : page.index("</tr>", page.index("old-1"))]
    assert "1.5\xa0GB" in cpu_row and ISOLATION in cpu_row
    assert "1610612736" not in cpu_row  # human units, not raw bytes
    assert old_row.count("unknown") == 2  # neither figure: shown as unknown, not as zero
