"""Pages of the compatibility runs: project matrix fragment, cell page, fleet, global matrix,
PyTorch releases and their readiness reports."""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ci_runners import release_reports, selectors, services
from ci_runners.deprecations import forecast as deprecation_forecast
from ci_runners.forms import TestOverrideForm
from ci_runners.models import Bisection, CompatCell, CompatRun, ProjectTestConfig, TorchTarget
from ci_runners.services.runs import RunLimitReached, compat_run_request_manual
from ci_runners.states import CELL_STATE_CHOICES, CELL_STATE_VALUES
from registry.models import Project
from registry.sources.pypi import PyPIUnavailable


def _project(slug: str) -> Project:
    try:
        return Project.objects.get(slug=slug)
    except Project.DoesNotExist:
        raise Http404("No project with this name.") from None


def project_matrix(request: HttpRequest, slug: str, notice: str = "") -> HttpResponse:
    """The fragment the registry's project page pulls in with htmx; it polls itself while the
    latest run has cells in flight."""
    project = _project(slug)
    latest_run = selectors.project_latest_run(project=project)
    context = {
        "notice": notice,
        "project": project,
        "rows": selectors.project_matrix(project=project),
        "latest_run": latest_run,
        "run_active": selectors.run_has_active_cells(run=latest_run),
        "can_manage": selectors.user_can_manage_runs(user=request.user, project=project),
    }
    return render(request, "ci_runners/_project_matrix.html", context)


def project_testing(request: HttpRequest, slug: str) -> HttpResponse:
    """ "How we test this project": the recipe its latest finished cell ran, the override set
    now, and (staff only) the form that edits the override. A fragment of the project page."""
    project = _project(slug)
    is_staff = bool(getattr(request.user, "is_staff", False))
    config = ProjectTestConfig.objects.filter(project=project).first()
    override = services.test_override_of(config)
    form, notice, status = None, "", 200
    if request.method == "POST":
        if not is_staff:
            raise PermissionDenied("Only staff can change how a project is tested.")
        form = TestOverrideForm(request.POST)
        if form.is_valid():
            try:
                config = services.project_test_config_update(
                    project=project, actor=request.user, changes=form.changes()
                )
            except services.TestConfigInvalid as invalid:
                form.add_service_errors(invalid.errors)
            else:
                override, form = services.test_override_of(config), None
                notice = "Override saved: the next run uses it."
                if not request.htmx:
                    messages.success(request, notice)
                    return redirect(f"{project.get_absolute_url()}#testing")
        if form is not None:
            status = 200 if request.htmx else 400  # htmx swaps only 2xx answers
    elif request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
    context = {
        "project": project,
        "cell": selectors.project_latest_recipe_cell(project=project),
        "override": override,
        "is_staff": is_staff,
        "form": form or (TestOverrideForm.for_override(override) if is_staff else None),
        "form_open": form is not None,
        "notice": notice,
        "bisections": _bisections_shown(project),
        "bisection_pairs": services.bisection_pairs(project=project) if is_staff else [],
        "flaky_history": selectors.flaky_test_history(project=project),
    }
    template = "ci_runners/_project_testing.html"
    if request.method == "POST" and not request.htmx:
        template = "ci_runners/project_testing.html"
    return render(request, template, context, status=status)


@require_POST
def project_run_now(request: HttpRequest, slug: str) -> HttpResponse:
    project = _project(slug)
    if not selectors.user_can_manage_runs(user=request.user, project=project):
        raise PermissionDenied("Only staff and the project's maintainers can start runs.")
    try:
        run = compat_run_request_manual(project=project, requested_by=request.user)
    except RunLimitReached as limited:
        if request.htmx:  # the fragment again, the refusal as its notice
            return project_matrix(request, slug, notice=limited.message)
        messages.error(request, limited.message)
        return redirect(project.get_absolute_url())
    except services.CompatRunRefused as exc:
        if request.htmx:
            return HttpResponse(str(exc), status=400)
        messages.error(request, str(exc))
        return redirect(project.get_absolute_url())
    notice = f"Run {run.pk} queued on {run.cells.count()} PyTorch versions."
    if request.htmx:
        return project_matrix(request, slug, notice=f"{notice} This table updates by itself.")
    messages.success(request, notice)
    return redirect(project.get_absolute_url())


BISECTIONS_SHOWN = 10


def _bisections_shown(project: Project) -> list[Bisection]:
    """The project's latest bisections, for its "First bad release" section."""
    bisections = Bisection.objects.filter(project=project).select_related("template_target")
    return list(bisections[:BISECTIONS_SHOWN])


