"""Maintainers' pages: "My projects", and one page per project to manage its listing (fields,
logo, category, co-maintainers, ownership, test recipe, exemptions, onboarding, webhook secret).

Who may: `registry.listing.projects_managed_by` (staff, or a verified GitHub handle among the
project's maintainers); anyone else gets a 404, whatever the project. Every write is a service;
a refused one comes back as an error of its form (or a 403 for a refusal of the role).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from ci_runners.selectors import project_latest_run
from ci_runners.services.test_configs import TestConfigInvalid
from registry import listing
from registry.models import ListingChange, Project
from registry.selectors import projects_maintained_by, user_github_handle
from registry.services import project_webhook_secret_rotate
from reviews import criteria
from reviews import maintainer_forms as forms
from reviews import maintainer_services as services
from reviews.states import NotAllowed, ReviewError

HISTORY_LENGTH = 30


def managed_project(request: HttpRequest, slug: str) -> Project:
    """The project, if the user manages it; a 404 otherwise (its existence is not told)."""
    return get_object_or_404(listing.projects_managed_by(user=request.user), slug=slug)


@login_required
@require_GET
def my_projects(request: HttpRequest) -> HttpResponse:
    projects = projects_maintained_by(user=request.user).select_related("category__parent")
    return render(
        request,
        "reviews/maintainers/my_projects.html",
        {
            "projects": list(projects.order_by("name")),
            "handle": user_github_handle(user=request.user),
            "identity": getattr(request.user, "maintainer_identity", None),
        },
    )


@login_required
@require_GET
def project_manage(request: HttpRequest, slug: str) -> HttpResponse:
    return manage_page(request, managed_project(request, slug))


def manage_page(
    request: HttpRequest,
    project: Project,
    bound: dict[str, Any] | None = None,
    *,
    status: int = 200,
    new_secret: str = "",
) -> HttpResponse:
    """The management page; `bound` holds forms that came back with errors."""
    recipe = services.maintainer_recipe_of(project=project)
    page_forms = {
        "listing_form": forms.ListingForm(
            initial={name: getattr(project, name) for name in listing.TEXT_FIELDS}
        ),
        "logo_form": forms.LogoForm(),
        "category_form": forms.CategoryProposalForm(
            initial={"category": project.proposed_category_id}
        ),
        "add_form": forms.HandleForm(),
        "transfer_form": forms.TransferForm(),
        "recipe_form": forms.RecipeForm(initial=forms.RecipeForm.initial_from(recipe)),
        "exemption_form": forms.ExemptionForm(),
        **(bound or {}),
    }
    exemptions = list(project.exemptions.select_related("claimed_by").order_by("criterion", "pk"))
    for exemption in exemptions:
        found = criteria.BY_NUMBER.get(exemption.criterion)
        exemption.title = found.title if found else ""
    context = {
        "project": project,
        **page_forms,
        "owner": listing.project_owner(project),
        "exemptions": exemptions,
        "onboarding": services.project_onboarding_tasks(project=project),
        "latest_run": project_latest_run(project=project),
        "history": project.listing_changes.select_related("actor", "reverts")[:HISTORY_LENGTH],
        "new_secret": new_secret,
        "is_staff": request.user.is_staff,
    }
    return render(request, "reviews/maintainers/manage.html", context, status=status)


# --- the form actions: one view for the POST-form-service pattern -------------------------

REFUSALS = (listing.ListingRefused, ReviewError, TestConfigInvalid)
Apply = Callable[[Project, dict[str, Any], Any, Any], str]


def _listing(project: Project, data: dict, form: Any, actor: Any) -> str:
    done = listing.listing_fields_update(project=project, actor=actor, changes=data)
    return f"Saved ({len(done)} field{'s' if len(done) != 1 else ''} changed)."


def _logo(project: Project, data: dict, form: Any, actor: Any) -> str:
    upload = data["logo"]
    listing.listing_logo_set(
        project=project, actor=actor, data=upload.read(), file_name=upload.name or "logo"
    )
    return "Logo saved."


def _category(project: Project, data: dict, form: Any, actor: Any) -> str:
    listing.listing_category_propose(project=project, actor=actor, category=data["category"])
    return "Category proposal saved; staff will confirm it."


def _add(project: Project, data: dict, form: Any, actor: Any) -> str:
    listing.listing_maintainer_add(project=project, actor=actor, handle=data["handle"])
    return f"@{data['handle'].lstrip('@')} added; the maintainers were told."


def _remove(project: Project, data: dict, form: Any, actor: Any) -> str:
    listing.listing_maintainer_remove(project=project, actor=actor, handle=data["handle"])
    return f"@{data['handle'].lstrip('@')} removed; the maintainers were told."


def _transfer(project: Project, data: dict, form: Any, actor: Any) -> str:
    listing.listing_owner_transfer(project=project, actor=actor, new_owner=data["new_owner"])
    return f"The listing now belongs to @{project.owner_handle}."


def _recipe(project: Project, data: dict, form: Any, actor: Any) -> str:
    services.maintainer_recipe_update(project=project, actor=actor, changes=form.changes())
    return "Test recipe saved; the next run uses it."


def _exemption(project: Project, data: dict, form: Any, actor: Any) -> str:
    services.maintainer_exemption_claim(
        project=project, actor=actor, criterion=data["criterion"], reason=data["reason"]
    )
    return f"Exemption from criterion {data['criterion']} claimed."


# action (in the URL) -> the page's form name, its class, the service call, the page anchor.
ACTIONS: dict[str, tuple[str, type, Apply, str]] = {
    "listing": ("listing_form", forms.ListingForm, _listing, "#listing"),
    "logo": ("logo_form", forms.LogoForm, _logo, "#logo"),
    "category": ("category_form", forms.CategoryProposalForm, _category, "#category"),
    "maintainer-add": ("add_form", forms.HandleForm, _add, "#maintainers"),
    "maintainer-remove": ("add_form", forms.HandleForm, _remove, "#maintainers"),
    "transfer": ("transfer_form", forms.TransferForm, _transfer, "#maintainers"),
    "recipe": ("recipe_form", forms.RecipeForm, _recipe, "#recipe"),
    "exemption": ("exemption_form", forms.ExemptionForm, _exemption, "#exemptions"),
}


@login_required
@require_POST
def project_action(request: HttpRequest, slug: str, action: str) -> HttpResponse:
    """Bind the action's form; if valid, call its service and go back to the page with a
    message; a refusal becomes the form's error and the page is shown again (400)."""
    project = managed_project(request, slug)
    form_name, form_class, apply, anchor = ACTIONS[action]
    form = form_class(request.POST, request.FILES)
    if form.is_valid():
        try:
            message = apply(project, form.cleaned_data, form, request.user)
        except (listing.ListingNotAllowed, NotAllowed) as refused:
            raise PermissionDenied(str(refused)) from None
        except TestConfigInvalid as refused:
            for name, errors in refused.errors.items():
                form.add_error(name if name in form.fields else None, errors)
        except REFUSALS as refused:
            form.add_error(None, str(refused))
        else:
            messages.success(request, message)
            return _back(slug, anchor)
    return manage_page(request, project, {form_name: form}, status=400)


