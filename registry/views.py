"""Public pages: the landscape and a project page."""

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from registry import selectors
from registry.models import Project

PAGE_SIZE = 60


def landscape(request: HttpRequest) -> HttpResponse:
    filters = selectors.LandscapeFilters(
        query=request.GET.get("q", "").strip(),
        kind=request.GET.get("kind", ""),
        status=request.GET.get("status", ""),
        category=request.GET.get("category", ""),
    )
    projects = selectors.landscape_projects(filters=filters)
    page = Paginator(projects, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "filters": filters,
        "page": page,
        "categories": selectors.landscape_categories(filters=filters),
        "kinds": Project.Kind.choices,
        "statuses": Project.Status.choices,
    }
    if request.htmx:
        return render(request, "registry/_project_list.html", context)
    return render(request, "registry/landscape.html", context)


def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        project = selectors.project_for_page(slug=slug)
    except Project.DoesNotExist:
        raise Http404("No project with this name.") from None
    snapshot = project.latest_snapshots[0] if project.latest_snapshots else None
    return render(
        request, "registry/project_detail.html", {"project": project, "snapshot": snapshot}
    )
