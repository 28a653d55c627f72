"""The lean badge path: an ASGI app in front of Django that answers cached badges itself.

Badges are the hottest path of the service (every README view of every project). A cached
badge is answered without the Django request cycle; a miss, a Redis error, any other method or
path goes to the Django application, which renders the badge and stores it in Redis.

Two levels, one source of truth:
- Redis holds the rendered badges (`registry/badge_cache.py`: key layout, headers, ETag rules).
- Each worker keeps a local copy of the badges it served, ready-made ASGI messages. The copy
  is used only while the worker is subscribed to the invalidation channel: every
  `badge_cache_drop` publishes the slug there and the worker forgets that project at once.
  When the subscription drops, the worker forgets everything and reads Redis until it is back.
  A generation counter keeps a Redis read that raced with a drop out of the local copy, and
  LOCAL_MAX_AGE_S bounds any copy's life whatever happens.
"""

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass

from django.conf import settings
from redis import asyncio as redis_asyncio
from redis.exceptions import RedisError

from registry import badge_cache, badges

logger = logging.getLogger(__name__)

_SLUG = rf"[-a-zA-Z0-9_]{{1,{badge_cache.MAX_SLUG_LENGTH}}}"
_KIND = "|".join(badges.KINDS)
_FORMAT = "|".join(badges.FORMATS)
BADGE_PATH = re.compile(rf"^/badges/(?P<slug>{_SLUG})/(?P<kind>{_KIND})\.(?P<fmt>{_FORMAT})$")
LOCAL_MAX_AGE_S = 60.0
LOCAL_MAX_ENTRIES = 20_000
RECONNECT_DELAY_S = 1.0


@dataclass(frozen=True)
class _Ready:
    """A cached badge as ready-made ASGI messages."""

    slug: str
    etag: str
    start_200: dict
    start_304: dict
    body: dict
    fetched_at: float


_EMPTY_BODY = {"type": "http.response.body", "body": b""}


def _encode_headers(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def _ready(slug: str, fmt: str, value: bytes, now: float) -> _Ready:
    rendered = badge_cache.unpack(value, fmt)
    headers = _encode_headers(badge_cache.response_headers(fmt, rendered.etag))
    not_modified = [h for h in headers if h[0] != b"content-type"]
    headers.append((b"content-length", str(len(rendered.body)).encode()))
    return _Ready(
        slug=slug,
        etag=rendered.etag,
        start_200={"type": "http.response.start", "status": 200, "headers": headers},
        start_304={"type": "http.response.start", "status": 304, "headers": not_modified},
        body={"type": "http.response.body", "body": rendered.body},
        fetched_at=now,
    )


def _cache_location() -> str:
    location = settings.CACHES["default"]["LOCATION"]
    if isinstance(location, list | tuple):
        location = location[0]
    return location.split(",")[0]


class BadgeFastPath:
    """ASGI middleware: `application = BadgeFastPath(get_asgi_application())`."""

    def __init__(self, app, *, redis_url: str | None = None, key_prefix: str | None = None):
        self.app = app
        self.redis_url = redis_url or _cache_location()
        self.key_prefix = key_prefix or badge_cache.badge_key_prefix()
        self.channel = badge_cache.invalidation_channel(self.key_prefix)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: redis_asyncio.Redis | None = None
        self._listener: asyncio.Task | None = None
        self._local: dict[str, _Ready] = {}
        self._generation = 0
        self.subscribed = asyncio.Event()

    # -- per event loop state (a worker has one loop; tests may run several in turn) ---------

    def _ensure_loop_state(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop = loop
        self._client = redis_asyncio.Redis.from_url(
            self.redis_url, socket_connect_timeout=0.5, socket_timeout=0.5
        )
        self._local.clear()
        self._generation += 1
        self.subscribed = asyncio.Event()
        self._listener = loop.create_task(self._listen())

    async def _listen(self) -> None:
        """Hold the invalidation subscription; the local copy is trusted only while it holds."""
        while True:
            client = redis_asyncio.Redis.from_url(self.redis_url, socket_connect_timeout=0.5)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        self._forget_all()  # whatever was read before now may be stale
                        self.subscribed.set()
                    elif message["type"] == "message":
                        self._forget(message["data"].decode("utf-8", "replace"))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                # The client may turn a cancellation into a connection error: honour it.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from None
                logger.warning("Badge invalidation channel lost; reading Redis until it is back.")
            finally:
                self.subscribed.clear()
                self._forget_all()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                    await client.aclose()
            await asyncio.sleep(RECONNECT_DELAY_S)

    def _forget(self, slug: str) -> None:
        self._generation += 1
        for path in [path for path, ready in self._local.items() if ready.slug == slug]:
            del self._local[path]

    def _forget_all(self) -> None:
        self._generation += 1
        self._local.clear()

    # -- requests ---------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        scope_type = scope["type"]
        if scope_type == "http" and scope["method"] in ("GET", "HEAD"):
            if self._loop is not asyncio.get_running_loop():
                self._ensure_loop_state()
            path = scope["path"]
            ready = self._local.get(path)
            if ready is not None and time.monotonic() - ready.fetched_at > LOCAL_MAX_AGE_S:
                del self._local[path]
                ready = None
            if ready is None:
                match = BADGE_PATH.match(path)
                if match is not None:
                    ready = await self._from_redis(path, **match.groupdict())
            if ready is not None:
                await self._send(ready, scope, send)
                return
        elif scope_type == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.app(scope, receive, send)

    async def _from_redis(self, path: str, *, slug: str, kind: str, fmt: str) -> _Ready | None:
        generation = self._generation
        key = badge_cache.badge_cache_key(self.key_prefix, slug, kind, fmt)
        try:
            value = await self._client.get(key)
        except (RedisError, OSError):
            logger.warning("Badge cache unreachable; handing the request to Django.")
            return None
        if value is None:
            return None
        ready = _ready(slug, fmt, value, time.monotonic())
        # Keep it only if no drop was announced while the GET was in flight.
        if self.subscribed.is_set() and generation == self._generation:
            if len(self._local) >= LOCAL_MAX_ENTRIES:
                self._local.pop(next(iter(self._local)))
            self._local[path] = ready
        return ready

    @staticmethod
    async def _send(ready: _Ready, scope, send) -> None:
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if badge_cache.etag_matches(value.decode("latin-1"), ready.etag):
                    await send(ready.start_304)
                    await send(_EMPTY_BODY)
                    return
                break
        await send(ready.start_200)
        await send(_EMPTY_BODY if scope["method"] == "HEAD" else ready.body)

    async def _lifespan(self, receive, send) -> None:
        # Django's ASGI handler speaks only HTTP; the lifespan protocol is answered here.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._ensure_loop_state()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.wait({self._listener}, timeout=2)
            self._listener = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._loop = None
        self._local.clear()
