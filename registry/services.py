"""Every write to the registry. The upper apps push their public summaries in through here."""

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone
from packaging.utils import canonicalize_name

from registry.badges import HOSTED_SINCE
from registry.bulk import bulk_update
from registry.landscape import LandscapeItem, ParsedLandscape, ReviewDue, review_dates_plan
from registry.logos import LogoRefused, logo_card_png, logo_read
from registry.models import (
    Category,
    Logo,
    MaintainerIdentity,
    Project,
    ProjectExemption,
    RepoSnapshot,
)
from registry.repository_urls import OWNER_RE, REPO_RE, Repository
from registry.sources import github, pypi
from registry.sources.repo_config import RepoConfig, repo_config_parse
from registry.sources.repository_files import (
    codeowners_handles,
    maintainers_file_handles,
    pyproject_name,
    setup_cfg_name,
)

logger = logging.getLogger(__name__)

REVIEW_INTERVAL = timedelta(days=182)


@dataclass(frozen=True, kw_only=True)
class CompatSummary:
    """A project's public compatibility summary, as the runs push it: the PyTorch versions
    whose latest cell passed / failed / could not be installed (a compatibility fact: the
    project does not work with that torch), of those the ones its tests pass with beyond its
    declared range (`widenable_with`), and what its metadata declares (None: keep it)."""

    works_with: list[str]
    breaks_with: list[str]
    not_installable_with: list[str] = field(default_factory=list)
    declared: dict[str, str] | None = None
    widenable_with: list[str] = field(default_factory=list)


COMPAT_SUMMARY_FIELDS = ["works_with", "breaks_with", "not_installable_with", "widenable_with"]


def project_set_compat_summary(
    *,
    project: Project,
    works_with: list[str],
    breaks_with: list[str],
    not_installable_with: list[str] | None = None,
    declared: dict[str, str] | None = None,
    widenable_with: list[str] | None = None,
) -> None:
    """Record one project's compatibility summary (`CompatSummary`)."""
    summary = CompatSummary(
        works_with=works_with,
        breaks_with=breaks_with,
        not_installable_with=list(not_installable_with or ()),
        declared=declared,
        widenable_with=list(widenable_with or ()),
    )
    projects_set_compat_summaries(summaries=[(project, summary)])


def projects_set_compat_summaries(*, summaries: list[tuple[Project, CompatSummary]]) -> None:
    """Record projects' compatibility summaries: the changed ones written in one statement,
    their cached badges dropped together."""
    from registry.badge_cache import badge_cache_drop_many

    changed = []
    now = timezone.now()
    for project, summary in summaries:
        values: dict[str, object] = {
            name: sorted(set(getattr(summary, name))) for name in COMPAT_SUMMARY_FIELDS
        }
        values["declared"] = (
            project.declared if summary.declared is None else dict(summary.declared)
        )
        if all(getattr(project, name) == value for name, value in values.items()):
            continue
        for name, value in values.items():
            setattr(project, name, value)
        project.updated_at = now
        changed.append(project)
    bulk_update(changed, [*COMPAT_SUMMARY_FIELDS, "declared", "updated_at"])
    badge_cache_drop_many(slugs=[project.slug for project in changed])


def project_set_review_state(*, project: Project, review_state: str) -> None:
    """Record the state of the project's latest review (shown on badges and pages)."""
    if project.review_state == review_state:
        return
    project.review_state = review_state
    project.save(update_fields=["review_state", "updated_at"])
    project_public_summary_changed(project=project)


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
    project_public_summary_changed(project=project)
    return project


def project_schedule_next_review(*, project: Project, due: date) -> None:
    project.next_review_due = due
    project.save(update_fields=["next_review_due", "updated_at"])


def project_retire(*, project: Project) -> None:
    if project.status == Project.Status.RETIRED:
        return
    project.status = Project.Status.RETIRED
    project.save(update_fields=["status", "updated_at"])
    project_public_summary_changed(project=project)


def _unique_slug(name: str) -> str:
    from django.utils.text import slugify

    base = slugify(name)[:100] or "project"
    slug, counter = base, 2
    while Project.objects.filter(slug=slug).exists():
        slug, counter = f"{base}-{counter}", counter + 1
    return slug


