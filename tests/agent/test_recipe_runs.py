"""The test recipe in a real job: the repository's own `[tool.pytorch-ecosystem]` table and
an operator's flags both take effect and are stored with the result; `recipe --json` shows
what a job would run, with provenance, and refuses cleanly where there is nothing to run."""

from __future__ import annotations

import json
from pathlib import Path

from ci_runners.agent.contracts import CellState, ErrorCode, Job, TestConfig
from ci_runners.agent.runner import run_job
from tests.agent.conftest import git_commit, run_agent_cli

NEEDS_BACKEND = {
    "tests/test_backend.py": """
        import os

        import torch


        def test_backend_chosen_by_the_repository():
            assert os.environ["EXAMPLE_BACKEND"] == "cpu"
            assert torch.ones(2).sum() == 2


        def test_plain():
            assert True
    """,
}
TABLE = """
[tool.pytorch-ecosystem]
env = { EXAMPLE_BACKEND = "cpu" }
"""


def _with_table(repo: Path) -> Path:
    with open(repo / "pyproject.toml", "a") as pyproject:
        pyproject.write(TABLE)
    git_commit(repo, "maintainers' table")
    return repo


def test_the_repositorys_table_takes_effect_and_is_stored_with_the_result(
    make_project, work_root, require_sandbox
):
    repo = _with_table(make_project(name="tabled", files=NEEDS_BACKEND))
    job = Job(source=str(repo), torch_version="2.13.0", torch_variant="cpu", timeout_s=300)

    result = run_job(job=job, work_root=work_root)

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.counts["passed"] == 2
    assert result.recipe["env"] == {"EXAMPLE_BACKEND": "cpu"}
    assert result.recipe["override"] == {"env": {"EXAMPLE_BACKEND": "cpu"}}
    assert {"part": "env", "file": "pyproject.toml"}.items() <= next(
        entry for entry in result.recipe["provenance"] if entry["part"] == "env"
    ).items()
    assert result.lock_hash and "torch==2.13.0+cpu" in result.lock


def test_an_operators_override_wins_over_the_repositorys_table(
    make_project, work_root, require_sandbox
):
    repo = _with_table(make_project(name="overridden", files=NEEDS_BACKEND))
    job = Job(
        source=str(repo),
        torch_version="2.13.0",
        torch_variant="cpu",
        timeout_s=300,
        test_config=TestConfig(env={"EXAMPLE_BACKEND": "cuda"}),
    )

    result = run_job(job=job, work_root=work_root)

    assert result.state == CellState.FAILED, (result.error, result.log_tail)
    assert [f["test"] for f in result.failures] == [
        "tests/test_backend.py::test_backend_chosen_by_the_repository"
    ]
    assert result.recipe["env"] == {"EXAMPLE_BACKEND": "cuda"}
    assert [e["file"] for e in result.recipe["provenance"] if e["part"] == "env"] == [
        "pyproject.toml",
        "listing",
    ]


def test_recipe_json_gives_every_part_with_provenance_and_runs_nothing(make_project, tmp_path):
    canary = tmp_path / "ran"
    repo = _with_table(
        make_project(
            name="recipecli",
            files={
                **NEEDS_BACKEND,
                "setup.py": f"open({str(canary)!r}, 'w').write('setup.py ran')\n",
            },
        )
    )

    completed = run_agent_cli("recipe", "--source", str(repo), "--json", "--deselect", "slow")

    assert completed.returncode == 0, completed.stderr
    recipe = json.loads(completed.stdout)
    assert set(recipe) >= {"install", "run", "env", "deselect", "override", "provenance", "hash"}
    assert recipe["install"][0] == ".[test]"
    assert recipe["run"]["command"] == ["python", "-m", "pytest", "-m", "not slow", "tests"]
    assert recipe["run"]["cwd"] == "." and recipe["run"]["copy_tests_out"] is False
    assert recipe["deselect"] == ["slow"] and recipe["env"] == {"EXAMPLE_BACKEND": "cpu"}
    parts = {entry["part"] for entry in recipe["provenance"]}
    assert {"extras", "testpaths", "env", "deselect"} <= parts
    assert len(recipe["hash"]) == 64 and len(recipe["commit"]) == 40
    assert not canary.exists()


def test_recipe_refuses_a_repository_without_tests_with_a_clear_message(
    make_project, work_root, require_sandbox
):
    repo = make_project(name="notests", files={"docs/index.md": "# docs\n"})

    completed = run_agent_cli("recipe", "--source", str(repo), "--json")
    result = run_job(
        job=Job(source=str(repo), torch_version="2.13.0", torch_variant="cpu"),
        work_root=work_root,
    )

    assert completed.returncode == 3 and completed.stdout == ""
    assert "no tests found" in completed.stderr and "Traceback" not in completed.stderr
    assert result.state == CellState.ERRORED and result.error_code == ErrorCode.NO_TESTS
    assert "no tests found" in result.error
