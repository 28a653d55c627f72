"""The repository URL rule: only https://github.com/<owner>/<repo> names a project repository.

The service never fetches a URL a user typed; it only extracts owner and name from an accepted
URL and talks to the configured GitHub API about that pair.
"""

import re
from dataclasses import dataclass

# GitHub owners: alphanumerics and single hyphens, at most 39 characters.
OWNER_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
# Repository names: letters, digits, '.', '-', '_'; never "." or "..".
REPO_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")
MAX_URL_LENGTH = 300


class InvalidRepositoryURL(ValueError):
    """The URL is not an accepted GitHub repository URL; the message says why."""


@dataclass(frozen=True)
class Repository:
    owner: str
    name: str

    @property
    def url(self) -> str:
        return f"https://github.com/{self.owner}/{self.name}"


def parse_repository_url(url: str) -> Repository:
    """Return owner and name of `https://github.com/<owner>/<repo>[.git][/]`, or raise."""
    if not isinstance(url, str) or not url:
        raise InvalidRepositoryURL("Enter the repository URL, e.g. https://github.com/owner/repo.")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRepositoryURL(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidRepositoryURL("The URL contains spaces or control characters.")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InvalidRepositoryURL("The URL must start with https://github.com/.")
    if scheme != "https":
        raise InvalidRepositoryURL(f"Only https:// URLs are accepted, not {scheme}://.")
    authority, _, path = rest.partition("/")
    if "@" in authority:
        raise InvalidRepositoryURL("The URL must not contain credentials.")
    if authority.lower() != "github.com":
        raise InvalidRepositoryURL(
            f"Only repositories on github.com are accepted (the host is {authority!r})."
        )
    if authority != "github.com":
        raise InvalidRepositoryURL("Write the host in lower case: https://github.com/owner/repo.")
    if "?" in path or "#" in path:
        raise InvalidRepositoryURL("The URL must not carry a query or a fragment.")
    if path.endswith("/"):
        path = path[:-1]
    parts = path.split("/")
    if len(parts) != 2 or not all(parts):
        raise InvalidRepositoryURL(
            "The URL must name one repository: https://github.com/<owner>/<repo>."
        )
    owner, name = parts
    if name.endswith(".git"):
        name = name[: -len(".git")]
    if not OWNER_RE.fullmatch(owner):
        raise InvalidRepositoryURL(f"{owner!r} is not a valid GitHub owner name.")
    if not REPO_RE.fullmatch(name) or name in {".", ".."}:
        raise InvalidRepositoryURL(f"{name!r} is not a valid GitHub repository name.")
    return Repository(owner=owner, name=name)


@dataclass(frozen=True)
class LandscapeRepository:
    """What the importer makes of a landscape `repo_url`: a repository and/or a flag."""

    repository: Repository | None
    flag: str  # empty when the URL was already canonical


def normalise_landscape_repo_url(raw: str) -> LandscapeRepository:
    """Accept landscape data as it is: strip spaces, drop extra path parts, flag what is odd."""
    text = (raw or "").strip()
    if not text:
        return LandscapeRepository(None, "")
    notes = []
    if text != raw:
        notes.append("surrounding spaces removed")
    try:
        return LandscapeRepository(parse_repository_url(text), "; ".join(notes))
    except InvalidRepositoryURL as first_error:
        match = re.fullmatch(r"https://github\.com/([^/?#]+)(?:/([^/?#]+))?(/[^?#]*)?/?", text)
        if match and match.group(2):
            candidate = f"https://github.com/{match.group(1)}/{match.group(2)}"
            try:
                repository = parse_repository_url(candidate)
            except InvalidRepositoryURL:
                pass
            else:
                notes.append(f"extra path parts dropped ({match.group(3)}); using {candidate}")
                return LandscapeRepository(repository, "; ".join(notes))
        if match and not match.group(2):
            reason = f"repo_url {text!r} is an organisation page, not a repository"
        else:
            reason = f"repo_url {text!r} refused: {first_error}"
        return LandscapeRepository(None, reason)
