"""Untrusted JUnit XML (valid, truncated, huge and entity-expanding reports), the plugin's
report, and the verdict drawn from a run's exit and both reports."""

from __future__ import annotations

import json

import pytest

from ci_runners.agent.contracts import CellState, ErrorCode
from ci_runners.agent.results import (
    JunitParseError,
    RunEnd,
    apply_xfail_outcomes,
    judge_run,
    parse_junit,
    read_plugin_report,
)

pytestmark = pytest.mark.agent

VALID = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="6">
<testcase classname="tests.test_a" name="test_pass" time="0.1"/>
<testcase classname="tests.test_a" name="test_xpass" time="0.1"/>
<testcase classname="tests.test_a" name="test_fail" time="0.1">
  <failure message="AssertionError: assert 1 == 2">long traceback</failure></testcase>
<testcase classname="tests.test_a" name="test_error" time="0.1">
  <error message="failed on setup with &quot;boom&quot;">trace</error></testcase>
<testcase classname="tests.test_a" name="test_skip" time="0.0">
  <skipped type="pytest.skip" message="not today">skip</skipped></testcase>
<testcase classname="tests.test_a" name="test_xfail" time="0.0">
  <skipped type="pytest.xfail" message="known bug"/></testcase>
</testsuite></testsuites>
"""


def test_counts_and_failures(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(VALID)

    summary = parse_junit(path=path)
    apply_xfail_outcomes(summary=summary, outcomes={"xfailed": 1, "xpassed": 1})

    assert summary.counts == {
        "passed": 1,
        "failed": 1,
        "errors": 1,
        "skipped": 1,
        "xfailed": 1,
        "xpassed": 1,
    }
    assert summary.failures == [
        {"test": "tests.test_a::test_fail", "message": "AssertionError: assert 1 == 2"},
        {"test": "tests.test_a::test_error", "message": 'failed on setup with "boom"'},
    ]


def test_failure_list_and_messages_are_capped(tmp_path):
    cases = "".join(
        f'<testcase classname="t" name="f{i}"><failure message="{"x" * 10000}"/></testcase>'
        for i in range(200)
    )
    path = tmp_path / "junit.xml"
    path.write_text(f"<testsuites><testsuite>{cases}</testsuite></testsuites>")

    summary = parse_junit(path=path)

    assert summary.counts["failed"] == 200
    assert len(summary.failures) == 50
    assert all(len(f["message"]) <= 2000 for f in summary.failures)


def test_truncated_xml_is_a_clear_error(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(VALID[: len(VALID) // 2])

    with pytest.raises(JunitParseError, match="junit report invalid"):
        parse_junit(path=path)


def test_huge_xml_is_refused_before_reading(tmp_path):
    path = tmp_path / "junit.xml"
    with open(path, "wb") as handle:
        handle.write(b"<testsuites><testsuite>")
        handle.seek(100 * 1024 * 1024)
        handle.write(b"</testsuite></testsuites>")

    with pytest.raises(JunitParseError, match="junit report too large"):
        parse_junit(path=path)


def test_billion_laughs_is_rejected(tmp_path):
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    path = tmp_path / "junit.xml"
    path.write_text(
        f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]>'
        "<testsuites><testsuite><testcase name='a'><failure message='&lol9;'/></testcase>"
        "</testsuite></testsuites>"
    )

    with pytest.raises(JunitParseError, match="junit report rejected"):
        parse_junit(path=path)


def test_external_entity_is_rejected(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        "<testsuites><testsuite><testcase name='&e;'/></testsuite></testsuites>"
    )

    with pytest.raises(JunitParseError, match="junit report rejected"):
        parse_junit(path=path)


@pytest.mark.parametrize("text", ["", "<html/>", "not xml at all", "<testsuites><x"])
def test_other_garbage_is_a_clear_error(tmp_path, text):
    path = tmp_path / "junit.xml"
    path.write_text(text)

    with pytest.raises(JunitParseError, match="junit report"):
        parse_junit(path=path)


def test_missing_report(tmp_path):
    with pytest.raises(JunitParseError, match="junit report missing"):
        parse_junit(path=tmp_path / "nope.xml")


@pytest.mark.parametrize("text", ["", "[]", '{"warnings": [1, {"count": "many"}]}', "{" * 5000])
def test_broken_plugin_report_never_crashes(tmp_path, text):
    path = tmp_path / "report.json"
    path.write_text(text)

    report = read_plugin_report(path=path)

    assert isinstance(report, dict)


# --- the verdict on a run ------------------------------------------------------------------------

ONE_FAILURE = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="tests.test_a" name="test_pass"/>
<testcase classname="tests.test_a" name="test_net"><failure message="gai">t</failure></testcase>
<testcase classname="tests.test_a" name="test_real"><failure message="boom">t</failure></testcase>
</testsuite></testsuites>
"""


def _report(tmp_path, data: dict) -> dict:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    return read_plugin_report(path=path)


def _end(tmp_path, *, exit_code, report, junit=ONE_FAILURE, timed_out=False, output=""):
    junit_path = tmp_path / "junit.xml"
    if junit is not None:
        junit_path.write_text(junit)
    return RunEnd(
        exit_code=exit_code,
        timed_out=timed_out,
        timeout_s=60,
        junit_path=junit_path,
        plugin_report=report,
        output_tail=output,
    )


TORCH_OK = {"expected": "2.13.0+cpu", "actual": "2.13.0+cpu", "ok": True}


def _failure(test, *, when="call", network=False, message="boom"):
    return {"test": test, "when": when, "message": message, "network": network}


