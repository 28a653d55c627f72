"""Admin for every model of the compatibility runs; approving a detected torch release."""

from django.contrib import admin, messages

from ci_runners import services
from ci_runners.models import (
    CellResult,
    CompatCell,
    CompatRun,
    CompatStatus,
    ProjectTestConfig,
    RunnerHost,
    ScheduledSlot,
    TorchTarget,
)


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


@admin.register(ProjectTestConfig)
class ProjectTestConfigAdmin(admin.ModelAdmin):
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
    list_display = ("pk", "run", "target", "state", "attempt", "runner_name", "finished_at")
    list_filter = ("state", "target")
    search_fields = ("project__name", "project__slug", "runner_name")
    raw_id_fields = ("run", "project")
    # `.state` has one writer (services.cell_transition): read-only here.
    readonly_fields = ("state", "attempt", "task_id", "dispatched_at", "last_seen_at")


@admin.register(CellResult)
class CellResultAdmin(admin.ModelAdmin):
    list_display = ("cell", "attempt", "state", "runner_name", "applied", "received_at")
    list_filter = ("state", "applied")
    search_fields = ("runner_name", "cell__project__name")
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
