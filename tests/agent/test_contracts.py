"""The contracts cross Celery as JSON: they must round-trip."""

from __future__ import annotations

import json

import pytest

from ci_runners.agent.contracts import (
    CellState,
    HeartbeatMessage,
    Job,
    ProgressMessage,
    Result,
    ResultMessage,
    TestConfig,
    cell_task_id,
)

pytestmark = pytest.mark.agent


def test_job_round_trips_through_json():
    job = Job(
        cell_id=7,
        attempt=2,
        source="https://example.org/p.git",
        ref="v1.0",
        torch_version="2.13.0",
        torch_variant="cpu",
        test_config=TestConfig(
            extras=["test"],
            groups=["test"],
            deselect=["slow"],
            pytest_args=["-x"],
            env={"A": "1"},
            copy_tests="tests",
            needs_gpu=True,
        ),
        cache_scope="project-7",
        find_links=["/opt/wheels"],
    )

    assert Job.from_dict(json.loads(json.dumps(job.to_dict()))) == job
    assert job.torch_requirement == "torch==2.13.0+cpu"


def test_result_round_trips_and_has_exactly_the_public_fields():
    result = Result(state=CellState.TIMED_OUT, error="wall time limit of 5 s exceeded")

    data = json.loads(json.dumps(result.to_dict()))

    assert data["state"] == "timed_out"
    assert set(data) == {
        "state",
        "exit_code",
        "commit",
        "counts",
        "failures",
        "warnings",
        "timings",
        "environment",
        "energy_j",
        "log_tail",
        "error",
        "error_code",
        "tests_collected",
        "needs_network",
        "recipe",
        "lock",
        "lock_hash",
        "declared",
        "flaky",
        "beyond_range",
    }
    assert set(data["counts"]) == {"passed", "failed", "errors", "skipped", "xfailed", "xpassed"}
    assert set(data["timings"]) == {"checkout_s", "env_s", "env_cache_hit", "tests_s", "total_s"}
    assert set(data["environment"]) == {"python", "torch", "cuda", "gpu"}
    assert Result.from_dict(data) == result


def test_importing_the_wire_loads_none_of_the_agent_runtime():
    import subprocess
    import sys

    runtime = (
        "ci_runners.agent.runner", "ci_runners.agent.sandbox", "ci_runners.agent.build",
        "ci_runners.agent.environment", "ci_runners.agent.celery", "ci_runners.agent.results",
        "ci_runners.agent.checkout", "celery", "kombu", "redis", "defusedxml", "django",
    )  # fmt: skip
    code = (
        "import sys, json; import ci_runners.agent.contracts;"
        f"print(json.dumps([m for m in {runtime!r} if m in sys.modules]))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(loaded) == []


def test_result_refuses_a_state_an_agent_cannot_report():
    data = Result(state=CellState.PASSED).to_dict()
    data["state"] = "queued"

    with pytest.raises(ValueError, match="cannot report"):
        Result.from_dict(data)


def test_agent_imports_no_django():
    import subprocess
    import sys

    code = (
        "import sys, ci_runners.agent, ci_runners.agent.cli;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('django', 'registry', 'reviews', 'config') or m == 'ci_runners.models'];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_messages_round_trip_and_ignore_fields_a_newer_agent_adds():
    message = ResultMessage(
        cell_id=3, attempt=2, runner="r#1", result=Result(state=CellState.FAILED).to_dict()
    )
    sent = json.loads(json.dumps({**message.to_kwargs(), "added_later": 1}))

    assert ResultMessage.from_kwargs(sent) == message
    heartbeat = HeartbeatMessage(name="r", queues=["runner.cpu"])
    assert HeartbeatMessage.from_kwargs(heartbeat.to_kwargs()) == heartbeat
    with pytest.raises(TypeError):
        ProgressMessage.from_kwargs({"cell_id": 1})


def test_a_cells_task_id_carries_its_token():
    token = "5d1c2b9e-0a4f-4a31-9d55-1c0de3f0a7b2"

    task_id = cell_task_id(cell_id=7, token=token, attempt=2)

    assert task_id == "compat-cell-7-5d1c2b9e0a4f4a319d551c0de3f0a7b2-2"
    assert task_id != cell_task_id(cell_id=7, token=token.replace("5", "6"), attempt=2)
