"""Which torch builds the configured wheel sources publish, read as `run` reads them.

Bisection (`bisect.py`) needs the releases between two versions "as published": the exact
version strings (local tag included) of the torch wheels a job could install. The sources are
the job's (`environment.wheel_sources`), read the way uv reads them (`WheelSources.uv_args`):

- find-links: a local directory (its wheel file names), a local HTML file, or an http(s) or
  file:// URL of an HTML page of links;
- indexes: `--index-url` when one is configured, else uv's default, PyPI, which stays
  configured beside find-links and extra indexes; then each extra index. An index is asked
  for its `torch` project page in PEP 691 JSON, and read as PEP 503 HTML when it answers
  that; a `file://` index is a local simple tree (`<dir>/torch/index.html`).

Only wheels this host can install for the job's python count (their tags: the job's CPython
version with this host's platforms), so no version is offered that has no wheel for it.
Yanked files count: uv installs an exactly pinned yanked release.

A source that cannot be read is an error (`WheelIndexError`), even when others answer: a
missing source could hide a release, and a bisection over an incomplete list names the
wrong first bad release without saying so. An index without a `torch` project (404/410, or
no `torch/` dir in a local tree) is not an error: it publishes no torch, as uv sees it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from packaging import tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from ci_runners.agent.contracts import Job
from ci_runners.agent.environment import WheelSources, wheel_sources

INDEX_TIMEOUT_S = 10.0
DEFAULT_INDEX_URL = "https://pypi.org/simple"  # uv's default index
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
# PEP 691's negotiation: JSON preferred, the HTML forms accepted.
ACCEPT = f"{SIMPLE_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
PROJECT = "torch"


class WheelIndexError(Exception):
    """A wheel source could not be read (the message names it, without credentials)."""


@dataclass(frozen=True, kw_only=True)
class SourceList:
    """Where uv looks for wheels, in the form `run` configures it."""

    find_links: list[str]
    indexes: list[str]

    def describe(self) -> str:
        parts = [f"find-links {redact(link)}" for link in self.find_links]
        parts += [f"index {redact(url)}" for url in self.indexes]
        return "; ".join(parts)


def source_list(sources: WheelSources) -> SourceList:
    """The find-links and indexes uv uses with these sources' `uv_args`: an `--index-url`
    replaces the default index (PyPI); find-links and extra indexes add to it."""
    indexes = [sources.index_url or DEFAULT_INDEX_URL, *sources.extra_index_urls]
    return SourceList(find_links=list(sources.find_links), indexes=indexes)


def job_source_list(job: Job) -> SourceList:
    """The sources `run` installs `job`'s torch from (`environment.wheel_sources`)."""
    return source_list(wheel_sources(job=job))


def published_torch_versions(*, job: Job) -> list[Version]:
    """Every torch build the job's wheel sources publish with a wheel installable here for
    the job's python, as published (local tag included), sorted oldest first. Raises
    WheelIndexError when a source cannot be read."""
    sources = job_source_list(job)
    supported = supported_tags(job.python_version)
    names: list[str] = []
    for link in sources.find_links:
        names += find_links_filenames(link)
    for index in sources.indexes:
        names += index_filenames(index, project=PROJECT)
    return sorted(set(installable_versions(names, project=PROJECT, supported=supported)))


def supported_tags(python_version: str) -> frozenset[tags.Tag]:
    """The wheel tags a CPython of `python_version` ("3.11") installs on this host."""
    major, minor = (int(part) for part in python_version.split(".")[:2])
    platforms = list(tags.platform_tags())
    found = list(tags.cpython_tags(python_version=(major, minor), platforms=platforms))
    found += tags.compatible_tags(python_version=(major, minor), platforms=platforms)
    return frozenset(found)


def installable_versions(
    filenames: list[str], *, project: str, supported: frozenset[tags.Tag]
) -> list[Version]:
    """The versions of `project` among wheel file names with a tag in `supported` (other
    files, sdists and names that are not wheels, are ignored)."""
    wanted = canonicalize_name(project)
    versions = []
    for filename in filenames:
        if not filename.endswith(".whl"):
            continue
        try:
            name, version, _, wheel_tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            continue
        if name == wanted and not wheel_tags.isdisjoint(supported):
            versions.append(version)
    return versions


