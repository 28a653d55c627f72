"""API of the compatibility runs: `/api/v1/runs/`, read by anyone (runs of an applicant's
repository by staff alone), started and cancelled by staff and the project's maintainers, as on
the project page, within the maintainers' hourly allowance (429 with Retry-After past it)."""

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from ci_runners import selectors
from ci_runners.models import CompatRun
from ci_runners.services.runs import (
    CompatRunRefused,
    RunLimitReached,
    compat_run_cancel,
    compat_run_request_manual,
)
from registry.models import Project


class CompatRunSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    cell_states = serializers.SerializerMethodField()

    class Meta:
        model = CompatRun
        fields = [
            "id",
            "project",
            "trigger",
            "ref",
            "resolved_commit",
            "created_at",
            "finished_at",
            "cancelled_at",
            "cell_states",
        ]
        read_only_fields = fields

    def get_cell_states(self, run: CompatRun) -> dict[str, int]:
        counts: dict[str, int] = {}
        for cell in run.cells.all():
            counts[cell.state] = counts.get(cell.state, 0) + 1
        return counts


class CompatRunFilter(filters.FilterSet):
    project = filters.CharFilter(field_name="project__slug", help_text="Project slug.")
    trigger = filters.ChoiceFilter(choices=CompatRun.Trigger.choices)

    class Meta:
        model = CompatRun
        fields = ["project", "trigger"]


class CompatRunRequestSerializer(serializers.Serializer):
    # A CharField (not a SlugRelatedField): it refuses a NUL byte before the database sees it.
    project = serializers.CharField(max_length=200, help_text="Project slug.")

    def validate_project(self, slug: str) -> Project:
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise serializers.ValidationError("No project with this slug.")
        return project


class CompatRunCancelledSerializer(serializers.Serializer):
    cancelled = serializers.IntegerField(help_text="Cells cancelled (0: none was unfinished).")
    run = CompatRunSerializer()


MANAGE_RUNS_RULE = "Only staff and the project's maintainers can start and cancel its runs."


class CompatRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Compatibility runs (one project against several targets), newest first. Staff and a
    project's maintainers start and cancel its runs, as on the project page."""

    serializer_class = CompatRunSerializer
    permission_classes = [AllowAny]
    filterset_class = CompatRunFilter

    def get_queryset(self) -> QuerySet[CompatRun]:
        return (
            CompatRun.objects.visible_to(self.request.user)
            .select_related("project")
            .prefetch_related("cells")
            .order_by("-created_at", "-id")
        )

    def get_permissions(self):
        if self.action in ("create", "cancel"):
            return [IsAuthenticated()]
        return super().get_permissions()

    def _require_manager(self, request: Request, project: Project | None) -> None:
        if not selectors.user_can_manage_runs(user=request.user, project=project):
            self.permission_denied(request, message=MANAGE_RUNS_RULE)

    @extend_schema(
        request=CompatRunRequestSerializer,
        responses={
            201: CompatRunSerializer,
            429: OpenApiResponse(
                description="The project's maintainers started their hourly allowance of runs "
                "(COMPAT_MAINTAINER_RUNS_PER_HOUR); Retry-After says when the next may start."
            ),
        },
        description="Run the project's test suite against every active PyTorch target now "
        "(staff, and the project's maintainers within the project's hourly allowance).",
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        body = CompatRunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        project = body.validated_data["project"]
        self._require_manager(request, project)
        try:
            run = compat_run_request_manual(project=project, requested_by=request.user)
        except RunLimitReached as limited:
            raise Throttled(wait=limited.retry_after_s, detail=limited.message) from None
        except CompatRunRefused as refused:
            raise ValidationError({"detail": str(refused)}) from None
        return Response(CompatRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=CompatRunCancelledSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel the run's unfinished cells (runners stop the running ones)."""
        run = self.get_object()
        self._require_manager(request, run.project)
        cancelled = compat_run_cancel(run=run, actor=request.user)
        run = self.get_queryset().get(pk=run.pk)
        return Response(CompatRunCancelledSerializer({"cancelled": cancelled, "run": run}).data)
