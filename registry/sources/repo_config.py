"""The repository-side file: the `[tool.pytorch-ecosystem]` table of a project's `pyproject.toml`.

The one parser of it (the registry reads it on every GitHub sync; the other apps read what the
sync stored in `Project.repo_config`). `repo_config_parse(text)` is pure: TOML text in, a
`RepoConfig` and a list of problems out. It never raises: a key it does not know, or a value it
refuses, is a problem listed (and left out), not a crash.

    [tool.pytorch-ecosystem]
    maintainers = ["alice", "bob"]      # GitHub handles: maintainer candidates of the project
    contact = "maintainers@example.org" # where the foundation writes to the maintainers
    exemptions = [                      # criteria that do not apply, with a public reason
      { criterion = 3, reason = "Documentation lives in the parent project." },
    ]

    [tool.pytorch-ecosystem.test]       # how the compatibility runs run the test suite
    extra_requirements = ["scipy>=1.11"]
    extras = ["test"]
    pytest_args = ["-x"]
    test_paths = ["tests"]
    deselect = ["slow"]
    env = { MY_FLAG = "1" }
    timeout_s = 1800

Keys: `maintainers` (at most 50 GitHub handles), `contact` (one email address), `exemptions`
(criterion: a number 1 to 50, the registry does not know the criteria, the reviews app shows
the known ones; reason: 1 to 2000 characters; one exemption per criterion), and `test`: the
override of the test recipe that maintainers may set (`extra_requirements`, `extras`,
`pytest_args`, `test_paths`, `deselect`, `env` with text values, `timeout_s` from 10 s to 4 h).
Staff-only settings (`source_override` and the like) are refused. The rules of the recipe's
values (their limits, `recipe_requirement_clean`, `recipe_path_clean`, `recipe_env_check`) are
the staff override's too (`ci_runners.services.test_configs`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from packaging.requirements import InvalidRequirement, Requirement

from registry.repository_urls import OWNER_RE

TABLE = "pytorch-ecosystem"
MAX_MAINTAINERS = 50
MAX_CRITERION = 50
MAX_REASON_CHARS = 2000
MAX_ITEMS = 50
MAX_ITEM_CHARS = 300
MAX_ENV_VALUE_CHARS = 1000
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 10, 4 * 3600
TOP_KEYS = ("maintainers", "contact", "exemptions", "test")
TEST_KEYS = (
    "extra_requirements",
    "extras",
    "pytest_args",
    "test_paths",
    "deselect",
    "env",
    "timeout_s",
)
NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")  # extras
MARKER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")  # pytest markers
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
RESERVED_ENV = frozenset({"PATH", "HOME", "PYTHONHOME", "VIRTUAL_ENV", "TMPDIR"})
RESERVED_ENV_PREFIXES = ("LD_", "UV_", "PIP_")


@dataclass(frozen=True)
class Exemption:
    criterion: int
    reason: str


@dataclass(frozen=True)
class RepoConfig:
    """The table as validated; `found` is False when the file has no such table."""

    found: bool = False
    maintainers: tuple[str, ...] = ()
    contact: str = ""
    exemptions: tuple[Exemption, ...] = ()
    test: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as `Project.repo_config` stores it (with `problems` and `read_at`)."""
        return {
            "found": self.found,
            "maintainers": list(self.maintainers),
            "contact": self.contact,
            "exemptions": [{"criterion": e.criterion, "reason": e.reason} for e in self.exemptions],
            "test": dict(self.test),
        }


class _Refused(ValueError):
    """One value refused; the message says why."""


