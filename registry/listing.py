"""Maintainers run their own listing: every write of a listing field by a maintainer (or by staff
on their behalf), each in a transaction and each leaving a `ListingChange` that staff can revert.

Who may call these is the permission rule `projects_managed_by` (staff, or a user whose verified
GitHub handle is one of the project's maintainers); the pages and the API scope their querysets
with it. The services check only what the rule cannot say: the owner alone (or staff) transfers
the ownership or removes another maintainer, the owner is never removed.

Fields of the upper apps (the test recipe) are audited here too (`listing_change_record`) but
reverted by the app that owns them; `listing_change_revert` refuses them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from registry.logos import LogoFile, LogoRefused, logo_card_png, logo_content_type
from registry.models import (
    Category,
    ListingChange,
    Logo,
    MaintainerIdentity,
    Project,
    ProjectExemption,
)
from registry.repository_urls import OWNER_RE
from registry.selectors import projects_maintained_by, user_github_handle
from registry.services import project_public_summary_changed
from registry.web_urls import is_web_url

# A maintainer's logo: smaller than what the landscape import takes (registry/logos.py).
LISTING_LOGO_MAX_BYTES = 512 * 1024
MAX_DESCRIPTION_CHARS = 5000
MAX_URL_CHARS = 500
MAX_MAINTAINERS = 50
MAX_REASON_CHARS = 2000
TEXT_FIELDS = ("description", "homepage_url", "documentation_url")
# Audited fields that another app writes and reverts (ci_runners' test recipe), or that no one
# can revert (a rotated webhook secret is gone).
FOREIGN_FIELDS = frozenset({"test_recipe"})
UNREVERTIBLE_FIELDS = frozenset({"webhook_secret"})
# Audited field -> the Project attribute a revert writes.
REVERTIBLE_ATTRIBUTES = {
    **{field: field for field in (*TEXT_FIELDS, "maintainers", "owner_handle")},
    "logo_file": "logo_file_id",
    "proposed_category": "proposed_category_id",
    "category": "category_id",
}


class ListingRefused(ValueError):
    """The change was refused; the message says why (shown to the maintainer as it is)."""


class ListingNotAllowed(ListingRefused):
    """The actor may not make this change (a 403 in the API)."""


# --- the permission rule ------------------------------------------------------------------


def projects_managed_by(*, user: Any) -> QuerySet[Project]:
    """The projects `user` manages: every one for staff, else those whose maintainers list
    holds the user's verified GitHub handle (case-insensitive); none for anyone else."""
    if not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    if user.is_staff:
        return Project.objects.all()
    return projects_maintained_by(user=user)


def user_manages(*, user: Any, project: Project) -> bool:
    return projects_managed_by(user=user).filter(pk=project.pk).exists()


def handle_in(handle: str, handles: list[str]) -> bool:
    return handle.lower() in {h.lower() for h in handles}


def project_owner(project: Project) -> str:
    """The owner of the listing: `owner_handle`, or the first maintainer when none is set."""
    if project.owner_handle:
        return project.owner_handle
    return project.maintainers[0] if project.maintainers else ""


def _is_owner_or_staff(*, actor: Any, project: Project) -> bool:
    if getattr(actor, "is_staff", False):
        return True
    handle = user_github_handle(user=actor)
    owner = project_owner(project)
    return bool(handle) and bool(owner) and handle.lower() == owner.lower()


# --- the audit trail ----------------------------------------------------------------------


def listing_change_record(
    *, project: Project, actor: Any, field: str, old: Any, new: Any, reverts: ListingChange | None
) -> ListingChange:
    """One row of the audit trail (also for fields of the upper apps)."""
    return ListingChange.objects.create(
        project=project,
        actor=actor if getattr(actor, "pk", None) else None,
        field=field,
        old_value=old,
        new_value=new,
        reverts=reverts,
    )


def _locked(project: Project) -> Project:
    return Project.objects.select_for_update().get(pk=project.pk)


