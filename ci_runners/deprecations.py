"""The deprecation forecast: the torch APIs that the ecosystem's tests still call and torch warns
about, so the ones most likely to break the next releases.

Read-only. It reads the warnings the agent's pytest plugin harvested (`CompatCell.warnings`:
groups of {category, message, torch_api, count, tests}) from the latest final cell of each
active registry project on each active target (`CompatStatus.last_final_cell`; bisection cells
never speak for a project there, and are left out here too). It keeps the warnings torch raised
itself (`torch_api`, judged by the plugin where the warning was raised) of the categories that
announce a change: FutureWarning, DeprecationWarning, and UserWarning (torch's own, about an
API). The same API is named by one key across projects and releases: `api_key` normalises the
parts of a message that vary from one run to another.

One query reads every cell (values only); the rest is done in Python, so it runs as well on
SQLite (`make run`) as on PostgreSQL.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ci_runners.models import CompatRun, CompatStatus
from registry.badges import version_sort_key
from registry.models import Project

FORECAST_CATEGORIES = frozenset({"FutureWarning", "DeprecationWarning", "UserWarning"})
# Tests named per project and API (the agent names at most 20 per warning and cell).
MAX_TESTS = 20

# --- one key per API ----------------------------------------------------------------------------

# torch's C++ warnings end with where torch's sources raised them: a path that differs per build
# and a line that moves between releases.
_CPP_LOCATION = re.compile(r"\s*\(Triggered internally at [^()]*(?:\([^()]*\)[^()]*)*\)\.?\s*$")
# An object's address, as `repr` shows it: `<function f at 0x7f3a...>`.
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
# Shapes and sizes: `torch.Size([16, 1])`, `[3, 4]`, and tuples of integers `(3, 4)`.
_SIZE_LIST = re.compile(r"\[\s*-?\d+(?:\s*,\s*-?\d+)*\s*,?\s*\]")
_SIZE_TUPLE = re.compile(r"\(\s*-?\d+\s*,(?:\s*-?\d+\s*,?)*\s*\)")
# Quoted values that vary: a path, a URL, or a number ('/home/u/x.pt', "https://...", '3').
_QUOTED_VARYING = re.compile(r"""(['"])(?:[^'"\s]*[/\\][^'"]*|[^'"]*://[^'"]*|-?\d+(?:\.\d+)?)\1""")
# An absolute path of two or more parts, with its `:line` (a file of the project or its cache).
_ABSOLUTE_PATH = re.compile(r"(?<![\w/.])(?:/[\w.+@~-]+){2,}(?::\d+)?")
_WHITESPACE = re.compile(r"\s+")
PLACEHOLDER = "…"


@functools.lru_cache(maxsize=4096)  # the same messages come from many projects and targets
def api_key(message: str) -> str:
    """The message with what varies between runs replaced, so one API has one key.

    Conservative: only parts that never name the API change. In order: torch's "(Triggered
    internally at FILE:LINE.)" suffix is dropped; object addresses become `0x…`; integer lists
    and tuples (shapes, sizes) become `[…]` / `(…)`; quoted paths, URLs and numbers become
    `'…'`; absolute paths become `…`; whitespace runs become one space, ends stripped. Names
    (quoted or not), version numbers and everything else stay as they are.
    """
    text = _CPP_LOCATION.sub("", message)
    text = _ADDRESS.sub(f"0x{PLACEHOLDER}", text)
    text = _SIZE_LIST.sub(f"[{PLACEHOLDER}]", text)
    text = _SIZE_TUPLE.sub(f"({PLACEHOLDER})", text)
    text = _QUOTED_VARYING.sub(lambda match: f"{match.group(1)}{PLACEHOLDER}{match.group(1)}", text)
    text = _ABSOLUTE_PATH.sub(PLACEHOLDER, text)
    return _WHITESPACE.sub(" ", text).strip()


def api_id(*, category: str, api: str) -> str:
    """A short stable id of an API and its category (an anchor on the page, a key in the API)."""
    return hashlib.sha256(f"{category}\n{api}".encode()).hexdigest()[:12]


def forecast_warnings(warnings: object) -> Iterable[dict[str, Any]]:
    """The warning groups of a cell that the forecast counts: torch's own, of the categories
    that announce a change. Groups come from runner agents: read defensively."""
    for group in warnings if isinstance(warnings, list) else []:
        if (
            isinstance(group, dict)
            and group.get("torch_api") is True
            and group.get("category") in FORECAST_CATEGORIES
            and isinstance(group.get("message"), str)
        ):
            yield group


# --- the forecast -------------------------------------------------------------------------------


@dataclass(kw_only=True)
class ProjectUse:
    """One project calling one API: its tests that did (first seen first) and how often."""

    slug: str
    name: str
    tests: list[str] = field(default_factory=list)
    count: int = 0


@dataclass(kw_only=True)
class TorchApi:
    """One deprecated torch API (a normalised warning) and the projects that call it."""

    id: str
    api: str
    category: str
    sample_message: str
    projects: list[ProjectUse] = field(default_factory=list)
    total_count: int = 0
    torch_versions: list[str] = field(default_factory=list)

    @property
    def project_count(self) -> int:
        return len(self.projects)


@dataclass(kw_only=True)
class ProjectApis:
    """A project and the deprecated torch APIs it calls, most used by the ecosystem first."""

    slug: str
    name: str
    apis: list[TorchApi] = field(default_factory=list)

    @property
    def api_count(self) -> int:
        return len(self.apis)

    @property
    def api_ids(self) -> list[str]:
        return [api.id for api in self.apis]


@dataclass(kw_only=True)
class Forecast:
    """`apis` by projects affected (most first), `projects` by APIs called (most first);
    `cells`: the latest final cells read."""

    apis: list[TorchApi]
    projects: list[ProjectApis]
    cells: int


def _latest_cells(*, project: Project | None) -> list[tuple[Any, ...]]:
    """(slug, name, torch version, variant, warnings) of each latest final cell of the active
    projects (or of `project`, whatever its status) on the active targets; one query."""
    statuses = CompatStatus.objects.filter(
        target__active=True, last_final_cell__isnull=False
    ).exclude(last_final_cell__run__trigger=CompatRun.Trigger.BISECTION)
    if project is None:
        statuses = statuses.filter(project__status=Project.Status.ACTIVE)
    else:
        statuses = statuses.filter(project=project)
    return list(
        statuses.order_by("project__name", "project__slug", "target__version", "target_id")
        .values_list(
            "project__slug",
            "project__name",
            "target__version",
            "target__variant",
            "last_final_cell__warnings",
        )
        .iterator(chunk_size=500)
    )


def _add_use(api: TorchApi, use: ProjectUse, *, group: dict[str, Any], torch: str) -> None:
    """Count one warning group of one cell in its API and its project's use of it."""
    try:
        count = max(int(group.get("count") or 0), 0)
    except (TypeError, ValueError):
        count = 0
    tests = group.get("tests")
    for test in tests if isinstance(tests, list) else []:
        if isinstance(test, str) and test not in use.tests and len(use.tests) < MAX_TESTS:
            use.tests.append(test)
    use.count += count
    api.total_count += count
    if torch not in api.torch_versions:
        api.torch_versions.append(torch)


def forecast(*, project: Project | None = None) -> Forecast:
    """The forecast over every active project, or `project`'s part of it (its project page).

    Counts add up over a project's latest cells (one per target); tests are merged, first seen
    first. APIs: most projects affected first, then most warnings, then by text. Projects:
    most APIs called first, then by name.
    """
    rows = _latest_cells(project=project)
    apis: dict[str, TorchApi] = {}
    uses: dict[tuple[str, str], ProjectUse] = {}
    for slug, name, version, variant, warnings in rows:
        torch = f"{version}+{variant}" if variant else version
        for group in forecast_warnings(warnings):
            category, message = str(group["category"]), group["message"]
            key = api_key(message)
            identifier = api_id(category=category, api=key)
            api = apis.get(identifier)
            if api is None:
                api = apis[identifier] = TorchApi(
                    id=identifier, api=key, category=category, sample_message=message
                )
            use = uses.get((identifier, slug))
            if use is None:
                use = uses[identifier, slug] = ProjectUse(slug=slug, name=name)
                api.projects.append(use)
            _add_use(api, use, group=group, torch=torch)
    ordered = sorted(apis.values(), key=lambda a: (-a.project_count, -a.total_count, a.api))
    by_project: dict[str, ProjectApis] = {}
    for api in ordered:
        api.torch_versions.sort(key=version_sort_key)
        for use in api.projects:
            entry = by_project.setdefault(use.slug, ProjectApis(slug=use.slug, name=use.name))
            entry.apis.append(api)
    projects = sorted(by_project.values(), key=lambda p: (-p.api_count, p.name.lower(), p.slug))
    return Forecast(apis=ordered, projects=projects, cells=len(rows))
