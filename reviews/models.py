"""Applications, criteria results with their evidence, votes, discussion, the audit log,
onboarding checklists and periodic reviews."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from reviews import criteria
from reviews.states import (
    OPEN_STATES,
    PERIODIC_OPEN_STATES,
    PeriodicReviewState,
    SubmissionState,
)

User = settings.AUTH_USER_MODEL


class Submission(models.Model):
    """An application to join the ecosystem (or, rarer, to become a hosted project).

    Every answer may be blank while the application is a draft; `services.submission_submit`
    refuses an incomplete one.
    """

    class Kind(models.TextChoices):
        ECOSYSTEM = "ecosystem", "Ecosystem project"
        HOSTED = "hosted", "Hosted (foundation) project"

    class Classification(models.TextChoices):
        PLATFORM = "platform", "Platform"
        VERTICAL = "vertical", "Vertical"

    applicant = models.ForeignKey(User, on_delete=models.PROTECT, related_name="submissions")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.ECOSYSTEM)
    state = models.CharField(
        max_length=32, choices=SubmissionState.choices, default=SubmissionState.DRAFT
    )
    state_changed_at = models.DateTimeField(auto_now_add=True)

    # Required answers.
    project_name = models.CharField(max_length=120, blank=True)
    contact_emails = models.JSONField(default=list, blank=True)
    summary = models.CharField("one-line summary", max_length=200, blank=True)
    description = models.TextField(max_length=3000, blank=True)
    similar_projects = models.TextField(max_length=1000, blank=True)
    repository_url = models.CharField(max_length=300, blank=True)
    repo_owner = models.CharField(max_length=100, blank=True)
    repo_name = models.CharField(max_length=100, blank=True)
    license = models.CharField(max_length=100, blank=True)
    maintainer_handles = models.JSONField(default=list, blank=True)
    website_url = models.URLField(max_length=500, blank=True)
    documentation_url = models.URLField(max_length=500, blank=True)
    documentation = models.TextField(
        "getting started and full documentation", max_length=2000, blank=True
    )
    ci_description = models.TextField("how it is built and tested", max_length=2000, blank=True)
    pytorch_versions = models.CharField(max_length=300, blank=True)
    pytorch_components = models.TextField(max_length=1000, blank=True)
    pypi_name = models.CharField("PyPI package", max_length=100, blank=True)

    # Optional answers.
    additional_repos = models.JSONField(default=list, blank=True)
    backing_org_name = models.CharField(max_length=200, blank=True)
    backing_org_url = models.URLField(max_length=500, blank=True)
    additional_info = models.TextField(max_length=3000, blank=True)
    slides_url = models.URLField(max_length=500, blank=True)
    video_url = models.URLField(max_length=500, blank=True)

    # Hosted-project answers.
    governance_model = models.TextField(max_length=3000, blank=True)
    production_adoption = models.TextField(max_length=3000, blank=True)
    tac_sponsor = models.CharField(max_length=200, blank=True)
    roadmap = models.TextField(max_length=3000, blank=True)
    security_process = models.TextField(max_length=3000, blank=True)
    classification = models.CharField(max_length=16, choices=Classification.choices, blank=True)

    # Set by the TAC.
    category = models.ForeignKey(
        "registry.Category", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="assigned_submissions"
    )
    project = models.ForeignKey(
        "registry.Project",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="submissions",
    )
    github_health = models.JSONField(default=dict, blank=True)
    checks_ran_at = models.DateTimeField(null=True, blank=True)
    compat_run = models.ForeignKey(
        "ci_runners.CompatRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The compatibility run asked for criteria 1 and 8.",
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    vote_opened_at = models.DateTimeField(null=True, blank=True)
    vote_closes_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                Lower("repo_owner"),
                Lower("repo_name"),
                condition=Q(state__in=OPEN_STATES),
                name="submission_one_open_per_repository",
            ),
            models.CheckConstraint(
                condition=Q(state__in=SubmissionState.values),
                name="submission_state_valid",
            ),
        ]
        indexes = [models.Index(fields=["state", "state_changed_at"])]

    def __str__(self) -> str:
        return self.project_name or self.repository or f"Application #{self.pk}"

    @property
    def repository(self) -> str:
        return f"{self.repo_owner}/{self.repo_name}" if self.repo_owner else ""

    @property
    def is_hosted(self) -> bool:
        return self.kind == self.Kind.HOSTED


class CriterionResult(models.Model):
    """The outcome of one criterion for one application, with its evidence."""

    class Outcome(models.TextChoices):
        MET = "met", "Met"
        UNMET = "unmet", "Not met"
        UNKNOWN = "unknown", "Unknown"
        NOT_APPLICABLE = "na", "Not applicable"

    class CheckState(models.TextChoices):
        """Where the automated check of this criterion stands ("" for the criteria only
        reviewers answer)."""

        RUNNING = "running", "Running"
        RETRYING = "retrying", "Retrying"
        FAILED = "failed", "Failed"
        MEASURED = "measured", "Measured"

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="results")
    criterion = models.PositiveSmallIntegerField(choices=criteria.CHOICES)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.UNKNOWN)
    automated = models.BooleanField(default=False)
    automated_outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    evidence_value = models.CharField(max_length=500, blank=True)
    evidence_url = models.URLField(max_length=500, blank=True)
    measured_at = models.DateTimeField(null=True, blank=True)
    check_state = models.CharField(max_length=16, choices=CheckState.choices, blank=True)
    check_retry_at = models.DateTimeField(
        null=True, blank=True, help_text="When a check that could not run is tried again."
    )
    check_note = models.CharField(
        max_length=500, blank=True, help_text="Why the check is retrying or failed."
    )
    overridden_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    override_reason = models.TextField(max_length=2000, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["criterion"]
        constraints = [
            models.UniqueConstraint(
                fields=["submission", "criterion"], name="criterion_result_unique"
            ),
            models.CheckConstraint(
                condition=Q(criterion__gte=1, criterion__lte=19), name="criterion_result_range"
            ),
            models.CheckConstraint(
                condition=Q(overridden_by__isnull=True) | ~Q(override_reason=""),
                name="criterion_override_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.submission} #{self.criterion}: {self.outcome}"

    @property
    def info(self) -> criteria.Criterion:
        return criteria.BY_NUMBER[self.criterion]

    @property
    def overridden(self) -> bool:
        return self.overridden_by_id is not None


class CriterionAnswer(models.Model):
    """One reviewer's judgement of a human criterion (3-6, 10; and 2 beyond its evidence)."""

    Outcome = CriterionResult.Outcome

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="answers")
    criterion = models.PositiveSmallIntegerField(choices=criteria.CHOICES)
    reviewer = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    justification = models.TextField(max_length=2000)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["criterion", "updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["submission", "criterion", "reviewer"], name="criterion_answer_unique"
            ),
            models.CheckConstraint(
                condition=Q(criterion__in=criteria.REVIEWER_ANSWERED),
                name="criterion_answer_human_only",
            ),
            models.CheckConstraint(
                condition=~Q(justification=""), name="criterion_answer_justified"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} on #{self.criterion}: {self.outcome}"


