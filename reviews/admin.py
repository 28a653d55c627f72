"""Admin pages for every model of the review process (state fields are read-only here:
only the services write them)."""

from django.contrib import admin

from reviews.models import (
    Comment,
    CriterionAnswer,
    CriterionResult,
    OnboardingTask,
    PeriodicReview,
    ReviewEvent,
    Submission,
    Vote,
)


class CriterionResultInline(admin.TabularInline):
    model = CriterionResult
    extra = 0
    max_num = 0
    fields = ("criterion", "outcome", "automated", "evidence_value", "measured_at", "overridden_by")
    readonly_fields = fields
    can_delete = False


class ReviewEventInline(admin.TabularInline):
    model = ReviewEvent
    extra = 0
    max_num = 0
    fields = ("created_at", "kind", "actor", "from_state", "to_state", "note")
    readonly_fields = fields
    can_delete = False


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "repository", "kind", "state", "applicant", "submitted_at")
    list_filter = ("state", "kind")
    search_fields = ("project_name", "repo_owner", "repo_name", "summary")
    readonly_fields = (
        "state", "state_changed_at", "repo_owner", "repo_name", "submitted_at", "vote_opened_at",
        "vote_closes_at", "decided_at", "checks_ran_at", "compat_run", "github_health",
        "project",
    )  # fmt: skip
    raw_id_fields = ("applicant",)
    filter_horizontal = ("reviewers",)
    inlines = [CriterionResultInline, ReviewEventInline]


@admin.register(CriterionResult)
class CriterionResultAdmin(admin.ModelAdmin):
    list_display = ("submission", "criterion", "outcome", "automated", "overridden_by")
    list_filter = ("outcome", "automated", "criterion")
    search_fields = ("submission__project_name",)
    readonly_fields = ("submission", "criterion", "automated_outcome", "overridden_by")


@admin.register(CriterionAnswer)
class CriterionAnswerAdmin(admin.ModelAdmin):
    list_display = ("submission", "criterion", "reviewer", "outcome", "updated_at")
    list_filter = ("outcome", "criterion")
    search_fields = ("submission__project_name", "reviewer__username", "justification")


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    """Read-only: a vote is cast through reviews.services.vote_cast, which checks who may vote
    (role, conflict of interest, an open vote) and writes the audit event."""

    list_display = ("submission", "voter", "choice", "cast_at", "updated_at")
    list_filter = ("choice",)
    list_select_related = ("submission", "voter")
    search_fields = ("submission__project_name", "voter__username", "voter__email")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ("submission", "author", "shared_with_applicant", "created_at")
    list_filter = ("shared_with_applicant",)
    search_fields = ("body", "submission__project_name", "author__username")


@admin.register(ReviewEvent)
class ReviewEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "submission", "periodic_review", "actor", "to_state")
    list_filter = ("kind", "public")
    search_fields = ("note", "submission__project_name", "periodic_review__project__name")
    readonly_fields = [f.name for f in ReviewEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(OnboardingTask)
class OnboardingTaskAdmin(admin.ModelAdmin):
    list_display = ("submission", "label", "suggested", "done_at", "done_by")
    list_filter = ("suggested", ("done_at", admin.EmptyFieldListFilter))
    search_fields = ("label", "submission__project_name")


@admin.register(PeriodicReview)
class PeriodicReviewAdmin(admin.ModelAdmin):
    list_display = ("project", "state", "due_on", "grace_until", "decided_by")
    list_filter = ("state",)
    search_fields = ("project__name", "project__slug")
    readonly_fields = ("state", "results", "failing_criteria", "grace_until", "compat_run")