def project_public_summary_changed(*, project: Project) -> None:
    """Drop what caches the project's public summary (badges), after any write that may change
    it: the services above, and edits made by staff in the admin."""
    from registry.badge_cache import badge_cache_drop

    badge_cache_drop(slug=project.slug)


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    flagged: list[tuple[str, str]] = field(default_factory=list)
    logos_stored: int = 0  # logo files new to the registry
    logos_rendered: int = 0  # ... of which rendered for the cards (the others show as they are)
    reviews_scheduled: int = 0  # active projects given a next periodic review date


@transaction.atomic
def landscape_import(
    *, parsed: ParsedLandscape, logo_directory: Path | None = None
) -> ImportReport:
    """Create or update categories and projects from a parsed landscape, all or nothing.

    Projects are matched by slug, so a second import of the same file changes nothing.
    Projects absent from the file (onboarded through a review, say) are left alone.
    With a `logo_directory`, each item's logo file is read from it, checked and stored (a file
    refused is flagged on its project); without one, the projects' logos are left as they are.
    Then the file's active projects whose next periodic review date is missing or past get one
    (`landscape_schedule_reviews`), and its hosted projects the review state "hosted since".
    """
    report = ImportReport(skipped=list(parsed.skipped))
    known_logos = set(Logo.objects.values_list("sha256", flat=True)) if logo_directory else set()
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
        _landscape_item_upsert(
            item=item,
            project=existing.get(item.slug) or Project(slug=item.slug),
            subcategories=subcategories,
            repo_owners=repo_owners,
            logo_directory=logo_directory,
            known_logos=known_logos,
            report=report,
        )
    slugs = [item.slug for item in parsed.items]
    report.reviews_scheduled = landscape_schedule_reviews(slugs=slugs)
    _landscape_hosted_review_states(slugs=slugs)
    return report


def _landscape_item_upsert(
    *,
    item: LandscapeItem,
    project: Project,
    subcategories: dict[tuple[str, str], Category],
    repo_owners: dict[tuple[str, str], str],
    logo_directory: Path | None,
    known_logos: set[str],
    report: ImportReport,
) -> None:
    """Create or update the project of one landscape item (`landscape_import`'s loop body)."""
    flags = list(item.flags)
    owner, name = _landscape_item_repository(item=item, repo_owners=repo_owners, flags=flags)
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
    if logo_directory is not None:
        values["logo_file_id"] = _logo_store(
            item=item, directory=logo_directory, known=known_logos, flags=flags, report=report
        )
    if item.accepted_on or project.pk is None:
        values["accepted_on"] = item.accepted_on
    if flags:
        report.flagged.append((item.name, "; ".join(f["message"] for f in flags)))
    if project.pk is None:
        for attribute, value in values.items():
            setattr(project, attribute, value)
        project.save()
        project_public_summary_changed(project=project)  # drops a cached "unknown" badge
        report.created.append(item.slug)
        return
    changed = [a for a, v in values.items() if getattr(project, a) != v]
    if not changed:
        report.unchanged.append(item.slug)
        return
    if (project.repo_owner, project.repo_name) != (owner, name):
        project.github_id = None  # a different repository: its GitHub id is unknown
        changed.append("github_id")
    for attribute in changed:
        setattr(project, attribute, values.get(attribute, getattr(project, attribute)))
    project.save(update_fields=[*changed, "updated_at"])
    if {"status", "kind", "accepted_on"} & set(changed):
        project_public_summary_changed(project=project)
    report.updated.append(item.slug)


def _landscape_item_repository(
    *, item: LandscapeItem, repo_owners: dict[tuple[str, str], str], flags: list[dict]
) -> tuple[str, str]:
    """The item's (owner, name), or ("", "") with a flag when another project has it."""
    if not item.repository:
        return "", ""
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
        return "", ""
    repo_owners[key] = item.slug
    return item.repository.owner, item.repository.name


