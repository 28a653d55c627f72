"""Badge endpoints on the Django side: `/badges/<slug>/<kind>.svg|json` (the JSON is the
shields.io endpoint document, its schema's keys only), and the badge's own JSON,
`/badges/<slug>.json`: every badge of the project with its declared vs measured compatibility.

In production the lean ASGI path (`registry/badge_asgi.py`) answers cached badges before a
request reaches Django; this view renders the misses (and serves everything under WSGI).
"""

import json
from html import escape

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
)
from django.shortcuts import render
from django.urls import path, register_converter, reverse

from registry import badge_cache, badges
from registry.declared import project_compatibility
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


def _refused(request: HttpRequest) -> HttpResponse | None:
    """A 405 for a method other than GET/HEAD, a 429 past the `badge` rate; else None."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    throttle = BadgeRateThrottle()
    if not throttle.allow_request(request, None):
        response = HttpResponse("Too many badge requests.", status=429, content_type="text/plain")
        response["Retry-After"] = str(int(throttle.wait() or 1))
        return response
    return None


def _conditional(request: HttpRequest, body: bytes, fmt: str, etag: str) -> HttpResponse:
    """`body` with the badge headers, or a 304 when the client holds this ETag."""
    if badge_cache.etag_matches(request.headers.get("If-None-Match", ""), etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body)
    for name, value in badge_cache.response_headers(fmt, etag):
        response[name] = value
    if response.status_code == 304:
        del response["Content-Type"]
    return response


def badge(request: HttpRequest, slug: str, kind: str, fmt: str) -> HttpResponse:
    refused = _refused(request)
    if refused is not None:
        return refused
    rendered = badge_cache.badge_get(slug=slug, kind=kind, fmt=fmt)
    return _conditional(request, rendered.body, fmt, rendered.etag)


def badge_document(request: HttpRequest, slug: str) -> HttpResponse:
    """The badge's own JSON: each badge's label, message and colour (as the SVG and the
    shields.io document show them) with its URLs, and the project's declared vs measured
    `compatibility` (`registry.declared`): the fields the shields.io document may not carry.
    Not cached server-side (two small queries, behind the badge throttle); HTTP-cached and
    ETagged as the badges are. An unknown project is a 404."""
    refused = _refused(request)
    if refused is not None:
        return refused
    summary = badge_cache.project_summary(slug=slug)
    project = Project.objects.filter(slug=slug).first() if summary is not None else None
    if summary is None or project is None:
        return JsonResponse({"detail": "No project with this slug."}, status=404)
    entries = {}
    for kind in badges.KINDS:
        links = {
            fmt: request.build_absolute_uri(
                reverse("badges:badge", kwargs={"slug": slug, "kind": kind, "fmt": fmt})
            )
            for fmt in badges.FORMATS
        }
        entries[kind] = {**badges.badge_fields(badges.badge_for(kind, summary)), **links}
    document = {
        "project": project.slug,
        "url": request.build_absolute_uri(project.get_absolute_url()),
        "badges": entries,
        "compatibility": project_compatibility(project=project).to_dict(),
    }
    body = json.dumps(document, separators=(",", ":")).encode()
    return _conditional(request, body, "json", badges.etag_for(body))


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
    document_url = request.build_absolute_uri(reverse("badges:document", kwargs={"slug": slug}))
    return render(
        request,
        "registry/_badge_snippets.html",
        {
            "project": project,
            "badges": entries,
            "shields_json_url": shields_json_url,
            "document_url": document_url,
        },
    )


def _markdown_text(text: str) -> str:
    return "".join("\\" + c if c in "[]\\" else c for c in " ".join(text.split()))


app_name = "badges"
urlpatterns = [
    path("<slug:slug>/<badge_kind:kind>.<badge_format:fmt>", badge, name="badge"),
    path("<slug:slug>/snippets/", badge_snippets, name="snippets"),
    path("<slug:slug>.json", badge_document, name="document"),
]