class Vote(models.Model):
    class Choice(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        ABSTAIN = "abstain", "Abstain"

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="votes")
    voter = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    choice = models.CharField(max_length=16, choices=Choice.choices)
    cast_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["submission", "voter"], name="vote_one_per_member")
        ]

    def __str__(self) -> str:
        return f"{self.voter} {self.choice} {self.submission}"


class Comment(models.Model):
    """A message of the discussion thread (Markdown, rendered sanitised)."""

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    body = models.TextField(max_length=10000)
    shared_with_applicant = models.BooleanField(
        default=False, help_text="TAC-internal unless shared with the applicant."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.author} on {self.submission} at {self.created_at:%Y-%m-%d %H:%M}"


class PeriodicReview(models.Model):
    """The six-monthly re-check of an active project, with its own small state table."""

    project = models.ForeignKey(
        "registry.Project", on_delete=models.CASCADE, related_name="periodic_reviews"
    )
    state = models.CharField(
        max_length=32, choices=PeriodicReviewState.choices, default=PeriodicReviewState.CHECKING
    )
    due_on = models.DateField()
    results = models.JSONField(
        default=list, blank=True, help_text="[{criterion, outcome, value, url, measured_at}]"
    )
    failing_criteria = models.JSONField(default=list, blank=True)
    grace_until = models.DateField(null=True, blank=True)
    compat_run = models.ForeignKey(
        "ci_runners.CompatRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The compatibility run asked for criteria 1 and 8.",
    )
    decided_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(state__in=PERIODIC_OPEN_STATES),
                name="periodic_review_one_open_per_project",
            )
        ]

    def __str__(self) -> str:
        return f"Periodic review of {self.project} due {self.due_on}"


