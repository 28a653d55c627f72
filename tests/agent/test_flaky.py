"""Flaky separation: a cell's few failed tests are re-run once in the same environment and
sandbox; one that passes then is flaky (counted once, as passed, listed apart) and leaves its
cell passed, while a real failure stays failed; a run with many failures is a real break and
is not re-run.

Real projects, real uv, bwrap and pytest, on a stand-in torch wheel (a few lines) so each job
takes seconds; and the pure decisions of `flaky.py` on their own.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ci_runners.agent import environment, flaky
from ci_runners.agent.contracts import CellState, Job
from ci_runners.agent.results import RunVerdict
from ci_runners.agent.runner import run_job
from tests.standin_wheels import standin_torch

pytestmark = pytest.mark.agent

STANDIN_TORCH = "9.1.0"
# Fails on its first run and passes on the next: the count of its runs is kept in a file next
# to it, in the checkout, which the sandbox's uid may write (and a re-run sees, as it runs in
# the same sandboxed work dir).
FLAKY_TESTS = """
    from pathlib import Path

    import pytest

    RUNS = Path(__file__).with_name(".flaky-runs")


    class TestSometimes:
        @pytest.mark.parametrize("size", [2])
        def test_flaky(self, size):
            seen = int(RUNS.read_text()) if RUNS.exists() else 0
            RUNS.write_text(str(seen + 1))
            assert seen % size == 1, "fails 1 time in 2"
"""
STEADY_TESTS = """
    import pytest


    @pytest.mark.parametrize("value", range({count}))
    def test_steady(value):
        assert value >= 0
"""
BROKEN_TESTS = """
    import pytest


    @pytest.mark.parametrize("value", range({count}))
    def test_broken(value):
        assert value < 0, "broken for good"
"""
FLAKY_ID = "tests/test_flaky.py::TestSometimes::test_flaky[2]"


@pytest.fixture(scope="module")
def standin_links(work_root: Path) -> Path:
    """A find-links dir holding a stand-in torch, where the sandbox's uid can read it."""
    links = work_root / f"links-{uuid.uuid4().hex[:8]}"
    standin_torch(links, STANDIN_TORCH)
    return links


def _job(repo: Path, links: Path) -> Job:
    """A job on the stand-in torch; the host's wheel sources stay beside it (pytest, hatchling)."""
    sources = environment.pip_configured_sources()
    return Job(
        source=str(repo),
        torch_version=STANDIN_TORCH,
        timeout_s=180,
        find_links=[str(links), *sources.find_links],
        index_urls=[url for url in [sources.index_url] if url] + sources.extra_index_urls,
    )


def _project(make_project, *, name: str, steady: int, broken: int = 0, with_flaky: bool = True):
    files = {"tests/test_steady.py": STEADY_TESTS.replace("{count}", str(steady))}
    if broken:
        files["tests/test_broken.py"] = BROKEN_TESTS.replace("{count}", str(broken))
    if with_flaky:
        files["tests/test_flaky.py"] = FLAKY_TESTS
    return make_project(name=name, files=files)


# --- real jobs --------------------------------------------------------------------------------


def test_a_test_failing_1_time_in_2_is_flaky_and_its_cell_passes(
    make_project, work_root, standin_links, require_sandbox
):
    repo = _project(make_project, name="flakyonce", steady=5)

    result = run_job(job=_job(repo, standin_links), work_root=work_root)

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.tests_collected == 6
    # Counted once, with its final outcome: exact counts stay exact.
    assert result.counts == {
        "passed": 6,
        "failed": 0,
        "errors": 0,
        "skipped": 0,
        "xfailed": 0,
        "xpassed": 0,
    }
    assert result.failures == []
    assert result.flaky == [
        {"test": FLAKY_ID, "message": "AssertionError: fails 1 time in 2\nassert (0 % 2) == 1"}
    ]
    assert result.exit_code == 1  # the first run's, as pytest ended it
    assert result.error is None
    assert f"[agent] re-ran 1 failed test once, same environment: {FLAKY_ID}" in result.log_tail
    assert f"flaky (failed, then passed on re-run): {FLAKY_ID}" in result.log_tail


