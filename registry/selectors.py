"""Reads of the registry that span relations (landscape listing, project page)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from registry.badges import version_sort_key
from registry.models import Category, MaintainerIdentity, Project, RepoSnapshot
from registry.querysets import ProjectQuerySet

LANDSCAPE_PAGE_SIZE = 200  # the whole real landscape (143 projects) on one page


@dataclass(frozen=True)
class LandscapeFilters:
    query: str = ""
    kind: str = ""
    status: str = ""  # "" = active only; "all" = active and retired; or one status
    category: str = ""  # slug of a category or subcategory
    breaks_latest: bool = False  # only projects whose latest cell on the latest PyTorch failed


@dataclass(frozen=True)
class LandscapeGroup:
    """A category (or subcategory) of the landscape: its projects in view on this page, and how
    many match the filters in all."""

    name: str
    slug: str
    count: int
    projects: list[Project] = field(default_factory=list)
    subgroups: list[LandscapeGroup] = field(default_factory=list)


@dataclass(frozen=True)
class CategoryChoice:
    category: Category | None
    count: int  # projects matching the filters other than the category


@dataclass(frozen=True)
class Landscape:
    page: Page
    groups: list[LandscapeGroup]
    categories: list[CategoryChoice]  # top-level categories, each followed by its subcategories
    latest_torch: str  # the newest PyTorch version any compatibility result names ("" if none)


def latest_torch_version() -> str:
    """The newest PyTorch version in any project's compatibility summary (one query; works on
    SQLite too, as `make run` uses it: no JSON set functions, no ordered compound queries)."""
    versions: set[str] = set()
    # Distinct triples: projects mostly share their lists, so few rows come back.
    summaries = (
        Project.objects.order_by()
        .values_list("works_with", "breaks_with", "not_installable_with")
        .distinct()
    )
    for lists in summaries.iterator(chunk_size=2000):
        for listed in lists:
            versions.update(str(version) for version in listed or ())
    return max(versions, key=version_sort_key, default="")


def landscape(*, filters: LandscapeFilters, page_number: Any = 1) -> Landscape:
    """The landscape page: projects in view grouped by category and subcategory, with counts.

    A fixed number of queries whatever the number of projects: the latest PyTorch version, the
    categories, the counts per subcategory, and the page of projects with their latest snapshot.
    """
    latest = latest_torch_version()
    projects = _landscape_projects(filters=filters, latest_torch=latest)
    counts: dict[int | None, int] = dict(
        projects.order_by()
        .values_list("category_id")
        .annotate(n=Count("pk"))
        .values_list("category_id", "n")
    )
    categories = list(Category.objects.select_related("parent").order_by("position", "name"))
    if filters.category:
        projects = projects.filter(
            Q(category__slug=filters.category) | Q(category__parent__slug=filters.category)
        )
    # Categories made by hand may share a position: their ids keep each one's projects together.
    ordered = (
        projects.select_related("category__parent")
        .with_latest_snapshot()
        .order_by(
            Coalesce("category__parent__position", "category__position").asc(nulls_last=True),
            Coalesce("category__parent_id", "category_id").asc(nulls_last=True),
            "category__position",
            "category_id",
            Lower("name"),
            "pk",
        )
    )
    page = Paginator(ordered, LANDSCAPE_PAGE_SIZE).get_page(page_number)
    return Landscape(
        page=page,
        groups=_groups(
            projects=list(page.object_list),
            counts=counts,
            categories=categories,
            category_filter=filters.category,
        ),
        categories=_category_choices(categories=categories, counts=counts),
        latest_torch=latest,
    )


def _landscape_projects(*, filters: LandscapeFilters, latest_torch: str) -> ProjectQuerySet:
    projects = Project.objects.listed(status=filters.status, kind=filters.kind)
    if filters.breaks_latest:
        # Not installable with it is not working with it too (errored cells say nothing).
        projects = (
            projects.filter(
                Q(breaks_with__contains=[latest_torch])
                | Q(not_installable_with__contains=[latest_torch])
            )
            if latest_torch
            else projects.none()
        )
    if filters.query:
        query = filters.query[:100]
        projects = projects.filter(
            Q(name__icontains=query)
            | Q(description__icontains=query)
            | Q(repo_owner__icontains=query)
            | Q(repo_name__icontains=query)
        )
    return projects


def _groups(
    *,
    projects: list[Project],
    counts: dict[int | None, int],
    categories: list[Category],
    category_filter: str,
) -> list[LandscapeGroup]:
    """The page's projects (ordered by category) as groups of subgroups."""

    def in_view(category: Category) -> bool:
        parent = category.parent
        return not category_filter or category_filter in (
            category.slug,
            parent.slug if parent else None,
        )

    def total(root: Category) -> int:
        own = counts.get(root.pk, 0) if in_view(root) else 0
        return own + sum(
            counts.get(c.pk, 0) for c in categories if c.parent_id == root.pk and in_view(c)
        )

    groups: list[LandscapeGroup] = []
    for project in projects:
        category = project.category
        root = category.parent if category and category.parent else category
        if not groups or groups[-1].slug != (root.slug if root else ""):
            groups.append(
                LandscapeGroup(
                    name=root.name if root else "Uncategorised",
                    slug=root.slug if root else "",
                    count=total(root) if root else counts.get(None, 0),
                )
            )
        group = groups[-1]
        sub_slug = category.slug if category else ""
        if not group.subgroups or group.subgroups[-1].slug != sub_slug:
            group.subgroups.append(
                LandscapeGroup(
                    name=category.name if category else "Uncategorised",
                    slug=sub_slug,
                    count=counts.get(category.pk if category else None, 0),
                )
            )
        group.subgroups[-1].projects.append(project)
    return groups