@require_POST
def project_bisect(request: HttpRequest, slug: str) -> HttpResponse:
    """Staff only: start a bisection (first bad release) between two targets of the project,
    `good` and `bad` (target ids, as the "First bad release" section's forms post them)."""
    project = _project(slug)
    if not getattr(request.user, "is_staff", False):
        raise PermissionDenied("Only staff can start a bisection.")
    ids = [request.POST.get(end, "") for end in ("good", "bad")]
    ends = {t.pk: t for t in TorchTarget.objects.filter(pk__in=[i for i in ids if i.isdigit()])}
    good, bad = (ends.get(int(i)) if i.isdigit() else None for i in ids)
    if good is None or bad is None:
        return HttpResponse("Choose a good and a bad PyTorch target.", status=400)
    try:
        bisection = services.bisection_start(
            project=project, good_target=good, bad_target=bad, actor=request.user
        )
    except (services.BisectionRefused, PyPIUnavailable) as exc:
        messages.error(request, str(exc))
    else:
        between = len(bisection.candidates)
        messages.success(
            request,
            f"Bisection of {good.version}..{bad.version}: {between} releases between them.",
        )
    return redirect(f"{project.get_absolute_url()}#bisections")


@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(CompatRun.objects.select_related("project"), pk=run_id)
    if not selectors.user_can_manage_runs(user=request.user, project=run.project):
        raise PermissionDenied("Only staff and the project's maintainers can cancel runs.")
    cancelled = services.compat_run_cancel(run=run, actor=request.user)
    if request.htmx and run.project_id:
        return project_matrix(request, run.project.slug)
    messages.success(request, f"{cancelled} cells cancelled.")
    return redirect(run.project.get_absolute_url() if run.project_id else "ci_runners:matrix")


def cell_detail(request: HttpRequest, cell_id: int) -> HttpResponse:
    try:
        cell = selectors.cell_for_page(cell_id=cell_id, user=request.user)
    except CompatCell.DoesNotExist:
        raise Http404("No such cell.") from None
    if request.htmx:
        return render(request, "ci_runners/_cell_live.html", {"cell": cell})
    # Failures and flaky tests labelled with the project's flaky history.
    history = selectors.flaky_test_history(project=cell.run.project)
    context = {
        "cell": cell,
        "failures": selectors.with_flaky_history(tests=cell.failures, history=history),
        "flaky": selectors.with_flaky_history(tests=cell.flaky, history=history),
        "flaky_history": history,
    }
    return render(request, "ci_runners/cell_detail.html", context)


