"""`python -m ci_runners.agent run ... --json` as an operator would call it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.agent


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ci_runners.agent", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


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

    completed = _cli(
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

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["state"] == "failed"
    assert result["exit_code"] == 1
    assert result["counts"]["passed"] == 1
    assert result["counts"]["failed"] == 1
    assert result["failures"][0]["test"] == "tests.test_a::test_fails"
    assert result["timings"]["env_cache_hit"] is True


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
    completed = _cli(*args)

    assert completed.returncode == 2
    assert "error:" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""
