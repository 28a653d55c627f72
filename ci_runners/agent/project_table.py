"""The `[tool.pytorch-ecosystem]` table of a project's `pyproject.toml`: the one parser of it.

A maintainer writes there what the agent's recipe discovery cannot know or gets wrong (extra
requirements, a test path, an env var the tests need), whom to contact, and which review
criteria the project is exempt from, with a reason. The agent reads it from the checkout
(`recipe.discover_recipe`); the web side will read it too, so this module is standard library
only (tomllib) and loads nothing of the agent's runtime.

    [tool.pytorch-ecosystem]
    extra-requirements = ["scipy"]
    extras = ["test"]
    groups = ["test"]
    pytest-args = ["-p", "no:randomly"]
    test-paths = ["tests/unit"]
    env = { MYPKG_BACKEND = "cpu" }
    deselect = ["integration"]
    copy-tests = "tests"
    needs-gpu = false
    contacts = ["maintainer@example.org"]
    exemptions = [{ criterion = "docs", reason = "API reference lives upstream" }]
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Any

from ci_runners.agent.contracts import TestConfig

TABLE_NAME = "tool.pytorch-ecosystem"

# key -> (TestConfig field, expected kind)
OVERRIDE_KEYS = {
    "extra-requirements": ("extra_requirements", "list"),
    "extras": ("extras", "list"),
    "groups": ("groups", "list"),
    "pytest-args": ("pytest_args", "list"),
    "test-paths": ("test_paths", "list"),
    "env": ("env", "table"),
    "deselect": ("deselect", "list"),
    "copy-tests": ("copy_tests", "str"),
    "needs-gpu": ("needs_gpu", "bool"),
}
OTHER_KEYS = ("contacts", "exemptions")
EXEMPTION_KEYS = ("criterion", "reason")


class ProjectTableError(Exception):
    """The table is malformed; the message names the key and what is wrong with it."""


@dataclass(frozen=True, kw_only=True)
class ProjectTable:
    """The parsed table: the recipe override, contacts and exemptions, and which keys were
    written (`keys`: the table's own key names, in file order)."""

    override: TestConfig
    contacts: list[str] = field(default_factory=list)
    exemptions: list[dict[str, str]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


def read_project_table(text: str) -> ProjectTable | None:
    """The table of a `pyproject.toml`'s text; None when it has none.

    Raises ProjectTableError for TOML that does not parse or a malformed table.
    """
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ProjectTableError(f"pyproject.toml is not valid TOML: {str(exc)[:200]}") from exc
    tool = data.get("tool")
    if not isinstance(tool, dict) or "pytorch-ecosystem" not in tool:
        return None
    return parse_project_table(tool["pytorch-ecosystem"])


def parse_project_table(table: Any) -> ProjectTable:
    """Validate the table's value (a dict from tomllib) and build its ProjectTable."""
    if not isinstance(table, dict):
        raise ProjectTableError(f"[{TABLE_NAME}] must be a table, not {_kind(table)}")
    unknown = [key for key in table if key not in OVERRIDE_KEYS and key not in OTHER_KEYS]
    if unknown:
        known = ", ".join([*OVERRIDE_KEYS, *OTHER_KEYS])
        raise ProjectTableError(f"[{TABLE_NAME}] unknown key {unknown[0]!r} (known keys: {known})")
    values: dict[str, Any] = {}
    for key, (name, kind) in OVERRIDE_KEYS.items():
        if key in table:
            values[name] = _checked(key=key, value=table[key], kind=kind)
    contacts = _checked(key="contacts", value=table.get("contacts", []), kind="list")
    exemptions = _exemptions(table.get("exemptions", []))
    return ProjectTable(
        override=TestConfig(**values),
        contacts=contacts,
        exemptions=exemptions,
        keys=list(table),
    )


def _kind(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", list: "an array", dict: "a table"}
    return names.get(type(value), f"a {type(value).__name__}")


def _checked(*, key: str, value: Any, kind: str) -> Any:
    where = f"[{TABLE_NAME}] {key}"
    if kind == "list":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ProjectTableError(f"{where} must be an array of strings, not {_kind(value)}")
        return list(value)
    if kind == "table":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ProjectTableError(f"{where} must be a table of strings, not {_kind(value)}")
        return dict(value)
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise ProjectTableError(f"{where} must be a non-empty string, not {_kind(value)}")
        return value
    if not isinstance(value, bool):
        raise ProjectTableError(f"{where} must be true or false, not {_kind(value)}")
    return value


def _exemptions(value: Any) -> list[dict[str, str]]:
    where = f"[{TABLE_NAME}] exemptions"
    if not isinstance(value, list):
        raise ProjectTableError(f"{where} must be an array of tables, not {_kind(value)}")
    exemptions = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise ProjectTableError(f"{where}[{index}] must be a table, not {_kind(item)}")
        extra = [key for key in item if key not in EXEMPTION_KEYS]
        if extra:
            raise ProjectTableError(f"{where}[{index}] unknown key {extra[0]!r}")
        for key in EXEMPTION_KEYS:
            text = item.get(key)
            if not isinstance(text, str) or not text.strip():
                raise ProjectTableError(f"{where}[{index}].{key} must be a non-empty string")
        exemptions.append({key: item[key] for key in EXEMPTION_KEYS})
    return exemptions
