"""A fake GitHub REST API (the parts registry/sources/github.py uses), over a real socket.

Tests add repositories with their files, commits and releases; PyGithub then talks to it as it
would to api.github.com. The server keeps a log of every request (`fake.requests`).

File contents: `contents={"pyproject.toml": "..."}` (every path of `files` is served by the
contents API, base64-encoded as GitHub does; a path without text is an empty file).
Collaborators: `collaborators=[FakeCollaborator("alice", "admin"), ...]`; None (the default)
answers 403 as GitHub does to a token without push access.
"""

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote

from tests.fakes.http import FakeHTTPServer, Reply, Request


@dataclass
class FakeCommit:
    sha: str
    date: datetime
    login: str | None = None  # the GitHub account, None when the email matches none
    email: str = ""
    name: str = ""


@dataclass
class FakeCollaborator:
    login: str
    role: str = "write"  # admin, maintain, write, triage or read, as GitHub names them


_PERMISSIONS = {  # role -> the permission flags GitHub sends with a collaborator
    "admin": {"admin", "maintain", "push", "triage", "pull"},
    "maintain": {"maintain", "push", "triage", "pull"},
    "write": {"push", "triage", "pull"},
    "triage": {"triage", "pull"},
    "read": {"pull"},
}


@dataclass
class FakeRepository:
    id: int
    owner: str
    name: str
    stars: int = 0
    forks: int = 0
    open_issues: int = 0
    license_spdx: str = ""
    default_branch: str = "main"
    pushed_at: datetime | None = None
    owner_type: str = "Organization"
    archived: bool = False
    files: list[str] = field(default_factory=list)  # paths, e.g. ".github/workflows/ci.yml"
    commits: list[FakeCommit] = field(default_factory=list)  # newest first
    latest_release: tuple[str, datetime] | None = None
    status: int = 200  # 403 or 404 to refuse
    contents: dict[str, str] = field(default_factory=dict)  # path -> text (of `files`)
    collaborators: list[FakeCollaborator] | None = None  # None: 403, no push access

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