def landscape_schedule_reviews(*, slugs: list[str], today: date | None = None) -> int:
    """Give the active projects among `slugs` whose next periodic review date is missing or
    past a date (`registry.landscape.review_dates_plan`, at most REVIEW_FIRST_MAX_PER_WEEK a
    week counting every active project's date); a date from today on is kept. Returns how many
    projects got a date."""
    today = today or timezone.localdate()
    wanted = set(slugs)
    active = list(Project.objects.active().only("pk", "slug", "accepted_on", "next_review_due"))
    plan = review_dates_plan(
        [
            ReviewDue(slug=p.slug, accepted_on=p.accepted_on, next_review_due=p.next_review_due)
            for p in active
            if p.slug in wanted
        ],
        today=today,
        max_per_week=settings.REVIEW_FIRST_MAX_PER_WEEK,
        booked=[
            p.next_review_due
            for p in active
            if p.slug not in wanted and p.next_review_due and p.next_review_due >= today
        ],
    )
    changed = []
    now = timezone.now()
    for project in active:
        if project.slug in plan:
            project.next_review_due = plan[project.slug]
            project.updated_at = now
            changed.append(project)
    bulk_update(changed, ["next_review_due", "updated_at"])
    return len(changed)


def _landscape_hosted_review_states(*, slugs: list[str]) -> None:
    """Active hosted projects with an acceptance date: review state "hosted since DATE", unless
    a review has set another state since."""
    hosted = Project.objects.active().filter(
        slug__in=slugs, kind=Project.Kind.HOSTED, accepted_on__isnull=False
    )
    for project in hosted:
        accepted = project.accepted_on
        set_by_a_review = project.review_state and not project.review_state.startswith(HOSTED_SINCE)
        if accepted is None or set_by_a_review:
            continue
        project_set_review_state(
            project=project, review_state=f"{HOSTED_SINCE}{accepted.isoformat()}"
        )


def _logo_store(
    *, item: LandscapeItem, directory: Path, known: set[str], flags: list, report: ImportReport
) -> str | None:
    """The id of the item's stored logo (stored now if new), or None with a flag saying why."""
    if not item.logo:
        return None
    try:
        logo = logo_read(directory=directory, name=item.logo)
    except LogoRefused as refused:
        flags.append({"code": "logo", "message": f"{refused}; imported without a logo"})
        return None
    if logo.sha256 not in known:
        card_png = logo_card_png(logo)
        Logo.objects.create(
            sha256=logo.sha256,
            content_type=logo.content_type,
            data=logo.data,
            card_png=card_png,
            source_name=logo.name,
        )
        known.add(logo.sha256)
        report.logos_stored += 1
        report.logos_rendered += card_png is not None
    return logo.sha256


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


# --- GitHub sync (registry/sources/github.py reads; these write) -----------------------------


class GitHubSyncResult(StrEnum):
    SYNCED = "synced"
    UNCHANGED = "unchanged"  # GitHub answered 304 to the stored ETag
    NOT_FOUND = "not_found"
    PRIVATE = "private"
    RENAMED = "renamed"
    RATE_LIMITED = "rate_limited"  # nothing written; retry after `retry_at`
    ERROR = "error"
    SKIPPED = "skipped"  # the project has no repository


@dataclass(frozen=True)
class SyncOutcome:
    result: GitHubSyncResult
    detail: str = ""
    snapshot: RepoSnapshot | None = None
    retry_at: datetime | None = None
    unreachable: bool = False  # no connection to the GitHub API at all
    health: github.RepositoryHealth | None = None  # the figures read (synced or renamed)


def project_sync_github(*, project: Project) -> SyncOutcome:
    """Read the project's repository health from GitHub and record it; never raises for GitHub.

    The network calls run outside any transaction; the writes then happen in one, on the
    locked project row. A rate limit writes nothing (the caller retries after `retry_at`).
    A changed repository (or one whose files were never read) then has its own files read:
    `project_sync_repository_files`.
    """
    outcome = _project_sync_health(project=project)
    health = outcome.health
    if health is not None:
        project_sync_repository_files(
            project=project, owner=health.owner, name=health.name, paths=health.paths
        )
    elif outcome.result == GitHubSyncResult.UNCHANGED and not project.repo_config.get("read_at"):
        project_sync_repository_files(project=project)
    return outcome


