"""Admin pages for the registry."""

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from registry import identities, listing, services
from registry.models import (
    Category,
    ListingChange,
    Logo,
    MaintainerIdentity,
    Project,
    ProjectExemption,
    RepoSnapshot,
)


class ServiceWrittenAdmin(admin.ModelAdmin):
    """Rows that only the services write: shown (and deleted by staff), never added or changed
    here."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(ServiceWrittenAdmin):
    """A record (an audit trail, a log): shown only, never deleted here either."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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
        "maintainer_candidates",  # found on sync
        "repo_config",  # read on sync from [tool.pytorch-ecosystem]
    )
    inlines = [RepoSnapshotInline]

    def save_model(self, request, obj, form, change):
        if "pypi_name" in form.changed_data and "pypi_name_origin" not in form.changed_data:
            # A name staff set (or cleared) is theirs: a sync never overwrites it.
            obj.pypi_name_origin = Project.PypiNameOrigin.STAFF
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


class MaintainerIdentityForm(forms.ModelForm):
    verification_reason = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why (un)verified by hand: required when 'verified' changes; kept in the "
        "history.",
    )

    class Meta:
        model = MaintainerIdentity
        fields = ("user", "github_handle", "verified", "verification_reason")

    def clean(self):
        cleaned = super().clean()
        if "verified" in self.changed_data and not cleaned.get("verification_reason", "").strip():
            self.add_error("verification_reason", "Say why the identity is (un)verified by hand.")
        return cleaned


@admin.register(MaintainerIdentity)
class MaintainerIdentityAdmin(admin.ModelAdmin):
    """A GitHub sign-in verifies an identity; staff may verify one by hand, with a reason
    (registry.identities.maintainer_identity_set_verified logs it in the history)."""

    form = MaintainerIdentityForm
    list_display = ("user", "github_handle", "verified")
    list_filter = ("verified",)
    search_fields = ("user__username", "user__email", "github_handle")
    raw_id_fields = ("user",)

    def save_model(self, request, obj, form, change):
        verified_changed = "verified" in form.changed_data
        wanted = obj.verified
        if verified_changed:  # written (and logged) by the service below
            obj.verified = bool(form.initial.get("verified", False)) if change else False
        super().save_model(request, obj, form, change)
        if verified_changed:
            identities.maintainer_identity_set_verified(
                identity=obj,
                verified=wanted,
                actor=request.user,
                reason=form.cleaned_data["verification_reason"],
            )


@admin.register(Logo)
class LogoAdmin(ServiceWrittenAdmin):
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


@admin.register(ListingChange)
class ListingChangeAdmin(ReadOnlyAdmin):
    """The audit trail of the listings (read only); staff revert a change with the action."""

    list_display = ("created_at", "project", "field", "actor", "reverts")
    list_filter = ("field",)
    search_fields = ("project__name", "project__slug", "actor__username", "field")
    list_select_related = ("project", "actor", "reverts")
    date_hierarchy = "created_at"
    fields = ("project", "field", "old_value", "new_value", "actor", "reverts", "created_at")
    readonly_fields = fields
    actions = ["revert"]

    def has_revert_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    @admin.action(description="Revert the selected changes", permissions=["revert"])
    def revert(self, request, queryset):
        for change in queryset.select_related("project").order_by("-created_at", "-pk"):
            try:
                listing.listing_change_revert(change=change, actor=request.user)
            except listing.ListingRefused as refused:
                self.message_user(request, f"{change}: {refused}", messages.WARNING)
            else:
                self.message_user(request, f"{change}: reverted.", messages.SUCCESS)


@admin.register(ProjectExemption)
class ProjectExemptionAdmin(ServiceWrittenAdmin):
    """Exemptions claimed on the listing or in the repository file; staff withdraw one."""

    list_display = ("project", "criterion", "source", "claimed_by", "created_at", "withdrawn_at")
    list_filter = ("source", ("withdrawn_at", admin.EmptyFieldListFilter), "criterion")
    search_fields = ("project__name", "project__slug", "reason")
    list_select_related = ("project", "claimed_by")
    fields = (
        "project",
        "criterion",
        "reason",
        "source",
        "claimed_by",
        "created_at",
        "withdrawn_at",
    )
    readonly_fields = fields
    actions = ["withdraw"]

    def has_withdraw_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    @admin.action(description="Withdraw the selected exemptions", permissions=["withdraw"])
    def withdraw(self, request, queryset):
        for exemption in queryset.filter(withdrawn_at__isnull=True):
            listing.project_exemption_withdraw(exemption=exemption, actor=request.user)
        self.message_user(request, "Withdrawn.", messages.SUCCESS)