class FakeGitHub:
    """`with FakeGitHub() as github: github.add_repository(...)`; point GITHUB_API_URL at it."""

    def __init__(self) -> None:
        self.server = FakeHTTPServer()
        self.url = self.server.url
        self.repositories: dict[int, FakeRepository] = {}
        self._rate_limited: list[dict[str, str]] = []  # headers of the next refusals

    def __enter__(self) -> "FakeGitHub":
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def paths(self) -> list[str]:
        return [request.path for request in self.server.requests]

    # --- set-up ---------------------------------------------------------------------------

    def add_repository(self, owner: str, name: str, **fields: object) -> FakeRepository:
        repository = FakeRepository(
            id=fields.pop("id", 1000 + len(self.repositories)),  # type: ignore[arg-type]
            owner=owner,
            name=name,
            **fields,  # type: ignore[arg-type]
        )
        self.repositories[repository.id] = repository
        self._route_repository(repository)
        self.server.route("GET", f"/repositories/{repository.id}", self._by_id(repository))
        return repository

    def rename(self, repository: FakeRepository, owner: str, name: str) -> None:
        """Move the repository; its old name answers 301 to /repositories/<id>, as GitHub does."""
        old = f"/repos/{repository.owner}/{repository.name}"
        repository.owner, repository.name = owner, name
        for (method, path), _ in list(self.server.routes.items()):
            if path == old or path.startswith(old + "/"):
                del self.server.routes[(method, path)]
        location = f"{self.url}/repositories/{repository.id}"
        self.server.route(
            "GET",
            old,
            Reply(301, {"message": "Moved Permanently", "url": location}, {"Location": location}),
        )
        self._route_repository(repository)

    def rate_limit(self, *, times: int = 1, retry_after: int | None = None, status: int = 403):
        """The next `times` requests are refused for the primary rate limit."""
        reset = int(time.time()) + (retry_after if retry_after is not None else 3600)
        headers = {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset),
            "X-Status": str(status),
        }
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        self._rate_limited.extend(dict(headers) for _ in range(times))

    # --- routes ---------------------------------------------------------------------------

    def _guard(self, handler):
        def guarded(request: Request) -> Reply:
            if self._rate_limited:
                headers = self._rate_limited.pop(0)
                status = int(headers.pop("X-Status"))
                return Reply(
                    status,
                    {
                        "message": "API rate limit exceeded for 127.0.0.1.",
                        "documentation_url": "https://docs.github.com/rest/rate-limit",
                    },
                    headers,
                )
            return handler(request)

        return guarded

    def _route_repository(self, repository: FakeRepository) -> None:
        base = f"/repos/{repository.owner}/{repository.name}"
        route = self.server.route
        route("GET", base, self._guard(lambda request: self._repository_reply(repository, request)))
        directories = {""} | {
            path.rsplit("/", 1)[0] if "/" in path else "" for path in repository.files
        }
        for parent in list(directories):  # every ancestor directory is listable too
            while "/" in parent:
                parent = parent.rsplit("/", 1)[0]
                directories.add(parent)
        for directory in directories:
            route(
                "GET",
                f"{base}/contents/{quote(directory)}",
                self._guard(self._contents(repository, directory)),
            )
        for path in repository.files:
            route(
                "GET", f"{base}/contents/{quote(path)}", self._guard(self._file(repository, path))
            )
        route("GET", f"{base}/collaborators", self._guard(self._collaborators(repository)))
        route("GET", f"{base}/commits", self._guard(self._commits(repository)))
        route("GET", f"{base}/releases/latest", self._guard(self._latest_release(repository)))

    def _repository_json(self, repository: FakeRepository) -> dict:
        license_json = None
        if repository.license_spdx:
            license_json = {
                "key": repository.license_spdx.lower(),
                "name": repository.license_spdx,
                "spdx_id": repository.license_spdx,
                "url": None,
                "node_id": "L",
            }
        api = f"{self.url}/repos/{repository.full_name}"
        return {
            "id": repository.id,
            "node_id": f"R_{repository.id}",
            "name": repository.name,
            "full_name": repository.full_name,
            "private": False,
            "owner": {
                "login": repository.owner,
                "id": repository.id * 10,
                "type": repository.owner_type,
                "url": f"{self.url}/users/{repository.owner}",
            },
            "html_url": f"https://github.com/{repository.full_name}",
            "description": "A project",
            "fork": False,
            "url": api,
            "archived": repository.archived,
            "stargazers_count": repository.stars,
            "watchers_count": repository.stars,
            "forks_count": repository.forks,
            "open_issues_count": repository.open_issues,
            "license": license_json,
            "default_branch": repository.default_branch,
            "pushed_at": _iso(repository.pushed_at),
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": _iso(repository.pushed_at),
        }

    def _repository_reply(self, repository: FakeRepository, request: Request) -> Reply:
        if repository.status == 404:
            return Reply(404, {"message": "Not Found"})
        if repository.status == 403:
            return Reply(403, {"message": "Repository access blocked"})
        body = json.dumps(self._repository_json(repository), sort_keys=True)
        etag = f'W/"{hashlib.sha256(body.encode()).hexdigest()[:32]}"'
        if request.headers.get("If-None-Match") == etag:
            return Reply(304, b"", {"ETag": etag})
        return Reply(200, body, {"ETag": etag})

    def _by_id(self, repository: FakeRepository):
        return self._guard(lambda request: self._repository_reply(repository, request))

    def _contents(self, repository: FakeRepository, directory: str):
        def reply(request: Request) -> Reply:
            prefix = f"{directory}/" if directory else ""
            entries: dict[str, str] = {}
            for path in repository.files:
                if not path.startswith(prefix):
                    continue
                rest = path[len(prefix) :]
                head = rest.split("/", 1)[0]
                entries[head] = "dir" if "/" in rest else "file"
            if not entries:
                return Reply(404, {"message": "This repository is empty."})
            api = f"{self.url}/repos/{repository.full_name}/contents"
            return Reply(
                200,
                [
                    {
                        "type": kind,
                        "name": head,
                        "path": prefix + head,
                        "sha": hashlib.sha1(  # noqa: S324 - a fake blob id
                            (prefix + head).encode()
                        ).hexdigest(),
                        "size": 0 if kind == "dir" else 10,
                        "url": f"{api}/{prefix}{head}",
                    }
                    for head, kind in sorted(entries.items())
                ],
            )

        return reply

    def _file(self, repository: FakeRepository, path: str):
        def reply(request: Request) -> Reply:
            data = repository.contents.get(path, "").encode()
            encoded = base64.b64encode(data).decode()
            # GitHub wraps the base64 text at 60 characters a line.
            wrapped = "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60))
            api = f"{self.url}/repos/{repository.full_name}/contents/{path}"
            return Reply(
                200,
                {
                    "type": "file",
                    "encoding": "base64",
                    "size": len(data),
                    "name": path.rsplit("/", 1)[-1],
                    "path": path,
                    "content": wrapped + ("\n" if wrapped else ""),
                    "sha": hashlib.sha1(data).hexdigest(),  # noqa: S324 - a fake blob id
                    "url": api,
                    "html_url": f"https://github.com/{repository.full_name}/blob/main/{path}",
                },
            )

        return reply

    def _collaborators(self, repository: FakeRepository):
        def reply(request: Request) -> Reply:
            if repository.collaborators is None:
                return Reply(
                    403,
                    {
                        "message": "Must have push access to view repository collaborators.",
                        "documentation_url": "https://docs.github.com/rest/collaborators",
                        "status": "403",
                    },
                )
            query = {key: values[0] for key, values in parse_qs(request.query).items()}
            per_page, page = int(query.get("per_page", 30)), int(query.get("page", 1))
            chunk = repository.collaborators[(page - 1) * per_page : page * per_page]
            headers = {}
            if page * per_page < len(repository.collaborators):
                params = "&".join(
                    f"{k}={quote(v)}" for k, v in {**query, "page": str(page + 1)}.items()
                )
                headers["Link"] = f'<{self.url}{request.path}?{params}>; rel="next"'
            return Reply(200, [self._collaborator_json(c) for c in chunk], headers)

        return reply

    def _collaborator_json(self, collaborator: FakeCollaborator) -> dict:
        flags = _PERMISSIONS[collaborator.role]
        return {
            "login": collaborator.login,
            "id": int(hashlib.sha1(collaborator.login.encode()).hexdigest()[:8], 16),  # noqa: S324
            "type": "User",
            "url": f"{self.url}/users/{collaborator.login}",
            "site_admin": False,
            "permissions": {name: name in flags for name in _PERMISSIONS["admin"]},
            "role_name": collaborator.role,
        }

    def _commits(self, repository: FakeRepository):
        def reply(request: Request) -> Reply:
            query = {key: values[0] for key, values in parse_qs(request.query).items()}
            commits = repository.commits
            if "since" in query:
                since = datetime.strptime(query["since"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                commits = [commit for commit in commits if commit.date >= since]
            per_page = int(query.get("per_page", 30))
            page = int(query.get("page", 1))
            last = max(1, -(-len(commits) // per_page))
            chunk = commits[(page - 1) * per_page : page * per_page]
            headers = {}
            links = []

            def link(number: int, rel: str) -> str:
                params = {**query, "page": str(number)}
                encoded = "&".join(f"{key}={quote(value)}" for key, value in params.items())
                return f'<{self.url}{request.path}?{encoded}>; rel="{rel}"'

            if page < last:
                links += [link(page + 1, "next"), link(last, "last")]
            if page > 1:
                links += [link(1, "first"), link(page - 1, "prev")]
            if links:
                headers["Link"] = ", ".join(links)
            return Reply(200, [self._commit_json(repository, c) for c in chunk], headers)

        return reply

    def _commit_json(self, repository: FakeRepository, commit: FakeCommit) -> dict:
        author = {"name": commit.name, "email": commit.email, "date": _iso(commit.date)}
        api = f"{self.url}/repos/{repository.full_name}"
        return {
            "sha": commit.sha,
            "url": f"{api}/commits/{commit.sha}",
            "commit": {"author": author, "committer": author, "message": "change"},
            "author": (
                {"login": commit.login, "id": abs(hash(commit.login)) % 10**8, "type": "User"}
                if commit.login
                else None
            ),
            "committer": None,
        }

    def _latest_release(self, repository: FakeRepository):
        def reply(request: Request) -> Reply:
            if repository.latest_release is None:
                return Reply(404, {"message": "Not Found"})
            tag, published = repository.latest_release
            return Reply(
                200,
                {
                    "id": 1,
                    "tag_name": tag,
                    "name": f"Release {tag}",
                    "draft": False,
                    "prerelease": False,
                    "published_at": _iso(published),
                    "created_at": _iso(published),
                    "url": f"{self.url}/repos/{repository.full_name}/releases/1",
                },
            )

        return reply