def _project_sync_health(*, project: Project) -> SyncOutcome:
    if not project.repo_owner:
        return SyncOutcome(GitHubSyncResult.SKIPPED, "The project has no repository.")
    latest = project.snapshots.order_by("-taken_at").first()
    use_etag = latest is not None and project.repo_state in {
        Project.RepoState.OK,
        Project.RepoState.RENAMED,
    }
    try:
        fetched = github.fetch_repository_health(
            owner=project.repo_owner,
            name=project.repo_name,
            etag=latest.etag if use_etag and latest else "",
        )
    except github.RepositoryMoved as moved:
        return _project_record_moved(project=project, moved=moved)
    except github.RepositoryNotFound as error:
        return _project_record_repo_problem(
            project=project,
            result=GitHubSyncResult.NOT_FOUND,
            state=Project.RepoState.NOT_FOUND,
            detail=str(error),
        )
    except github.RepositoryPrivate as error:
        return _project_record_repo_problem(
            project=project,
            result=GitHubSyncResult.PRIVATE,
            state=Project.RepoState.PRIVATE,
            detail=str(error),
        )
    except github.RateLimited as error:
        return SyncOutcome(GitHubSyncResult.RATE_LIMITED, str(error), retry_at=error.reset_at)
    except github.GitHubUnavailable as error:
        outcome = _project_record_repo_problem(
            project=project,
            result=GitHubSyncResult.ERROR,
            state=Project.RepoState.ERROR,
            detail=error.message,
        )
        return SyncOutcome(outcome.result, outcome.detail, unreachable=error.unreachable)
    if isinstance(fetched, github.NotModified):
        return _project_record_unchanged(project=project, snapshot=latest)
    return _project_record_health(project=project, health=fetched)


def _project_record_unchanged(*, project: Project, snapshot: RepoSnapshot | None) -> SyncOutcome:
    now = timezone.now()
    with transaction.atomic():
        if snapshot is not None:
            RepoSnapshot.objects.filter(pk=snapshot.pk).update(checked_at=now)
            snapshot.checked_at = now
        Project.objects.filter(pk=project.pk).update(github_checked_at=now)
        project.github_checked_at = now
    return SyncOutcome(GitHubSyncResult.UNCHANGED, "Repository unchanged (304).", snapshot)


def _project_record_repo_problem(
    *,
    project: Project,
    result: GitHubSyncResult,
    state: str,
    detail: str,
    new_repository: tuple[str, str] | None = None,
) -> SyncOutcome:
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if new_repository is not None:
            locked.repo_owner, locked.repo_name = new_repository
        locked.repo_state = state
        locked.repo_state_detail = detail[:300]
        locked.github_checked_at = timezone.now()
        locked.save(
            update_fields=[
                "repo_owner",
                "repo_name",
                "repo_state",
                "repo_state_detail",
                "github_checked_at",
                "updated_at",
            ]
        )
    _copy_sync_fields(source=locked, target=project)
    return SyncOutcome(result, detail)


