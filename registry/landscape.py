"""The landscape2 data file: reading and checking it, and writing the registry back to it.

Real landscape files are messy; reading never raises on an odd item: it keeps every valid
project, skips what is not a project, and says why for each odd one.
"""

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from django.utils.text import slugify

from registry.models import Category, Project
from registry.repository_urls import Repository, normalise_landscape_repo_url

MEMBERS_CATEGORY = "PyTorch Members"
HOSTED_PROJECT_VALUE = "foundation"
RETIRED_PROJECT_VALUE = "archived"
MEMBER_REASON = f"{MEMBERS_CATEGORY}: an organisation, not a project"
MAX_CATEGORY_NAME = 120
MAX_FILE_BYTES = 20 * 1024 * 1024
# Item keys the registry models; every other key is kept in Project.landscape_extra.
MODELLED_KEYS = {"item", "name", "description", "homepage_url", "logo", "repo_url", "project"}


class LandscapeError(ValueError):
    """The file cannot be used at all (missing, not YAML, not a landscape); nothing imported."""


@dataclass(frozen=True)
class LandscapeItem:
    """One project item of the file, checked and normalised."""

    slug: str
    name: str
    category: tuple[str, str]
    kind: str
    status: str
    description: str
    homepage_url: str
    logo: str
    repository: Repository | None
    raw_repo_url: str
    accepted_on: dt.date | None
    extra: dict
    flags: list[dict]


@dataclass
class ParsedLandscape:
    categories: list[tuple[str, list[str]]] = field(default_factory=list)
    items: list[LandscapeItem] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)


def landscape_read_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise LandscapeError(f"{path}: no such file.")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise LandscapeError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MB.")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise LandscapeError(f"{path}: not UTF-8 text ({error.reason}).") from None
    except yaml.YAMLError as error:
        raise LandscapeError(f"{path}: not valid YAML: {error}") from None
    return document


def landscape_parse(document: object) -> ParsedLandscape:
    """Check the document's shape and turn its project items into LandscapeItems."""
    if not isinstance(document, dict) or not isinstance(document.get("landscape"), list):
        raise LandscapeError("Not a landscape file: expected a top-level 'landscape:' list.")
    parsed = ParsedLandscape()
    slugs: dict[str, str] = {}
    repositories: dict[tuple[str, str], str] = {}
    for category_index, category in enumerate(document["landscape"], start=1):
        category_name = _text(category.get("name")) if isinstance(category, dict) else ""
        if not category_name:
            raise LandscapeError(f"Category #{category_index} has no name.")
        if len(category_name) > MAX_CATEGORY_NAME:
            raise LandscapeError(f"Category #{category_index}: name longer than 120 characters.")
        subcategories = category.get("subcategories") or []
        if not isinstance(subcategories, list):
            raise LandscapeError(f"Category {category_name!r}: 'subcategories' is not a list.")
        if category_name == MEMBERS_CATEGORY:
            for subcategory in subcategories:
                for raw in (
                    (subcategory.get("items") or []) if isinstance(subcategory, dict) else []
                ):
                    name = _text(raw.get("name")) if isinstance(raw, dict) else ""
                    parsed.skipped.append((name or "unnamed member", MEMBER_REASON))
            continue
        names = []
        for subcategory in subcategories:
            sub_name = _text(subcategory.get("name")) if isinstance(subcategory, dict) else ""
            if not sub_name:
                raise LandscapeError(f"Category {category_name!r} has a subcategory with no name.")
            if len(sub_name) > MAX_CATEGORY_NAME:
                raise LandscapeError(f"{category_name}: a subcategory name is over 120 characters.")
            names.append(sub_name)
            items = subcategory.get("items") or []
            if not isinstance(items, list):
                raise LandscapeError(f"{category_name} / {sub_name}: 'items' is not a list.")
            for position, raw in enumerate(items, start=1):
                where = f"{category_name} / {sub_name} item #{position}"
                item, reason = _parse_item(raw, (category_name, sub_name), where)
                if item is None:
                    parsed.skipped.append((where, reason))
                    continue
                if item.slug in slugs:
                    parsed.skipped.append(
                        (
                            f"{item.name!r} ({where})",
                            f"duplicate slug {item.slug!r}, already used by {slugs[item.slug]!r}",
                        )
                    )
                    continue
                if item.repository:
                    key = (item.repository.owner.lower(), item.repository.name.lower())
                    if key in repositories:
                        item.flags.append(
                            {
                                "code": "repo_url",
                                "message": f"repository {item.repository.url} already belongs to "
                                f"{repositories[key]!r}; imported without a repository",
                            }
                        )
                        item = _without_repository(item)
                    else:
                        repositories[key] = item.name
                slugs[item.slug] = item.name
                parsed.items.append(item)
        parsed.categories.append((category_name, names))
    return parsed


