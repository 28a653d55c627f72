"""A real project against two real torch builds, through checkout, uv, bwrap and pytest."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ci_runners.agent.contracts import CellState, Job, TestConfig
from ci_runners.agent.runner import run_job
from tests.agent.conftest import git_commit

pytestmark = pytest.mark.agent

TORCH_PROJECT_TESTS = {
    "tests/test_torch.py": """
        import pytest
        import torch

        import torchproj


        def test_double():
            assert torchproj.double(2).item() == 4


        def test_only_on_213():
            assert torch.__version__.startswith("2.13")


        def test_deprecated_autocast():
            with torch.cuda.amp.autocast(enabled=False):
                pass


        def test_imports_installed_package_not_source():
            assert "site-packages" in torchproj.__file__


        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass


        @pytest.mark.xfail(reason="known bug")
        def test_xfail():
            assert False


        @pytest.mark.xfail(reason="fixed upstream")
        def test_xpass():
            pass
    """
}


@pytest.fixture(scope="module")
def torch_project(make_project) -> Path:
    return make_project(
        name="torchproj",
        package="""
            import torch


            def double(x):
                return torch.as_tensor(x) * 2
        """,
        files=TORCH_PROJECT_TESTS,
    )


def _job(source: Path, **overrides) -> Job:
    values = {
        "source": str(source),
        "torch_version": "2.13.0",
        "torch_variant": "cpu",
        "test_config": TestConfig(copy_tests="tests"),
        "timeout_s": 300,
    }
    values.update(overrides)
    return Job(**values)


def _autocast_warning(result) -> dict:
    matches = [w for w in result.warnings if "torch.cuda.amp.autocast" in w["message"]]
    assert len(matches) == 1, result.warnings
    return matches[0]


def test_torch_213_cpu(torch_project, work_root, require_sandbox):
    result = run_job(job=_job(torch_project), work_root=work_root)

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.exit_code == 0
    assert result.counts == {
        "passed": 4,
        "failed": 0,
        "errors": 0,
        "skipped": 1,
        "xfailed": 1,
        "xpassed": 1,
    }
    assert result.failures == []
    warning = _autocast_warning(result)
    assert warning["category"] == "FutureWarning"
    assert warning["torch_api"] is True
    assert warning["count"] == 1
    assert result.environment["torch"] == "2.13.0+cpu"
    assert result.environment["python"].startswith("3.11")
    assert result.environment["cuda"] is None
    assert result.energy_j is None  # no GPU on this host
    assert len(result.commit) == 40
    timings = result.timings
    assert timings["total_s"] >= timings["env_s"] + timings["tests_s"]
    assert result.error is None


def test_torch_2141(torch_project, work_root, require_sandbox):
    result = run_job(
        job=_job(torch_project, torch_version="2.14.1", torch_variant=None), work_root=work_root
    )

    assert result.state == CellState.FAILED, (result.error, result.log_tail)
    assert result.exit_code == 1
    assert result.counts == {
        "passed": 3,
        "failed": 1,
        "errors": 0,
        "skipped": 1,
        "xfailed": 1,
        "xpassed": 1,
    }
    assert [f["test"] for f in result.failures] == ["tests/test_torch.py::test_only_on_213"]
    assert "2.14.1" in result.failures[0]["message"]
    assert _autocast_warning(result)["torch_api"] is True
    assert result.environment["torch"].startswith("2.14.1")
    assert result.environment["cuda"]  # a CUDA build that runs on CPU here
    assert result.error is None


def test_second_build_is_warm_and_job_dir_is_cleaned(torch_project, work_root, require_sandbox):
    result = run_job(job=_job(torch_project), work_root=work_root)

    assert result.state == CellState.PASSED
    assert result.timings["env_cache_hit"] is True
    job_dirs = [d for d in work_root.iterdir() if (d / "result.json").exists()]
    for job_dir in job_dirs:
        assert sorted(p.name for p in job_dir.iterdir()) == ["log.txt", "result.json"]
    saved = [json.loads((d / "result.json").read_text()) for d in job_dirs]
    assert result.to_dict() in saved


def test_ref_by_branch_and_by_sha(make_project, work_root, require_sandbox):
    repo = make_project(
        name="refproj",
        files={
            "tests/test_version.py": "def test_m():\n    assert open('MARKER').read() == 'one'\n",
            "MARKER": "one",
        },
    )
    first = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    subprocess.run(["git", "checkout", "-q", "-b", "feature"], cwd=repo, check=True)
    (repo / "MARKER").write_text("two")
    feature = git_commit(repo, "feature")
    subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, check=True)

    on_feature = run_job(
        job=_job(repo, ref="feature", test_config=TestConfig()), work_root=work_root
    )
    on_first = run_job(job=_job(repo, ref=first, test_config=TestConfig()), work_root=work_root)
    by_short_sha = run_job(
        job=_job(repo, ref=first[:7], test_config=TestConfig()), work_root=work_root
    )

    assert (on_feature.commit, on_feature.state) == (feature, CellState.FAILED)
    assert (on_first.commit, on_first.state) == (first, CellState.PASSED)
    assert (by_short_sha.commit, by_short_sha.state) == (first, CellState.PASSED)


def test_clone_failure_is_an_infrastructure_error(work_root, tmp_path):
    result = run_job(job=_job(tmp_path / "does-not-exist"), work_root=work_root)

    assert result.state == CellState.ERRORED
    assert result.error.startswith("clone failed:")
    assert result.exit_code is None


def test_env_build_failure_is_an_infrastructure_error(make_project, work_root, require_sandbox):
    repo = make_project(name="envfail", files={"tests/test_a.py": "def test_a():\n    pass\n"})
    job = _job(repo, test_config=TestConfig(extra_requirements=["no-such-package-ecoreg==9.9"]))

    result = run_job(job=job, work_root=work_root)

    assert result.state == CellState.ERRORED
    assert result.error.startswith("env build failed:")
    assert "no-such-package-ecoreg" in result.error
    assert result.error_code == "env_build_failed"


def test_no_tests_collected_is_errored(make_project, work_root, require_sandbox):
    repo = make_project(name="notests", files={"tests/test_none.py": "X = 1\n"})

    result = run_job(job=_job(repo), work_root=work_root)

    assert result.state == CellState.ERRORED
    assert result.exit_code == 5
    assert "no tests collected" in result.error


def test_billion_laughs_junit_through_the_runner(make_project, work_root, require_sandbox):
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        "<testsuites><testsuite>&lol3;</testsuite></testsuites>"
    )
    repo = make_project(
        name="evilxml",
        files={
            "tests/test_a.py": "def test_a():\n    pass\n",
            "tests/conftest.py": f"""
                def pytest_unconfigure(config):
                    path = config.option.xmlpath
                    if path:
                        open(path, "w").write({laughs!r})
            """,
        },
    )

    result = run_job(job=_job(repo), work_root=work_root)

    assert result.state == CellState.ERRORED
    assert "junit report rejected" in result.error