def redact(url: str) -> str:
    """`url` without a password (pip config URLs may carry credentials)."""
    split = urlsplit(url)
    if split.password is None:
        return url
    host = split.hostname or ""
    netloc = f"{split.username}:***@{host}" + (f":{split.port}" if split.port else "")
    return urlunsplit(split._replace(netloc=netloc))


# --- find-links -------------------------------------------------------------------------------


def find_links_filenames(link: str) -> list[str]:
    """The file names a find-links entry lists: a directory's files, or an HTML page's links
    (a local file, or an http(s) or file:// URL)."""
    scheme = urlsplit(link).scheme
    if scheme in ("http", "https"):
        page = fetch(link, accept="text/html")
        if page is None:
            raise WheelIndexError(f"find-links {redact(link)} is not there (HTTP 404/410)")
        return _html_filenames(page.text)
    path = Path(unquote(urlsplit(link).path)) if scheme == "file" else Path(link)
    if path.is_dir():
        return sorted(entry.name for entry in path.iterdir())
    try:
        return _html_filenames(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise WheelIndexError(
            f"find-links {redact(link)} cannot be read: {exc.strerror or exc}"
        ) from exc


# --- indexes ----------------------------------------------------------------------------------


def index_filenames(index: str, *, project: str) -> list[str]:
    """The file names an index publishes for `project` (PEP 691 JSON, or PEP 503 HTML); none
    when the index has no such project."""
    url = f"{index.rstrip('/')}/{canonicalize_name(project)}/"
    if urlsplit(index).scheme == "file":
        return _local_index_filenames(Path(unquote(urlsplit(url).path)), index=index)
    page = fetch(url, accept=ACCEPT)
    if page is None:
        return []
    if page.content_type == SIMPLE_JSON:
        return _json_filenames(page.text, url=url)
    return _html_filenames(page.text)


def _local_index_filenames(project_dir: Path, *, index: str) -> list[str]:
    """A local simple tree: `<project>/index.html`, else the project dir's files."""
    if not project_dir.is_dir():
        if not Path(unquote(urlsplit(index).path)).is_dir():
            raise WheelIndexError(f"index {redact(index)} is not a directory")
        return []
    page = project_dir / "index.html"
    try:
        if page.is_file():
            return _html_filenames(page.read_text(encoding="utf-8", errors="replace"))
        return sorted(entry.name for entry in project_dir.iterdir())
    except OSError as exc:
        raise WheelIndexError(f"index {redact(index)} cannot be read: {exc}") from exc


def _json_filenames(text: str, *, url: str) -> list[str]:
    try:
        files = json.loads(text)["files"]
        return [str(entry["filename"]) for entry in files]
    except (ValueError, KeyError, TypeError) as exc:
        raise WheelIndexError(f"{redact(url)} is not a PEP 691 project page: {exc}") from exc


class _LinkParser(HTMLParser):
    """The `href` of every `<a>` of a page (PEP 503 or a find-links page)."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def _html_filenames(text: str) -> list[str]:
    """The file names an HTML page links to: the last path segment of each link, unquoted
    (`torch-2.5.0%2Bcpu-...whl#sha256=...` is `torch-2.5.0+cpu-...whl`)."""
    parser = _LinkParser()
    parser.feed(text)
    parser.close()
    names = (unquote(urlsplit(href).path.rsplit("/", 1)[-1]) for href in parser.hrefs)
    return [name for name in names if name]


# --- HTTP -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Page:
    text: str
    content_type: str


def fetch(url: str, *, accept: str) -> Page | None:
    """GET `url` (http or https) within INDEX_TIMEOUT_S per socket operation; None when it is
    not there (404/410); anything else that fails is a WheelIndexError."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise WheelIndexError(f"{redact(url)}: not an http(s) URL")
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=INDEX_TIMEOUT_S) as response:  # noqa: S310
            body = response.read()
            content_type = response.headers.get_content_type()
            charset = response.headers.get_content_charset() or "utf-8"
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            return None
        raise WheelIndexError(f"{redact(url)} answered HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WheelIndexError(f"{redact(url)} cannot be read: {reason}") from exc
    return Page(text=body.decode(charset, errors="replace"), content_type=content_type)