def repo_config_parse(text: str) -> tuple[RepoConfig | None, list[str]]:
    """The `[tool.pytorch-ecosystem]` table of a pyproject.toml text, and its problems.

    None (with the problem) when the text is not TOML at all: what the file said is unknown.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return None, [f"pyproject.toml is not valid TOML: {error}"]
    tool = document.get("tool")
    table = tool.get(TABLE) if isinstance(tool, dict) else None
    if table is None:
        return RepoConfig(), []
    if not isinstance(table, dict):
        return RepoConfig(), [f"[tool.{TABLE}] is not a table."]
    problems = [
        f"[tool.{TABLE}]: unknown key {key!r}." for key in sorted(set(table) - set(TOP_KEYS))
    ]
    values: dict[str, Any] = {}
    for key, cleaner in (
        ("maintainers", _maintainers),
        ("contact", _contact),
        ("exemptions", _exemptions),
        ("test", _test),
    ):
        if key in table:
            try:
                values[key] = cleaner(table[key], problems)
            except _Refused as refused:
                problems.append(f"[tool.{TABLE}] {key}: {refused}")
    return RepoConfig(found=True, **values), problems


def _maintainers(value: Any, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Refused("expected a list of GitHub handles.")
    handles: list[str] = []
    seen: set[str] = set()
    for item in value:
        handle = item.strip().removeprefix("@") if isinstance(item, str) else ""
        if not OWNER_RE.fullmatch(handle):
            problems.append(f"[tool.{TABLE}] maintainers: {str(item)[:40]!r} is not a handle.")
        elif handle.lower() not in seen:
            seen.add(handle.lower())
            handles.append(handle)
    if len(handles) > MAX_MAINTAINERS:
        problems.append(f"[tool.{TABLE}] maintainers: only the first {MAX_MAINTAINERS} are kept.")
    return tuple(handles[:MAX_MAINTAINERS])


def _contact(value: Any, problems: list[str]) -> str:
    address = value.strip() if isinstance(value, str) else ""
    try:
        validate_email(address)
    except ValidationError:
        raise _Refused(f"{str(value)[:60]!r} is not an email address.") from None
    return address


def _exemptions(value: Any, problems: list[str]) -> tuple[Exemption, ...]:
    if not isinstance(value, list):
        raise _Refused('expected a list of {criterion = N, reason = "..."} tables.')
    exemptions: dict[int, Exemption] = {}
    for index, item in enumerate(value, start=1):
        where = f"[tool.{TABLE}] exemptions #{index}"
        if not isinstance(item, dict):
            problems.append(f'{where}: expected {{criterion = N, reason = "..."}}.')
            continue
        unknown = sorted(set(item) - {"criterion", "reason"})
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}.")
        criterion, reason = item.get("criterion"), item.get("reason")
        if type(criterion) is not int or not 1 <= criterion <= MAX_CRITERION:
            problems.append(f"{where}: criterion must be a number from 1 to {MAX_CRITERION}.")
            continue
        reason = reason.strip() if isinstance(reason, str) else ""
        if not reason or len(reason) > MAX_REASON_CHARS or "\x00" in reason:
            problems.append(f"{where}: a reason of 1 to {MAX_REASON_CHARS} characters is needed.")
            continue
        if criterion in exemptions:
            problems.append(f"{where}: criterion {criterion} is exempted twice; the first kept.")
            continue
        exemptions[criterion] = Exemption(criterion=criterion, reason=reason)
    return tuple(sorted(exemptions.values(), key=lambda e: e.criterion))


def _test(value: Any, problems: list[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Refused("expected a table.")
    for key in sorted(set(value) - set(TEST_KEYS)):
        problems.append(f"[tool.{TABLE}.test]: {key!r} is not a key maintainers may set.")
    cleaned: dict[str, Any] = {}
    for key in TEST_KEYS:
        if key not in value:
            continue
        try:
            cleaned[key] = _TEST_CLEANERS[key](value[key])
        except _Refused as refused:
            problems.append(f"[tool.{TABLE}.test] {key}: {refused}")
    return cleaned


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Refused("expected a list of strings.")
    if len(value) > MAX_ITEMS:
        raise _Refused(f"at most {MAX_ITEMS} entries.")
    items = [item.strip() for item in value]
    for item in items:
        if not item or len(item) > MAX_ITEM_CHARS or "\x00" in item or "\n" in item:
            raise _Refused(f"{item[:40]!r}: one line of 1 to {MAX_ITEM_CHARS} characters.")
    return items


def _each(clean: Callable[[str], str]) -> Callable[[Any], list[str]]:
    """A list of strings, each one cleaned by `clean`."""
    return lambda value: [clean(item) for item in _strings(value)]


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[Any], list[str]]:
    def clean(item: str) -> str:
        if not pattern.fullmatch(item):
            raise _Refused(f"{item[:40]!r} is not {what}.")
        return item

    return _each(clean)


def _env(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Refused('expected a table of NAME = "value".')
    if len(value) > MAX_ITEMS:
        raise _Refused(f"at most {MAX_ITEMS} variables.")
    for name, text in value.items():
        recipe_env_check(name, text)
    return dict(value)


def _timeout(value: Any) -> int:
    if type(value) is not int or not MIN_TIMEOUT_S <= value <= MAX_TIMEOUT_S:
        raise _Refused(f"a whole number of seconds from {MIN_TIMEOUT_S} to {MAX_TIMEOUT_S}.")
    return value


# --- the rules of single values (the staff override's too): a ValueError says what is wrong ---


def recipe_requirement_clean(item: str) -> str:
    """A requirement pip installs from an index (PEP 508, no direct URL)."""
    try:
        requirement = Requirement(item)
    except InvalidRequirement:
        raise _Refused(f"{item!r} is not a requirement (e.g. 'scipy>=1.11').") from None
    if requirement.url:
        raise _Refused(f"{item!r}: direct URL references are not allowed; name a package.")
    return item


def recipe_path_clean(item: str) -> str:
    """A relative path that stays inside the repository."""
    path = PurePosixPath(item)
    if path.is_absolute() or ".." in path.parts or "\\" in item:
        raise _Refused(f"{item[:40]!r}: a path inside the repository, without '..'.")
    return item


def recipe_env_check(name: Any, text: Any) -> None:
    """One environment variable: a plain name the runner does not set itself, a text value."""
    if not isinstance(name, str) or not ENV_NAME_RE.fullmatch(name):
        raise _Refused(f"{str(name)[:40]!r} is not a variable name (letters, digits, _).")
    if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIXES):
        raise _Refused(f"{name} is set by the runner and cannot be overridden.")
    if not isinstance(text, str) or "\x00" in text or len(text) > MAX_ENV_VALUE_CHARS:
        raise _Refused(f"{name}: a text value of at most {MAX_ENV_VALUE_CHARS} characters.")


_TEST_CLEANERS = {
    "extra_requirements": _each(recipe_requirement_clean),
    "extras": _matching(NAME_RE, "an extra name"),
    "pytest_args": _strings,
    "test_paths": _each(recipe_path_clean),
    "deselect": _matching(MARKER_RE, "a pytest marker name (letters, digits, _)"),
    "env": _env,
    "timeout_s": _timeout,
}
