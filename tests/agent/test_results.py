"""Untrusted JUnit XML: valid, truncated, huge and entity-expanding reports."""

from __future__ import annotations

import pytest

from ci_runners.agent.results import (
    JunitParseError,
    apply_xfail_outcomes,
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
