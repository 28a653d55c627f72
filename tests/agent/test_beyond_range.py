"""Testing beyond a project's declared torch range: when its own Requires-Dist excludes the
torch under test and the job asks for it, the agent installs that torch anyway (the range
overridden), runs the tests as in any job, and reports the cell `not_installable` (the project
as published cannot be installed with it) with what the tests did in `beyond_range`.

Real parts throughout: stand-in torch wheels 9.0.0, 9.1.0 and 9.2.0 in a find-links dir, real
git projects built by hatchling in the sandbox, uv resolving, bwrap running pytest.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from ci_runners.agent.contracts import CellState, Job
from ci_runners.agent.runner import run_job
from tests.agent.conftest import make_wheel, run_agent_cli
from tests.standin_wheels import standin_torch_releases

pytestmark = pytest.mark.agent

# The stand-in wheels carry no code of their own: the torch base cache is keyed by version
# alone (one build per version), and other tests build the same versions.
EMPTY_COUNTS = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "xfailed": 0, "xpassed": 0}


@pytest.fixture(scope="module")
def torch_links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A find-links dir: stand-in torch 9.0.0 to 9.2.0, and two small helper packages."""
    links = tmp_path_factory.mktemp("beyond-links")
    standin_torch_releases(links, ["9.0.0", "9.1.0", "9.2.0"])
    make_wheel(links, name="ecoreg-beyond-addon", version="1.0", requires=("torch<9.2",))
    make_wheel(links, name="ecoreg-beyond-helper", version="1.0")
    return links


def _pyproject(name: str, *, dependencies: list[str], requires_python: str = "") -> str:
    python = f'requires-python = "{requires_python}"' if requires_python else ""
    return textwrap.dedent(
        f"""
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "{name}"
        version = "0.1.0"
        dependencies = {json.dumps(dependencies)}
        {python}

        [tool.hatch.build.targets.wheel]
        packages = ["src/{name.replace("-", "_")}"]
        """
    )


def _project(make_project, name: str, *, tests: str, **pyproject) -> Path:
    return make_project(
        name=name,
        files={"pyproject.toml": _pyproject(name, **pyproject), "tests/test_it.py": tests},
    )


TESTS_THAT_PASS_ON_ANY_9X = """
import torch


def test_version_is_the_one_under_test():
    assert torch.__version__.startswith("9.")


def test_arithmetic():
    assert 1 + 1 == 2


def test_skipped():
    import pytest

    pytest.skip("not here")
"""

TESTS_THAT_BREAK_FROM_9_2_ON = """
import torch


def test_api_removed_in_9_2():
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    assert (major, minor) < (9, 2), "uses an API gone in 9.2"


def test_arithmetic():
    assert 1 + 1 == 2
"""


def _job(source: Path, links: Path, *, beyond: bool, torch_version: str = "9.2.0") -> Job:
    return Job(
        source=str(source),
        torch_version=torch_version,
        find_links=[str(links)],
        timeout_s=180,
        test_beyond_declared_range=beyond,
    )


@pytest.fixture(scope="module")
def narrow_project(make_project) -> Path:
    """Declares torch>=9.0,<9.2; its tests pass on every 9.x."""
    return _project(
        make_project,
        "beyond-narrow",
        tests=TESTS_THAT_PASS_ON_ANY_9X,
        dependencies=["torch>=9.0,<9.2"],
    )


def test_excluded_torch_is_tested_beyond_the_range_and_stays_not_installable(
    narrow_project, torch_links, work_root, require_sandbox
):
    result = run_job(job=_job(narrow_project, torch_links, beyond=True), work_root=work_root)

    assert result.state == CellState.NOT_INSTALLABLE, (result.error, result.log_tail)
    assert result.error == (
        "beyond-narrow requires torch<9.2,>=9.0 (its Requires-Dist); 9.2.0 is excluded"
    )
    assert result.error_code is None
    assert result.declared == {"torch": ">=9.0,<9.2", "requires_python": ""}
    assert result.counts == EMPTY_COUNTS
    assert result.failures == []
    assert result.lock == []
    assert result.beyond_range == {
        "state": "passed",
        "counts": {**EMPTY_COUNTS, "passed": 2, "skipped": 1},
        "failures": [],
        "tests_collected": 3,
    }
    assert "tests run beyond the declared torch range: passed" in result.log_tail


def test_inside_the_range_the_flag_changes_nothing(
    narrow_project, torch_links, work_root, require_sandbox
):
    result = run_job(
        job=_job(narrow_project, torch_links, beyond=True, torch_version="9.1.0"),
        work_root=work_root,
    )

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.counts == {**EMPTY_COUNTS, "passed": 2, "skipped": 1}
    assert result.beyond_range == {}
    assert "torch==9.1.0" in result.lock


