"""Badge endpoints on the Django side: `/badges/<slug>/<kind>.svg|json`.

In production the lean ASGI path (`registry/badge_asgi.py`) answers cached badges before a
request reaches Django; this view renders the misses (and serves everything under WSGI).
"""

from html import escape

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from django.urls import path, register_converter, reverse

from registry import badge_cache, badges
from registry.models import Project
from registry.throttling import FixedWindowRateThrottle


class BadgeRateThrottle(FixedWindowRateThrottle):
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


BADGE_TITLES = {
    "ecosystem": "Ecosystem membership (active, hosted or retired)",
    "compat": "PyTorch versions our compatibility runs pass",
    "review": "State of the project's TAC review",
}


def badge_snippets(request: HttpRequest, slug: str) -> HttpResponse:
    """Project page fragment: each badge with Markdown, reStructuredText and HTML snippets."""
    project = Project.objects.filter(slug=slug).only("slug", "name").first()
    if project is None:
        raise Http404("No project with this name.")
    page_url = request.build_absolute_uri(project.get_absolute_url())
    entries = []
    for kind in badges.KINDS:
        svg_url = request.build_absolute_uri(
            reverse("badges:badge", kwargs={"slug": slug, "kind": kind, "fmt": "svg"})
        )
        alt = f"{project.name}: {badges.badge_for(kind, None).label}"
        entries.append(
            {
                "kind": kind,
                "title": BADGE_TITLES[kind],
                "svg_url": svg_url,
                "alt": alt,
                "snippets": [
                    {
                        "format": "md",
                        "label": "Markdown",
                        "rows": 1,
                        "text": f"[![{_markdown_text(alt)}]({svg_url})]({page_url})",
                    },
                    {
                        "format": "rst",
                        "label": "reStructuredText",
                        "rows": 3,
                        "text": f".. image:: {svg_url}\n   :target: {page_url}\n"
                        f"   :alt: {' '.join(alt.split())}",
                    },
                    {
                        "format": "html",
                        "label": "HTML",
                        "rows": 1,
                        "text": f'<a href="{escape(page_url)}"><img src="{escape(svg_url)}" '
                        f'alt="{escape(alt)}"></a>',
                    },
                ],
            }
        )
    shields_json_url = request.build_absolute_uri(
        reverse("badges:badge", kwargs={"slug": slug, "kind": "compat", "fmt": "json"})
    )
    return render(
        request,
        "registry/_badge_snippets.html",
        {"project": project, "badges": entries, "shields_json_url": shields_json_url},
    )


def _markdown_text(text: str) -> str:
    return "".join("\\" + c if c in "[]\\" else c for c in " ".join(text.split()))


app_name = "badges"
urlpatterns = [
    path("<slug:slug>/<badge_kind:kind>.<badge_format:fmt>", badge, name="badge"),
    path("<slug:slug>/snippets/", badge_snippets, name="snippets"),
]
