"""Reads of the registry that span relations (landscape listing, project page)."""

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from registry.models import Category, MaintainerIdentity, Project


@dataclass(frozen=True)
class LandscapeFilters:
    query: str = ""
    kind: str = ""
    status: str = ""  # "" = active only; "all" = active and retired; or one status
    category: str = ""  # slug of a category or subcategory


def landscape_projects(*, filters: LandscapeFilters) -> QuerySet[Project]:
    projects = Project.objects.select_related("category__parent").with_latest_snapshot()
    if filters.status == "all":
        pass
    elif filters.status in Project.Status.values:
        projects = projects.filter(status=filters.status)
    else:
        projects = projects.filter(status=Project.Status.ACTIVE)
    if filters.kind in Project.Kind.values:
        projects = projects.filter(kind=filters.kind)
    if filters.category:
        projects = projects.filter(
            Q(category__slug=filters.category) | Q(category__parent__slug=filters.category)
        )
    if filters.query:
        query = filters.query[:100]
        projects = projects.filter(
            Q(name__icontains=query)
            | Q(description__icontains=query)
            | Q(repo_owner__icontains=query)
            | Q(repo_name__icontains=query)
        )
    return projects.order_by("name")


def landscape_categories(*, filters: LandscapeFilters) -> QuerySet[Category]:
    """Top-level categories with the count of projects in view under each (one query)."""
    status_q = Q()
    if filters.status in Project.Status.values:
        status_q = Q(children__projects__status=filters.status)
    elif filters.status != "all":
        status_q = Q(children__projects__status=Project.Status.ACTIVE)
    return (
        Category.objects.filter(parent__isnull=True)
        .annotate(project_count=Count("children__projects", filter=status_q))
        .order_by("position", "name")
    )


def project_for_page(*, slug: str) -> Project:
    return Project.objects.select_related("category__parent").with_latest_snapshot().get(slug=slug)


def user_github_handle(*, user) -> str:
    """The GitHub handle of a signed-in user ('' when unknown or not verified)."""
    if not getattr(user, "is_authenticated", False):
        return ""
    identity = MaintainerIdentity.objects.filter(user=user, verified=True).first()
    return identity.github_handle if identity else ""


def user_maintains(*, user, project: Project) -> bool:
    handle = user_github_handle(user=user).lower()
    return bool(handle) and handle in {m.lower() for m in project.maintainers}


def projects_maintained_by(*, user) -> QuerySet[Project]:
    """Projects whose maintainers list holds the user's verified GitHub handle."""
    handle = user_github_handle(user=user).lower()
    if not handle:
        return Project.objects.none()
    # JSON text search narrows the rows in SQL; the exact, case-insensitive match is checked here.
    candidates = Project.objects.filter(maintainers__icontains=handle).only("pk", "maintainers")
    ids = [p.pk for p in candidates if handle in {m.lower() for m in p.maintainers}]
    return Project.objects.filter(pk__in=ids)