def _project_record_health(
    *,
    project: Project,
    health: github.RepositoryHealth,
    state: str = "",
    detail: str = "",
    new_repository: tuple[str, str] | None = None,
) -> SyncOutcome:
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if new_repository is not None:
            locked.repo_owner, locked.repo_name = new_repository
        notes = [detail] if detail else []
        if locked.github_id != health.github_id:
            holder = (
                Project.objects.filter(github_id=health.github_id).exclude(pk=locked.pk).first()
            )
            if holder is not None:
                notes.append(
                    f"GitHub repository id {health.github_id} already belongs to project "
                    f"{holder.slug!r}."
                )
            else:
                if locked.github_id is not None:
                    notes.append(
                        f"GitHub repository id changed from {locked.github_id} to "
                        f"{health.github_id}: a different repository now has this name."
                    )
                locked.github_id = health.github_id
        snapshot = RepoSnapshot.objects.create(
            project=locked,
            taken_at=health.taken_at,
            checked_at=health.taken_at,
            stars=health.stars,
            forks=health.forks,
            open_issues=health.open_issues,
            license_spdx=health.license_spdx[:64],
            default_branch=health.default_branch[:200],
            pushed_at=health.pushed_at,
            commits_90d=health.commits_90d,
            contributors_90d=health.contributors_90d,
            latest_release=health.latest_release[:200],
            latest_release_at=health.latest_release_at,
            has_license=health.has_license,
            has_readme=health.has_readme,
            has_contributing=health.has_contributing,
            has_codeowners=health.has_codeowners,
            has_code_of_conduct=health.has_code_of_conduct,
            has_security=health.has_security,
            has_ci_workflows=health.has_ci_workflows,
            etag=health.etag[:200],
        )
        locked.repo_state = state or Project.RepoState.OK
        locked.repo_state_detail = " ".join(notes)[:300]
        locked.github_checked_at = health.taken_at
        locked.save(
            update_fields=[
                "github_id",
                "repo_owner",
                "repo_name",
                "repo_state",
                "repo_state_detail",
                "github_checked_at",
                "updated_at",
            ]
        )
    _copy_sync_fields(source=locked, target=project)
    result = GitHubSyncResult.RENAMED if state else GitHubSyncResult.SYNCED
    return SyncOutcome(result, locked.repo_state_detail, snapshot, health=health)


def _project_record_moved(*, project: Project, moved: github.RepositoryMoved) -> SyncOutcome:
    """Follow a rename: keep the figures, and take the new name unless another project has it."""
    old, new = project.repository, f"{moved.new_owner}/{moved.new_name}"
    holder = (
        Project.objects.filter(repo_owner__iexact=moved.new_owner, repo_name__iexact=moved.new_name)
        .exclude(pk=project.pk)
        .first()
    )
    valid = OWNER_RE.fullmatch(moved.new_owner) and REPO_RE.fullmatch(moved.new_name)
    new_repository = None
    if holder is not None:
        detail = f"Moved to {new}, which project {holder.slug!r} already lists; name kept."
    elif not valid:
        detail = f"Moved to {new!r}, which is not a valid repository name; name kept."
    else:
        detail = f"Renamed from {old} to {new}."
        new_repository = (moved.new_owner, moved.new_name)
    if moved.health is None:
        return _project_record_repo_problem(
            project=project,
            result=GitHubSyncResult.RENAMED,
            state=Project.RepoState.RENAMED,
            detail=detail,
            new_repository=new_repository,
        )
    return _project_record_health(
        project=project,
        health=moved.health,
        state=Project.RepoState.RENAMED,
        detail=detail,
        new_repository=new_repository,
    )


def _copy_sync_fields(*, source: Project, target: Project) -> None:
    for name in ("github_id", "repo_owner", "repo_name", "repo_state", "repo_state_detail"):
        setattr(target, name, getattr(source, name))
    target.github_checked_at = source.github_checked_at


# --- on sync, the repository's own files: PyPI name, maintainer candidates, repo_config --------

MAX_MAINTAINER_CANDIDATES = 50
# A handle found in several places keeps the first of these sources.
CANDIDATE_SOURCES = ("repository_file", "maintainers_file", "codeowners", "collaborator")
REPO_CONFIG_TABLE_KEYS = ("found", "maintainers", "contact", "exemptions", "test")


