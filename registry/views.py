"""Public pages: the landscape and a project page; and the projects' logo files."""

from urllib.parse import urlencode

from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from django.views.decorators.gzip import gzip_page

from registry import selectors
from registry.declared import project_compatibility
from registry.listing import user_manages
from registry.models import Logo, Project


# Pages and logos are compressed here (text shrinks 3 to 7 times); Django's gzip adds random
# padding to each response, so the CSRF token in a page gives nothing away (BREACH).
@gzip_page
def landscape(request: HttpRequest) -> HttpResponse:
    filters = selectors.LandscapeFilters(
        query=request.GET.get("q", "").strip()[:100],
        kind=request.GET.get("kind", ""),
        status=request.GET.get("status", ""),
        category=request.GET.get("category", "")[:140],
        breaks_latest=request.GET.get("breaks") == "latest",
    )
    query = {
        "q": filters.query,
        "kind": filters.kind,
        "status": filters.status,
        "category": filters.category,
        "breaks": "latest" if filters.breaks_latest else "",
    }
    context = {
        "filters": filters,
        "landscape": selectors.landscape(filters=filters, page_number=request.GET.get("page")),
        "query_string": urlencode({name: value for name, value in query.items() if value}),
        "kinds": Project.Kind.choices,
        "statuses": Project.Status.choices,
    }
    context["page"] = context["landscape"].page
    if request.htmx:
        return render(request, "registry/_project_list.html", context)
    return render(request, "registry/landscape.html", context)


@gzip_page
def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        project = selectors.project_for_page(slug=slug)
    except Project.DoesNotExist:
        raise Http404("No project with this name.") from None
    snapshot = project.latest_snapshots[0] if project.latest_snapshots else None
    context = {
        "project": project,
        "snapshot": snapshot,
        "history": selectors.project_health_history(project=project),
        "compatibility": project_compatibility(project=project),
        # One query for a signed-in user, none for a visitor: the "Manage listing" link.
        "manages": user_manages(user=request.user, project=project),
    }
    return render(request, "registry/project_detail.html", context)


# A logo is third-party content (SVG can hold scripts): served only as an image, in a sandbox
# with nothing allowed but its own inline styles, never sniffed as anything else. Its URL holds
# the SHA-256 of the file, so a browser may keep it for good.
LOGO_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "public, max-age=31536000, immutable",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


@gzip_page
def logo(request: HttpRequest, sha256: str, rendering: str = "") -> HttpResponse:
    """The logo file as imported, or (`rendering="card"`) our PNG rendering when there is one."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    etag = f'"{sha256}{"-" + rendering if rendering else ""}"'
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponse(status=304)
    else:
        logos = Logo.objects.filter(pk=sha256)
        if rendering == "card":
            logos = logos.annotate(
                body=Coalesce("card_png", "data"),
                body_type=Case(
                    When(card_png__isnull=False, then=Value(Logo.ContentType.PNG)),
                    default=F("content_type"),
                ),
            )
        else:
            logos = logos.annotate(body=F("data"), body_type=F("content_type"))
        row = logos.values_list("body_type", "body").first()
        if row is None:
            raise Http404("No logo with this address.")
        response = HttpResponse(bytes(row[1]), content_type=row[0])
    response["ETag"] = etag
    for name, value in LOGO_HEADERS.items():
        response[name] = value
    return response
