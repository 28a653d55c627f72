"""Admin for every model of the compatibility runs; approving a detected torch release."""

from django import forms
from django.contrib import admin, messages

from ci_runners import services
from ci_runners.models import (
    Bisection,
    CellResult,
    CompatCell,
    CompatRun,
    CompatStatus,
    ProjectTestConfig,
    RunnerHost,
    ScheduledSlot,
    TorchTarget,
    WebhookDelivery,
)
from registry.admin import ReadOnlyAdmin


@admin.register(TorchTarget)
class TorchTargetAdmin(admin.ModelAdmin):
    list_display = ("label", "capability", "active", "prerelease", "created_at", "approved_at")
    list_filter = ("active", "capability", "prerelease")
    search_fields = ("version", "variant", "python_version")
    actions = ["approve"]

    @admin.action(description="Approve: activate and run every active project on it")
    def approve(self, request, queryset):
        cells = 0
        for target in queryset.filter(active=False):
            cells += services.torch_target_approve(target=target, actor=request.user)
        self.message_user(request, f"Approved; {cells} cells queued.", messages.SUCCESS)


class ProjectTestConfigForm(forms.ModelForm):
    """The override fields pass the same checks as the project page's form and the API (the
    admin supplies the model and fields)."""

    def clean(self):
        cleaned = super().clean()
        override = {name: cleaned[name] for name in services.OVERRIDE_FIELDS if name in cleaned}
        try:
            cleaned.update(services.test_override_clean(override))
        except services.TestConfigInvalid as invalid:
            for name, problems in invalid.errors.items():
                self.add_error(name if name in self.fields else None, problems)
        return cleaned


@admin.register(ProjectTestConfig)
class ProjectTestConfigAdmin(admin.ModelAdmin):
    form = ProjectTestConfigForm
    list_display = ("project", "timeout_s", "needs_gpu", "max_concurrent", "source_override")
    search_fields = ("project__name", "project__slug")
    autocomplete_fields = ("project",)


class CompatCellInline(admin.TabularInline):
    model = CompatCell
    fields = ("target", "state", "attempt", "runner_name", "started_at", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(CompatRun)
class CompatRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "project", "source_url", "trigger", "created_at", "finished_at")
    list_filter = ("trigger",)
    search_fields = ("project__name", "source_url")
    raw_id_fields = ("project", "requested_by", "cancelled_by")
    inlines = [CompatCellInline]
    actions = ["cancel"]

    @admin.action(description="Cancel the selected runs")
    def cancel(self, request, queryset):
        cells = sum(services.compat_run_cancel(run=run, actor=request.user) for run in queryset)
        self.message_user(request, f"{cells} cells cancelled.", messages.SUCCESS)


@admin.register(CompatCell)
class CompatCellAdmin(admin.ModelAdmin):
    list_display = (
        "pk",
        "run",
        "target",
        "state",
        "error_code",
        "suite_shrunk",
        "attempt",
        "runner_name",
        "finished_at",
    )
    list_filter = ("state", "error_code", "suite_shrunk", "target")
    search_fields = ("project__name", "project__slug", "runner_name", "recipe_hash")
    raw_id_fields = ("run", "project")
    # `.state` has one writer (services.cell_transition), and what the runner reported is its
    # record: read-only here.
    readonly_fields = (
        "state",
        "attempt",
        "task_id",
        "dispatched_at",
        "last_seen_at",
        "error_code",
        "tests_collected",
        "needs_network",
        "recipe",
        "recipe_hash",
        "lock_hash",
        "suite_shrunk",
        "suite_shrink",
    )


@admin.register(CellResult)
class CellResultAdmin(admin.ModelAdmin):
    list_display = (
        "cell",
        "attempt",
        "state",
        "error_code",
        "tests_collected",
        "runner_name",
        "applied",
        "received_at",
    )
    list_filter = ("state", "error_code", "applied")
    search_fields = ("runner_name", "cell__project__name", "recipe_hash", "lock_hash")
    raw_id_fields = ("cell",)


@admin.register(CompatStatus)
class CompatStatusAdmin(admin.ModelAdmin):
    list_display = ("project", "target", "latest_cell", "last_final_cell")
    list_filter = ("target",)
    search_fields = ("project__name", "project__slug")
    raw_id_fields = ("project", "latest_cell", "last_final_cell")


@admin.register(RunnerHost)
class RunnerHostAdmin(admin.ModelAdmin):
    list_display = ("name", "queues", "agent_version", "last_heartbeat", "current_cell")
    list_filter = ("agent_version",)
    search_fields = ("name",)
    raw_id_fields = ("current_cell",)


@admin.register(ScheduledSlot)
class ScheduledSlotAdmin(admin.ModelAdmin):
    list_display = ("job", "slot", "claimed_at")
    list_filter = ("job",)
    search_fields = ("slot",)


@admin.register(Bisection)
class BisectionAdmin(admin.ModelAdmin):
    """Bisections are written by `services.bisection_*`: read here, cancelled by the action."""

    list_display = (
        "project",
        "good_version",
        "bad_version",
        "state",
        "first_bad",
        "last_good",
        "created_at",
        "finished_at",
    )
    list_filter = ("state",)
    search_fields = ("project__name", "project__slug", "first_bad")
    raw_id_fields = ("project", "template_target", "requested_by")
    readonly_fields = [field.name for field in Bisection._meta.fields]
    actions = ["cancel"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Cancel: stop the bisection and its pending probe")
    def cancel(self, request, queryset):
        for bisection in queryset.filter(state=Bisection.State.RUNNING):
            services.bisection_cancel(bisection=bisection, actor=request.user)
        self.message_user(request, "Running bisections cancelled.", messages.SUCCESS)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """GitHub webhook deliveries and their outcomes, written by `services.webhooks`: read-only."""

    list_display = (
        "received_at",
        "project",
        "event",
        "action",
        "ref",
        "outcome",
        "status_code",
        "delivery_id",
    )
    list_filter = ("outcome", "event", "status_code")
    search_fields = ("delivery_id", "project__name", "project__slug", "ref")
    list_select_related = ("project",)
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]
    date_hierarchy = "received_at"
