"""Compatibility runs: the torch version catalog, per-project test configs, runs, cells, runners."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from ci_runners.agent import contracts
from ci_runners.states import CELL_STATE_CHOICES, CellState

MAX_ATTEMPTS = 3
MAX_CELL_TIMEOUT_S = 4 * 3600
# A cell collecting this much fewer tests than the project's latest cell on another target is
# flagged `suite_shrunk` (a suite that silently lost a module still "passes").
SUITE_SHRINK_RATIO = 0.10


class TorchTarget(models.Model):
    """One PyTorch build the matrix runs against (version x variant x python)."""

    version = models.CharField(max_length=40)
    variant = models.CharField(
        max_length=20, blank=True, default="cpu", help_text="Local version: cpu, cu126, ..."
    )
    python_version = models.CharField(max_length=10, default="3.11")
    find_links = models.JSONField(
        default=list, blank=True, help_text="Wheel find-links; empty = the agent's defaults."
    )
    index_urls = models.JSONField(
        default=list, blank=True, help_text="Extra index URLs; empty = the agent's defaults."
    )
    prerelease = models.BooleanField(default=False)
    active = models.BooleanField(
        default=False, help_text="Inactive targets (e.g. just detected) are not run."
    )
    capability = models.CharField(
        max_length=40, default="cpu", help_text="Runner capability; queue runner.<capability>."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["version", "variant", "python_version"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "variant", "python_version"], name="torch_target_unique"
            ),
            models.CheckConstraint(
                condition=Q(capability__regex=r"^[a-z0-9][a-z0-9._-]*$"),
                name="torch_target_capability_is_a_queue_suffix",
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        local = f"+{self.variant}" if self.variant else ""
        return f"{self.version}{local} py{self.python_version}"

    @property
    def queue(self) -> str:
        return contracts.runner_queue(self.capability)


class ProjectTestConfig(models.Model):
    """How a registry project's test suite is run: staff's override of the recipe the agent
    discovers (`contracts.TestConfig`), and the run's limits. Written through
    `services.project_test_config_update` (or the admin)."""

    project = models.OneToOneField(
        "registry.Project", on_delete=models.CASCADE, related_name="test_config"
    )
    extra_requirements = models.JSONField(default=list, blank=True)
    extras = models.JSONField(
        null=True, blank=True, help_text="Extras to install; empty = the project's `test` extra."
    )
    pytest_args = models.JSONField(default=list, blank=True)
    test_paths = models.JSONField(default=list, blank=True)
    env = models.JSONField(default=dict, blank=True, help_text="Non-secret variables only.")
    copy_tests = models.CharField(max_length=200, blank=True)
    groups = models.JSONField(
        null=True,
        blank=True,
        help_text="PEP 735 dependency groups to install; empty = what the recipe discovered.",
    )
    deselect = models.JSONField(
        default=list, blank=True, help_text="Markers whose tests are deselected (`not <marker>`)."
    )
    needs_gpu = models.BooleanField(default=False)
    timeout_s = models.PositiveIntegerField(default=900)
    source_override = models.CharField(
        max_length=500,
        blank=True,
        help_text="Staff only: a git URL or local path used instead of the repository.",
    )
    max_concurrent = models.PositiveSmallIntegerField(
        default=4, help_text="Cells of this project running at once; the rest wait queued."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(timeout_s__gte=10) & Q(timeout_s__lte=MAX_CELL_TIMEOUT_S),
                name="test_config_timeout_range",
            ),
            models.CheckConstraint(
                condition=Q(max_concurrent__gte=1), name="test_config_max_concurrent_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"Test config of {self.project}"


def _is_staff(user: Any) -> bool:
    return bool(getattr(user, "is_staff", False))


class CompatRunQuerySet(models.QuerySet):
    def visible_to(self, user: Any) -> CompatRunQuerySet:
        """Runs of registry projects are public; an applicant's (no project yet): staff only."""
        return self if _is_staff(user) else self.filter(project__isnull=False)


class CompatCellQuerySet(models.QuerySet):
    def visible_to(self, user: Any) -> CompatCellQuerySet:
        """The rule of `CompatRunQuerySet.visible_to`, for the run's cells."""
        return self if _is_staff(user) else self.filter(run__project__isnull=False)


