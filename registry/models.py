"""Registry data: the category tree, projects (hosted and ecosystem) and their GitHub health."""

from django.db import models
from django.db.models import Q

from registry.querysets import ProjectQuerySet


class Category(models.Model):
    """A landscape category (no parent) or subcategory (with a parent category)."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=140)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    position = models.PositiveIntegerField(default=0, help_text="Order in the landscape file.")

    class Meta:
        verbose_name_plural = "categories"
        ordering = ["position", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["parent", "name"], name="category_unique_name_in_parent"
            ),
            models.UniqueConstraint(
                fields=["name"], condition=Q(parent__isnull=True), name="category_unique_root"
            ),
        ]

    def __str__(self) -> str:
        parent = self.parent
        return f"{parent.name} / {self.name}" if parent is not None else self.name

    @property
    def path(self) -> str:
        return str(self)


class Logo(models.Model):
    """A logo file as imported with the landscape, addressed by the SHA-256 of its bytes.

    Third-party SVG is active content: it is never inlined in a page, only served as an image by
    `registry.views.logo` under a sandboxing policy. `card_png` is our own small PNG rendering of
    it (registry/logos.py); pages show that, and the original only when rendering failed.
    """

    class ContentType(models.TextChoices):
        SVG = "image/svg+xml", "SVG"
        PNG = "image/png", "PNG"

    sha256 = models.CharField(max_length=64, primary_key=True)
    content_type = models.CharField(max_length=32, choices=ContentType.choices)
    data = models.BinaryField()
    card_png = models.BinaryField(null=True, blank=True)
    source_name = models.CharField(max_length=200, blank=True, help_text="File name when imported.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(content_type__in=["image/svg+xml", "image/png"]),
                name="logo_content_type_svg_or_png",
            ),
            models.CheckConstraint(
                condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="logo_sha256_hex"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source_name or 'logo'} ({self.sha256[:12]})"


class Project(models.Model):
    class Kind(models.TextChoices):
        HOSTED = "hosted", "Hosted (foundation)"
        ECOSYSTEM = "ecosystem", "Ecosystem"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    class PypiNameOrigin(models.TextChoices):
        LANDSCAPE = "landscape", "Landscape file"
        SYNC = "sync", "Discovered on sync"
        STAFF = "staff", "Set by staff"
        MAINTAINER = "maintainer", "Set by a maintainer"

    class RepoState(models.TextChoices):
        UNKNOWN = "unknown", "Not synced yet"
        OK = "ok", "OK"
        NOT_FOUND = "not_found", "Not found (404)"
        PRIVATE = "private", "Private or forbidden"
        RENAMED = "renamed", "Renamed or moved"
        ERROR = "error", "Sync error"

    slug = models.SlugField(max_length=120, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.ECOSYSTEM)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    category = models.ForeignKey(
        Category,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="projects",
        limit_choices_to={"parent__isnull": False},
        help_text="A subcategory: projects sit at the second level of the landscape.",
    )
    description = models.TextField(blank=True)
    homepage_url = models.URLField(max_length=500, blank=True)
    documentation_url = models.URLField(max_length=500, blank=True)
    pypi_name = models.CharField(max_length=200, blank=True)
    pypi_name_origin = models.CharField(
        max_length=16,
        choices=PypiNameOrigin.choices,
        blank=True,
        help_text="Where the PyPI name came from; a sync never overwrites one set by staff.",
    )
    logo = models.CharField(max_length=200, blank=True)  # the file name in the landscape
    # The imported file itself; set by the landscape import only (hence not editable).
    logo_file = models.ForeignKey(
        Logo, null=True, blank=True, editable=False, on_delete=models.SET_NULL, related_name="+"
    )
    repo_owner = models.CharField(max_length=100, blank=True)
    repo_name = models.CharField(max_length=100, blank=True)
    github_id = models.BigIntegerField(null=True, blank=True, unique=True)
    additional_repos = models.JSONField(default=list, blank=True)
    maintainers = models.JSONField(default=list, blank=True, help_text="GitHub handles.")
    owner_handle = models.CharField(
        max_length=39,
        blank=True,
        help_text="The maintainer who owns the listing (can transfer it); empty: the first one.",
    )
    # Found on sync (CODEOWNERS, MAINTAINERS, collaborators, the repository file): a candidate
    # becomes a maintainer when that person signs in with GitHub. [{handle, source}]
    maintainer_candidates = models.JSONField(default=list, blank=True)
    proposed_category = models.ForeignKey(
        Category,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        limit_choices_to={"parent__isnull": False},
        help_text="A subcategory a maintainer proposed; staff confirm it.",
    )
    # The repository's [tool.pytorch-ecosystem] table as last read on sync, validated.
    repo_config = models.JSONField(default=dict, blank=True)
    # HMAC key of the GitHub webhook (shown once to the maintainers, rotatable); empty: none yet.
    webhook_secret = models.CharField(max_length=128, blank=True, editable=False)
    webhook_secret_set_at = models.DateTimeField(null=True, blank=True, editable=False)
    accepted_on = models.DateField(null=True, blank=True)
    next_review_due = models.DateField(null=True, blank=True)
    flags = models.JSONField(
        default=list, blank=True, help_text="Data problems found on import: [{code, message}]."
    )
    repo_state = models.CharField(
        max_length=16, choices=RepoState.choices, default=RepoState.UNKNOWN
    )
    repo_state_detail = models.CharField(max_length=300, blank=True)
    github_checked_at = models.DateTimeField(null=True, blank=True)
    # Fields of the landscape item that the registry does not model, kept for a faithful export
    # (crunchbase, twitter, second_path, extra ...), plus the raw repo_url as imported.
    landscape_extra = models.JSONField(default=dict, blank=True)
    landscape_repo_url = models.CharField(max_length=500, blank=True)
    # Public summaries pushed down by the upper apps through registry services.
    works_with = models.JSONField(
        default=list, blank=True, help_text="PyTorch versions whose latest cell passed."
    )
    breaks_with = models.JSONField(
        default=list, blank=True, help_text="PyTorch versions whose latest cell failed."
    )
    # Not an infrastructure problem: the project's own metadata (or its dependencies) exclude
    # that torch, so it does not work with it. Errored cells are in none of these lists.
    not_installable_with = models.JSONField(
        default=list,
        blank=True,
        help_text="PyTorch versions the project's latest cell could not be installed with.",
    )
    # Of those, the versions its own torch range excludes but whose tests passed with the range
    # overridden: a declared range that could widen.
    widenable_with = models.JSONField(
        default=list,
        blank=True,
        help_text="PyTorch versions the declared range excludes but the tests pass with.",
    )
    # What the project's own metadata declares ({torch, requires_python} specifier texts), as
    # its latest finished cell that built it read it; empty: never built.
    declared = models.JSONField(
        default=dict,
        blank=True,
        help_text="The torch and Python ranges the project's metadata declares.",
    )
    review_state = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(repo_owner="") & Q(repo_name=""))
                | (~Q(repo_owner="") & ~Q(repo_name="")),
                name="project_repo_owner_and_name_together",
            ),
            models.UniqueConstraint(
                fields=["repo_owner", "repo_name"],
                condition=~Q(repo_owner=""),
                name="project_unique_repository",
            ),
        ]
        indexes = [models.Index(fields=["status", "kind"])]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("registry:project", kwargs={"slug": self.slug})

    @property
    def repository(self) -> str:
        return f"{self.repo_owner}/{self.repo_name}" if self.repo_owner else ""

    @property
    def repository_url(self) -> str:
        return f"https://github.com/{self.repository}" if self.repo_owner else ""


class RepoSnapshot(models.Model):
    """GitHub health of a project's repository at one moment (history kept)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="snapshots")
    taken_at = models.DateTimeField(db_index=True)
    checked_at = models.DateTimeField(help_text="Last time GitHub confirmed these figures.")
    stars = models.PositiveIntegerField(default=0)
    forks = models.PositiveIntegerField(default=0)
    open_issues = models.PositiveIntegerField(default=0)
    license_spdx = models.CharField(max_length=64, blank=True)
    default_branch = models.CharField(max_length=200, blank=True)
    pushed_at = models.DateTimeField(null=True, blank=True)
    commits_90d = models.PositiveIntegerField(null=True, blank=True)
    contributors_90d = models.PositiveIntegerField(null=True, blank=True)
    latest_release = models.CharField(max_length=200, blank=True)
    latest_release_at = models.DateTimeField(null=True, blank=True)
    has_license = models.BooleanField(default=False)
    has_readme = models.BooleanField(default=False)
    has_contributing = models.BooleanField(default=False)
    has_codeowners = models.BooleanField(default=False)
    has_code_of_conduct = models.BooleanField(default=False)
    has_security = models.BooleanField(default=False)
    has_ci_workflows = models.BooleanField(default=False)
    etag = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-taken_at"]
        get_latest_by = "taken_at"
        indexes = [models.Index(fields=["project", "-taken_at"])]

    def __str__(self) -> str:
        return f"{self.project} @ {self.taken_at:%Y-%m-%d %H:%M}"


