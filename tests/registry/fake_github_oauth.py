"""A fake GitHub OAuth app host (github.com's /login/oauth/* and the API's /user, /user/emails),
over a real socket, so django-allauth's GitHub provider runs its real code against it.

The test says who is signed in on "GitHub" (`fake.sign_in(...)`); the authorize page then sends
the browser back to the callback with a one-time code, which the token endpoint exchanges (once)
for a token that opens that person's profile. The API lives under /api/v3, as allauth expects
for a GitHub with a `GITHUB_URL` of its own (GitHub Enterprise).
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

from tests.fakes.http import FakeHTTPServer, Reply, Request


@dataclass
class GitHubPerson:
    login: str
    id: int
    emails: list[dict] = field(default_factory=list)  # [{email, primary, verified}]
    name: str = ""


class FakeGitHubOAuth:
    client_id = "fake-client-id"
    client_secret = "fake-client-secret"

    def __init__(self) -> None:
        self.server = FakeHTTPServer()
        self.url = self.server.url
        self.person: GitHubPerson | None = None
        self.codes: dict[str, GitHubPerson] = {}
        self.tokens: dict[str, GitHubPerson] = {}
        self.token_requests: list[dict[str, list[str]]] = []
        self._bodies = threading.local()
        self._read_bodies()
        self.server.route("GET", "/login/oauth/authorize", self._authorize)
        self.server.route("POST", "/login/oauth/access_token", self._access_token)
        self.server.route("GET", "/api/v3/user", self._user)
        self.server.route("GET", "/api/v3/user/emails", self._emails)

    def __enter__(self) -> FakeGitHubOAuth:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    def sign_in(self, login: str, id: int, email: str = "", name: str = "") -> GitHubPerson:  # noqa: A002
        emails = [{"email": email, "primary": True, "verified": True}] if email else []
        self.person = GitHubPerson(login=login, id=id, emails=emails, name=name)
        return self.person

    def adapter_urls(self) -> dict[str, str]:
        """The endpoints allauth's GitHub adapter derives from GITHUB_URL=<this server>."""
        api = f"{self.url}/api/v3"
        return {
            "web_url": self.url,
            "api_url": api,
            "access_token_url": f"{self.url}/login/oauth/access_token",
            "authorize_url": f"{self.url}/login/oauth/authorize",
            "profile_url": f"{api}/user",
            "emails_url": f"{api}/user/emails",
        }

    # --- the routes ------------------------------------------------------------------------

    def _read_bodies(self) -> None:
        """Requests of tests/fakes/http.py carry no body; the token exchange needs it."""
        handler = self.server._server.RequestHandlerClass
        bodies = self._bodies

        class _BodyHandler(handler):  # type: ignore[misc, valid-type]
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                bodies.value = self.rfile.read(length).decode() if length else ""
                super().do_POST()

        self.server._server.RequestHandlerClass = _BodyHandler

    def _authorize(self, request: Request) -> Reply:
        query = {k: v[0] for k, v in parse_qs(request.query).items()}
        if self.person is None or query.get("client_id") != self.client_id:
            return Reply(400, "no GitHub user signed in, or an unknown client", {})
        code = secrets.token_hex(8)
        self.codes[code] = self.person
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return Reply(302, b"", {"Location": target})

    def _access_token(self, request: Request) -> Reply:
        form = parse_qs(getattr(self._bodies, "value", ""))
        self.token_requests.append(form)
        code = form.get("code", [""])[0]
        person = self.codes.pop(code, None)
        if person is None or form.get("client_secret", [""])[0] != self.client_secret:
            return Reply(200, {"error": "bad_verification_code"})
        token = secrets.token_hex(16)
        self.tokens[token] = person
        return Reply(200, {"access_token": token, "token_type": "bearer", "scope": "read:user"})

    def _person(self, request: Request) -> GitHubPerson | None:
        authorization = request.headers.get("Authorization", "")
        return self.tokens.get(authorization.removeprefix("token ").strip())

    def _user(self, request: Request) -> Reply:
        person = self._person(request)
        if person is None:
            return Reply(401, {"message": "Requires authentication"})
        primary = next((e["email"] for e in person.emails if e["primary"]), None)
        return Reply(
            200,
            {
                "login": person.login,
                "id": person.id,
                "name": person.name or None,
                "email": primary,
                "html_url": f"https://github.com/{person.login}",
            },
        )

    def _emails(self, request: Request) -> Reply:
        person = self._person(request)
        if person is None:
            return Reply(401, {"message": "Requires authentication"})
        return Reply(200, json.loads(json.dumps(person.emails)))