class CompatRun(models.Model):
    """One request to run a project (or an applicant's repository) against some targets."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Manual"
        REVIEW = "review", "Review"
        NEW_RELEASE = "new-release", "New PyTorch release"
        # Cells of a bisection (`Bisection`): evidence of one search, never in the matrix.
        BISECTION = "bisection", "Bisection"
        # A signed GitHub push or release (`services.webhooks`): at most one queued per project.
        WEBHOOK = "webhook", "GitHub webhook"

    project = models.ForeignKey(
        "registry.Project",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="compat_runs",
    )
    source_url = models.CharField(max_length=500, blank=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ref = models.CharField(max_length=200, blank=True)
    resolved_commit = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    on_complete_task = models.CharField(max_length=200, blank=True)
    on_complete_kwargs = models.JSONField(default=dict, blank=True)

    objects = CompatRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(project__isnull=False) | ~Q(source_url=""),
                name="compat_run_has_project_or_source",
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.project or self.source_url}"

    @property
    def subject(self) -> str:
        project = self.project
        return project.name if project is not None else self.source_url


class CompatCell(models.Model):
    """One run x one target. `.state` is written only by `services.cell_transition`."""

    run = models.ForeignKey(CompatRun, on_delete=models.CASCADE, related_name="cells")
    target = models.ForeignKey(TorchTarget, on_delete=models.PROTECT, related_name="cells")
    # Denormalised from the run: the concurrency limit and the matrix read it per project.
    project = models.ForeignKey(
        "registry.Project",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="compat_cells",
    )
    state = models.CharField(max_length=16, choices=CELL_STATE_CHOICES, default=CellState.QUEUED)
    attempt = models.PositiveSmallIntegerField(default=1)
    # Random per cell: the broker keys carry it, so a cell id reused after a database reset
    # (with the broker Redis kept) never matches the old cell's wanted/claim keys.
    token = models.UUIDField(default=uuid.uuid4, editable=False)
    runner_name = models.CharField(max_length=200, blank=True)
    task_id = models.CharField(max_length=100, blank=True)
    queue = models.CharField(max_length=60, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="Sent to the broker; empty while waiting for a slot."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(
        null=True, blank=True, help_text="Last progress or heartbeat from its runner."
    )
    commit = models.CharField(max_length=64, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    failures = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    environment = models.JSONField(default=dict, blank=True)
    energy_j = models.FloatField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    # `contracts.ErrorCode` of an errored cell (infrastructure); for a not_installable cell, the
    # resolver's or build's reason code when the agent gives one.
    error_code = models.CharField(max_length=40, blank=True)
    tests_collected = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tests pytest collected; empty when it never got there."
    )
    needs_network = models.JSONField(
        default=list, blank=True, help_text="Tests that failed only for lack of network."
    )
    recipe = models.JSONField(default=dict, blank=True, help_text="The test recipe the job ran.")
    recipe_hash = models.CharField(max_length=80, blank=True, db_index=True)
    lock_hash = models.CharField(max_length=80, blank=True)
    # The incremental night (`services.night_plan`): what the web side asked the runner for
    # (`services.dispatch.job_hash_of`), and for a carried cell the cell whose result it repeats.
    job_hash = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="Hash of the job asked for (source, ref, override, timeout, target).",
    )
    carried_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The cell whose result this one carries: nothing it depends on changed.",
    )
    declared = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the project's metadata declares: {torch, requires_python} specifiers.",
    )
    flaky = models.JSONField(
        default=list,
        blank=True,
        help_text="Tests that failed, then passed on a re-run in the same cell (not breaks).",
    )
    beyond_range = models.JSONField(
        default=dict,
        blank=True,
        help_text="A not_installable cell whose declared torch range excludes the target: what "
        "the tests did with the range overridden {state, counts, failures, tests_collected}.",
    )
    # Fewer tests collected than on another target of the project (more than SUITE_SHRINK_RATIO
    # fewer): a passed cell stays passed, flagged. `suite_shrink` holds the figures compared.
    suite_shrunk = models.BooleanField(default=False)
    suite_shrink = models.JSONField(
        null=True,
        blank=True,
        help_text="{collected, reference, reference_cell, reference_target} when it shrank.",
    )
    log_tail = models.TextField(blank=True)
    log_file = models.FileField(upload_to="compat-logs/%Y/%m/", blank=True)

    objects = CompatCellQuerySet.as_manager()

    class Meta:
        ordering = ["run_id", "target__version"]
        constraints = [
            models.UniqueConstraint(fields=["run", "target"], name="compat_cell_unique_target"),
            models.CheckConstraint(
                condition=Q(attempt__gte=1) & Q(attempt__lte=MAX_ATTEMPTS),
                name="compat_cell_attempt_range",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "last_seen_at"]),
            models.Index(fields=["project", "state"]),
        ]

    def __str__(self) -> str:
        return f"Cell {self.pk} ({self.target.label}): {self.state}"

    @property
    def is_final(self) -> bool:
        from ci_runners.states import FINAL_STATES

        return self.state in FINAL_STATES

    @property
    def duration_s(self) -> float | None:
        total = (self.timings or {}).get("total_s")
        if total is not None:
            return total
        if self.started_at and self.finished_at:
            return round((self.finished_at - self.started_at).total_seconds(), 1)
        return None


class CellResult(models.Model):
    """What a runner reported for one attempt of a cell: one row per (cell, attempt)."""

    cell = models.ForeignKey(CompatCell, on_delete=models.CASCADE, related_name="results")
    attempt = models.PositiveSmallIntegerField()
    runner_name = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=16)
    # The result as reported, less `lock` (kept in its own field below).
    payload = models.JSONField(default=dict)
    error_code = models.CharField(max_length=40, blank=True)
    tests_collected = models.PositiveIntegerField(null=True, blank=True)
    recipe_hash = models.CharField(max_length=80, blank=True, db_index=True)
    lock = models.JSONField(
        default=list, blank=True, help_text="Exact versions of the environment the tests ran in."
    )
    lock_hash = models.CharField(max_length=80, blank=True)
    applied = models.BooleanField(
        default=True, help_text="False when the attempt was already superseded or cancelled."
    )
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cell_id", "attempt"]
        constraints = [
            models.UniqueConstraint(fields=["cell", "attempt"], name="cell_result_one_per_attempt")
        ]

    def __str__(self) -> str:
        return f"Result of cell {self.cell_id} attempt {self.attempt}: {self.state}"


class CompatStatus(models.Model):
    """The latest cell of a project on a target (and its latest final one), for the matrices."""

    project = models.ForeignKey(
        "registry.Project", on_delete=models.CASCADE, related_name="compat_statuses"
    )
    target = models.ForeignKey(TorchTarget, on_delete=models.CASCADE, related_name="statuses")
    latest_cell = models.ForeignKey(CompatCell, on_delete=models.CASCADE, related_name="+")
    last_final_cell = models.ForeignKey(
        CompatCell, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "compat statuses"
        constraints = [
            models.UniqueConstraint(fields=["project", "target"], name="compat_status_unique")
        ]

    def __str__(self) -> str:
        return f"{self.project_id} x {self.target_id}"


class RunnerHost(models.Model):
    """A runner agent process, as its heartbeats describe it."""

    name = models.CharField(max_length=200, unique=True)
    queues = models.JSONField(default=list, blank=True)
    agent_version = models.CharField(max_length=40, blank=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    current_cell = models.ForeignKey(
        CompatCell, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cache_bytes = models.BigIntegerField(
        null=True, blank=True, help_text="Disk space of the agent's cache (unknown: older agent)."
    )
    isolation = models.CharField(
        max_length=200, blank=True, help_text="How the agent isolates jobs, as it reports it."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ScheduledSlot(models.Model):
    """One row per scheduled job and slot (e.g. the nightly run of one date): a second beat,
    or a retried one, finds the slot taken and does nothing."""

    job = models.CharField(max_length=100)
    slot = models.CharField(max_length=40)
    claimed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-claimed_at"]
        constraints = [
            models.UniqueConstraint(fields=["job", "slot"], name="one_claim_per_scheduled_slot")
        ]

    def __str__(self) -> str:
        return f"{self.job} {self.slot}"


class Bisection(models.Model):
    """A search for the first PyTorch release that broke a project: between a good end (a
    release it passed) and a bad end (a later one it failed), over the releases published in
    between (`candidates`), one probe cell at a time (runs with trigger `bisection`, never in
    the matrix). Written only by `services.bisection_*`."""

    # Sent by name to the `default` queue: a probe run's on-complete task, and the check for
    # new breaks when a (non-bisection) run of a project finishes.
    STEP_TASK = "ci_runners.bisection_step"
    AUTOSTART_TASK = "ci_runners.bisections_start_for_new_breaks"

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        FOUND = "found", "Found"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    project = models.ForeignKey(
        "registry.Project", on_delete=models.CASCADE, related_name="bisections"
    )
    good_version = models.CharField(max_length=40, help_text="The release it passed.")
    bad_version = models.CharField(max_length=40, help_text="The later release it failed.")
    template_target = models.ForeignKey(
        TorchTarget,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The bad end's target: probes reuse its variant, Python, capability, sources.",
    )
    candidates = models.JSONField(
        default=list, blank=True, help_text="Releases strictly between the ends, oldest first."
    )
    tried = models.JSONField(
        default=list, blank=True, help_text="Probes in order: [{torch, state, cell_id}]."
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    first_bad = models.CharField(max_length=40, blank=True)
    last_good = models.CharField(max_length=40, blank=True)
    failures = models.JSONField(
        default=list, blank=True, help_text="The failing tests of the first bad release."
    )
    error = models.TextField(blank=True, help_text="Why a failed bisection failed.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["running", "found", "failed", "cancelled"]),
                name="bisection_state_valid",
            ),
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(state="running"),
                name="one_running_bisection_per_project",
            ),
        ]

    def __str__(self) -> str:
        return f"Bisection {self.pk} of {self.project_id}: {self.good_version}..{self.bad_version}"


# The outcomes of a delivery whose signature checked out: these reserve its delivery id.
WEBHOOK_ACCEPTED_OUTCOMES = ("ping", "triggered", "synced", "debounced", "ignored")


class WebhookDelivery(models.Model):
    """One request to the GitHub webhook (`/hooks/github/`) and what came of it; written only
    by `services.webhooks.github_delivery_receive`.

    A delivery whose signature checked out reserves its `X-GitHub-Delivery` id (the partial
    unique constraint), so a replay is refused; a refused request reserves nothing, so a
    forged one cannot block the real delivery."""

    class Outcome(models.TextChoices):
        # Signed (accepted): these reserve the delivery id.
        PING = "ping", "Ping answered"
        TRIGGERED = "triggered", "Sync and run queued"
        SYNCED = "synced", "Sync queued, run refused"
        DEBOUNCED = "debounced", "A run was already queued"
        IGNORED = "ignored", "Acknowledged, ignored"
        # Refused: nothing happened.
        DUPLICATE = "duplicate", "Replay of a delivery already accepted"
        BAD_SIGNATURE = "bad-signature", "Signature missing or wrong"
        NO_SECRET = "no-secret", "Project has no webhook secret yet"
        UNKNOWN_PROJECT = "unknown-project", "Unknown repository"
        BAD_REQUEST = "bad-request", "Malformed request"
        TOO_LARGE = "too-large", "Body too large"
        UNSUPPORTED_MEDIA = "unsupported-media", "Unsupported content type"

    delivery_id = models.CharField(max_length=64, blank=True, db_index=True)
    project = models.ForeignKey(
        "registry.Project",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_deliveries",
    )
    event = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=64, blank=True)
    ref = models.CharField(max_length=255, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    status_code = models.PositiveSmallIntegerField()
    detail = models.CharField(max_length=300, blank=True)
    run = models.ForeignKey(
        CompatRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["delivery_id"],
                condition=Q(outcome__in=WEBHOOK_ACCEPTED_OUTCOMES),
                name="one_accepted_webhook_delivery",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event or 'request'} {self.delivery_id or '-'}: {self.outcome}"