class MaintainerIdentity(models.Model):
    """Links a user account to a GitHub handle, so `Project.maintainers` can be matched.

    Filled from the GitHub login (allauth) in a real deployment, or by staff in the admin.
    """

    user = models.OneToOneField(
        "auth.User", on_delete=models.CASCADE, related_name="maintainer_identity"
    )
    github_handle = models.CharField(max_length=39, unique=True)
    verified = models.BooleanField(
        default=False, help_text="Confirmed through a GitHub login or by staff."
    )

    class Meta:
        verbose_name_plural = "maintainer identities"

    def __str__(self) -> str:
        return f"{self.user} = @{self.github_handle}"


class ListingChange(models.Model):
    """One change of a project's listing by a maintainer (or a revert by staff): the audit trail.

    `old_value`/`new_value` are the field's values as JSON; a revert is itself a change whose
    `reverts` points at the change it undid.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="listing_changes")
    actor = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    field = models.CharField(max_length=64)
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)
    reverts = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reverted_by"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.project}: {self.field} ({self.created_at:%Y-%m-%d %H:%M})"


class ProjectExemption(models.Model):
    """A project's claim that a review criterion does not apply to it, with a public reason
    (as CLOMonitor's exemptions). The TAC sees it beside the criterion. `criterion` is the
    criterion's number; the registry does not know the criteria (the reviews app does)."""

    class Source(models.TextChoices):
        LISTING = "listing", "Claimed on the listing page"
        REPOSITORY_FILE = "repository_file", "[tool.pytorch-ecosystem] in pyproject.toml"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exemptions")
    criterion = models.PositiveSmallIntegerField()
    reason = models.TextField(max_length=2000)
    source = models.CharField(max_length=16, choices=Source.choices)
    claimed_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["criterion"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "criterion"],
                condition=Q(withdrawn_at__isnull=True),
                name="exemption_one_standing_per_criterion",
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="exemption_reason_given"),
        ]

    def __str__(self) -> str:
        return f"{self.project}: criterion {self.criterion} exempt"
