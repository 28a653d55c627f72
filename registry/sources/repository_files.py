"""What the registry reads in a repository's own files (pure functions: text in, values out).

- the distribution name: `[project].name` of `pyproject.toml`, else `[metadata] name` of
  `setup.cfg`;
- maintainer handles: the owners of `CODEOWNERS` (`@alice`; teams `@org/team` and email
  addresses are skipped) and the `@handle`s and `github.com/<handle>` links of a `MAINTAINERS`
  file.

Only names that match GitHub's handle syntax are kept; nothing is ever fetched from a link.
"""

from __future__ import annotations

import configparser
import re
import tomllib

from registry.repository_urls import OWNER_RE
from registry.sources.pypi import valid_package_name

_HANDLE = r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}"
# "@alice" not inside an email address (a word character, "." or "-" before the "@") nor a team
# ("@org/team"), and not followed by more handle characters.
MENTION_RE = re.compile(rf"(?<![\w.@/+-])@({_HANDLE})(?![\w/@-])")
# "github.com/alice" as a profile link: nothing but an optional "/" after the handle.
PROFILE_RE = re.compile(
    rf"(?<![\w.-])(?:https?://)?(?:www\.)?github\.com/({_HANDLE})/?(?=$|[\s)\]>\"'#?,;|*])",
    re.IGNORECASE | re.MULTILINE,
)
# github.com/<these> are GitHub's own pages, not people.
NOT_PEOPLE = frozenset(
    {
        "about", "apps", "collections", "contact", "enterprise", "events", "explore",
        "features", "login", "marketplace", "new", "notifications", "orgs", "organizations",
        "pricing", "pulls", "issues", "search", "security", "settings", "site", "sponsors",
        "topics", "trending",
    }
)  # fmt: skip


def pyproject_name(text: str) -> str:
    """`[project].name` of a pyproject.toml, or "" (no such key, not TOML, not a valid name)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return ""
    project = document.get("project")
    name = project.get("name") if isinstance(project, dict) else None
    name = name.strip() if isinstance(name, str) else ""
    return name if valid_package_name(name) else ""


def setup_cfg_name(text: str) -> str:
    """`[metadata] name` of a setup.cfg, or ""."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
        name = parser.get("metadata", "name", fallback="").strip()
    except configparser.Error:
        return ""
    return name if valid_package_name(name) else ""


def codeowners_handles(text: str) -> list[str]:
    """The user owners of a CODEOWNERS file, as written, in order of appearance."""
    handles: list[str] = []
    for line in text.splitlines():
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        for token in tokens[1:]:
            if token.startswith("#"):
                break  # the rest of the line is a comment
            handle = token[1:] if token.startswith("@") else ""
            if OWNER_RE.fullmatch(handle):  # not a team (@org/team), not an email
                handles.append(handle)
    return _unique(handles)


def maintainers_file_handles(text: str) -> list[str]:
    """The `@handle`s and `github.com/<handle>` links of a MAINTAINERS file, in order."""
    found: list[tuple[int, str]] = [(m.start(), m.group(1)) for m in MENTION_RE.finditer(text)]
    found += [
        (m.start(), m.group(1))
        for m in PROFILE_RE.finditer(text)
        if m.group(1).lower() not in NOT_PEOPLE
    ]
    return _unique([handle for _, handle in sorted(found)])


def _unique(handles: list[str]) -> list[str]:
    seen: set[str] = set()
    unique = []
    for handle in handles:
        if handle.lower() not in seen:
            seen.add(handle.lower())
            unique.append(handle)
    return unique