class ReviewEvent(models.Model):
    """The audit log: every state change, override, assignment, vote and decision."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        EDITED = "edited", "Edited"
        TRANSITION = "transition", "State change"
        CHECKS = "checks", "Automated checks"
        OVERRIDE = "override", "Criterion overridden"
        ANSWER = "answer", "Criterion answered"
        ASSIGNMENT = "assignment", "Reviewer assignment"
        CATEGORY = "category", "Category set"
        COMMENT = "comment", "Comment"
        VOTE = "vote", "Vote cast"
        DECISION = "decision", "Vote closed"
        ONBOARDING = "onboarding", "Onboarding"
        PERIODIC = "periodic", "Periodic review"

    submission = models.ForeignKey(
        Submission, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    periodic_review = models.ForeignKey(
        PeriodicReview, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    from_state = models.CharField(max_length=32, blank=True)
    to_state = models.CharField(max_length=32, blank=True)
    note = models.TextField(max_length=5000, blank=True)
    data = models.JSONField(default=dict, blank=True)
    public = models.BooleanField(
        default=False, help_text="Shown on the project's public review history."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(submission__isnull=False) | Q(periodic_review__isnull=False),
                name="review_event_has_subject",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.from_state}->{self.to_state} ({self.created_at})"


class OnboardingTask(models.Model):
    """One row of the onboarding checklist of an accepted application."""

    submission = models.ForeignKey(
        Submission, on_delete=models.CASCADE, related_name="onboarding_tasks"
    )
    key = models.SlugField(max_length=40)
    label = models.CharField(max_length=200)
    suggested = models.BooleanField(default=False)
    for_applicant = models.BooleanField(
        default=False, help_text="The applicant does it and ticks it (staff may too)."
    )
    position = models.PositiveSmallIntegerField(default=0)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["submission", "key"], name="onboarding_task_unique")
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def done(self) -> bool:
        return self.done_at is not None


# The answers an applicant writes (everything else is set by the service or the TAC).
REQUIRED_ANSWERS = (
    "project_name", "contact_emails", "summary", "description", "similar_projects",
    "repository_url", "license", "maintainer_handles", "website_url", "documentation_url",
    "documentation", "ci_description", "pytorch_versions", "pytorch_components",
)  # fmt: skip
OPTIONAL_ANSWERS = (
    "pypi_name", "additional_repos", "backing_org_name", "backing_org_url", "additional_info",
    "slides_url", "video_url",
)  # fmt: skip
HOSTED_ANSWERS = (
    "governance_model", "production_adoption", "tac_sponsor", "roadmap", "security_process",
    "classification",
)  # fmt: skip
ANSWER_FIELDS = ("kind", *REQUIRED_ANSWERS, *OPTIONAL_ANSWERS, *HOSTED_ANSWERS)
DESCRIPTION_MIN_WORDS, DESCRIPTION_MAX_WORDS = 100, 300
