"""Rendered badges in Redis (the default cache's server), shared by the Django view and the lean
ASGI path (`registry/badge_asgi.py`), and dropped when a project's public summary changes.

A cached badge is stored as raw bytes, `<etag>\\n<body>`, under `<cache prefix>:badge:<slug>:
<kind>.<format>`, so the ASGI path can answer with one Redis GET and no unpickling. A miss reads
the project in one query and fills all its badges at once. A drop deletes the keys and
announces the slug on a pub/sub channel, so the ASGI workers forget their local copies too.
"""

import logging

from django.core.cache import caches
from django.db import transaction
from redis.exceptions import RedisError

from registry import badges
from registry.models import Project

logger = logging.getLogger(__name__)

# Known projects: dropped on every change through the registry services; the TTL only bounds
# how long a change made around the services (a raw admin edit) can stay invisible.
KNOWN_TTL_S = 3600
# Unknown slugs: short, so random slugs cannot pile up (and onboarding drops them anyway).
UNKNOWN_TTL_S = 300
MAX_SLUG_LENGTH = Project._meta.get_field("slug").max_length or 120

CACHE_CONTROL = f"max-age={badges.CACHE_SECONDS}, stale-while-revalidate=86400"
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'"
CONTENT_TYPES = {"svg": "image/svg+xml; charset=utf-8", "json": "application/json"}


def badge_key_prefix() -> str:
    return caches["default"].make_key("badge")


def invalidation_channel(prefix: str) -> str:
    """Pub/sub channel where each drop is announced (slug), for the ASGI workers' local copies."""
    return f"{prefix}:invalidate"


def badge_cache_key(prefix: str, slug: str, kind: str, fmt: str) -> str:
    return f"{prefix}:{slug}:{kind}.{fmt}"


def pack(rendered: badges.RenderedBadge) -> bytes:
    return rendered.etag.encode() + b"\n" + rendered.body


def unpack(value: bytes, fmt: str) -> badges.RenderedBadge:
    etag, _, body = value.partition(b"\n")
    return badges.RenderedBadge(body=body, content_type=CONTENT_TYPES[fmt], etag=etag.decode())


def response_headers(fmt: str, etag: str) -> list[tuple[str, str]]:
    """Headers of a badge response (200 and 304), the same on the Django and ASGI paths."""
    headers = [
        ("Content-Type", CONTENT_TYPES[fmt]),
        ("ETag", etag),
        ("Cache-Control", CACHE_CONTROL),
        ("X-Content-Type-Options", "nosniff"),
    ]
    if fmt == "svg":
        headers.append(("Content-Security-Policy", SVG_CSP))
    else:
        headers.append(("Access-Control-Allow-Origin", "*"))
    return headers


def etag_matches(if_none_match: str, etag: str) -> bool:
    """`If-None-Match` holds this ETag (weak comparison, as RFC 9110 asks for this header)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def project_summary(*, slug: str) -> badges.ProjectSummary | None:
    row = (
        Project.objects.filter(slug=slug)
        .values_list(
            "kind",
            "status",
            "works_with",
            "breaks_with",
            "not_installable_with",
            "review_state",
            "accepted_on",
        )
        .first()
    )
    if row is None:
        return None
    kind, status, works_with, breaks_with, not_installable_with, review_state, accepted_on = row
    return badges.ProjectSummary(
        kind=kind,
        status=status,
        works_with=tuple(str(v) for v in works_with or ()),
        breaks_with=tuple(str(v) for v in breaks_with or ()),
        not_installable_with=tuple(str(v) for v in not_installable_with or ()),
        review_state=review_state or "",
        accepted_on=accepted_on.isoformat() if accepted_on else "",
    )


def badge_get(*, slug: str, kind: str, fmt: str) -> badges.RenderedBadge:
    """The rendered badge: from Redis, or rendered (one query) and stored with its siblings."""
    if len(slug) > MAX_SLUG_LENGTH:  # cannot be a project: answer without touching Redis
        return badges.render(badges.badge_for(kind, None), fmt)
    prefix = badge_key_prefix()
    try:
        cached = _redis().get(badge_cache_key(prefix, slug, kind, fmt))
    except RedisError:
        logger.warning("Badge cache unreachable; rendering without it.", exc_info=True)
        cached = None
    if cached is not None:
        return unpack(cached, fmt)
    summary = project_summary(slug=slug)
    rendered = {
        (each_kind, each_fmt): badges.render(badges.badge_for(each_kind, summary), each_fmt)
        for each_kind in badges.KINDS
        for each_fmt in badges.FORMATS
    }
    ttl = KNOWN_TTL_S if summary is not None else UNKNOWN_TTL_S
    try:
        pipe = _redis().pipeline(transaction=False)
        for (each_kind, each_fmt), each in rendered.items():
            pipe.set(badge_cache_key(prefix, slug, each_kind, each_fmt), pack(each), ex=ttl)
        pipe.execute()
    except RedisError:
        logger.warning("Badge cache unreachable; badge not stored.", exc_info=True)
    return rendered[(kind, fmt)]


def badge_cache_drop(*, slug: str) -> None:
    """Forget every cached badge of a project: now, and again once the transaction commits
    (so a request that read the old row before the commit cannot leave a stale badge behind)."""
    badge_cache_drop_many(slugs=[slug])


def badge_cache_drop_many(*, slugs: list[str]) -> None:
    """`badge_cache_drop` of several projects, in one Redis round trip each time."""
    if not slugs:
        return

    def drop() -> None:
        prefix = badge_key_prefix()
        try:
            pipe = _redis().pipeline(transaction=False)
            for slug in slugs:
                pipe.delete(
                    *[
                        badge_cache_key(prefix, slug, kind, fmt)
                        for kind in badges.KINDS
                        for fmt in badges.FORMATS
                    ]
                )
                pipe.publish(invalidation_channel(prefix), slug)
            pipe.execute()
        except RedisError:
            logger.exception("Could not drop the cached badges of %s.", ", ".join(slugs))

    drop()
    transaction.on_commit(drop)
