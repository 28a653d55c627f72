"""Badge endpoints on the Django side: `/badges/<slug>/<kind>.svg|json`.

In production the lean ASGI path (`registry/badge_asgi.py`) answers cached badges before a
request reaches Django; this view renders the misses (and serves everything under WSGI).
"""

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import path, register_converter
from rest_framework.throttling import SimpleRateThrottle

from registry import badge_cache, badges


class BadgeRateThrottle(SimpleRateThrottle):
    """Per client address, on the requests that reach Django (cache misses): the `badge` scope.

    Keep the rate high: image proxies (GitHub's camo) fetch every README's badges from a few
    addresses.
    """

    scope = "badge"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class _KindConverter:
    regex = "|".join(badges.KINDS)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class _FormatConverter(_KindConverter):
    regex = "|".join(badges.FORMATS)


register_converter(_KindConverter, "badge_kind")
register_converter(_FormatConverter, "badge_format")


def badge(request: HttpRequest, slug: str, kind: str, fmt: str) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    throttle = BadgeRateThrottle()
    if not throttle.allow_request(request, None):
        response = HttpResponse("Too many badge requests.", status=429, content_type="text/plain")
        response["Retry-After"] = str(int(throttle.wait() or 1))
        return response
    rendered = badge_cache.badge_get(slug=slug, kind=kind, fmt=fmt)
    if badge_cache.etag_matches(request.headers.get("If-None-Match", ""), rendered.etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(rendered.body)
    for name, value in badge_cache.response_headers(fmt, rendered.etag):
        response[name] = value
    if response.status_code == 304:
        del response["Content-Type"]
    return response


app_name = "badges"
urlpatterns = [
    path("<slug:slug>/<badge_kind:kind>.<badge_format:fmt>", badge, name="badge"),
]