def _parse_item(raw: object, category: tuple[str, str], where: str):
    if not isinstance(raw, dict):
        return None, "not a mapping"
    name = _text(raw.get("name"))
    if not name:
        return None, "item without a name"
    slug = slugify(name)[:100]
    if not slug:
        return None, f"name {name!r} gives an empty slug"
    flags = []
    project_value = _text(raw.get("project"))
    hosted = project_value == HOSTED_PROJECT_VALUE
    extra = {k: v for k, v in raw.items() if k not in MODELLED_KEYS}
    accepted_on = None
    if isinstance(extra.get("extra"), dict) and "accepted" in extra["extra"]:
        extra["extra"] = dict(extra["extra"])
        accepted = extra["extra"].pop("accepted")
        accepted_on = _date(accepted)
        if accepted_on is None:
            flags.append({"code": "accepted", "message": f"unreadable accepted date {accepted!r}"})
            extra["extra"]["accepted"] = accepted
    repo_url = raw.get("repo_url")
    raw_repo_url = repo_url if isinstance(repo_url, str) else ""
    normalised = normalise_landscape_repo_url(raw_repo_url)
    if normalised.flag:
        flags.append({"code": "repo_url", "message": normalised.flag})
    if project_value and project_value not in {HOSTED_PROJECT_VALUE, RETIRED_PROJECT_VALUE}:
        extra["project"] = project_value
    return (
        LandscapeItem(
            slug=slug,
            name=name[:200],
            category=category,
            kind=Project.Kind.HOSTED if hosted else Project.Kind.ECOSYSTEM,
            status=Project.Status.RETIRED
            if project_value == RETIRED_PROJECT_VALUE
            else Project.Status.ACTIVE,
            description=_text(raw.get("description")),
            homepage_url=_text(raw.get("homepage_url"))[:500],
            logo=_text(raw.get("logo"))[:200],
            repository=normalised.repository,
            raw_repo_url=raw_repo_url.strip()[:500],
            accepted_on=accepted_on,
            extra=extra,
            flags=flags,
        ),
        "",
    )


def _without_repository(item: LandscapeItem) -> LandscapeItem:
    from dataclasses import replace

    return replace(item, repository=None)


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _date(value: object) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return None


def landscape_export_document() -> dict:
    """The registry as a landscape2 document (categories, subcategories, project items)."""
    projects_by_category: dict[int | None, list[Project]] = {}
    for project in Project.objects.order_by("name"):
        projects_by_category.setdefault(project.category_id, []).append(project)
    landscape = []
    roots = Category.objects.filter(parent__isnull=True).prefetch_related("children")
    for root in roots.order_by("position", "name"):
        subcategories = [
            {
                "subcategory": None,
                "name": sub.name,
                "items": [_export_item(p) for p in projects_by_category.get(sub.id, [])],
            }
            for sub in sorted(root.children.all(), key=lambda c: (c.position, c.name))
        ]
        if projects_by_category.get(root.id):
            # Landscape items sit in subcategories; a project filed on a category itself (set
            # by hand in the admin) is kept, under a subcategory named like the category.
            subcategories.append(
                {
                    "subcategory": None,
                    "name": root.name,
                    "items": [_export_item(p) for p in projects_by_category[root.id]],
                }
            )
        landscape.append({"category": None, "name": root.name, "subcategories": subcategories})
    uncategorised = projects_by_category.get(None, [])
    if uncategorised:
        landscape.append(
            {
                "category": None,
                "name": "Uncategorised",
                "subcategories": [
                    {
                        "subcategory": None,
                        "name": "Uncategorised",
                        "items": [_export_item(p) for p in uncategorised],
                    }
                ],
            }
        )
    return {"landscape": landscape}


