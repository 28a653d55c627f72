"""Admin pages for the registry."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from registry import services
from registry.models import Category, Logo, MaintainerIdentity, Project, RepoSnapshot


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("__str__", "parent", "position")
    list_filter = ("parent",)
    search_fields = ("name",)
    prepopulated_fields = {"slug": ("name",)}


class RepoSnapshotInline(admin.TabularInline):
    model = RepoSnapshot
    extra = 0
    fields = ("taken_at", "stars", "forks", "open_issues", "commits_90d", "contributors_90d")
    readonly_fields = fields
    show_change_link = True
    max_num = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "status", "category", "repository", "repo_state")
    list_filter = ("kind", "status", "repo_state", "category__parent")
    search_fields = ("name", "slug", "repo_owner", "repo_name", "description")
    prepopulated_fields = {"slug": ("name",)}
    list_select_related = ("category__parent",)
    readonly_fields = (
        "github_id",
        "github_checked_at",
        "works_with",
        "breaks_with",
        "not_installable_with",
        "review_state",
    )
    inlines = [RepoSnapshotInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "slug" in form.changed_data:
            services.project_public_summary_changed(project=Project(slug=form.initial["slug"]))
        services.project_public_summary_changed(project=obj)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        services.project_public_summary_changed(project=obj)


@admin.register(RepoSnapshot)
class RepoSnapshotAdmin(admin.ModelAdmin):
    list_display = ("project", "taken_at", "stars", "commits_90d", "contributors_90d")
    list_select_related = ("project",)
    search_fields = ("project__name",)
    date_hierarchy = "taken_at"


@admin.register(MaintainerIdentity)
class MaintainerIdentityAdmin(admin.ModelAdmin):
    list_display = ("user", "github_handle", "verified")
    list_filter = ("verified",)
    search_fields = ("user__username", "user__email", "github_handle")
    raw_id_fields = ("user",)


@admin.register(Logo)
class LogoAdmin(admin.ModelAdmin):
    """Read only: logos come with the landscape import (registry/logos.py checks them)."""

    list_display = ("source_name", "content_type", "sha256", "created_at")
    list_filter = ("content_type",)
    search_fields = ("source_name", "sha256")
    fields = ("preview", "source_name", "content_type", "sha256", "created_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("data", "card_png")

    @admin.display(description="Card rendering")
    def preview(self, logo: Logo) -> str:
        url = reverse("registry:logo_card", kwargs={"sha256": logo.sha256})
        return format_html('<img src="{}" alt="" height="48">', url)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
