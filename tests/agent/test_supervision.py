"""The worker's side of a cell: its broker keys (real Redis), its log, the child's protocol."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import redis

from ci_runners.agent import cell_log, child, contracts, supervision, worker_config
from ci_runners.agent.contracts import Job

pytestmark = pytest.mark.agent


@pytest.fixture
def broker_client() -> redis.Redis:
    client = redis.Redis.from_url(worker_config.BROKER_URL)
    client.ping()  # the broker Redis must be there: fail loudly, never skip
    return client


@pytest.fixture
def cell_job(broker_client):
    job = Job(source=".", torch_version="2.13.0", cell_id=424242, cell_token=uuid.uuid4().hex)
    keys = [
        contracts.cell_key(cell_id=job.cell_id, token=job.cell_token),
        *(
            contracts.claim_key(cell_id=job.cell_id, token=job.cell_token, attempt=attempt)
            for attempt in (1, 2)
        ),
    ]
    yield job
    broker_client.delete(*keys)


def test_a_cell_is_wanted_for_its_current_attempt_only(cell_job, broker_client):
    key = contracts.cell_key(cell_id=cell_job.cell_id, token=cell_job.cell_token)
    later = Job.from_dict({**cell_job.to_dict(), "attempt": 2})

    assert supervision.cell_still_wanted(job=cell_job)  # no key: the broker lost its data
    broker_client.set(key, "1")
    assert supervision.cell_still_wanted(job=cell_job)
    assert not supervision.cell_still_wanted(job=later)
    broker_client.set(key, contracts.CANCELLED)
    assert not supervision.cell_still_wanted(job=cell_job)
    assert supervision.cell_still_wanted(job=Job(source=".", torch_version="2.13.0"))


def test_one_runner_per_attempt_and_a_finished_attempt_stays_claimed(cell_job, broker_client):
    key = contracts.claim_key(
        cell_id=cell_job.cell_id, token=cell_job.cell_token, attempt=cell_job.attempt
    )

    supervision.refresh_claim(job=cell_job)
    assert broker_client.get(key) is None  # a refresh never makes a claim
    assert supervision.claim_cell(job=cell_job) is True
    assert supervision.claim_cell(job=cell_job) is False
    assert broker_client.ttl(key) <= worker_config.CLAIM_TTL_S
    supervision.finish_claim(job=cell_job)
    assert broker_client.get(key) == contracts.CLAIM_DONE.encode()
    assert broker_client.ttl(key) > worker_config.CLAIM_TTL_S
    assert supervision.claim_cell(job=cell_job) is False
    later = Job.from_dict({**cell_job.to_dict(), "attempt": 2})
    assert supervision.claim_cell(job=later) is True


def test_the_log_keeps_its_head_and_tail_and_says_what_it_cut():
    log = cell_log.LogBuffer()
    line = "x" * 999 + "\n"
    count = contracts.AGENT_LOG_MAX_CHARS // len(line) + 100
    for number in range(count):
        log.add(f"{number:08d}{line}")
    log.set_phase("running")

    full = log.full()
    assert full.startswith("00000000x")
    assert full.endswith(f"{cell_log.PHASE_PREFIX}running\n")
    assert "characters cut ...]" in full
    # Whole lines: the head may pass its half by one line.
    assert len(full) <= contracts.AGENT_LOG_MAX_CHARS + 2 * len(f"{0:08d}{line}")
    assert log.phase == "running"
    recent = log.recent()
    assert len(recent) <= contracts.LOG_TAIL_CHARS
    assert recent.endswith(f"{cell_log.PHASE_PREFIX}running\n")


def test_phase_events_are_the_known_phases_only():
    assert child.parse_phase_event(child.phase_event("preparing")) == "preparing"
    assert child.parse_phase_event("phase running\n") == "running"
    assert child.parse_phase_event("phase passed\n") is None  # job output is never an event
    assert child.parse_phase_event("tick 3\n") is None


def test_the_worker_starts_the_child_with_this_command(tmp_path):
    result_path = tmp_path / "result.json"

    assert child.start_command(result_path) == [
        sys.executable,
        "-m",
        "ci_runners.agent.child",
        str(result_path),
    ]
    assert (child.PACKAGE_ROOT / "ci_runners" / "agent" / "child.py").is_file()
    assert child.PACKAGE_ROOT == Path(__file__).resolve().parents[2]


def test_a_claim_the_broker_lost_is_taken_again_while_the_cell_runs(cell_job, broker_client):
    """A broker restarted without persistence forgets the claim: the runner that still runs
    the cell takes it again, or the reaper would take the cell for lost."""
    key = contracts.claim_key(
        cell_id=cell_job.cell_id, token=cell_job.cell_token, attempt=cell_job.attempt
    )
    assert supervision.claim_cell(job=cell_job) is True
    broker_client.delete(key)

    supervision.keep_claim(job=cell_job)

    assert broker_client.get(key) == supervision.runner_name().encode()
    assert 0 < broker_client.ttl(key) <= worker_config.CLAIM_TTL_S
