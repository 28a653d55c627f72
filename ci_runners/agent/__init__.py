"""Runner agent: runs one project's test suite against one torch build in a sandbox.

Plain Python, no Django: the web side talks to it through `ci_runners.agent.contracts`.
"""

from ci_runners.agent.contracts import Job, Result, State, TestConfig
from ci_runners.agent.runner import run_job

__all__ = ["Job", "Result", "State", "TestConfig", "run_job"]
