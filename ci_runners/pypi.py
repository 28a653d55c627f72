"""PyPI's JSON API (the one module that talks to PyPI): which releases a package has."""

from __future__ import annotations

import requests
from django.conf import settings
from packaging.version import InvalidVersion, Version


class PyPIUnavailable(Exception):
    """PyPI could not be read; the message says why."""


def package_releases(*, name: str) -> list[Version]:
    """Versions of `name` with at least one file that is not yanked."""
    url = settings.PYPI_JSON_URL.format(name=name)
    try:
        response = requests.get(url, timeout=settings.PYPI_TIMEOUT_S)
        response.raise_for_status()
        data = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise PyPIUnavailable(f"PyPI release list unavailable: {exc}") from exc
    versions = []
    for raw, files in (data.get("releases") or {}).items():
        if files and all(file.get("yanked") for file in files):
            continue
        try:
            versions.append(Version(raw))
        except InvalidVersion:
            continue
    return versions
