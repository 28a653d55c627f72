"""Every write to the registry. The upper apps push their public summaries in through here."""

from datetime import date, timedelta

from django.db import transaction

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
