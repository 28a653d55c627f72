"""The one module that talks to GitHub (through PyGithub): a repository's health figures.

`fetch_repository_health(owner=..., name=..., etag=...)` needs no database row, so the reviews
app can check an applicant's repository before a registry project exists. It returns a
`RepositoryHealth`, or `NotModified` when GitHub answers 304 to the stored ETag (one request,
which GitHub does not count against the rate limit), or raises one of the `GitHubError`s.

Requests for a changed repository: the repository, its root directory listing (plus `.github/`,
`.github/workflows/` and `docs/` when present), the commits of the last 90 days (100 a page)
and the latest release.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import requests
from django.conf import settings
from github import Auth, Consts, Github, GithubException
from github.Commit import Commit
from github.ContentFile import ContentFile
from github.Repository import Repository as GithubRepository
from github.Requester import Requester

from registry.repository_urls import OWNER_RE, REPO_RE

logger = logging.getLogger(__name__)

ACTIVITY_WINDOW = timedelta(days=90)
PER_PAGE = 100
# A cap on the commits read for one repository (100 pages): beyond it the count is a floor.
MAX_COMMITS = 10_000
USER_AGENT = "ecosystem-registry"

T = TypeVar("T")


# --- results and errors ---------------------------------------------------------------------


@dataclass(frozen=True)
class RepositoryHealth:
    github_id: int
    full_name: str
    etag: str
    html_url: str
    owner_type: str  # "Organization" or "User"
    archived: bool
    stars: int
    forks: int
    open_issues: int
    license_spdx: str
    default_branch: str
    pushed_at: datetime | None
    commits_90d: int
    contributors_90d: int
    latest_release: str
    latest_release_at: datetime | None
    has_license: bool
    has_readme: bool
    has_contributing: bool
    has_codeowners: bool
    has_code_of_conduct: bool
    has_security: bool
    has_ci_workflows: bool
    taken_at: datetime
    # The files seen in the root, .github/ and docs/ (paths from the root): what
    # `fetch_repository_files` may read without asking for what is not there.
    paths: tuple[str, ...] = ()

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/", 1)[1]


@dataclass(frozen=True)
class NotModified:
    """GitHub answered 304: the repository is as it was when `etag` was stored."""

    etag: str


class GitHubError(Exception):
    """Base of what fetching a repository's health can raise."""


class RepositoryNotFound(GitHubError):
    pass


class RepositoryPrivate(GitHubError):
    pass


class RepositoryMoved(GitHubError):
    """The repository lives under a new name; `health` holds its figures when they were read."""

    def __init__(self, new_owner: str, new_name: str, health: RepositoryHealth | None = None):
        super().__init__(f"The repository moved to {new_owner}/{new_name}.")
        self.new_owner, self.new_name, self.health = new_owner, new_name, health


class RateLimited(GitHubError):
    def __init__(self, reset_at: datetime):
        super().__init__(f"GitHub rate limit reached until {reset_at:%Y-%m-%d %H:%M:%S} UTC.")
        self.reset_at = reset_at


class GitHubUnavailable(GitHubError):
    """GitHub could not be reached or answered with an error; `unreachable` for no connection."""

    def __init__(self, message: str, *, unreachable: bool = False):
        super().__init__(message)
        self.message, self.unreachable = message, unreachable


# --- the fetch --------------------------------------------------------------------------------


def fetch_repository_health(
    *, owner: str, name: str, etag: str = ""
) -> RepositoryHealth | NotModified:
    """Read the health figures of github.com/<owner>/<name>, conditionally on `etag`."""
    if not OWNER_RE.fullmatch(owner) or not REPO_RE.fullmatch(name) or name in {".", ".."}:
        raise RepositoryNotFound(f"{owner}/{name} is not a valid GitHub repository name.")
    client = _client()
    try:
        return _fetch(client, owner=owner, name=name, etag=etag)
    finally:
        client.close()


def _client() -> Github:
    token = getattr(settings, "GITHUB_TOKEN", "")
    return Github(
        auth=Auth.Token(token) if token else None,
        base_url=settings.GITHUB_API_URL.rstrip("/"),
        timeout=settings.GITHUB_TIMEOUT_S,
        user_agent=USER_AGENT,
        per_page=PER_PAGE,
        # Rate limits are handled here (bounded wait, then RateLimited); PyGithub's own retry
        # would sleep until the reset or retry 5xx several times.
        retry=0,
        seconds_between_requests=getattr(settings, "GITHUB_SECONDS_BETWEEN_REQUESTS", 0.0),
        seconds_between_writes=None,
    )


