"""PyPI's JSON API: the one module that talks to PyPI, used by every app.

`package_json(name=...)` reads `/pypi/<name>/json` (the base URL is `settings.PYPI_JSON_URL`, a
template with `{name}`); `package_exists` says whether a package of that name is published;
`package_releases` lists its releases that are not yanked. Every failure to read PyPI (no
connection, an error status, a body that is not JSON) raises `PyPIUnavailable`; a package PyPI
does not know is `None` / `False`, not an error.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings
from packaging.version import InvalidVersion, Version

# A distribution name as PyPI accepts it (PEP 508: letters, digits, ".", "_" and "-", starting
# and ending with a letter or digit).
PYPI_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")


class PyPIUnavailable(Exception):
    """PyPI could not be read; the message says why."""


def valid_package_name(name: str) -> bool:
    return bool(PYPI_NAME_RE.fullmatch(name))


def package_json(*, name: str) -> dict[str, Any] | None:
    """PyPI's JSON document of the package `name`; None when PyPI has no such package (404) or
    the name is not a valid distribution name (nothing is asked then)."""
    if not valid_package_name(name):
        return None
    url = settings.PYPI_JSON_URL.format(name=quote(name, safe=""))
    try:
        response = requests.get(
            url, timeout=settings.PYPI_TIMEOUT_S, headers={"Accept": "application/json"}
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        data = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise PyPIUnavailable(f"PyPI unavailable for {name!r}: {exc}") from exc
    if not isinstance(data, dict):
        raise PyPIUnavailable(f"PyPI answered {name!r} with an unexpected body.")
    return data


def package_exists(*, name: str) -> bool:
    """Whether PyPI publishes a package of this name (raises PyPIUnavailable when unsure)."""
    return package_json(name=name) is not None


def package_releases(*, name: str) -> list[Version]:
    """Versions of `name` with at least one file that is not yanked."""
    try:
        data = package_json(name=name)
    except PyPIUnavailable as exc:
        raise PyPIUnavailable(f"PyPI release list unavailable: {exc}") from exc
    if data is None:
        raise PyPIUnavailable(f"PyPI release list unavailable: no package {name!r} on PyPI.")
    versions = []
    releases = data.get("releases") or {}
    for raw, files in releases.items() if isinstance(releases, dict) else ():
        if files and all(isinstance(f, dict) and f.get("yanked") for f in files):
            continue
        try:
            versions.append(Version(raw))
        except InvalidVersion:
            continue
    return versions