def project_sync_repository_files(
    *, project: Project, owner: str = "", name: str = "", paths: tuple[str, ...] | None = None
) -> bool:
    """Read the repository's own files (registry/sources/github.py, `fetch_repository_files`)
    and record what they say: the PyPI name (`pyproject.toml` or `setup.cfg`, once PyPI
    confirms it; never over a name staff or a maintainer set, nor over a name from elsewhere),
    the maintainer candidates (CODEOWNERS, MAINTAINERS, admin and maintain collaborators, the
    repository file's `maintainers`, less those who are maintainers already; a candidate
    who signed in with GitHub before becomes a maintainer at once, the others when they sign
    in: `registry.identities.maintainer_candidates_promote`), and the repository
    file `[tool.pytorch-ecosystem]` (`Project.repo_config`, and the exemptions it claims).

    Never raises for GitHub or PyPI: when GitHub cannot be read nothing is written (False);
    when PyPI cannot be read the PyPI name stays as it was.
    """
    owner, name = owner or project.repo_owner, name or project.repo_name
    try:
        files = github.fetch_repository_files(owner=owner, name=name, paths=paths)
    except github.GitHubError as error:
        logger.warning("Repository files of %s not read: %s", project.slug, error)
        return False
    config, problems = (
        repo_config_parse(files.pyproject) if files.pyproject is not None else (RepoConfig(), [])
    )
    if config is None:  # not TOML: what the file says is unknown, so what it said is kept
        table = {key: project.repo_config.get(key) for key in REPO_CONFIG_TABLE_KEYS}
        table = {**RepoConfig().as_dict(), **{k: v for k, v in table.items() if v is not None}}
    else:
        table = config.as_dict()
    candidates = _maintainer_candidates(files=files, file_maintainers=table["maintainers"])
    pypi_name = _pypi_name_discovered(project=project, files=files)
    _project_record_repository_files(
        project=project,
        table=table,
        problems=problems,
        exemptions_known=config is not None,
        candidates=candidates,
        pypi_name=pypi_name,
    )
    _candidates_promote_signed_in(project=project)
    return True


def _maintainer_candidates(
    *, files: github.RepositoryFiles, file_maintainers: list[str]
) -> list[dict[str, str]]:
    """[{handle, source}], one per handle (case-insensitively), sorted, at most 50."""
    found = {
        "repository_file": list(file_maintainers),
        "maintainers_file": [
            h for text in files.maintainers for h in maintainers_file_handles(text)
        ],
        "codeowners": codeowners_handles(files.codeowners or ""),
        "collaborator": list(files.collaborators or ()),
    }
    chosen: dict[str, dict[str, str]] = {}
    for source in CANDIDATE_SOURCES:
        for handle in found[source]:
            if len(chosen) >= MAX_MAINTAINER_CANDIDATES:
                break
            if OWNER_RE.fullmatch(handle) and handle.lower() not in chosen:
                chosen[handle.lower()] = {"handle": handle, "source": source}
    return [chosen[key] for key in sorted(chosen)]


def _sync_may_set_pypi_name(project: Project) -> bool:
    """A sync sets the PyPI name where a sync set it, or where there is none (unless staff or
    a maintainer left it empty on purpose)."""
    origin = project.pypi_name_origin
    if origin == Project.PypiNameOrigin.SYNC:
        return True
    chosen = origin in (Project.PypiNameOrigin.STAFF, Project.PypiNameOrigin.MAINTAINER)
    return not project.pypi_name and not chosen


def _pypi_name_discovered(*, project: Project, files: github.RepositoryFiles) -> str:
    """The distribution name the repository declares, once PyPI confirms it; "" otherwise."""
    if not _sync_may_set_pypi_name(project):
        return ""
    declared = pyproject_name(files.pyproject or "") or setup_cfg_name(files.setup_cfg or "")
    if not declared:
        return ""
    if project.pypi_name and canonicalize_name(project.pypi_name) == canonicalize_name(declared):
        return ""  # confirmed before
    try:
        published = pypi.package_json(name=declared)
    except pypi.PyPIUnavailable as error:
        logger.warning("PyPI name %r of %s not confirmed: %s", declared, project.slug, error)
        return ""
    if published is None:
        logger.info("PyPI has no package %r (declared by %s)", declared, project.slug)
        return ""
    info = published.get("info")
    listed = info.get("name") if isinstance(info, dict) else None
    if isinstance(listed, str) and pypi.valid_package_name(listed):
        if canonicalize_name(listed) == canonicalize_name(declared):
            return listed  # as PyPI spells it
    return declared