def _set(
    *, project: Project, actor: Any, field: str, new: Any, reverts: ListingChange | None = None
) -> ListingChange:
    """Write one audited field of the (locked) project (the attribute REVERTIBLE_ATTRIBUTES
    names) and its audit row, with the value it had before."""
    attribute = REVERTIBLE_ATTRIBUTES[field]
    old = getattr(project, attribute)
    setattr(project, attribute, new)
    project.save(update_fields=[attribute, "updated_at"])
    return listing_change_record(
        project=project, actor=actor, field=field, old=old, new=new, reverts=reverts
    )


# --- description, links -------------------------------------------------------------------


def _text_clean(field: str, value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ListingRefused(f"{field}: expected text.")
    value = value.strip()
    if field == "description":
        if len(value) > MAX_DESCRIPTION_CHARS:
            raise ListingRefused(f"description: at most {MAX_DESCRIPTION_CHARS} characters.")
        return value
    too_long = len(value) > MAX_URL_CHARS
    if value and (too_long or not is_web_url(value) or any(c.isspace() for c in value)):
        raise ListingRefused(f"{field}: an http(s) URL of at most {MAX_URL_CHARS} characters.")
    return value


@transaction.atomic
def listing_fields_update(
    *, project: Project, actor: Any, changes: dict[str, Any]
) -> list[ListingChange]:
    """Set the description, homepage_url and documentation_url given in `changes`; one audit
    row per field that changes. Nothing is written when one value is refused."""
    unknown = sorted(set(changes) - set(TEXT_FIELDS))
    if unknown:
        raise ListingRefused(f"Unknown fields: {', '.join(unknown)}.")
    cleaned = {field: _text_clean(field, value) for field, value in changes.items()}
    locked = _locked(project)
    done = []
    for field, value in cleaned.items():
        old = getattr(locked, field)
        if old != value:
            done.append(_set(project=locked, actor=actor, field=field, new=value))
    _refresh(project, locked, *cleaned)
    return done


def _refresh(project: Project, locked: Project, *fields: str) -> None:
    for field in fields:
        setattr(project, field, getattr(locked, field))


# --- the logo -----------------------------------------------------------------------------


@transaction.atomic
def listing_logo_set(*, project: Project, actor: Any, data: bytes, file_name: str) -> Logo:
    """Store an uploaded PNG or SVG logo and make it the project's. The original is kept as it
    is and only ever served as an image in a sandbox (registry.views.logo); pages show our PNG
    rendering of it, so a file we cannot render is refused."""
    if len(data) > LISTING_LOGO_MAX_BYTES:
        raise ListingRefused(
            f"The logo is {len(data) // 1024} KB; at most {LISTING_LOGO_MAX_BYTES // 1024} KB "
            "are allowed."
        )
    try:
        content_type = logo_content_type(data, name=file_name)
    except LogoRefused:
        raise ListingRefused("The logo must be a PNG or an SVG image.") from None
    sha256 = hashlib.sha256(data).hexdigest()
    logo = Logo.objects.filter(pk=sha256).first()
    if logo is None:
        card = logo_card_png(LogoFile(file_name, sha256, content_type, data))
        if card is None:
            raise ListingRefused(
                "This image cannot be rendered; an SVG needs a viewBox (or width and height)."
            )
        logo = Logo.objects.create(
            sha256=sha256,
            content_type=content_type,
            data=data,
            card_png=card,
            source_name=file_name[:200],
        )
    locked = _locked(project)
    if locked.logo_file_id != sha256:
        _set(project=locked, actor=actor, field="logo_file", new=sha256)
    project.logo_file = logo
    return logo


# --- the category -------------------------------------------------------------------------


@transaction.atomic
def listing_category_propose(
    *, project: Project, actor: Any, category: Category | None
) -> ListingChange | None:
    """Propose a subcategory (None withdraws the proposal); staff confirm it."""
    if category is not None and category.parent_id is None:
        raise ListingRefused("Propose a subcategory (projects sit at the second level).")
    locked = _locked(project)
    new = category.pk if category else None
    if locked.proposed_category_id == new:
        return None
    change = _set(project=locked, actor=actor, field="proposed_category", new=new)
    project.proposed_category = category
    return change


@transaction.atomic
def listing_category_confirm(*, project: Project, actor: Any) -> ListingChange:
    """Staff make the proposed subcategory the project's category."""
    if not getattr(actor, "is_staff", False):
        raise ListingNotAllowed("Only staff confirm a category.")
    locked = _locked(project)
    if locked.proposed_category_id is None:
        raise ListingRefused("No category was proposed.")
    change = _set(project=locked, actor=actor, field="category", new=locked.proposed_category_id)
    _set(project=locked, actor=actor, field="proposed_category", new=None)
    project_public_summary_changed(project=locked)
    _refresh(project, locked, "category_id", "proposed_category_id")
    return change


# --- maintainers and ownership ------------------------------------------------------------


def handle_clean(handle: Any) -> str:
    """A GitHub user name as GitHub spells them (an optional leading @ dropped)."""
    text = handle.strip().removeprefix("@") if isinstance(handle, str) else ""
    if not OWNER_RE.fullmatch(text):
        raise ListingRefused(
            f"{str(handle)[:40]!r} is not a GitHub user name (letters, digits and single "
            "hyphens, at most 39 characters)."
        )
    return text


@transaction.atomic
def listing_maintainer_add(*, project: Project, actor: Any, handle: str) -> ListingChange:
    """Add a co-maintainer; every maintainer with an email hears of it."""
    handle = handle_clean(handle)
    locked = _locked(project)
    old = list(locked.maintainers)
    if handle_in(handle, old):
        raise ListingRefused(f"@{handle} is already a maintainer.")
    if len(old) >= MAX_MAINTAINERS:
        raise ListingRefused(f"At most {MAX_MAINTAINERS} maintainers.")
    return _set_and_tell(
        project=project,
        locked=locked,
        actor=actor,
        field="maintainers",
        new=[*old, handle],
        text=f"@{handle} was added as a maintainer",
        also=old,
    )


@transaction.atomic
def listing_maintainer_remove(*, project: Project, actor: Any, handle: str) -> ListingChange:
    """Remove a maintainer: the owner or staff remove anyone but the owner; a maintainer may
    remove themselves. Every maintainer (the removed one included) hears of it."""
    handle = handle_clean(handle)
    locked = _locked(project)
    old = list(locked.maintainers)
    if not handle_in(handle, old):
        raise ListingRefused(f"@{handle} is not a maintainer.")
    own = user_github_handle(user=actor).lower() == handle.lower()
    if not own and not _is_owner_or_staff(actor=actor, project=locked):
        raise ListingNotAllowed("Only the owner of the listing (or staff) removes a maintainer.")
    if project_owner(locked).lower() == handle.lower():
        raise ListingRefused("The owner cannot be removed; transfer the ownership first.")
    return _set_and_tell(
        project=project,
        locked=locked,
        actor=actor,
        field="maintainers",
        new=[h for h in old if h.lower() != handle.lower()],
        text=f"@{handle} was removed as a maintainer",
        also=old,
    )


@transaction.atomic
def listing_owner_transfer(*, project: Project, actor: Any, new_owner: str) -> ListingChange:
    """Hand the listing to another maintainer: the current owner or staff only."""
    new_owner = handle_clean(new_owner)
    locked = _locked(project)
    if not _is_owner_or_staff(actor=actor, project=locked):
        raise ListingNotAllowed("Only the owner of the listing (or staff) transfers it.")
    spelled = next((h for h in locked.maintainers if h.lower() == new_owner.lower()), None)
    if spelled is None:
        raise ListingRefused(f"@{new_owner} is not a maintainer; add them first.")
    old = locked.owner_handle
    if project_owner(locked).lower() == spelled.lower() and old:
        raise ListingRefused(f"@{spelled} already owns the listing.")
    return _set_and_tell(
        project=project,
        locked=locked,
        actor=actor,
        field="owner_handle",
        new=spelled,
        text=f"@{spelled} now owns the listing",
        also=[],
    )


def _set_and_tell(
    *,
    project: Project,
    locked: Project,
    actor: Any,
    field: str,
    new: Any,
    text: str,
    also: list[str],
) -> ListingChange:
    """Write a field of who runs the listing and tell the maintainers (and `also`: a removed
    one hears of it); `project` gets the new value."""
    change = _set(project=locked, actor=actor, field=field, new=new)
    _maintainers_mail(project=locked, actor=actor, text=text, also=also)
    _refresh(project, locked, field)
    return change


def maintainer_emails(*, handles: list[str]) -> set[str]:
    """Emails of the users whose verified GitHub handle is one of `handles` (one query)."""
    lowered = sorted({h.lower() for h in handles if isinstance(h, str)})
    if not lowered:
        return set()
    emails = (
        MaintainerIdentity.objects.filter(verified=True)
        .annotate(handle_lower=Lower("github_handle"))
        .filter(handle_lower__in=lowered)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    return set(emails)


def project_maintainer_emails(*, project: Project) -> set[str]:
    """Where mail to a project's maintainers goes: the accounts of its maintainers (a verified
    GitHub handle in `maintainers`), and the contact its repository file names
    (`[tool.pytorch-ecosystem] contact`, stored on sync) when that is an email address."""
    emails = maintainer_emails(handles=list(project.maintainers))
    contact = (project.repo_config or {}).get("contact")
    if isinstance(contact, str) and contact:
        try:
            validate_email(contact)
        except ValidationError:
            return emails
        emails.add(contact)
    return emails


def _maintainers_mail(*, project: Project, actor: Any, text: str, also: list[str]) -> None:
    """Tell every maintainer (and `also`: who was one before) once the change is committed."""
    recipients = sorted(
        project_maintainer_emails(project=project) | maintainer_emails(handles=also)
    )
    who = user_github_handle(user=actor) or getattr(actor, "get_username", lambda: "staff")()
    site = getattr(settings, "SITE_URL", "").rstrip("/")
    body = (
        f"{text} of {project.name} in the Ecosystem Registry, by {who}.\n\n"
        f"Maintainers now: {', '.join('@' + h for h in project.maintainers) or 'none'}.\n"
        f"Owner: @{project_owner(project) or 'none'}.\n\n"
        f"The listing: {site}{project.get_absolute_url()}\n"
    )
    subject = f"[Ecosystem Registry] {project.name}: {text}"[:200]
    messages = [
        EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [email]) for email in recipients
    ]
    if messages:
        transaction.on_commit(lambda: get_connection().send_messages(messages))


# --- exemptions ---------------------------------------------------------------------------


def _exemption_value(exemption: ProjectExemption) -> dict[str, Any]:
    return {
        "id": exemption.pk,
        "criterion": exemption.criterion,
        "reason": exemption.reason,
        "withdrawn": exemption.withdrawn_at is not None,
    }


def _exemption_audit(
    *, exemption: ProjectExemption, actor: Any, old: Any, reverts: ListingChange | None
) -> None:
    """The audit row of a claimed, withdrawn or reinstated exemption (as it is now)."""
    listing_change_record(
        project=exemption.project,
        actor=actor,
        field="exemption",
        old=old,
        new=_exemption_value(exemption),
        reverts=reverts,
    )


@transaction.atomic
def project_exemption_claim(
    *, project: Project, actor: Any, criterion: int, reason: str
) -> ProjectExemption:
    """Claim that a criterion does not apply, with a public reason. The caller checks that the
    criterion exists (the registry does not know the criteria)."""
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason or "\x00" in reason or len(reason) > MAX_REASON_CHARS:
        raise ListingRefused(f"Give a public reason of at most {MAX_REASON_CHARS} characters.")
    locked = _locked(project)
    try:
        with transaction.atomic():
            exemption = ProjectExemption.objects.create(
                project=locked,
                criterion=criterion,
                reason=reason,
                source=ProjectExemption.Source.LISTING,
                claimed_by=actor if getattr(actor, "pk", None) else None,
            )
    except IntegrityError:
        raise ListingRefused(f"Criterion {criterion} already has a standing exemption.") from None
    _exemption_audit(exemption=exemption, actor=actor, old=None, reverts=None)
    return exemption


@transaction.atomic
def project_exemption_withdraw(
    *, exemption: ProjectExemption, actor: Any, reverts: ListingChange | None = None
) -> ProjectExemption:
    locked = ProjectExemption.objects.select_for_update().get(pk=exemption.pk)
    if locked.withdrawn_at is not None:
        raise ListingRefused("This exemption was already withdrawn.")
    old = _exemption_value(locked)
    locked.withdrawn_at = timezone.now()
    locked.save(update_fields=["withdrawn_at"])
    _exemption_audit(exemption=locked, actor=actor, old=old, reverts=reverts)
    exemption.withdrawn_at = locked.withdrawn_at
    return locked


def _exemption_reinstate(
    *, exemption_id: int, actor: Any, reverts: ListingChange
) -> ProjectExemption:
    locked = ProjectExemption.objects.select_for_update().filter(pk=exemption_id).first()
    if locked is None or locked.withdrawn_at is None:
        raise ListingRefused("That exemption is not withdrawn any more.")
    old = _exemption_value(locked)
    locked.withdrawn_at = None
    try:
        with transaction.atomic():
            locked.save(update_fields=["withdrawn_at"])
    except IntegrityError:
        raise ListingRefused("Another exemption stands for this criterion now.") from None
    _exemption_audit(exemption=locked, actor=actor, old=old, reverts=reverts)
    return locked


# --- staff revert -------------------------------------------------------------------------


def _revert_exemption(change: ListingChange, actor: Any) -> None:
    new = change.new_value or {}
    if new.get("withdrawn"):
        _exemption_reinstate(exemption_id=new["id"], actor=actor, reverts=change)
        return
    exemption = ProjectExemption.objects.filter(pk=int(new.get("id") or 0)).first()
    if exemption is None:
        raise ListingRefused("That exemption no longer exists.")
    project_exemption_withdraw(exemption=exemption, actor=actor, reverts=change)


def _still_exists(attribute: str, pk: Any) -> bool:
    """Whether the row a reverted foreign key points at is still there."""
    if attribute in ("category_id", "proposed_category_id"):
        return Category.objects.filter(pk=pk).exists()
    if attribute == "logo_file_id":
        return Logo.objects.filter(pk=pk).exists()
    return True


def _revert_field(change: ListingChange, actor: Any) -> None:
    attribute = REVERTIBLE_ATTRIBUTES.get(change.field)
    if attribute is None:
        raise ListingRefused(f"Changes of {change.field} cannot be reverted here.")
    restored = change.old_value
    if restored is not None and not _still_exists(attribute, restored):
        raise ListingRefused(f"The earlier {change.field} no longer exists.")
    locked = _locked(change.project)
    _set(project=locked, actor=actor, field=change.field, new=restored, reverts=change)
    if attribute == "category_id":
        project_public_summary_changed(project=locked)


REVERTERS: dict[str, Callable[[ListingChange, Any], None]] = {"exemption": _revert_exemption}


@transaction.atomic
def listing_change_revert(*, change: ListingChange, actor: Any) -> ListingChange:
    """Staff undo one change: the field gets the value it had before (itself a new, audited
    change pointing at the one it reverts). Foreign fields are reverted by their own app."""
    if not getattr(actor, "is_staff", False):
        raise ListingNotAllowed("Only staff revert a change of a listing.")
    locked = ListingChange.objects.select_for_update().select_related("project").get(pk=change.pk)
    if locked.field in FOREIGN_FIELDS:
        raise ListingRefused(f"Changes of {locked.field} are reverted on the project's page.")
    if locked.field in UNREVERTIBLE_FIELDS:
        raise ListingRefused(f"A change of {locked.field} cannot be reverted.")
    if locked.reverted_by.exists():
        raise ListingRefused("This change was already reverted.")
    REVERTERS.get(locked.field, _revert_field)(locked, actor)
    return locked.reverted_by.latest("created_at")