def test_a_real_failure_stays_failed_beside_a_flaky_test(
    make_project, work_root, standin_links, require_sandbox
):
    # 2 failing of 10: exactly the 20 % that is still re-run.
    repo = _project(make_project, name="realandflaky", steady=8, broken=1)

    result = run_job(job=_job(repo, standin_links), work_root=work_root)

    assert result.state == CellState.FAILED, (result.error, result.log_tail)
    assert result.tests_collected == 10
    assert (result.counts["passed"], result.counts["failed"]) == (9, 1)
    assert result.failures == [
        {
            "test": "tests/test_broken.py::test_broken[0]",
            "message": "AssertionError: broken for good\nassert 0 < 0",
        }
    ]
    assert [entry["test"] for entry in result.flaky] == [FLAKY_ID]
    assert "re-ran 2 failed tests once" in result.log_tail
    assert "failed again on re-run: tests/test_broken.py::test_broken[0]" in result.log_tail


def test_a_test_that_always_fails_is_failed_and_not_flaky(
    make_project, work_root, standin_links, require_sandbox
):
    repo = _project(make_project, name="alwaysfails", steady=5, broken=1, with_flaky=False)

    result = run_job(job=_job(repo, standin_links), work_root=work_root)

    assert result.state == CellState.FAILED, (result.error, result.log_tail)
    assert (result.counts["passed"], result.counts["failed"]) == (5, 1)
    assert [failure["test"] for failure in result.failures] == [
        "tests/test_broken.py::test_broken[0]"
    ]
    assert result.flaky == []
    assert "re-ran 1 failed test once" in result.log_tail
    assert "failed again on re-run: tests/test_broken.py::test_broken[0]" in result.log_tail


def test_more_than_a_fifth_of_the_suite_failing_is_not_re_run(
    make_project, work_root, standin_links, require_sandbox
):
    # The flaky test alone is 1 of 3: a real break as far as the agent can tell.
    repo = _project(make_project, name="bigshare", steady=2)

    result = run_job(job=_job(repo, standin_links), work_root=work_root)

    assert result.state == CellState.FAILED, (result.error, result.log_tail)
    assert (result.counts["passed"], result.counts["failed"]) == (2, 1)
    assert [failure["test"] for failure in result.failures] == [FLAKY_ID]
    assert result.flaky == []
    assert "re-ran" not in result.log_tail
    assert (
        "[agent] no re-run of failed tests: 1 of 3 failed, more than 20% of the suite"
        in result.log_tail
    )


def test_more_than_five_failures_are_not_re_run(
    make_project, work_root, standin_links, require_sandbox
):
    # 6 of 40 failed: under a fifth of the suite, but more than 5 tests.
    repo = _project(make_project, name="sixbroken", steady=33, broken=6)

    result = run_job(job=_job(repo, standin_links), work_root=work_root)

    assert result.state == CellState.FAILED, (result.error, result.log_tail)
    assert result.tests_collected == 40
    assert (result.counts["passed"], result.counts["failed"]) == (33, 7)
    assert len(result.failures) == 7
    assert result.flaky == []
    assert "re-ran" not in result.log_tail
    assert "[agent] no re-run of failed tests: 7 failed, more than 5" in result.log_tail


# --- the decisions on their own ---------------------------------------------------------------


def _failure(test: str, *, when: str = "call", network: bool = False) -> dict[str, object]:
    return {"test": test, "when": when, "message": f"{test} broke", "network": network}


def _verdict(*, failed: int = 0, errors: int = 0, passed: int = 0, tests=()) -> RunVerdict:
    verdict = RunVerdict(state=CellState.FAILED if failed or errors else CellState.PASSED)
    verdict.counts.update(failed=failed, errors=errors, passed=passed)
    verdict.failures = [{"test": test, "message": f"{test} broke"} for test in tests]
    return verdict


