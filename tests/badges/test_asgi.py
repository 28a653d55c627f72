"""The lean ASGI badge path: cached badges answered from Redis without Django, everything else
handed to Django; and the real thing (config.asgi under uvicorn) on a free port."""

import asyncio
import time

import pytest
import requests
from django.conf import settings
from django_redis import get_redis_connection

from registry import badge_cache, services
from registry.badge_asgi import BadgeFastPath
from tests.registry.factories import ProjectFactory
from tests.uvicorn_server import session_database_url, uvicorn_serving


class RecordingApp:
    """Stands in for Django's handler and says when a request reached it."""

    def __init__(self):
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send):
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"django"})


def call(app, path: str, *, method: str = "GET", headers: dict | None = None):
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    messages: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    async def one_request():
        try:
            await app(scope, receive, send)
        finally:
            await app.close()

    asyncio.run(one_request())
    start = messages[0]
    body = b"".join(m.get("body", b"") for m in messages[1:])
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


@pytest.mark.django_db
def test_cached_badge_is_served_without_django():
    ProjectFactory(slug="torchgeo", works_with=["2.14"])
    rendered = badge_cache.badge_get(slug="torchgeo", kind="compat", fmt="svg")  # fills Redis
    inner = RecordingApp()
    app = BadgeFastPath(inner)
    status, headers, body = call(app, "/badges/torchgeo/compat.svg")
    assert inner.paths == []
    assert status == 200 and body == rendered.body
    assert headers["etag"] == rendered.etag
    assert headers["cache-control"] == "max-age=300, stale-while-revalidate=86400"
    assert headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert headers["content-type"] == "image/svg+xml; charset=utf-8"
    assert headers["content-length"] == str(len(body))

    status, headers, body = call(
        app, "/badges/torchgeo/compat.svg", headers={"If-None-Match": rendered.etag}
    )
    assert (status, body, headers["etag"]) == (304, b"", rendered.etag)
    status, headers, body = call(app, "/badges/torchgeo/compat.svg", method="HEAD")
    assert (status, body) == (200, b"") and headers["content-length"] == str(len(rendered.body))
    status, headers, _ = call(app, "/badges/torchgeo/review.json")
    assert status == 200 and headers["content-type"] == "application/json"
    assert inner.paths == []


@pytest.mark.django_db
def test_misses_and_other_requests_go_to_django():
    project = ProjectFactory(slug="torchgeo")
    inner = RecordingApp()
    app = BadgeFastPath(inner)
    assert call(app, "/badges/torchgeo/compat.svg")[0] == 299  # not cached yet
    badge_cache.badge_get(slug="torchgeo", kind="compat", fmt="svg")
    assert call(app, "/badges/torchgeo/compat.svg")[0] == 200
    services.project_retire(project=project)  # invalidation reaches the fast path too
    assert call(app, "/badges/torchgeo/compat.svg")[0] == 299
    assert call(app, "/badges/torchgeo/compat.svg", method="POST")[0] == 299
    assert call(app, "/api/v1/projects/")[0] == 299
    assert call(app, "/badges/torchgeo/stars.svg")[0] == 299
    assert call(app, "/badges/torchgeo/compat.svg/extra")[0] == 299
    assert len(inner.paths) == 6


async def acall(app, path: str, *, method: str = "GET", headers: dict | None = None):
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    messages: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    await app(scope, receive, send)
    return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:])


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


@pytest.mark.django_db
def test_local_copy_follows_the_invalidation_channel():
    ProjectFactory(slug="torchgeo", works_with=["2.14"])
    ProjectFactory(slug="other")
    rendered = badge_cache.badge_get(slug="torchgeo", kind="compat", fmt="svg")
    badge_cache.badge_get(slug="other", kind="compat", fmt="svg")
    key = badge_cache.badge_cache_key(badge_cache.badge_key_prefix(), "torchgeo", "compat", "svg")
    inner = RecordingApp()
    app = BadgeFastPath(inner)

    async def scenario():
        assert (await acall(app, "/badges/torchgeo/compat.svg"))[0] == 200
        await asyncio.wait_for(app.subscribed.wait(), 5)
        assert await acall(app, "/badges/torchgeo/compat.svg") == (200, rendered.body)
        assert (await acall(app, "/badges/other/compat.svg"))[0] == 200
        # The local copy answers even with Redis emptied behind its back...
        get_redis_connection("default").delete(key)
        assert await acall(app, "/badges/torchgeo/compat.svg") == (200, rendered.body)
        # ...and is dropped as soon as a drop is announced, for that project only.
        await asyncio.to_thread(badge_cache.badge_cache_drop, slug="torchgeo")
        await wait_until(lambda: "/badges/torchgeo/compat.svg" not in app._local)
        assert "/badges/other/compat.svg" in app._local
        assert (await acall(app, "/badges/torchgeo/compat.svg"))[0] == 299
        # Losing the subscription forgets everything and stops trusting local copies.
        app._listener.cancel()
        await wait_until(lambda: not app.subscribed.is_set())
        assert app._local == {}
        await app.close()

    asyncio.run(scenario())
    assert inner.paths == ["/badges/torchgeo/compat.svg"]


def test_redis_down_falls_back_to_django():
    inner = RecordingApp()
    app = BadgeFastPath(inner, redis_url="redis://127.0.0.1:1/0", key_prefix="x:1:badge")
    assert call(app, "/badges/torchgeo/compat.svg")[0] == 299


def test_lifespan_is_answered():
    app = BadgeFastPath(RecordingApp(), key_prefix="x:1:badge")
    sent: list[str] = []
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive():
        return next(incoming)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.fixture
def uvicorn_server(transactional_db):
    """config.asgi:application under uvicorn, on the test database and the test cache."""
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": session_database_url(),
        "CACHE_URL": settings.CACHES["default"]["LOCATION"],
    }
    with uvicorn_serving(env=env, warmup_path="/badges/warmup/compat.json") as base:
        yield base


def test_config_asgi_under_uvicorn(uvicorn_server):
    project = ProjectFactory(slug="torchgeo", works_with=["2.13"])
    miss = requests.get(uvicorn_server + "/badges/torchgeo/compat.json", timeout=5)
    assert miss.status_code == 200 and miss.json()["message"] == "2.13"
    assert "X-Frame-Options" in miss.headers  # Django's middleware answered the miss
    hit = requests.get(uvicorn_server + "/badges/torchgeo/compat.json", timeout=5)
    assert hit.status_code == 200 and hit.content == miss.content
    assert "X-Frame-Options" not in hit.headers  # the lean path answered the hit
    assert hit.headers["ETag"] == miss.headers["ETag"]
    not_modified = requests.get(
        uvicorn_server + "/badges/torchgeo/compat.json",
        headers={"If-None-Match": hit.headers["ETag"]},
        timeout=5,
    )
    assert not_modified.status_code == 304
    services.project_set_compat_summary(project=project, works_with=["2.14"], breaks_with=[])
    # The drop reaches the server's workers through a pub/sub hop: wait for it (bounded).
    deadline = time.monotonic() + 10
    while True:
        fresh = requests.get(uvicorn_server + "/badges/torchgeo/compat.json", timeout=5)
        if fresh.json()["message"] == "2.14" or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert fresh.json()["message"] == "2.14"
    # Everything else is Django's.
    post = requests.post(uvicorn_server + "/badges/torchgeo/compat.json", timeout=5)
    assert post.status_code in (403, 405) and "X-Frame-Options" in post.headers
