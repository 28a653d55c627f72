"""REST API of the review process (authenticated).

- `/api/v1/applications/`: the caller's own applications (create, update, submit, withdraw,
  the messages shared with them). Anyone else's application is a 404, whatever its id.
- `/api/v1/review-queue/`: for TAC reviewers, voting members and staff: applications past the
  draft stage, their criteria results (with the project's exemptions), reviewers' answers,
  overrides and votes; the moves, discussion and tally are in `reviews/api_moves.py`.

Input serializers validate and call `reviews.services`; refusals of the services come back as
400 (with the service's message) or 403 (a missing role).
"""

from typing import Any

from django.db import models
from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from registry.models import ProjectExemption
from reviews import criteria, roles, selectors, services
from reviews.api_errors import service_call
from reviews.api_moves import ApplicantCommentsMixin, ReviewMovesMixin
from reviews.models import ANSWER_FIELDS, CriterionResult, Submission, Vote
from reviews.states import SubmissionState

# -- the applicant's applications -----------------------------------------------------------


class SubmissionSerializer(serializers.ModelSerializer):
    # Unanswered URLs and choices are "" (not valid "uri" / enum values): plain strings out.
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.URLField: serializers.CharField,
    }
    classification = serializers.CharField(read_only=True, help_text="platform, vertical or ''.")
    missing_answers = serializers.SerializerMethodField()
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    contact_emails = serializers.ListField(child=serializers.EmailField())
    maintainer_handles = serializers.ListField(child=serializers.CharField())
    additional_repos = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Submission
        fields = [
            "id",
            "state",
            "state_changed_at",
            *ANSWER_FIELDS,
            "repo_owner",
            "repo_name",
            "project",
            "submitted_at",
            "decided_at",
            "created_at",
            "updated_at",
            "missing_answers",
        ]
        read_only_fields = fields

    def get_missing_answers(self, submission: Submission) -> list[str]:
        return services.submission_missing_answers(submission=submission)


class SubmissionInputSerializer(serializers.ModelSerializer):
    """The answers of an application; all optional while it is a draft. The rules every save
    meets (http(s) URLs, the GitHub repository rule, sizes, NUL bytes, formats) are the
    services' own (`services.submission_answers_clean`, the HTML form's too): `create` and
    `update` save through the services, and each refused answer comes back as a 400 under its
    own name, with the whole message in `detail`."""

    # URLs are checked by the services' rule (http(s) only), not DRF's (which allows ftp).
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.URLField: serializers.CharField,
    }
    contact_emails = serializers.ListField(
        child=serializers.CharField(), required=False, max_length=services.MAX_EMAILS
    )
    maintainer_handles = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        max_length=services.MAX_HANDLES,
        help_text="GitHub handles.",
    )
    additional_repos = serializers.ListField(
        child=serializers.CharField(max_length=300),
        required=False,
        max_length=services.MAX_REPOS,
        help_text="GitHub repository URLs, https://github.com/<owner>/<repo>.",
    )

    class Meta:
        model = Submission
        fields = list(ANSWER_FIELDS)
        extra_kwargs = {name: {"required": False} for name in ANSWER_FIELDS}

    def create(self, validated_data: dict) -> Submission:
        return service_call(
            services.submission_create,
            applicant=self.context["request"].user,
            answers=validated_data,
        )

    def update(self, instance: Submission, validated_data: dict) -> Submission:
        return service_call(
            services.submission_update,
            submission=instance,
            actor=self.context["request"].user,
            answers=validated_data,
        )


class WithdrawSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class ApplicationViewSet(
    ApplicantCommentsMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """The caller's own applications to the ecosystem."""

    permission_classes = [IsAuthenticated]
    queryset = Submission.objects.none()  # for the schema; get_queryset scopes to the caller

    def get_queryset(self) -> QuerySet[Submission]:
        return (
            Submission.objects.filter(applicant=self.request.user)
            .select_related("project")
            .order_by("-updated_at", "-id")
        )

    def get_serializer_class(self):
        if self.action in ("create", "update", "partial_update"):
            return SubmissionInputSerializer
        return SubmissionSerializer

    @extend_schema(request=SubmissionInputSerializer, responses={201: SubmissionSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = SubmissionInputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        submission = serializer.save()
        return Response(
            SubmissionSerializer(submission, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=SubmissionInputSerializer, responses=SubmissionSerializer)
    def update(self, request: Request, *args, **kwargs) -> Response:
        serializer = SubmissionInputSerializer(
            self.get_object(),
            data=request.data,
            partial=kwargs.get("partial", False),
            context={"request": request},
        )
        serializer.is_valid(raise_exception=True)
        submission = serializer.save()
        return Response(SubmissionSerializer(submission, context={"request": request}).data)

    @extend_schema(request=None, responses=SubmissionSerializer)
    @action(detail=True, methods=["post"])
    def submit(self, request: Request, pk: str | None = None) -> Response:
        """Send a complete draft to the TAC (the automated checks start)."""
        submission = service_call(
            services.submission_submit, submission=self.get_object(), actor=request.user
        )
        return Response(SubmissionSerializer(submission, context={"request": request}).data)

    @extend_schema(request=WithdrawSerializer, responses=SubmissionSerializer)
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk: str | None = None) -> Response:
        """Withdraw the application (possible until a decision)."""
        body = WithdrawSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        submission = service_call(
            services.submission_withdraw,
            submission=self.get_object(),
            actor=request.user,
            note=body.validated_data.get("note", ""),
        )
        return Response(SubmissionSerializer(submission, context={"request": request}).data)


# -- the TAC's review queue -----------------------------------------------------------------


class IsTAC(BasePermission):
    message = "Only TAC reviewers, voting members and staff see the review queue."

    def has_permission(self, request, view) -> bool:
        return roles.is_tac(request.user)


class ExemptionSerializer(serializers.Serializer):
    """A project's standing claim that a criterion does not apply to it, with its public
    reason (claimed on the listing page or in the repository's pyproject.toml)."""

    reason = serializers.CharField(read_only=True)
    source = serializers.ChoiceField(choices=ProjectExemption.Source.choices, read_only=True)
    claimed_at = serializers.DateTimeField(source="created_at", read_only=True)


class CriterionResultSerializer(serializers.ModelSerializer):
    """A criterion's result; `exemption` comes from the context's `exemptions` (criterion
    number -> standing exemption of the application's project)."""

    title = serializers.SerializerMethodField()
    exemption = serializers.SerializerMethodField()
    overridden_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    evidence_url = serializers.CharField(read_only=True)
    # A read-only model field loses `allow_blank`, and its enum would then lack the "" that
    # the model stores until the criterion is measured: declared here so the schema says it.
    automated_outcome = serializers.ChoiceField(
        choices=CriterionResult.Outcome.choices,
        allow_blank=True,
        read_only=True,
        help_text="What the automated check measured; '' until it ran (always '' for the "
        "criteria only reviewers answer).",
    )
    check_state = serializers.ChoiceField(
        choices=CriterionResult.CheckState.choices,
        allow_blank=True,
        read_only=True,
        help_text="Where the automated check stands: running, retrying (at `check_retry_at`, "
        "because of `check_note`), failed (`check_note` says why) or measured; '' for the "
        "criteria only reviewers answer.",
    )

    class Meta:
        model = CriterionResult
        fields = [
            "criterion",
            "title",
            "outcome",
            "automated",
            "automated_outcome",
            "evidence_value",
            "evidence_url",
            "measured_at",
            "check_state",
            "check_retry_at",
            "check_note",
            "overridden_by",
            "override_reason",
            "exemption",
            "updated_at",
        ]
        read_only_fields = fields

    def get_title(self, result: CriterionResult) -> str:
        return criteria.BY_NUMBER[result.criterion].title

    @extend_schema_field(ExemptionSerializer(allow_null=True))
    def get_exemption(self, result: CriterionResult) -> dict | None:
        exemption = self.context.get("exemptions", {}).get(result.criterion)
        return ExemptionSerializer(exemption).data if exemption is not None else None


def criterion_result_data(*, submission: Submission, result: CriterionResult) -> dict:
    return CriterionResultSerializer(result, context=_results_context(submission)).data


def _results_context(submission: Submission) -> dict:
    return {"exemptions": selectors.standing_exemptions(project_id=submission.project_id)}


class CriterionAnswerInputSerializer(serializers.Serializer):
    criterion = serializers.ChoiceField(choices=list(criteria.REVIEWER_ANSWERED))
    outcome = serializers.ChoiceField(choices=CriterionResult.Outcome.choices)
    justification = serializers.CharField(max_length=2000)

    def save(self, *, submission: Submission, reviewer) -> Any:
        return service_call(
            services.criterion_answer,
            submission=submission,
            reviewer=reviewer,
            **self.validated_data,
        )


class CriterionOverrideInputSerializer(serializers.Serializer):
    criterion = serializers.ChoiceField(
        choices=[c.number for c in criteria.CRITERIA if c.automated]
    )
    outcome = serializers.ChoiceField(choices=CriterionResult.Outcome.choices)
    reason = serializers.CharField(max_length=2000)

    def save(self, *, submission: Submission, actor) -> Any:
        return service_call(
            services.criterion_override, submission=submission, actor=actor, **self.validated_data
        )


class VoteInputSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(choices=Vote.Choice.choices)

    def save(self, *, submission: Submission, voter) -> Vote:
        return service_call(
            services.vote_cast, submission=submission, voter=voter, **self.validated_data
        )


class VoteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Vote
        fields = ["choice", "cast_at", "updated_at"]
        read_only_fields = fields


class ReviewQueueFilter(filters.FilterSet):
    state = filters.ChoiceFilter(
        choices=[c for c in SubmissionState.choices if c[0] != SubmissionState.DRAFT]
    )

    class Meta:
        model = Submission
        fields = ["state", "kind"]


class ReviewQueueViewSet(ReviewMovesMixin, viewsets.ReadOnlyModelViewSet):
    """Applications past the draft stage, oldest waiting first (TAC only)."""

    permission_classes = [IsAuthenticated, IsTAC]
    serializer_class = SubmissionSerializer
    filterset_class = ReviewQueueFilter
    queryset = Submission.objects.none()  # for the schema; get_queryset scopes to the TAC

    def get_queryset(self) -> QuerySet[Submission]:
        return (
            selectors.tac_submissions(user=self.request.user)
            .select_related("project")
            .order_by("state_changed_at", "id")
        )

    @extend_schema(responses=CriterionResultSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def criteria(self, request: Request, pk: str | None = None) -> Response:
        """The 19 criteria and their current outcome, with evidence."""
        submission = self.get_object()
        services.criteria_ensure_rows(submission=submission)
        results = submission.results.select_related("overridden_by").order_by("criterion")
        return Response(
            CriterionResultSerializer(results, many=True, context=_results_context(submission)).data
        )

    @extend_schema(request=CriterionAnswerInputSerializer, responses=CriterionResultSerializer)
    @action(detail=True, methods=["post"], url_path="criteria/answer")
    def answer(self, request: Request, pk: str | None = None) -> Response:
        """A reviewer's judgement of a human criterion, with a justification."""
        submission = self.get_object()
        body = CriterionAnswerInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        body.save(submission=submission, reviewer=request.user)
        result = submission.results.get(criterion=body.validated_data["criterion"])
        return Response(criterion_result_data(submission=submission, result=result))

    @extend_schema(request=CriterionOverrideInputSerializer, responses=CriterionResultSerializer)
    @action(detail=True, methods=["post"], url_path="criteria/override")
    def override(self, request: Request, pk: str | None = None) -> Response:
        """Override an automated result, with a written reason."""
        submission = self.get_object()
        body = CriterionOverrideInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = body.save(submission=submission, actor=request.user)
        return Response(criterion_result_data(submission=submission, result=result))

    @extend_schema(request=VoteInputSerializer, responses=VoteSerializer)
    @action(detail=True, methods=["post"])
    def vote(self, request: Request, pk: str | None = None) -> Response:
        """Cast or change the caller's vote (TAC voting members, while the vote is open)."""
        body = VoteInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        vote = body.save(submission=self.get_object(), voter=request.user)
        return Response(VoteSerializer(vote).data)


def register(router) -> None:
    router.register("applications", ApplicationViewSet, basename="application")
    router.register("review-queue", ReviewQueueViewSet, basename="review-queue")