def _project_record_repository_files(
    *,
    project: Project,
    table: dict[str, Any],
    problems: list[str],
    exemptions_known: bool,
    candidates: list[dict[str, str]],
    pypi_name: str,
) -> None:
    now = timezone.now()
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        problems = list(problems)
        if exemptions_known:
            problems += _project_sync_file_exemptions(
                project=locked, exemptions=table["exemptions"], now=now
            )
        locked.repo_config = {**table, "problems": problems, "read_at": now.isoformat()}
        already = {handle.lower() for handle in locked.maintainers if isinstance(handle, str)}
        locked.maintainer_candidates = [c for c in candidates if c["handle"].lower() not in already]
        if pypi_name and _sync_may_set_pypi_name(locked):
            locked.pypi_name = pypi_name
            locked.pypi_name_origin = Project.PypiNameOrigin.SYNC
        locked.save(
            update_fields=[
                "repo_config",
                "maintainer_candidates",
                "pypi_name",
                "pypi_name_origin",
                "updated_at",
            ]
        )
    for attribute in ("repo_config", "maintainer_candidates", "pypi_name", "pypi_name_origin"):
        setattr(project, attribute, getattr(locked, attribute))


def _candidates_promote_signed_in(*, project: Project) -> int:
    """The project's candidates who have signed in already (a verified identity of that handle)
    become maintainers now, as their sign-in would have made them (an audited change, by no
    one: the sync); the others wait for their sign-in. Returns how many handles were promoted.

    Run after the candidates are committed, in a transaction of its own: the promotion locks
    every project naming the handle, which must not wait while this one is held."""
    # registry.identities builds on registry.listing, which imports this module.
    from registry.identities import maintainer_candidates_promote

    candidates = project.maintainer_candidates
    handles = {str(c.get("handle", "")).lower() for c in candidates if isinstance(c, dict)}
    if not handles:
        return 0
    verified = (
        MaintainerIdentity.objects.filter(verified=True)
        .annotate(handle_lower=Lower("github_handle"))
        .filter(handle_lower__in=sorted(handles))
        .values_list("github_handle", flat=True)
    )
    promoted = 0
    with transaction.atomic():
        for handle in sorted(verified):
            promoted += bool(maintainer_candidates_promote(handle=handle, actor=None))
    if promoted:
        project.refresh_from_db(fields=["maintainers", "maintainer_candidates"])
    return promoted


def _project_sync_file_exemptions(
    *, project: Project, exemptions: list[dict[str, Any]], now: datetime
) -> list[str]:
    """Make the project's standing exemptions of source "repository_file" those of the file
    (a changed reason withdraws the old one and adds the new); the listing's are not touched.
    Returns the problems (a criterion the listing page already exempts)."""
    file_source = ProjectExemption.Source.REPOSITORY_FILE
    wanted = {int(e["criterion"]): str(e["reason"]) for e in exemptions}
    standing = {e.criterion: e for e in project.exemptions.filter(withdrawn_at__isnull=True)}
    for criterion, exemption in list(standing.items()):
        if exemption.source == file_source and wanted.get(criterion) != exemption.reason:
            exemption.withdrawn_at = now
            exemption.save(update_fields=["withdrawn_at"])
            del standing[criterion]
    problems = []
    for criterion, reason in sorted(wanted.items()):
        held = standing.get(criterion)
        if held is None:
            ProjectExemption.objects.create(
                project=project, criterion=criterion, reason=reason, source=file_source
            )
        elif held.source != file_source:
            problems.append(
                f"criterion {criterion}: already exempted on the listing page; "
                "the file's exemption is not added."
            )
    return problems


def project_webhook_secret_rotate(*, project: Project, actor: Any) -> str:
    """A new HMAC key for the project's GitHub webhook, returned once (the page shows it once);
    the old one stops working at once. The audit trail records the rotation, never the key."""
    import secrets

    from registry.models import ListingChange

    secret = secrets.token_hex(32)
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        had_one = bool(locked.webhook_secret)
        locked.webhook_secret = secret
        locked.webhook_secret_set_at = timezone.now()
        locked.save(update_fields=["webhook_secret", "webhook_secret_set_at", "updated_at"])
        ListingChange.objects.create(
            project=locked,
            actor=actor if getattr(actor, "pk", None) else None,
            field="webhook_secret",
            old_value={"set": had_one},
            new_value={"set": True, "set_at": locked.webhook_secret_set_at.isoformat()},
        )
    project.webhook_secret = secret
    project.webhook_secret_set_at = locked.webhook_secret_set_at
    return secret