def test_plan_re_runs_only_call_phase_failures_that_wanted_no_network():
    failures = [
        _failure("t::a"),
        _failure("t::b", when="setup"),
        _failure("t::c"),
        _failure("t::c", when="teardown"),
        _failure("t::d", network=True),
    ]
    report = {"failures": failures, "tests_collected": 100}

    plan = flaky.plan_rerun(verdict=_verdict(failed=3, errors=2), plugin_report=report)

    assert plan == flaky.RerunPlan(tests=["t::a"])


@pytest.mark.parametrize(
    ("failed", "collected", "tests", "note"),
    [
        (1, 5, ["t::0"], None),  # 20 %: re-run
        (1, 4, [], "no re-run of failed tests: 1 of 4 failed, more than 20% of the suite"),
        (5, 100, [f"t::{i}" for i in range(5)], None),
        (6, 100, [], "no re-run of failed tests: 6 failed, more than 5"),
        (1, None, [], "no re-run of failed tests: 1 of None failed, more than 20% of the suite"),
    ],
)
def test_plan_limits_re_runs_to_five_tests_and_a_fifth_of_the_suite(failed, collected, tests, note):
    report = {
        "failures": [_failure(f"t::{i}") for i in range(failed)],
        "tests_collected": collected,
    }

    plan = flaky.plan_rerun(verdict=_verdict(failed=failed), plugin_report=report)

    assert plan.tests == tests
    assert plan.note is None if note is None else plan.note.startswith(note)


def test_plan_never_re_runs_collection_or_conftest_errors_nor_a_passed_run():
    collect = {"failures": [_failure("t.py", when="collect"), _failure("t::a")]}
    conftest = {"failures": [], "conftest_error": {"test": "conftest.py", "message": "x"}}
    many = {"failures": [_failure("t::a")], "tests_collected": 100}

    assert flaky.plan_rerun(verdict=_verdict(failed=1, errors=1), plugin_report=collect).tests == []
    assert flaky.plan_rerun(verdict=_verdict(errors=1), plugin_report=conftest).tests == []
    assert flaky.plan_rerun(verdict=_verdict(passed=100), plugin_report=many).tests == []


def test_only_tests_seen_to_pass_on_re_run_are_flaky():
    tests = ["t::a", "t::b"]
    one_passed = _verdict(failed=1, passed=1, tests=["t::b"])
    one_skipped = _verdict(failed=1, passed=0, tests=["t::b"])
    broke = RunVerdict(state=CellState.ERRORED, error="pytest exit 3")

    assert flaky.passed_on_rerun(tests=tests, rerun=one_passed, collected=2) == ["t::a"]
    assert flaky.passed_on_rerun(tests=tests, rerun=one_skipped, collected=2) == []
    assert flaky.passed_on_rerun(tests=tests, rerun=one_passed, collected=1) == []
    assert flaky.passed_on_rerun(tests=tests, rerun=broke, collected=2) == []


def test_flaky_tests_count_once_as_passed_and_leave_the_failures():
    verdict = _verdict(failed=2, passed=8, tests=["t::a", "t::b"])
    entries = flaky.flaky_entries(failures=verdict.failures, passed=["t::a"])

    partly = flaky.without_flaky(verdict=verdict, flaky=entries)
    both = flaky.flaky_entries(failures=verdict.failures, passed=["t::a", "t::b"])
    wholly = flaky.without_flaky(verdict=verdict, flaky=both)

    assert entries == [{"test": "t::a", "message": "t::a broke"}]
    assert (partly.state, partly.counts["failed"], partly.counts["passed"]) == (
        CellState.FAILED,
        1,
        9,
    )
    assert partly.failures == [{"test": "t::b", "message": "t::b broke"}]
    assert (wholly.state, wholly.counts["failed"], wholly.counts["passed"]) == (
        CellState.PASSED,
        0,
        10,
    )
    assert wholly.failures == []
    assert verdict.counts["failed"] == 2  # the first run's verdict itself is left as it was