def _back(slug: str, anchor: str = "") -> HttpResponse:
    return redirect(reverse("reviews:project_manage", kwargs={"slug": slug}) + anchor)


# --- the other actions (no form to show again) ----------------------------------------------


def _act(request: HttpRequest, slug: str, anchor: str, apply: Callable[[], str]) -> HttpResponse:
    """Call `apply` (a service call that returns the message of its success) and go back to
    the page: a refusal of the role is a 403, any other refusal the page's error message."""
    try:
        message = apply()
    except (listing.ListingNotAllowed, NotAllowed) as refused:
        raise PermissionDenied(str(refused)) from None
    except REFUSALS as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, message)
    return _back(slug, anchor)


@login_required
@require_POST
def exemption_withdraw(request: HttpRequest, slug: str, exemption_id: int) -> HttpResponse:
    project = managed_project(request, slug)
    exemption = get_object_or_404(project.exemptions, pk=exemption_id)

    def withdraw() -> str:
        listing.project_exemption_withdraw(exemption=exemption, actor=request.user)
        return f"Exemption from criterion {exemption.criterion} withdrawn."

    return _act(request, slug, "#exemptions", withdraw)


@login_required
@require_POST
def onboarding_tick(request: HttpRequest, slug: str, task_id: int) -> HttpResponse:
    project = managed_project(request, slug)
    task = next(
        (t for t in services.project_onboarding_tasks(project=project) if t.pk == task_id), None
    )
    if task is None:
        raise Http404("No such task of this project.")
    done = request.POST.get("done") == "1"

    def tick() -> str:
        services.maintainer_onboarding_task_set(task=task, done=done, actor=request.user)
        return f"{task.label}: {'done' if done else 'not done'}."

    return _act(request, slug, "#onboarding", tick)


@login_required
@require_POST
def webhook_secret_rotate(request: HttpRequest, slug: str) -> HttpResponse:
    """A new webhook secret, shown in this response only (never stored in the session)."""
    project = managed_project(request, slug)
    secret = project_webhook_secret_rotate(project=project, actor=request.user)
    response = manage_page(request, project, new_secret=secret)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def category_confirm(request: HttpRequest, slug: str) -> HttpResponse:
    project = managed_project(request, slug)

    def confirm() -> str:
        listing.listing_category_confirm(project=project, actor=request.user)
        return f"Category set to {project.category}."

    return _act(request, slug, "#category", confirm)


@login_required
@require_POST
def change_revert(request: HttpRequest, slug: str, change_id: int) -> HttpResponse:
    """Staff revert one audited change of the listing."""
    project = managed_project(request, slug)
    if not request.user.is_staff:
        raise PermissionDenied("Only staff revert a change of a listing.")
    change = get_object_or_404(ListingChange.objects.filter(project=project), pk=change_id)

    def revert() -> str:
        services.listing_change_revert_any(change=change, actor=request.user)
        return f"Change of {change.field} reverted."

    return _act(request, slug, "#history", revert)