def _fetch(client: Github, *, owner: str, name: str, etag: str) -> RepositoryHealth | NotModified:
    requester = client.requester
    headers = {Consts.REQ_IF_NONE_MATCH: etag} if etag else {}

    def read_repository() -> tuple[int, dict[str, Any], Any]:
        status, response_headers, output = requester.requestJson(
            "GET", f"/repos/{owner}/{name}", headers=headers
        )
        if status == 304:
            return status, response_headers, None
        try:
            data = json.loads(output) if output else None
        except ValueError:
            data = {"message": str(output)[:200]}
        if status >= 400:
            body = data if isinstance(data, dict) else {}
            raise Requester.createException(status, response_headers, body)
        return status, response_headers, data

    status, response_headers, data = _call(read_repository, what=f"{owner}/{name}")
    if status == 304:
        return NotModified(etag=response_headers.get(Consts.RES_ETAG, etag))
    if not isinstance(data, dict) or "full_name" not in data:
        raise GitHubUnavailable(f"GitHub answered {owner}/{name} with an unexpected body.")
    repository = GithubRepository(requester, response_headers, data, completed=True)
    health = _health(repository, response_headers.get(Consts.RES_ETAG, ""))
    if health.full_name.lower() != f"{owner}/{name}".lower():
        raise RepositoryMoved(health.owner, health.name, health=health)
    return health


def _health(repository: GithubRepository, etag: str) -> RepositoryHealth:
    taken_at = datetime.now(UTC)
    files = _community_files(repository)
    commits, contributors = _activity(repository, since=taken_at - ACTIVITY_WINDOW)
    release_tag, release_at = _latest_release(repository)
    license_spdx = ""
    if repository.license is not None:
        spdx = repository.license.spdx_id or ""
        license_spdx = "" if spdx == "NOASSERTION" else spdx
    return RepositoryHealth(
        github_id=repository.id,
        full_name=repository.full_name,
        etag=etag,
        html_url=repository.html_url,
        owner_type=repository.owner.type or "",
        archived=bool(repository.archived),
        stars=repository.stargazers_count or 0,
        forks=repository.forks_count or 0,
        open_issues=repository.open_issues_count or 0,
        license_spdx=license_spdx,
        default_branch=repository.default_branch or "",
        pushed_at=repository.pushed_at,
        commits_90d=commits,
        contributors_90d=contributors,
        latest_release=release_tag,
        latest_release_at=release_at,
        has_license=repository.license is not None or "LICENSE" in files["root"],
        has_readme=_anywhere(files, "README"),
        has_contributing=_anywhere(files, "CONTRIBUTING"),
        has_codeowners=_anywhere(files, "CODEOWNERS"),
        has_code_of_conduct=_anywhere(files, "CODE_OF_CONDUCT"),
        has_security=_anywhere(files, "SECURITY"),
        has_ci_workflows=bool(files["workflows"]),
        taken_at=taken_at,
        paths=tuple(sorted(files["paths"])),
    )


def _file_kind(name: str) -> str:
    """`Code-Of-Conduct.md` -> `CODE_OF_CONDUCT`; `COPYING` and `LICENCE` count as `LICENSE`."""
    stem = name.split(".", 1)[0].upper().replace("-", "_")
    return "LICENSE" if stem in {"LICENCE", "COPYING"} else stem


def _anywhere(files: dict[str, set[str]], kind: str) -> bool:
    # GitHub looks for community health files in the root, .github/ and docs/.
    return any(kind in files[where] for where in ("root", ".github", "docs"))


def _community_files(repository: GithubRepository) -> dict[str, set[str]]:
    files: dict[str, set[str]] = {
        "root": set(),
        ".github": set(),
        "docs": set(),
        "workflows": set(),
        "paths": set(),
    }
    root = _list_directory(repository, "")
    directories = {entry.name for entry in root if entry.type == "dir"}
    files["root"] = {_file_kind(entry.name) for entry in root if entry.type == "file"}
    files["paths"] = {entry.name for entry in root if entry.type == "file"}
    for directory in (".github", "docs"):
        if directory in directories:
            entries = _list_directory(repository, directory)
            files[directory] = {_file_kind(e.name) for e in entries if e.type == "file"}
            files["paths"] |= {f"{directory}/{e.name}" for e in entries if e.type == "file"}
            if directory == ".github" and any(
                e.name == "workflows" and e.type == "dir" for e in entries
            ):
                workflows = _list_directory(repository, ".github/workflows")
                files["workflows"] = {e.name for e in workflows if e.type == "file"}
    return files