def _export_item(project: Project) -> dict:
    item: dict = {"item": None, "name": project.name}
    if project.kind == Project.Kind.HOSTED:
        item["project"] = HOSTED_PROJECT_VALUE
    elif project.status == Project.Status.RETIRED:
        item["project"] = RETIRED_PROJECT_VALUE
    item["description"] = project.description
    item["homepage_url"] = project.homepage_url
    item["logo"] = project.logo
    repo_url = _export_repo_url(project)
    if repo_url:
        item["repo_url"] = repo_url
    extra = dict(project.landscape_extra)
    if project.accepted_on:
        extra["extra"] = {"accepted": project.accepted_on.isoformat(), **extra.get("extra", {})}
    item.update(extra)
    return item


def _export_repo_url(project: Project) -> str:
    """The URL as imported when it still names the project's repository, else the canonical one."""
    if project.landscape_repo_url:
        imported = normalise_landscape_repo_url(project.landscape_repo_url).repository
        current = (project.repo_owner, project.repo_name)
        if imported is None and not project.repo_owner:
            return project.landscape_repo_url
        if imported and (imported.owner, imported.name) == current:
            return project.landscape_repo_url
    return project.repository_url


def landscape_dump_yaml(document: dict) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=10_000)


# --- periodic review dates of imported projects ---------------------------------------------

REVIEW_PERIOD_MONTHS = 6
FIRST_REVIEW_SPREAD_DAYS = 182  # first reviews fall within the next six months


@dataclass(frozen=True)
class ReviewDue:
    """One active project as the review planning sees it."""

    slug: str
    accepted_on: dt.date | None
    next_review_due: dt.date | None


def add_months(day: dt.date, months: int) -> dt.date:
    """`day` plus whole months; the 31st of a shorter month is its last day."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    next_month = dt.date(year + month // 12, month % 12 + 1, 1)
    return dt.date(year, month, min(day.day, (next_month - dt.timedelta(days=1)).day))


def review_due_from_acceptance(accepted_on: dt.date, *, today: dt.date) -> dt.date:
    """The first of acceptance + k * 6 months (k >= 1) that is after `today`."""
    months = (today.year - accepted_on.year) * 12 + today.month - accepted_on.month
    k = max(1, months // REVIEW_PERIOD_MONTHS)
    while k > 1 and add_months(accepted_on, (k - 1) * REVIEW_PERIOD_MONTHS) > today:
        k -= 1
    while add_months(accepted_on, k * REVIEW_PERIOD_MONTHS) <= today:
        k += 1
    return add_months(accepted_on, k * REVIEW_PERIOD_MONTHS)


def review_first_due(slug: str, *, today: dt.date) -> dt.date:
    """A first review for a project without an acceptance date: a day of the next six months
    chosen by a hash of its slug (the same slug, the same day)."""
    digest = int.from_bytes(hashlib.sha256(slug.encode()).digest()[:8], "big")
    return today + dt.timedelta(days=1 + digest % FIRST_REVIEW_SPREAD_DAYS)


def _week(day: dt.date) -> tuple[int, int]:
    return day.isocalendar()[:2]


def review_dates_plan(
    projects: Iterable[ReviewDue],
    *,
    today: dt.date,
    max_per_week: int,
    booked: Iterable[dt.date] = (),
) -> dict[str, dt.date]:
    """New next-review dates for the projects whose date is missing or past (a date from today
    on is kept): six-monthly from acceptance, else spread by `review_first_due`. A week (ISO,
    Monday to Sunday) that already holds `max_per_week` reviews (counting `booked`, the kept
    dates of other projects) sends the project to the next week with room, same weekday.
    """
    cap = max(1, max_per_week)
    load: Counter[tuple[int, int]] = Counter(_week(day) for day in booked)
    wanted = []
    for project in projects:
        if project.next_review_due is not None and project.next_review_due >= today:
            load[_week(project.next_review_due)] += 1
            continue
        if project.accepted_on is not None:
            ideal = review_due_from_acceptance(project.accepted_on, today=today)
        else:
            ideal = review_first_due(project.slug, today=today)
        wanted.append((ideal, project.slug))
    plan = {}
    for ideal, slug in sorted(wanted):
        due = ideal
        while load[_week(due)] >= cap:
            due += dt.timedelta(days=7)
        load[_week(due)] += 1
        plan[slug] = due
    return plan
