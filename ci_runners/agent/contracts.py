"""Inputs and outputs of the runner agent, shared with the web side.

Plain dataclasses only: the web side imports this module to build a `Job` and to read a
`Result`, and both cross Celery as JSON (`to_dict` / `from_dict`).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any


class State(enum.StrEnum):
    """Outcome of one job."""

    PASSED = "passed"
    FAILED = "failed"
    ERRORED = "errored"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True, kw_only=True)
class TestConfig:
    """How a project's test suite is run.

    `extras=None` means: the project's `test` extra when it declares one.
    `copy_tests` names a folder of the checkout that is copied out of it and run from the copy,
    so that the installed package is imported rather than the source tree.
    """

    __test__ = False  # not a pytest test class

    extra_requirements: list[str] = field(default_factory=list)
    extras: list[str] | None = None
    pytest_args: list[str] = field(default_factory=list)
    test_paths: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    copy_tests: str | None = None
    needs_gpu: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True, kw_only=True)
class Job:
    """One cell of the compatibility matrix: a project at a ref against one torch build."""

    source: str
    torch_version: str
    cell_id: int | None = None
    # The cell's random dispatch token: part of its broker keys (see `agent.celery`).
    cell_token: str = ""
    attempt: int = 1
    ref: str | None = None
    torch_variant: str | None = None
    python_version: str = "3.11"
    test_config: TestConfig = field(default_factory=TestConfig)
    timeout_s: float = 900.0
    find_links: list[str] = field(default_factory=list)
    index_urls: list[str] = field(default_factory=list)

    @property
    def torch_requirement(self) -> str:
        local = f"+{self.torch_variant}" if self.torch_variant else ""
        return f"torch=={self.torch_version}{local}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["test_config"] = TestConfig.from_dict(values.get("test_config") or {})
        return cls(**values)


def _empty_counts() -> dict[str, int]:
    return {key: 0 for key in COUNT_KEYS}


def _empty_timings() -> dict[str, Any]:
    return {
        "checkout_s": None,
        "env_s": None,
        "env_cache_hit": None,
        "tests_s": None,
        "total_s": None,
    }


def _empty_environment() -> dict[str, str | None]:
    return {"python": None, "torch": None, "cuda": None, "gpu": None}


COUNT_KEYS = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed")


@dataclass(kw_only=True)
class Result:
    """What one job produced; `to_dict()` is the agent's JSON output."""

    state: State
    exit_code: int | None = None
    commit: str | None = None
    counts: dict[str, int] = field(default_factory=_empty_counts)
    failures: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=_empty_timings)
    environment: dict[str, str | None] = field(default_factory=_empty_environment)
    energy_j: float | None = None
    log_tail: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state"] = str(State(self.state))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["state"] = State(values["state"])
        return cls(**values)
