"""The one helper that runs the agent's trusted tools: every failure in one shape."""

from __future__ import annotations

import os
import sys

import pytest

from ci_runners.agent.process import ToolError, run_tool

pytestmark = pytest.mark.agent

ENV = dict(os.environ)


class ToolBroke(Exception):
    pass


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_tool_that_works_returns_its_output(tmp_path):
    completed = run_tool(
        _python("import os; print(os.getcwd())"), env=ENV, timeout_s=30, what="pwd", cwd=tmp_path
    )

    assert completed.stdout.strip() == str(tmp_path)


def test_a_failing_tool_raises_the_callers_error_with_the_last_lines_of_its_output():
    code = "import sys; [print('line', n, file=sys.stderr) for n in range(20)]; sys.exit(3)"

    with pytest.raises(ToolBroke) as raised:
        run_tool(_python(code), env=ENV, timeout_s=30, what="lines", error=ToolBroke)

    assert str(raised.value) == "lines failed: " + "\n".join(f"line {n}" for n in range(12, 20))


def test_stdout_counts_when_stderr_says_nothing():
    with pytest.raises(ToolError, match="^quiet failed: on stdout$"):
        run_tool(_python("print('on stdout'); exit(1)"), env=ENV, timeout_s=30, what="quiet")


def test_explain_may_say_it_better():
    def explain(output: str) -> str | None:
        return f"explained: {output}" if "known" in output else None

    with pytest.raises(ToolError, match="^explained: known problem$"):
        run_tool(
            _python("import sys; sys.exit('known problem')"),
            env=ENV,
            timeout_s=30,
            what="x",
            explain=explain,
        )
    with pytest.raises(ToolError, match="^x failed: other problem$"):
        run_tool(
            _python("import sys; sys.exit('other problem')"),
            env=ENV,
            timeout_s=30,
            what="x",
            explain=explain,
        )


def test_check_false_returns_a_failed_run():
    completed = run_tool(_python("exit(4)"), env=ENV, timeout_s=30, what="x", check=False)

    assert completed.returncode == 4


def test_a_missing_tool_and_a_slow_one_fail_in_the_same_shape():
    with pytest.raises(ToolBroke, match="^ghost failed: .*no-such-tool-ecoreg"):
        run_tool(["no-such-tool-ecoreg"], env=ENV, timeout_s=30, what="ghost", error=ToolBroke)
    with pytest.raises(ToolBroke, match="^sleeper failed: timed out after 0.5 s$"):
        run_tool(
            _python("import time; time.sleep(30)"),
            env=ENV,
            timeout_s=0.5,
            what="sleeper",
            error=ToolBroke,
        )