def test_network_failures_leave_failures_and_counts(tmp_path):
    report = _report(
        tmp_path,
        {
            "torch_check": TORCH_OK,
            "failures": [
                _failure("tests/test_a.py::test_net", network=True, message="socket.gaierror: x"),
                _failure("tests/test_a.py::test_real"),
            ],
        },
    )

    verdict = judge_run(_end(tmp_path, exit_code=1, report=report))

    assert verdict.state == CellState.FAILED
    assert verdict.counts["failed"] == 1
    assert verdict.failures == [{"test": "tests/test_a.py::test_real", "message": "boom"}]
    assert verdict.needs_network == [
        {"test": "tests/test_a.py::test_net", "message": "socket.gaierror: x"}
    ]


def test_only_network_failures_is_passed(tmp_path):
    junit = ONE_FAILURE.replace(
        '<testcase classname="tests.test_a" name="test_real"><failure message="boom">t</failure>'
        "</testcase>",
        "",
    )
    report = _report(
        tmp_path,
        {
            "torch_check": TORCH_OK,
            "failures": [_failure("tests/test_a.py::test_net", network=True)],
        },
    )

    verdict = judge_run(_end(tmp_path, exit_code=1, report=report, junit=junit))

    assert (verdict.state, verdict.error_code) == (CellState.PASSED, None)
    assert verdict.counts["failed"] == 0


def test_torch_mismatch_wins_over_everything(tmp_path):
    check = {"expected": "2.13.0+cpu", "actual": "2.12.0", "ok": False, "message": "2.12.0 ran"}
    report = _report(tmp_path, {"torch_check": check, "failures": [_failure("t.py::t")]})

    for exit_code in (0, 1, 2):
        verdict = judge_run(_end(tmp_path, exit_code=exit_code, report=report))

        assert (verdict.state, verdict.error_code) == (CellState.ERRORED, ErrorCode.TORCH_MISMATCH)
        assert verdict.counts == dict.fromkeys(verdict.counts, 0)
        assert verdict.failures == []


def test_passed_run_without_the_plugins_word_on_torch_is_not_trusted(tmp_path):
    verdict = judge_run(_end(tmp_path, exit_code=0, report={}))

    assert (verdict.state, verdict.error_code) == (CellState.ERRORED, ErrorCode.TEST_RUN_BROKEN)
    assert "which torch ran is unknown" in verdict.error


@pytest.mark.parametrize(
    ("exit_code", "code"),
    [
        (2, ErrorCode.TEST_RUN_BROKEN),  # interrupted, but not by a collection error
        (3, ErrorCode.TEST_RUN_BROKEN),
        (4, ErrorCode.BAD_RECIPE),
        (5, ErrorCode.NO_TESTS),
        (-9, ErrorCode.TEST_RUN_BROKEN),
        (77, ErrorCode.TEST_RUN_BROKEN),
    ],
)
def test_exits_that_are_no_test_outcome_are_errored_with_a_code(tmp_path, exit_code, code):
    report = _report(tmp_path, {"torch_check": TORCH_OK})

    verdict = judge_run(_end(tmp_path, exit_code=exit_code, report=report, junit=None))

    assert (verdict.state, verdict.error_code) == (CellState.ERRORED, code)


def test_usage_error_says_what_pytest_refused(tmp_path):
    output = "ERROR: file or directory not found: nowhere\n\n===== no tests ran in 0.01s =====\n"

    verdict = judge_run(_end(tmp_path, exit_code=4, report={}, junit=None, output=output))

    assert verdict.error == (
        "pytest exit 4: pytest usage error; ERROR: file or directory not found: nowhere"
    )


def test_timed_out_run_does_not_count_the_interrupted_test_as_passed(tmp_path):
    report = _report(
        tmp_path,
        {
            "torch_check": TORCH_OK,
            "failures": [_failure("tests/test_a.py::test_real")],
            "interrupted": ["tests/test_a.py::test_pass"],
        },
    )
    junit = ONE_FAILURE

    verdict = judge_run(_end(tmp_path, exit_code=None, report=report, junit=junit, timed_out=True))

    assert verdict.state == CellState.TIMED_OUT
    assert verdict.counts["passed"] == 0
    assert verdict.counts["failed"] == 2
    assert "interrupted in tests/test_a.py::test_pass" in verdict.error


def test_collection_error_is_a_failure(tmp_path):
    junit = (
        '<testsuites><testsuite name="pytest"><testcase classname="" name="tests.test_ops">'
        '<error message="collection failure">trace</error></testcase></testsuite></testsuites>'
    )
    message = "ImportError: cannot import name 'Foo' from 'torch.nn'"
    report = _report(
        tmp_path,
        {
            "torch_check": TORCH_OK,
            "failures": [_failure("tests/test_ops.py", when="collect", message=message)],
        },
    )

    verdict = judge_run(_end(tmp_path, exit_code=2, report=report, junit=junit))

    assert (verdict.state, verdict.error_code) == (CellState.FAILED, None)
    assert verdict.counts["errors"] == 1
    assert verdict.failures == [{"test": "tests/test_ops.py", "message": message}]


def test_plugin_report_fields_are_checked(tmp_path):
    report = _report(
        tmp_path,
        {
            "failures": [{"test": "a.py::t", "network": "yes"}, "junk", {"message": "no test"}],
            "tests_collected": "12",
            "torch_check": {"ok": "true"},
            "conftest_error": {"test": ""},
            "interrupted": "a.py::t",
        },
    )

    assert report["failures"] == [
        {"test": "a.py::t", "when": "call", "message": "", "network": False}
    ]
    assert report["tests_collected"] is None
    assert report["torch_check"]["ok"] is False
    assert report["conftest_error"] is None
    assert report["interrupted"] == []