def test_a_project_that_breaks_beyond_its_range_says_so(
    make_project, torch_links, work_root, require_sandbox
):
    repo = _project(
        make_project,
        "beyond-breaks",
        tests=TESTS_THAT_BREAK_FROM_9_2_ON,
        dependencies=["torch>=9.0,<9.2"],
    )

    result = run_job(job=_job(repo, torch_links, beyond=True), work_root=work_root)

    assert result.state == CellState.NOT_INSTALLABLE, (result.error, result.log_tail)
    assert result.counts == EMPTY_COUNTS
    beyond = result.beyond_range
    assert (beyond["state"], beyond["counts"], beyond["tests_collected"]) == (
        "failed",
        {**EMPTY_COUNTS, "passed": 1, "failed": 1},
        2,
    )
    assert [failure["test"] for failure in beyond["failures"]] == [
        "tests/test_it.py::test_api_removed_in_9_2"
    ]
    assert "uses an API gone in 9.2" in beyond["failures"][0]["message"]


def test_without_the_flag_nothing_runs_beyond_the_range(
    narrow_project, torch_links, work_root, require_sandbox
):
    result = run_job(job=_job(narrow_project, torch_links, beyond=False), work_root=work_root)

    assert result.state == CellState.NOT_INSTALLABLE, (result.error, result.log_tail)
    assert "9.2.0 is excluded" in result.error
    assert result.beyond_range == {}
    assert result.tests_collected is None
    assert result.counts == EMPTY_COUNTS
    assert result.timings["tests_s"] is None  # no test run at all


@pytest.mark.parametrize(
    ("name", "pyproject", "reason"),
    [
        pytest.param(
            "beyond-python",
            {"dependencies": ["torch>=9.0,<9.2"], "requires_python": ">=3.99"},
            "Requires-Python",
            id="python-exclusion",
        ),
        # Its own metadata names no torch range: a dependency of its excludes 9.2.0.
        pytest.param(
            "beyond-conflict",
            {"dependencies": ["ecoreg-beyond-addon"]},
            "ecoreg-beyond-addon",
            id="dependency-conflict",
        ),
    ],
)
def test_an_exclusion_not_by_its_own_torch_range_is_not_tested_beyond(
    name, pyproject, reason, make_project, torch_links, work_root, require_sandbox
):
    repo = _project(make_project, name, tests=TESTS_THAT_PASS_ON_ANY_9X, **pyproject)

    result = run_job(job=_job(repo, torch_links, beyond=True), work_root=work_root)

    assert result.state == CellState.NOT_INSTALLABLE, (result.error, result.log_tail)
    assert reason in result.error
    assert result.beyond_range == {}
    assert result.tests_collected is None


def test_an_environment_that_fails_beyond_the_range_is_errored_there_only(
    make_project, torch_links, work_root, require_sandbox
):
    # The range excludes 9.2.0 before anything is resolved; beyond it, no helper >= 5 exists.
    repo = _project(
        make_project,
        "beyond-envfail",
        tests=TESTS_THAT_PASS_ON_ANY_9X,
        dependencies=["torch>=9.0,<9.2", "ecoreg-beyond-helper>=5"],
    )

    result = run_job(job=_job(repo, torch_links, beyond=True), work_root=work_root)

    assert result.state == CellState.NOT_INSTALLABLE, (result.error, result.log_tail)
    assert "9.2.0 is excluded" in result.error
    assert result.beyond_range["state"] == "errored"
    assert "ecoreg-beyond-helper" in result.beyond_range["error"]
    assert set(result.beyond_range) == {"state", "error"}


def test_an_overridden_environment_is_cached_apart_from_a_normal_one(
    narrow_project, make_project, torch_links, work_root, agent_cache_dir, require_sandbox
):
    # Same lock as the narrow project's beyond its range: torch 9.2.0, pytest and its deps.
    unranged = _project(
        make_project, "beyond-unranged", tests=TESTS_THAT_PASS_ON_ANY_9X, dependencies=["torch"]
    )

    beyond = run_job(job=_job(narrow_project, torch_links, beyond=True), work_root=work_root)
    normal = run_job(job=_job(unranged, torch_links, beyond=False), work_root=work_root)

    assert (beyond.beyond_range["state"], normal.state) == ("passed", CellState.PASSED)
    lock = sorted(line for line in normal.lock if not line.startswith("beyond-unranged=="))
    keys = [
        json.loads(path.read_text())
        for path in (agent_cache_dir / "envs").glob("*/ecoreg-env-key.json")
    ]
    overrides = {json.dumps(key.get("overrides")) for key in keys if key["lock"] == lock}
    assert overrides == {"null", '["torch===9.2.0"]'}


def test_cli_flag_tests_beyond_the_declared_range(
    narrow_project, torch_links, work_root, require_sandbox
):
    args = ["run", "--source", str(narrow_project), "--torch", "9.2.0", "--json"]
    args += ["--work-root", str(work_root)]
    env = {"AGENT_FIND_LINKS": str(torch_links)}

    plain = run_agent_cli(*args, env=env)
    beyond = run_agent_cli(*args, "--test-beyond-declared-range", env=env)

    assert plain.returncode == beyond.returncode == 5, (plain.stderr, beyond.stderr)
    assert json.loads(plain.stdout)["beyond_range"] == {}
    data = json.loads(beyond.stdout)
    assert data["state"] == "not_installable"
    assert data["beyond_range"]["state"] == "passed"
    assert data["beyond_range"]["counts"]["passed"] == 2
