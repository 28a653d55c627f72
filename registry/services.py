"""Every write to the registry. The upper apps push their public summaries in through here."""

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db import transaction

from registry.landscape import ParsedLandscape
from registry.models import Category, Project
from registry.repository_urls import Repository

REVIEW_INTERVAL = timedelta(days=182)


def project_set_compat_summary(
    *, project: Project, works_with: list[str], breaks_with: list[str]
) -> None:
    """Record the PyTorch versions whose latest compatibility cell passed / failed."""
    works_with, breaks_with = sorted(set(works_with)), sorted(set(breaks_with))
    if project.works_with == works_with and project.breaks_with == breaks_with:
        return
    project.works_with, project.breaks_with = works_with, breaks_with
    project.save(update_fields=["works_with", "breaks_with", "updated_at"])
    _project_public_summary_changed(project=project)


def project_set_review_state(*, project: Project, review_state: str) -> None:
    """Record the state of the project's latest review (shown on badges and pages)."""
    if project.review_state == review_state:
        return
    project.review_state = review_state
    project.save(update_fields=["review_state", "updated_at"])
    _project_public_summary_changed(project=project)


@transaction.atomic
def project_onboard(
    *,
    name: str,
    repository: Repository,
    category: Category | None,
    kind: str = Project.Kind.ECOSYSTEM,
    description: str = "",
    homepage_url: str = "",
    documentation_url: str = "",
    pypi_name: str = "",
    maintainers: list[str] | None = None,
    additional_repos: list[str] | None = None,
    accepted_on: date,
) -> Project:
    """Create the accepted project, or re-activate the one that already has this repository."""
    project = (
        Project.objects.select_for_update()
        .filter(repo_owner__iexact=repository.owner, repo_name__iexact=repository.name)
        .first()
    )
    if project is None:
        project = Project(
            slug=_unique_slug(name), repo_owner=repository.owner, repo_name=repository.name
        )
    project.name = name
    project.kind = kind
    project.status = Project.Status.ACTIVE
    project.category = category
    project.description = description
    project.homepage_url = homepage_url or repository.url
    project.documentation_url = documentation_url
    project.pypi_name = pypi_name
    project.maintainers = list(maintainers or [])
    project.additional_repos = list(additional_repos or [])
    project.accepted_on = accepted_on
    project.next_review_due = accepted_on + REVIEW_INTERVAL
    project.save()
    _project_public_summary_changed(project=project)
    return project


def project_schedule_next_review(*, project: Project, due: date) -> None:
    project.next_review_due = due
    project.save(update_fields=["next_review_due", "updated_at"])


def project_retire(*, project: Project) -> None:
    if project.status == Project.Status.RETIRED:
        return
    project.status = Project.Status.RETIRED
    project.save(update_fields=["status", "updated_at"])
    _project_public_summary_changed(project=project)


def _unique_slug(name: str) -> str:
    from django.utils.text import slugify

    base = slugify(name)[:100] or "project"
    slug, counter = base, 2
    while Project.objects.filter(slug=slug).exists():
        slug, counter = f"{base}-{counter}", counter + 1
    return slug


def _project_public_summary_changed(*, project: Project) -> None:
    """Hook for what caches the public summary (badges); called after each such write."""


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    flagged: list[tuple[str, str]] = field(default_factory=list)


@transaction.atomic
def landscape_import(*, parsed: ParsedLandscape) -> ImportReport:
    """Create or update categories and projects from a parsed landscape, all or nothing.

    Projects are matched by slug, so a second import of the same file changes nothing.
    Projects absent from the file (onboarded through a review, say) are left alone.
    """
    report = ImportReport(skipped=list(parsed.skipped))
    subcategories: dict[tuple[str, str], Category] = {}
    for position, (category_name, sub_names) in enumerate(parsed.categories, start=1):
        root = _category_upsert(name=category_name, parent=None, position=position)
        for sub_position, sub_name in enumerate(sub_names, start=1):
            subcategories[(category_name, sub_name)] = _category_upsert(
                name=sub_name, parent=root, position=sub_position
            )
    existing = {p.slug: p for p in Project.objects.select_for_update()}
    repo_owners = {
        (p.repo_owner.lower(), p.repo_name.lower()): p.slug
        for p in existing.values()
        if p.repo_owner
    }
    for item in parsed.items:
        project = existing.get(item.slug) or Project(slug=item.slug)
        flags = list(item.flags)
        owner = name = ""
        if item.repository:
            key = (item.repository.owner.lower(), item.repository.name.lower())
            holder = repo_owners.get(key)
            if holder and holder != item.slug:
                flags.append(
                    {
                        "code": "repo_url",
                        "message": f"repository {item.repository.url} already belongs to project "
                        f"{holder!r}; imported without a repository",
                    }
                )
            else:
                owner, name = item.repository.owner, item.repository.name
                repo_owners[key] = item.slug
        values = {
            "name": item.name,
            "kind": item.kind,
            "status": item.status,
            "category": subcategories[item.category],
            "description": item.description,
            "homepage_url": item.homepage_url,
            "logo": item.logo,
            "repo_owner": owner,
            "repo_name": name,
            "landscape_repo_url": item.raw_repo_url,
            "landscape_extra": item.extra,
            "flags": flags,
        }
        if item.accepted_on or project.pk is None:
            values["accepted_on"] = item.accepted_on
        if flags:
            report.flagged.append((item.name, "; ".join(f["message"] for f in flags)))
        if project.pk is None:
            for attribute, value in values.items():
                setattr(project, attribute, value)
            project.save()
            report.created.append(item.slug)
            continue
        changed = [a for a, v in values.items() if getattr(project, a) != v]
        if not changed:
            report.unchanged.append(item.slug)
            continue
        if (project.repo_owner, project.repo_name) != (owner, name):
            project.github_id = None  # a different repository: its GitHub id is unknown
            changed.append("github_id")
        for attribute in changed:
            setattr(project, attribute, values.get(attribute, getattr(project, attribute)))
        project.save(update_fields=[*changed, "updated_at"])
        if {"status"} & set(changed):
            _project_public_summary_changed(project=project)
        report.updated.append(item.slug)
    return report


def _category_upsert(*, name: str, parent: Category | None, position: int) -> Category:
    from django.utils.text import slugify

    category = Category.objects.filter(name=name, parent=parent).first()
    if category is None:
        base = slugify(f"{parent.name} {name}" if parent else name)[:130] or "category"
        slug, counter = base, 2
        while Category.objects.filter(slug=slug).exists():
            slug, counter = f"{base}-{counter}", counter + 1
        return Category.objects.create(name=name, parent=parent, position=position, slug=slug)
    if category.position != position:
        category.position = position
        category.save(update_fields=["position"])
    return category