def _category_choices(
    *, categories: list[Category], counts: dict[int | None, int]
) -> list[CategoryChoice]:
    choices = []
    for root in (c for c in categories if c.parent_id is None):
        children = [c for c in categories if c.parent_id == root.pk]
        choices.append(
            CategoryChoice(
                category=root,
                count=counts.get(root.pk, 0) + sum(counts.get(c.pk, 0) for c in children),
            )
        )
        choices += [CategoryChoice(category=c, count=counts.get(c.pk, 0)) for c in children]
    return choices


def project_for_page(*, slug: str) -> Project:
    return Project.objects.select_related("category__parent").with_latest_snapshot().get(slug=slug)


HEALTH_HISTORY_DAYS = 365
HEALTH_HISTORY_MAX_SNAPSHOTS = 5000


@dataclass(frozen=True)
class HealthPoint:
    taken_at: datetime
    stars: int
    commits_90d: int | None
    contributors_90d: int | None


@dataclass(frozen=True)
class Release:
    name: str
    published_at: datetime | None


@dataclass(frozen=True)
class HealthHistory:
    """A project's repository health over the last HEALTH_HISTORY_DAYS: one point per day (the
    day's last snapshot) and the releases seen in that time, oldest first."""

    start: datetime
    end: datetime
    points: list[HealthPoint]
    releases: list[Release]


def project_health_history(*, project: Project) -> HealthHistory:
    """One query, bounded whatever the number of snapshots."""
    end = timezone.now()
    start = end - timedelta(days=HEALTH_HISTORY_DAYS)
    rows = (
        RepoSnapshot.objects.filter(project=project, taken_at__gte=start)
        .order_by("-taken_at")
        .values_list(
            "taken_at",
            "stars",
            "commits_90d",
            "contributors_90d",
            "latest_release",
            "latest_release_at",
        )[:HEALTH_HISTORY_MAX_SNAPSHOTS]
    )
    by_day: dict[object, HealthPoint] = {}
    releases: dict[str, Release] = {}
    for taken_at, stars, commits, contributors, release, released_at in rows:
        by_day.setdefault(taken_at.date(), HealthPoint(taken_at, stars, commits, contributors))
        if release and release not in releases:
            releases[release] = Release(release, released_at)
    points = sorted(by_day.values(), key=lambda point: point.taken_at)
    ordered_releases = sorted(
        releases.values(), key=lambda r: (r.published_at is None, r.published_at or end, r.name)
    )
    return HealthHistory(start=start, end=end, points=points, releases=ordered_releases)


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