def _list_directory(repository: GithubRepository, path: str) -> list[ContentFile]:
    def read() -> list[ContentFile]:
        try:
            contents = repository.get_contents(path)
        except GithubException as error:
            if error.status == 404:  # an empty repository, or the directory went away
                return []
            raise
        return contents if isinstance(contents, list) else []

    return _call(read, what=f"{repository.full_name}/{path}")


def _activity(repository: GithubRepository, *, since: datetime) -> tuple[int, int]:
    """Commits on the default branch since `since`, and their distinct authors."""

    def read() -> tuple[int, int]:
        count, authors = 0, set()
        try:
            # Iterating follows the Link headers GitHub sends, PER_PAGE commits a request.
            for commit in repository.get_commits(since=since):
                count += 1
                authors.add(_author_key(commit))
                if count >= MAX_COMMITS:
                    break
        except GithubException as error:
            if error.status == 409:  # "Git Repository is empty."
                return 0, 0
            raise
        return count, len(authors)

    return _call(read, what=f"{repository.full_name} commits")


def _author_key(commit: Commit) -> str:
    """The GitHub account of a commit's author, else its email (or name) from git."""
    if commit.author is not None and commit.author.login:
        return "login:" + commit.author.login.lower()
    git_author = commit.commit.author
    return "git:" + (git_author.email or git_author.name or "").lower()


def _latest_release(repository: GithubRepository) -> tuple[str, datetime | None]:
    def read() -> tuple[str, datetime | None]:
        try:
            release = repository.get_latest_release()
            return release.tag_name or "", release.published_at
        except GithubException as error:
            if error.status == 404:  # no release published
                return "", None
            raise

    return _call(read, what=f"{repository.full_name} latest release")


# --- the repository's own files and collaborators ------------------------------------------------

# Where GitHub looks for CODEOWNERS, in its order: the first one found is the one in force.
CODEOWNERS_PATHS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")
MAINTAINERS_NAMES = ("MAINTAINERS", "MAINTAINERS.md", "MAINTAINERS.rst", "MAINTAINERS.txt")
MAX_FILE_BYTES = 512 * 1024  # a larger file is not read (GitHub inlines files up to 1 MB)
MAX_COLLABORATORS = 300


@dataclass(frozen=True)
class RepositoryFiles:
    """The texts of the files the registry reads (None: no such file) and the handles of the
    collaborators with admin or maintain permission (None: the token may not list them)."""

    pyproject: str | None = None
    setup_cfg: str | None = None
    codeowners: str | None = None
    maintainers: tuple[str, ...] = ()  # the texts of MAINTAINERS files
    collaborators: tuple[str, ...] | None = None


def fetch_repository_files(
    *, owner: str, name: str, paths: tuple[str, ...] | None = None
) -> RepositoryFiles:
    """Read pyproject.toml, setup.cfg, CODEOWNERS and MAINTAINERS of github.com/<owner>/<name>
    (from the default branch) and list its admin and maintain collaborators.

    `paths`: the files the repository has in its root, .github/ and docs/ (as
    `RepositoryHealth.paths` lists them); without it they are listed first. Raises a
    GitHubError when a file exists but cannot be read; a 403 or 404 of the collaborators list
    (the token lacks push access) only means no collaborators.
    """
    if not OWNER_RE.fullmatch(owner) or not REPO_RE.fullmatch(name) or name in {".", ".."}:
        raise RepositoryNotFound(f"{owner}/{name} is not a valid GitHub repository name.")
    client = _client()
    try:
        # Lazy: no request for the repository itself (the sync has just read it).
        repository = GithubRepository(
            client.requester.withLazy(True),
            attributes={"full_name": f"{owner}/{name}", "name": name},
            url=f"/repos/{owner}/{name}",
        )
        if paths is None:
            paths = tuple(sorted(_community_files(repository)["paths"]))
        present = set(paths)
        codeowners = next((path for path in CODEOWNERS_PATHS if path in present), None)

        def read(path: str | None) -> str | None:
            return _read_file(repository, path, what=f"{owner}/{name}/{path}") if path else None

        return RepositoryFiles(
            pyproject=read("pyproject.toml" if "pyproject.toml" in present else None),
            setup_cfg=read("setup.cfg" if "setup.cfg" in present else None),
            codeowners=read(codeowners),
            maintainers=tuple(
                text
                for path in sorted(present & set(MAINTAINERS_NAMES))
                if (text := read(path)) is not None
            ),
            collaborators=_maintaining_collaborators(repository, what=f"{owner}/{name}"),
        )
    finally:
        client.close()