_SUFFIX_RANGE = re.compile(r"^bytes=-(\d+)$")
_SPAN_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def cell_log(request: HttpRequest, cell_id: int) -> HttpResponse:
    """The full log as text, under the cell page's rule; one `Range` (e.g. `bytes=-65536`
    for the tail) answers 206."""
    try:
        cell = selectors.cell_for_page(cell_id=cell_id, user=request.user)
    except CompatCell.DoesNotExist:
        raise Http404("No such cell.") from None
    if not cell.log_file and not (cell.is_final and cell.log_tail):
        raise Http404("This cell has no stored log.")
    data = selectors.cell_log_bytes(cell=cell)
    span = _byte_span(request.headers.get("Range", ""), total=len(data))
    if span is None:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{len(data)}"
        return response
    start, end = span
    response = HttpResponse(data[start:end], content_type="text/plain; charset=utf-8")
    if (start, end) != (0, len(data)):
        response.status_code = 206
        response["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = f'inline; filename="cell-{cell.pk}-{cell.attempt}.log"'
    return response


def _byte_span(header: str, *, total: int) -> tuple[int, int] | None:
    """(start, end) of the bytes asked for; the whole when no (or an unparsed) range; None
    when the range cannot be satisfied."""
    if suffix := _SUFFIX_RANGE.match(header):
        return max(0, total - int(suffix.group(1))), total
    if span := _SPAN_RANGE.match(header):
        start = int(span.group(1))
        end = int(span.group(2)) + 1 if span.group(2) else total
        return (start, min(end, total)) if start < total and start < end else None
    return 0, total


def fleet(request: HttpRequest) -> HttpResponse:
    """Runners, queues and cells in flight; a banner lists detected PyTorch releases waiting
    for staff's approval (the button is staff's)."""
    context = {
        "fleet": selectors.fleet(),
        "awaiting_releases": release_reports.releases_awaiting_approval(),
        "is_staff": bool(getattr(request.user, "is_staff", False)),
        "carry_max_age_days": round(settings.COMPAT_CARRY_MAX_AGE_S / 86400, 1),
    }
    return render(request, "ci_runners/fleet.html", context)


@require_POST
def night_run_full(request: HttpRequest) -> HttpResponse:
    """Staff only: run every active project on every active target now, carrying nothing
    (a forced full night, `services.night_start(force=True)`); once per minute."""
    if not getattr(request.user, "is_staff", False):
        raise PermissionDenied("Only staff can start a full run.")
    plan = services.night_start(
        slot=services.manual_night_slot(), force=True, trigger=CompatRun.Trigger.MANUAL
    )
    if plan is None:
        messages.info(
            request, "Nothing queued: a full run was started this minute, or no target is active."
        )
    else:
        messages.success(
            request,
            f"Full run started: {plan.dispatched} cells queued for {len(plan.projects)} projects.",
        )
    return redirect("ci_runners:fleet")


def _release_version(version: str) -> str:
    try:
        return release_reports.parse_release_version(version)
    except release_reports.InvalidReleaseVersion as exc:
        raise Http404(str(exc)) from None


@require_POST
def release_approve(request: HttpRequest, version: str) -> HttpResponse:
    """Staff only: approve a detected release, which starts its readiness run."""
    if not getattr(request.user, "is_staff", False):
        raise PermissionDenied("Only staff can approve a PyTorch release.")
    version = _release_version(version)
    if not TorchTarget.objects.filter(version=version).exists():
        raise Http404("No target of this PyTorch version.")
    cells = services.torch_release_approve(version=version, actor=request.user)
    if cells:
        messages.success(request, f"PyTorch {version} approved: {cells} cells queued.")
    else:
        messages.info(request, f"PyTorch {version} was approved already; nothing new queued.")
    return redirect("ci_runners:release_report", version=version)


def release_list(request: HttpRequest) -> HttpResponse:
    """The PyTorch versions in the catalog, newest first, each linking to its report."""
    context = {
        "releases": release_reports.release_versions(),
        "awaiting_releases": release_reports.releases_awaiting_approval(),
        "is_staff": bool(getattr(request.user, "is_staff", False)),
    }
    return render(request, "ci_runners/release_list.html", context)


def release_report(request: HttpRequest, version: str) -> HttpResponse:
    """The readiness report of a release; `?format=csv` or `?format=json` downloads it."""
    report = release_reports.release_report(_release_version(version))
    kind = request.GET.get("format", "html")
    filename = f"torch-{report['version']}-readiness"
    if kind == "json":
        response: HttpResponse = JsonResponse(report, json_dumps_params={"indent": 2})
    elif kind == "csv":
        response = HttpResponse(
            release_reports.release_report_csv(report), content_type="text/csv; charset=utf-8"
        )
    elif kind == "html":
        context = {
            "report": report,
            "is_staff": bool(getattr(request.user, "is_staff", False)),
            "labels": release_reports.CLASSIFICATION_LABELS,
        }
        return render(request, "ci_runners/release_report.html", context)
    else:
        return HttpResponse("Unknown format: use csv or json.", status=400)
    response["Content-Disposition"] = f'attachment; filename="{filename}.{kind}"'
    return response


def matrix(request: HttpRequest) -> HttpResponse:
    raw_target = request.GET.get("target", "")
    target = int(raw_target) if raw_target.isdigit() else None
    state = request.GET.get("state", "")
    filters = selectors.MatrixFilters(
        target=target,
        state=state if state in CELL_STATE_VALUES else "",
        category=request.GET.get("category", "")[:140],
        kind=request.GET.get("kind", "")[:20],
        status=request.GET.get("status", "")[:20],
    )
    data = selectors.global_matrix(filters=filters, page_number=request.GET.get("page"))
    context = {
        "data": data,
        "filters": filters,
        "all_targets": TorchTarget.objects.filter(active=True),
        "states": CELL_STATE_CHOICES,
        "categories": selectors.matrix_categories(),
        "kinds": Project.Kind.choices,
    }
    template = "ci_runners/_matrix_table.html" if request.htmx else "ci_runners/matrix.html"
    return render(request, template, context)


def deprecations(request: HttpRequest) -> HttpResponse:
    """The deprecation forecast: the deprecated torch APIs the ecosystem's tests call, by
    projects affected, and each project's count (`ci_runners.deprecations`)."""
    return render(request, "ci_runners/deprecations.html", {"forecast": deprecation_forecast()})


def project_deprecations(request: HttpRequest, slug: str) -> HttpResponse:
    """The project's part of the forecast: a fragment of the project page (empty until the
    project has a finished cell)."""
    project = _project(slug)
    context = {"project": project, "forecast": deprecation_forecast(project=project)}
    return render(request, "ci_runners/_project_deprecations.html", context)
