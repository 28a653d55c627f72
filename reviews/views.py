"""Pages of the portal (applicants) and the reviewer dashboard (TAC). Thin: forms validate,
services write, selectors read. Refused actions come back as messages, never as errors."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from registry.models import Project
from reviews import criteria, forms, selectors, services
from reviews.models import REQUIRED_ANSWERS, OnboardingTask, PeriodicReview, Submission, Vote
from reviews.roles import (
    REVIEWERS_GROUP,
    STAFF_GROUP,
    can_review,
    can_vote,
    conflict_reason,
    is_tac,
    user_roles,
)
from reviews.states import (
    APPLICANT,
    EDITABLE_STATES,
    FINAL_STATES,
    REVIEWER,
    STAFF,
    ReviewError,
    SubmissionState,
    next_states,
)


def tac_required(view):
    @wraps(view)
    @login_required
    def wrapped(request: HttpRequest, *args, **kwargs):
        if not is_tac(request.user):
            raise PermissionDenied("The dashboard is for the TAC.")
        return view(request, *args, **kwargs)

    return wrapped


def _own_submission(request: HttpRequest, pk: int) -> Submission:
    try:
        return selectors.applicant_submission(user=request.user, pk=pk)
    except Submission.DoesNotExist:
        raise Http404("No such application of yours.") from None


def _refused(request: HttpRequest, error: Exception) -> None:
    messages.error(request, str(error))


# --- the applicant's portal ---


@login_required
@require_GET
def my_applications(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "reviews/my_applications.html",
        {
            "submissions": selectors.applicant_submissions(user=request.user),
            "is_tac": is_tac(request.user),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def application_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = forms.SubmissionForm(request.POST)
        if form.is_valid():
            try:
                submission = services.submission_create(
                    applicant=request.user, answers=form.answers()
                )
            except ReviewError as error:
                _refused(request, error)
            else:
                messages.success(request, "Draft saved. Submit it when it is complete.")
                return redirect("reviews:application", pk=submission.pk)
    else:
        form = forms.SubmissionForm()
    return render(
        request,
        "reviews/application_form.html",
        {"form": form, "submission": None, "required_names": REQUIRED_ANSWERS},
    )


@login_required
@require_http_methods(["GET", "POST"])
def application_edit(request: HttpRequest, pk: int) -> HttpResponse:
    submission = _own_submission(request, pk)
    if submission.state not in EDITABLE_STATES:
        messages.error(request, "This application cannot be edited now.")
        return redirect("reviews:application", pk=pk)
    if request.method == "POST":
        form = forms.SubmissionForm(request.POST, instance=submission)
        if form.is_valid():
            try:
                services.submission_update(
                    submission=submission, actor=request.user, answers=form.answers()
                )
            except ReviewError as error:
                _refused(request, error)
            else:
                messages.success(request, "Changes saved.")
                return redirect("reviews:application", pk=pk)
    else:
        form = forms.SubmissionForm(instance=submission)
    return render(
        request,
        "reviews/application_form.html",
        {"form": form, "submission": submission, "required_names": REQUIRED_ANSWERS},
    )


@login_required
@require_GET
def application_detail(request: HttpRequest, pk: int) -> HttpResponse:
    submission = _own_submission(request, pk)
    onboarding = submission.onboarding_tasks.filter(for_applicant=True).select_related("done_by")
    return render(
        request,
        "reviews/application_detail.html",
        {
            "submission": submission,
            "missing": services.submission_missing_answers(submission=submission)
            if submission.state == SubmissionState.DRAFT
            else [],
            "rows": selectors.criteria_rows(submission=submission),
            "comments": selectors.comments_for(submission=submission, tac=False),
            "events": selectors.events_for(submission=submission, public_only=True),
            "comment_form": forms.CommentForm(),
            "editable": submission.state in EDITABLE_STATES,
            "can_withdraw": SubmissionState.WITHDRAWN in next_states(submission.state, {APPLICANT}),
            "can_resume": SubmissionState.IN_REVIEW in next_states(submission.state, {APPLICANT}),
            "onboarding": onboarding,
        },
    )


@login_required
@require_POST
def application_onboarding(request: HttpRequest, pk: int, task_id: int) -> HttpResponse:
    """The applicant ticks a task of their onboarding checklist (the service says which)."""
    submission = _own_submission(request, pk)
    task = get_object_or_404(submission.onboarding_tasks, pk=task_id)
    _onboarding_set(request, task)
    return redirect(reverse("reviews:application", kwargs={"pk": pk}) + "#onboarding")


def _onboarding_set(request: HttpRequest, task: OnboardingTask) -> None:
    done = request.POST.get("done") == "1"
    try:
        services.onboarding_task_set(task=task, done=done, actor=request.user)
    except ReviewError as error:
        _refused(request, error)
    else:
        messages.success(request, f"{task.label}: {'done' if done else 'not done'}.")


@login_required
@require_POST
def application_submit(request: HttpRequest, pk: int) -> HttpResponse:
    submission = _own_submission(request, pk)
    try:
        services.submission_submit(submission=submission, actor=request.user)
    except ReviewError as error:
        _refused(request, error)
    else:
        messages.success(request, "Submitted. The automated checks are running.")
    return redirect("reviews:application", pk=pk)


@login_required
@require_POST
def application_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    submission = _own_submission(request, pk)
    try:
        services.submission_withdraw(
            submission=submission, actor=request.user, note=request.POST.get("note", "")[:5000]
        )
    except ReviewError as error:
        _refused(request, error)
    else:
        messages.success(request, "Application withdrawn.")
    return redirect("reviews:application", pk=pk)


@login_required
@require_POST
def application_resume(request: HttpRequest, pk: int) -> HttpResponse:
    """After changes were requested: 'my changes are done, please review again'."""
    submission = _own_submission(request, pk)
    try:
        services.submission_transition(
            submission=submission,
            to=SubmissionState.IN_REVIEW,
            actor=request.user,
            note=request.POST.get("note", "")[:5000] or "Changes made; ready for review.",
        )
    except ReviewError as error:
        _refused(request, error)
    else:
        messages.success(request, "Sent back to the reviewers.")
    return redirect("reviews:application", pk=pk)


@login_required
@require_POST
def application_comment(request: HttpRequest, pk: int) -> HttpResponse:
    submission = _own_submission(request, pk)
    _post_comment(request, submission)
    return redirect("reviews:application", pk=pk)


def _post_comment(request: HttpRequest, submission: Submission) -> None:
    form = forms.CommentForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return
    try:
        services.comment_post(
            submission=submission,
            author=request.user,
            body=form.cleaned_data["body"],
            shared_with_applicant=form.cleaned_data["shared_with_applicant"],
        )
    except ReviewError as error:
        _refused(request, error)


# --- the TAC dashboard ---


@tac_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    filters = selectors.QueueFilters(
        state=request.GET.get("state", ""),
        assigned_to_me=request.GET.get("mine") == "1",
        query=request.GET.get("q", "").strip()[:100],
    )
    context = {
        "filters": filters,
        "rows": selectors.dashboard_queue(user=request.user, filters=filters),
        "counts": selectors.dashboard_counts(),
        "states": [s for s in SubmissionState.choices if s[0] != SubmissionState.DRAFT],
        "periodic": selectors.open_periodic_reviews(),
        "roles": sorted(user_roles(request.user)),
    }
    if request.htmx:
        return render(request, "reviews/_queue.html", context)
    return render(request, "reviews/dashboard.html", context)


def _review_context(request: HttpRequest, submission: Submission) -> dict:
    user = request.user
    roles = user_roles(user)
    on_this = services.roles_on(submission=submission, actor=user)
    tally = services.vote_tally(submission=submission)
    summary = selectors.criteria_summary(submission=submission)
    my_vote = submission.votes.filter(voter=user).first()
    conflict = conflict_reason(submission=submission, user=user)
    reviewers = (
        get_user_model()
        .objects.filter(groups__name__in=[REVIEWERS_GROUP, STAFF_GROUP], is_active=True)
        .exclude(pk=submission.applicant_id)
        .distinct()
        .order_by("username")
    )
    return {
        "submission": submission,
        "rows": selectors.criteria_rows(submission=submission, user=user),
        "comments": selectors.comments_for(submission=submission, tac=True),
        "events": selectors.events_for(submission=submission),
        "cells": selectors.compat_cells_of(run_id=submission.compat_run_id),
        "health": submission.github_health,
        "tally": tally,
        "criteria_summary": summary,
        "can_close_vote": selectors.vote_closable_by(submission=submission, user=user, tally=tally),
        "votes": submission.votes.select_related("voter").order_by("voter__username"),
        "my_vote": my_vote,
        "vote_choices": Vote.Choice.choices,
        "can_vote_here": selectors.vote_open_to(submission=submission, user=user),
        "vote_conflict": conflict if can_vote(user) else "",
        "can_review_here": bool(on_this & {REVIEWER, STAFF}),
        "moves": [
            (to, SubmissionState(to).label)
            for to in selectors.reviewer_moves(submission=submission, user=user)
        ],
        "assigned": list(submission.reviewers.all()),
        "reviewer_choices": reviewers,
        "category_form": forms.CategoryForm(initial={"category": submission.category_id}),
        "comment_form": forms.CommentForm(),
        "outcomes": forms.CriterionResult.Outcome.choices,
        "onboarding": submission.onboarding_tasks.select_related("done_by"),
        "is_final": submission.state in FINAL_STATES,
        "roles": sorted(roles),
    }


@tac_required
@require_GET
def review_detail(request: HttpRequest, pk: int) -> HttpResponse:
    submission = get_object_or_404(
        selectors.tac_submissions(user=request.user).select_related(
            "applicant", "category__parent", "project"
        ),
        pk=pk,
    )
    return render(request, "reviews/review_detail.html", _review_context(request, submission))


def _tac_submission(request: HttpRequest, pk: int) -> Submission:
    return get_object_or_404(selectors.tac_submissions(user=request.user), pk=pk)


def _back(pk: int, anchor: str = "") -> HttpResponse:
    return redirect(reverse("reviews:review", kwargs={"pk": pk}) + anchor)


def _reviewer_post(view):
    """POST-only, TAC-only actions on one application; ReviewErrors become messages."""

    @wraps(view)
    @tac_required
    @require_POST
    def wrapped(request: HttpRequest, pk: int, *args, **kwargs):
        submission = _tac_submission(request, pk)
        try:
            response = view(request, submission, *args, **kwargs)
        except ReviewError as error:
            _refused(request, error)
            response = None
        return response or _back(pk)

    return wrapped


@_reviewer_post
def review_transition(request: HttpRequest, submission: Submission):
    form = forms.TransitionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The note is too long (at most 5,000 characters).")
        return None
    to, note = form.cleaned_data["to"], form.cleaned_data["note"]
    try:
        services.submission_transition(
            submission=submission,
            to=to,
            actor=request.user,
            note=note,
            confirmed=form.cleaned_data["confirm"],
        )
    except services.UnresolvedCriteria as unresolved:
        # The page again, with the open criteria and a button that confirms the move.
        messages.warning(request, str(unresolved))
        context = _review_context(request, submission)
        context["confirm_vote"] = {"note": note}
        return render(request, "reviews/review_detail.html", context)
    label = SubmissionState(to).label if to in SubmissionState.values else to
    messages.success(request, f"Moved to '{label}'.")
    return None


@_reviewer_post
def review_assign(request: HttpRequest, submission: Submission):
    if not can_review(request.user):
        raise PermissionDenied
    reviewer = get_object_or_404(get_user_model(), pk=request.POST.get("reviewer") or 0)
    services.submission_assign_reviewer(
        submission=submission,
        reviewer=reviewer,
        actor=request.user,
        assign=request.POST.get("action") != "unassign",
    )
    return None


@_reviewer_post
def review_category(request: HttpRequest, submission: Submission):
    form = forms.CategoryForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a category from the list.")
        return None
    services.submission_set_category(
        submission=submission, category=form.cleaned_data["category"], actor=request.user
    )
    messages.success(request, "Category set.")
    return None


def _criterion_number(number: int) -> int:
    if number not in criteria.BY_NUMBER:
        raise Http404("No such criterion.")
    return number


@_reviewer_post
def review_answer(request: HttpRequest, submission: Submission, number: int):
    number = _criterion_number(number)
    form = forms.AnswerForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose an outcome and justify it (at most 2,000 characters).")
        return _back(submission.pk, f"#criterion-{number}")
    services.criterion_answer(
        submission=submission,
        criterion=number,
        reviewer=request.user,
        outcome=form.cleaned_data["outcome"],
        justification=form.cleaned_data["justification"],
    )
    messages.success(request, f"Answer to criterion {number} saved.")
    return _back(submission.pk, f"#criterion-{number}")


@_reviewer_post
def review_override(request: HttpRequest, submission: Submission, number: int):
    number = _criterion_number(number)
    form = forms.OverrideForm(request.POST)
    if not form.is_valid():
        messages.error(request, "An override needs an outcome and a written reason (≤ 2,000).")
        return _back(submission.pk, f"#criterion-{number}")
    services.criterion_override(
        submission=submission,
        criterion=number,
        outcome=form.cleaned_data["outcome"],
        reason=form.cleaned_data["reason"],
        actor=request.user,
    )
    messages.success(request, f"Criterion {number} overridden.")
    return _back(submission.pk, f"#criterion-{number}")


@_reviewer_post
def review_comment(request: HttpRequest, submission: Submission):
    _post_comment(request, submission)
    return _back(submission.pk, "#discussion")


@_reviewer_post
def review_checks(request: HttpRequest, submission: Submission):
    services.submission_request_checks(submission=submission, actor=request.user)
    messages.success(request, "Automated checks queued.")
    return None


@_reviewer_post
def review_vote(request: HttpRequest, submission: Submission):
    form = forms.VoteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Vote approve, reject or abstain.")
    else:
        services.vote_cast(
            submission=submission, voter=request.user, choice=form.cleaned_data["choice"]
        )
        if submission.state == SubmissionState.VOTING:
            messages.success(
                request, "Your vote is recorded; you can change it until the vote closes."
            )
        else:  # the last eligible vote closed it: the whole page changes
            messages.success(
                request,
                "Your vote is recorded. Every eligible member has voted, so the vote closed: "
                f"{submission.get_state_display()}.",
            )
            if request.htmx:
                response = HttpResponse(status=200)
                response["HX-Redirect"] = reverse("reviews:review", kwargs={"pk": submission.pk})
                return response
    if request.htmx:
        submission.refresh_from_db()
        return render(request, "reviews/_vote_panel.html", _review_context(request, submission))
    return _back(submission.pk, "#vote")


@_reviewer_post
def review_close_vote(request: HttpRequest, submission: Submission):
    result = services.vote_close(submission=submission, actor=request.user)
    messages.success(request, f"Vote closed: {result.get_state_display()}.")
    return None


@tac_required
@require_POST
def onboarding_toggle(request: HttpRequest, pk: int, task_id: int) -> HttpResponse:
    task = get_object_or_404(
        OnboardingTask.objects.select_related("submission"), pk=task_id, submission_id=pk
    )
    _onboarding_set(request, task)
    return _back(pk, "#onboarding")


# --- periodic reviews ---


@tac_required
@require_http_methods(["GET", "POST"])
def periodic_review(request: HttpRequest, pk: int) -> HttpResponse:
    review = get_object_or_404(PeriodicReview.objects.select_related("project"), pk=pk)
    form = forms.PeriodicDecisionForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                services.periodic_review_decide(
                    review=review,
                    retire=form.cleaned_data["decision"] == "retire",
                    actor=request.user,
                    note=form.cleaned_data["note"],
                )
            except ReviewError as error:
                _refused(request, error)
            else:
                messages.success(request, "Decision recorded.")
                return redirect("reviews:periodic_review", pk=pk)
        else:
            messages.error(request, "Choose a decision and give the reason.")
    return render(
        request,
        "reviews/periodic_review.html",
        {
            "review": review,
            "form": form,
            "events": review.events.select_related("actor"),
            "can_decide": can_review(request.user)
            and review.state == services.P.RETIREMENT_PROPOSED,
            "criteria": criteria.BY_NUMBER,
            "rows": selectors.periodic_review_rows(review=review),
        },
    )


# --- fragment on the registry's project page ---


@require_GET
def project_history(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_object_or_404(Project, slug=slug)
    return render(
        request,
        "reviews/_project_history.html",
        {"project": project, "entries": selectors.project_review_history(project=project)},
    )
