"""A small local HTTP server that tests teach to speak an external API (GitHub, PyPI).

The real client code (PyGithub, requests) talks to it over a real socket; each test sets the
routes it needs and reads back the requests that were made.
"""

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int = 200
    body: object = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]


Handler = Callable[[Request], Reply]


class FakeHTTPServer:
    """Routes are (method, path) -> Reply or a callable(Request) -> Reply."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Reply | Handler] = {}
        self.requests: list[Request] = []
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                split = urlsplit(self.path)
                request = Request(self.command, split.path, split.query, dict(self.headers))
                fake.requests.append(request)
                route = fake.routes.get((self.command, split.path))
                if route is None:
                    reply = Reply(404, {"message": "Not Found"})
                else:
                    reply = route(request) if callable(route) else route
                body = reply.body
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json; charset=utf-8", **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_HEAD = do_PATCH = _serve  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll interval makes shutdown() (each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def route(self, method: str, path: str, reply: Reply | Handler) -> None:
        self.routes[(method, path)] = reply

    def __enter__(self) -> "FakeHTTPServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
