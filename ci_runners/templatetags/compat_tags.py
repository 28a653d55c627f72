"""Template helpers of the compatibility pages: a cell's one-line note (the matrix's titles) and
a test recipe as the pages show it. Recipes come from runner agents, so every value is read
defensively (an older agent sends none; a part may be missing or of another shape) and left to
the template to escape."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from django import template

from ci_runners.states import CELL_STATE_VALUES, STATE_MEANINGS, CellState

register = template.Library()


@register.filter
def cell_note(cell: Any) -> str:
    """What a matrix cell's title says: state, why it errored, a shrunk suite, network tests."""
    state = str(cell.state)
    parts = [CellState(state).label if state in CELL_STATE_VALUES else state]
    if cell.state == CellState.ERRORED:
        parts.append(f"infrastructure error{f' ({cell.error_code})' if cell.error_code else ''}")
    elif cell.state == CellState.NOT_INSTALLABLE and cell.error:
        parts.append(str(cell.error)[:200])
    shrink = suite_shrink_text(cell)
    if shrink:
        parts.append(shrink)
    if cell.needs_network:
        parts.append(f"{len(cell.needs_network)} tests need the network (not counted)")
    return " · ".join(parts)


@register.filter
def suite_shrink_text(cell: Any) -> str:
    """ "Suite shrank: 80 tests collected, 100 on 2.13.0+cpu py3.11", or "" when it did not."""
    figures = cell.suite_shrink if isinstance(cell.suite_shrink, dict) else {}
    if not cell.suite_shrunk:
        return ""
    collected, reference = figures.get("collected"), figures.get("reference")
    target = figures.get("reference_target") or "another target"
    return f"Suite shrank: {collected} tests collected, {reference} on {target}"


@register.filter
def state_meaning(state: str) -> str:
    return STATE_MEANINGS.get(state, "")


@dataclass
class RecipeView:
    """A recipe as the pages show it; empty when the agent reported none."""

    install: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    command: str = ""
    cwd: str = ""
    test_paths: list[str] = field(default_factory=list)
    env: list[tuple[str, str]] = field(default_factory=list)
    deselect: list[str] = field(default_factory=list)
    needs_gpu: bool = False
    overridden: bool = False
    provenance: list[str] = field(default_factory=list)
    hash: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.install or self.command or self.provenance or self.hash)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple):
        return [str(item) for item in value if item not in (None, "")]
    return []


def _command(value: Any) -> str:
    if isinstance(value, list | tuple):
        return shlex.join(str(part) for part in value)
    return str(value) if value else ""


def _provenance_line(row: dict[str, Any]) -> str:
    """ "part — file:line (detail)"; the file and line when the agent named them."""
    place = str(row.get("file") or "")
    if place and row.get("line") not in (None, ""):
        place = f"{place}:{row['line']}"
    text = str(row.get("part") or "?")
    if place:
        text = f"{text} — {place}"
    if row.get("detail"):
        text = f"{text} ({row['detail']})"
    return text


@register.filter
def recipe_view(recipe: Any) -> RecipeView:
    if not isinstance(recipe, dict) or not recipe:
        return RecipeView()
    run = recipe.get("run") if isinstance(recipe.get("run"), dict) else {}
    env = recipe.get("env") if isinstance(recipe.get("env"), dict) else {}
    provenance = recipe.get("provenance") if isinstance(recipe.get("provenance"), list) else []
    return RecipeView(
        install=_strings(recipe.get("install")),
        extras=_strings(recipe.get("extras")),
        groups=_strings(recipe.get("groups")),
        command=_command(run.get("command")),
        cwd=str(run.get("cwd") or ""),
        test_paths=_strings(run.get("testpaths")),
        env=sorted((str(k), str(v)) for k, v in env.items()),
        deselect=_strings(recipe.get("deselect")),
        needs_gpu=bool(recipe.get("needs_gpu")),
        overridden=bool(recipe.get("override")),
        provenance=[_provenance_line(row) for row in provenance if isinstance(row, dict)],
        hash=str(recipe.get("hash") or ""),
    )
