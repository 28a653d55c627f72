"""`python -m ci_runners.agent run ... --json` as an operator would call it."""

from __future__ import annotations

import json

import pytest

from tests.agent.conftest import run_agent_cli

pytestmark = pytest.mark.agent


def test_run_prints_one_json_object(make_project, work_root, require_sandbox):
    repo = make_project(
        name="cliproj",
        files={
            "tests/test_a.py": """
            import os

            def test_env():
                assert os.environ["GREETING"] == "hello world"

            def test_fails():
                assert 1 == 2
        """,
        },
    )

    completed = run_agent_cli(
        "run",
        "--source",
        str(repo),
        "--torch",
        "2.13.0",
        "--variant",
        "cpu",
        "--timeout",
        "120",
        "--env",
        "GREETING=hello world",
        "--pytest-args=-q -p no:randomly",
        "--work-root",
        str(work_root),
        "--json",
    )

    assert completed.returncode == 1, completed.stderr  # the exit status of a failed result
    result = json.loads(completed.stdout)
    assert result["state"] == "failed"
    assert result["exit_code"] == 1
    assert result["counts"]["passed"] == 1
    assert result["counts"]["failed"] == 1
    assert result["failures"][0]["test"] == "tests/test_a.py::test_fails"
    assert result["timings"]["env_cache_hit"] is True


def _run_args(repo, work_root, *extra: str) -> list[str]:
    return [
        "run",
        "--source",
        str(repo),
        "--torch",
        "2.13.0",
        "--variant",
        "cpu",
        "--work-root",
        str(work_root),
        "--json",
        *extra,
    ]


EXIT_CASES = {
    "passed": ({"tests/test_a.py": "def test_a():\n    pass\n"}, [], 0),
    "timed_out": (
        {"tests/test_a.py": "import time\n\n\ndef test_a():\n    time.sleep(3600)\n"},
        ["--timeout", "10"],
        4,
    ),
    "not_installable": (
        {
            "tests/test_a.py": "def test_a():\n    pass\n",
            "pyproject.toml": """
                [build-system]
                requires = ["hatchling"]
                build-backend = "hatchling.build"

                [project]
                name = "cliexit-not-installable"
                version = "0.1.0"
                dependencies = ["torch<2.0"]

                [tool.hatch.build.targets.wheel]
                packages = ["src/cliexit_not_installable"]
            """,
        },
        [],
        5,
    ),
}


@pytest.mark.parametrize("state", list(EXIT_CASES))
def test_exit_status_follows_the_result_state(state, make_project, work_root, require_sandbox):
    files, extra, status = EXIT_CASES[state]
    repo = make_project(name=f"cliexit-{state.replace('_', '-')}", files=files)

    completed = run_agent_cli(*_run_args(repo, work_root, *extra))

    assert json.loads(completed.stdout)["state"] == state, completed.stderr
    assert completed.returncode == status


def test_errored_result_exits_3(work_root, tmp_path):
    completed = run_agent_cli(*_run_args(tmp_path / "no-such-source", work_root))

    result = json.loads(completed.stdout)
    assert (result["state"], result["error_code"]) == ("errored", "checkout_failed")
    assert completed.returncode == 3


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--torch", "2.13.0"],
        ["run", "--source", ".", "--torch", "banana"],
        ["run", "--source", ".", "--torch", "2.13.0", "--timeout", "-1"],
        ["run", "--source", ".", "--torch", "2.13.0", "--env", "NOEQUALS"],
        ["fly"],
    ],
)
def test_bad_input_exits_2_with_a_message(args):
    completed = run_agent_cli(*args)

    assert completed.returncode == 2
    assert "error:" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""
