"""The one helper that runs the agent's trusted tools: every failure in one shape."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ci_runners.agent.process import ToolError, run_tool

pytestmark = pytest.mark.agent

ENV = dict(os.environ)
ROOT = Path(__file__).resolve().parents[2]


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


def _state(pid: int) -> str | None:
    """The process's state letter, None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None


def _line(stream, *, within_s: float = 30) -> str:
    """The next line of a child's output; fails instead of hanging when none comes."""
    ready, _, _ = select.select([stream], [], [], within_s)
    assert ready, "no output in time"
    return stream.readline()


def _gone(pid: int, *, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if _state(pid) in (None, "Z", "X"):
            return True
        time.sleep(0.1)
    return False


ASKS_TO_DIE_WITH_PARENT = """
import os, signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", '''
import os, signal, sys, time
from ci_runners.agent.process import die_with_parent
die_with_parent(parent_pid=os.getppid(), signum=signal.SIGTERM)
print("ready", flush=True)
time.sleep(1000)
'''])
print(child.pid, flush=True)
time.sleep(1000)
"""


def test_a_process_that_asked_to_die_with_its_parent_does():
    parent = subprocess.Popen(
        _python(ASKS_TO_DIE_WITH_PARENT),
        stdout=subprocess.PIPE,
        text=True,
        env={**ENV, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    try:
        child_pid = int(_line(parent.stdout))
        assert _line(parent.stdout).strip() == "ready"

        parent.kill()
        parent.wait()

        assert _gone(child_pid, within_s=10), "the child outlived its parent"
    finally:
        parent.kill()
        parent.wait()
        with contextlib.suppress(ProcessLookupError, UnboundLocalError):
            os.kill(child_pid, signal.SIGKILL)


def test_a_process_whose_parent_is_already_gone_ends_at_once():
    gone = subprocess.Popen(["true"])
    gone.wait()
    code = (
        "import signal; from ci_runners.agent.process import die_with_parent; "
        f"die_with_parent(parent_pid={gone.pid}, signum=signal.SIGTERM); print('outlived')"
    )
    completed = subprocess.run(
        _python(code),
        capture_output=True,
        text=True,
        env={**ENV, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=30,
    )

    assert completed.returncode == -signal.SIGTERM
    assert "outlived" not in completed.stdout