def _read_file(repository: GithubRepository, path: str, *, what: str) -> str | None:
    def read() -> str | None:
        try:
            content = repository.get_contents(path)
        except GithubException as error:
            if error.status == 404:  # gone since the listing
                return None
            raise
        if isinstance(content, list) or content.type != "file":
            return None
        if (content.size or 0) > MAX_FILE_BYTES or content.encoding != "base64":
            logger.info("GitHub file %s not read: %s bytes", what, content.size)
            return None
        return content.decoded_content.decode("utf-8", errors="replace")

    return _call(read, what=what)


def _maintaining_collaborators(
    repository: GithubRepository, *, what: str
) -> tuple[str, ...] | None:
    """Logins of the collaborators with admin or maintain permission; None when GitHub refuses
    the list (it needs push access, which a token has only on its own organisation's repos)."""

    def read() -> tuple[str, ...]:
        logins = []
        for index, user in enumerate(repository.get_collaborators()):
            if index >= MAX_COLLABORATORS:
                break
            permissions = user.permissions
            if permissions is not None and (permissions.admin or permissions.maintain):
                logins.append(user.login)
        return tuple(logins)

    try:
        return _call(read, what=f"{what} collaborators")
    except (RepositoryPrivate, RepositoryNotFound):
        return None


# --- errors, rate limits ------------------------------------------------------------------------


def _call(operation: Callable[[], T], *, what: str) -> T:
    """Run one GitHub read, mapping failures to GitHubErrors; wait out a short rate limit once."""
    try:
        return _translate(operation, what=what)
    except RateLimited as limited:
        wait = (limited.reset_at - datetime.now(UTC)).total_seconds()
        if wait > settings.GITHUB_RATE_LIMIT_MAX_WAIT_S:
            raise
        logger.info("GitHub rate limit: waiting %.1f s before retrying %s", wait, what)
        time.sleep(max(wait, 0.0))
    return _translate(operation, what=what)


def _translate(operation: Callable[[], T], *, what: str) -> T:
    try:
        return operation()
    except GitHubError:
        raise
    except GithubException as error:
        raise _error_from(error, what=what) from error
    except requests.exceptions.Timeout as error:
        raise GitHubUnavailable(
            f"GitHub did not answer within {settings.GITHUB_TIMEOUT_S} s ({what}).",
            unreachable=True,
        ) from error
    except requests.exceptions.RequestException as error:
        raise GitHubUnavailable(
            f"GitHub API at {settings.GITHUB_API_URL} is unreachable: {_root_cause(error)}",
            unreachable=True,
        ) from error
    except RuntimeError as error:  # PyGithub refuses a redirect to another host or scheme
        raise GitHubUnavailable(f"GitHub answered {what} with a bad redirect: {error}") from error
    except Exception as error:  # a malformed answer must not crash a sync run
        logger.exception("Unexpected answer from GitHub for %s", what)
        raise GitHubUnavailable(
            f"Unexpected answer from GitHub for {what}: {type(error).__name__}: {error}"
        ) from error


def _root_cause(error: BaseException) -> str:
    while error.__context__ is not None and error.__context__ is not error:
        error = error.__context__
    return str(error) or type(error).__name__


def _error_from(error: GithubException, *, what: str) -> GitHubError:
    headers = {key.lower(): value for key, value in (error.headers or {}).items()}
    data = error.data if isinstance(error.data, dict) else {}
    message = str(data.get("message") or "")
    status = error.status
    if status in (403, 429) and (
        headers.get("x-ratelimit-remaining") == "0"
        or "retry-after" in headers
        or Requester.isRateLimitError(message)
    ):
        return RateLimited(_reset_at(headers))
    if status == 404:
        return RepositoryNotFound(f"GitHub has no repository {what} (404).")
    if status in (403, 451):
        detail = f": {message}" if message else ""
        return RepositoryPrivate(f"GitHub refused access to {what} ({status}{detail}).")
    if status == 401:
        return GitHubUnavailable("GitHub refused the configured GITHUB_TOKEN (401).")
    return GitHubUnavailable(
        f"GitHub answered {what} with HTTP {status}: {message or 'no message'}"
    )


def _reset_at(headers: dict[str, str]) -> datetime:
    now = datetime.now(UTC)
    try:
        if "retry-after" in headers:
            return now + timedelta(seconds=max(0, int(headers["retry-after"])))
        if "x-ratelimit-reset" in headers:
            return max(now, datetime.fromtimestamp(int(headers["x-ratelimit-reset"]), tz=UTC))
    except (ValueError, OverflowError):
        pass
    return now + timedelta(seconds=60)  # a secondary limit with no hint: GitHub asks for 1 min
