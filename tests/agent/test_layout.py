"""The agent's code stays in small pieces: short functions, and no private names shared
between its modules (a helper two modules need gets a public name)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parents[2] / "ci_runners" / "agent"
MAX_FUNCTION_LINES = 60
AGENT_PACKAGE = "ci_runners.agent"

pytestmark = pytest.mark.agent


def _modules() -> list[tuple[str, ast.Module]]:
    paths = sorted(AGENT.rglob("*.py"))
    assert paths, f"no modules under {AGENT}"
    return [
        (str(path.relative_to(AGENT.parents[1])), ast.parse(path.read_text())) for path in paths
    ]


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_agent_module(module: str | None, level: int) -> bool:
    return level > 0 or (module or "").startswith(AGENT_PACKAGE)


def test_no_function_is_longer_than_60_lines():
    too_long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]

    assert too_long == [], "functions over 60 lines:\n" + "\n".join(too_long)


def test_no_private_name_is_imported_from_a_sibling_module():
    found = []
    for path, tree in _modules():
        # Names this module binds to agent modules: `from ci_runners.agent import build as b`.
        module_aliases = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            if not _is_agent_module(node.module, node.level):
                continue
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(f"{path}:{node.lineno} imports {alias.name}")
                if node.module == AGENT_PACKAGE or (node.level > 0 and not node.module):
                    module_aliases.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases
                and _is_private(node.attr)
            ):
                found.append(f"{path}:{node.lineno} uses {node.value.id}.{node.attr}")

    assert found == [], "private names used across agent modules:\n" + "\n".join(found)
