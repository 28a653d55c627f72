"""The web process as the Procfile runs it bounds what a client can make it hold: request
headers past a limit are refused while being read, and forwarded headers are trusted only from
the proxy's address, never from anyone."""

from __future__ import annotations

import shlex
import socket

import pytest
import requests

from tests.test_deployment import compose, procfile
from tests.uvicorn_server import session_database_url, uvicorn_serving

SERVER_CHOSEN = {"--host", "--port", "--workers"}  # set per test run


def web_options() -> list[str]:
    """The uvicorn options of the Procfile's `web` line, less host, port and workers."""
    words = shlex.split(procfile()["web"])
    options = words[words.index("config.asgi:application") + 1 :]
    kept, skip = [], False
    for word in options:
        if skip:
            skip = False
        elif word in SERVER_CHOSEN:
            skip = True
        else:
            kept.append(word)
    return kept


def status_of_raw_request(base: str, header_bytes: int) -> int | None:
    """Send a GET with one header of `header_bytes`; the status, or None if the server hung up."""
    host, port = base.removeprefix("http://").split(":")
    request = (
        f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Big: {'a' * header_bytes}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            sock.sendall(request)
            reply = sock.recv(64)
        except (BrokenPipeError, ConnectionResetError):
            return None
    return int(reply.split()[1]) if reply.startswith(b"HTTP/1.1") else None


@pytest.fixture
def procfile_web(transactional_db):
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": session_database_url()}
    with uvicorn_serving(env=env, warmup_path="/healthz", options=web_options()) as base:
        yield base


def test_a_huge_request_header_is_refused_while_it_is_read(procfile_web):
    assert requests.get(procfile_web + "/healthz", timeout=10).status_code == 200
    assert status_of_raw_request(procfile_web, 8 * 1024) == 200

    assert status_of_raw_request(procfile_web, 4 * 1024 * 1024) in (None, 400, 431)


def test_forwarded_headers_are_trusted_only_from_the_proxy():
    web = compose()["services"]["web"]
    trusted = str(web["environment"].get("FORWARDED_ALLOW_IPS", "127.0.0.1"))

    assert "*" not in trusted
