"""Public REST API of the compatibility runs: torch targets, runs and cells (read), starting
and cancelling a project's runs (staff and its maintainers, as on the project page, with the
maintainers' hourly allowance), and the staff-only test overrides of projects.

Runs of registry projects are public; runs of an applicant's repository (no project yet) are
visible to staff only. Assembled under /api/v1/ by `config/api.py`.
"""

from django.db.models import QuerySet
from django.http import Http404
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny, IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from ci_runners import api_release_reports, selectors, services
from ci_runners.api_bisections import BisectionViewSet
from ci_runners.api_deprecations import DeprecationForecastViewSet
from ci_runners.models import CompatCell, CompatRun, ProjectTestConfig, TorchTarget
from ci_runners.states import CELL_STATE_CHOICES
from registry.models import Project


class TorchTargetSerializer(serializers.ModelSerializer):
    label = serializers.CharField(read_only=True)

    class Meta:
        model = TorchTarget
        fields = [
            "id",
            "label",
            "version",
            "variant",
            "python_version",
            "prerelease",
            "active",
            "capability",
            "approved_at",
        ]


class CompatCellSerializer(serializers.ModelSerializer):
    target = TorchTargetSerializer(read_only=True)
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    duration_s = serializers.FloatField(read_only=True, allow_null=True)
    counts = serializers.DictField(child=serializers.IntegerField(), read_only=True)
    failures = serializers.ListField(
        child=serializers.DictField(), read_only=True, help_text="Failed tests with messages."
    )
    warnings = serializers.ListField(
        child=serializers.DictField(), read_only=True, help_text="Warnings the suite raised."
    )
    timings = serializers.DictField(read_only=True)
    environment = serializers.DictField(read_only=True)
    error_code = serializers.CharField(
        read_only=True,
        help_text="Why an errored cell errored (an infrastructure code such as `runner_lost` "
        "or `env_build_failed`); for a not_installable cell, the resolver's or build's reason "
        "when known; '' otherwise.",
    )
    tests_collected = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="Tests pytest collected (null: never got there)."
    )
    needs_network = serializers.ListField(
        child=serializers.DictField(),
        read_only=True,
        help_text="Tests that failed only because the sandbox has no network (never breaks).",
    )
    recipe = serializers.DictField(
        read_only=True,
        help_text="The test recipe the job ran: install, extras, groups, run {command, cwd, "
        "testpaths, ...}, env, deselect, needs_gpu, override, provenance [{part, file, line, "
        "detail}], hash. Empty for agents that do not report it.",
    )
    flaky = serializers.ListField(
        child=serializers.DictField(),
        read_only=True,
        help_text="Flaky tests: failed, then passed when re-run once in the same environment "
        "and sandbox; each counted once, as passed, and never as a break. {test: node id, "
        "message: its first failure}.",
    )
    beyond_range = serializers.DictField(
        read_only=True,
        help_text="A not_installable cell whose project's declared torch range excludes the "
        "target, tested with that range overridden: what the tests did there {state, counts, "
        "failures, tests_collected} ({state, error} when they could not run); {} otherwise.",
    )
    suite_shrunk = serializers.BooleanField(
        read_only=True,
        help_text="More than 10 % fewer tests collected than on the project's latest cell on "
        "another target (a passed cell stays passed).",
    )
    suite_shrink = serializers.DictField(
        read_only=True,
        allow_null=True,
        help_text="The figures compared when the suite shrank: collected, reference, "
        "reference_cell, reference_target.",
    )
    carried_from = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text="A carried cell (not run again: the project's commit, test configuration and "
        "target unchanged, the environment resolved recently): the id of the cell whose result "
        "it repeats; null for a cell that ran.",
    )
    job_hash = serializers.CharField(
        read_only=True,
        help_text="Hash of the job asked of the runner (source, ref, test configuration, "
        "timeout, target); '' for older cells.",
    )

    class Meta:
        model = CompatCell
        fields = [
            "id",
            "run",
            "project",
            "target",
            "state",
            "attempt",
            "runner_name",
            "queued_at",
            "started_at",
            "finished_at",
            "duration_s",
            "commit",
            "counts",
            "failures",
            "warnings",
            "timings",
            "environment",
            "exit_code",
            "error",
            "error_code",
            "tests_collected",
            "needs_network",
            "flaky",
            "beyond_range",
            "suite_shrunk",
            "suite_shrink",
            "recipe",
            "recipe_hash",
            "lock_hash",
            "job_hash",
            "carried_from",
        ]
        read_only_fields = fields


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


class TorchTargetViewSet(viewsets.ReadOnlyModelViewSet):
    """The PyTorch builds the compatibility matrix runs against."""

    serializer_class = TorchTargetSerializer
    permission_classes = [AllowAny]
    queryset = TorchTarget.objects.all()
    filterset_fields = ["active", "version", "capability"]


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
        limited = selectors.run_limit_reached(user=request.user, project=project)
        if limited is not None:
            raise Throttled(wait=limited.retry_after_s, detail=limited.message)
        try:
            run = services.compat_run_request(
                project=project, trigger=CompatRun.Trigger.MANUAL, requested_by=request.user
            )
        except services.CompatRunRefused as refused:
            raise ValidationError({"detail": str(refused)}) from None
        return Response(CompatRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=CompatRunCancelledSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel the run's unfinished cells (runners stop the running ones)."""
        run = self.get_object()
        self._require_manager(request, run.project)
        cancelled = services.compat_run_cancel(run=run, actor=request.user)
        run = self.get_queryset().get(pk=run.pk)
        return Response(CompatRunCancelledSerializer({"cancelled": cancelled, "run": run}).data)


class CellCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 50


class CompatCellFilter(filters.FilterSet):
    project = filters.CharFilter(field_name="project__slug", help_text="Project slug.")
    state = filters.ChoiceFilter(choices=CELL_STATE_CHOICES)
    version = filters.CharFilter(field_name="target__version", help_text="PyTorch version.")
    error_code = filters.CharFilter(help_text="Errored cells with this code (e.g. runner_lost).")
    suite_shrunk = filters.BooleanFilter(help_text="Cells whose suite shrank.")

    class Meta:
        model = CompatCell
        fields = ["run", "project", "state", "version", "error_code", "suite_shrunk"]


class CompatCellViewSet(viewsets.ReadOnlyModelViewSet):
    """Cells (one run x one target) with their results, failures and warnings."""

    serializer_class = CompatCellSerializer
    permission_classes = [AllowAny]
    pagination_class = CellCursorPagination
    filterset_class = CompatCellFilter

    def get_queryset(self) -> QuerySet[CompatCell]:
        return CompatCell.objects.visible_to(self.request.user).select_related("target", "project")


class TestOverrideSerializer(serializers.Serializer):
    """A project's test override: what staff set on top of the recipe the runner discovers."""

    __test__ = False

    project = serializers.CharField(read_only=True, help_text="Project slug.")
    extra_requirements = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="PEP 508 requirements installed with the recipe's (no direct URLs).",
    )
    extras = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        allow_null=True,
        help_text="Extras to install; null = what the recipe discovers.",
    )
    groups = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        allow_null=True,
        help_text="PEP 735 dependency groups to install; null = what the recipe discovers.",
    )
    pytest_args = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Added to the recipe's."
    )
    test_paths = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Paths inside the repository."
    )
    env = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        help_text="Variables merged with the recipe's (no secrets; PATH, HOME, LD_*, UV_*, "
        "PIP_* are the runner's).",
    )
    deselect = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="pytest markers whose tests are deselected, added to the recipe's.",
    )
    copy_tests = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="A folder of the repository run from a copy ('' = none).",
    )


def _override_data(project: Project) -> dict:
    config = ProjectTestConfig.objects.filter(project=project).first()
    return {"project": project.slug, **services.test_override_of(config).as_dict()}


class ProjectTestOverrideViewSet(viewsets.GenericViewSet):
    """Staff only: read and change how a project's test suite is run (its override of the
    recipe the runner discovers). The next run of the project uses it."""

    permission_classes = [IsAuthenticated, IsAdminUser]
    serializer_class = TestOverrideSerializer
    queryset = Project.objects.all()
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    pagination_class = None
    filter_backends: list = []

    def get_object(self) -> Project:
        project = Project.objects.filter(slug=self.kwargs["slug"]).first()
        if project is None:
            raise Http404("No project with this name.")
        return project

    def retrieve(self, request: Request, slug: str | None = None) -> Response:
        return Response(TestOverrideSerializer(_override_data(self.get_object())).data)

    @extend_schema(
        description="Replace the whole override: fields left out go back to their defaults "
        "(nothing overridden)."
    )
    def update(self, request: Request, slug: str | None = None) -> Response:
        return self._save(request, partial=False)

    @extend_schema(description="Change only the fields given.")
    def partial_update(self, request: Request, slug: str | None = None) -> Response:
        return self._save(request, partial=True)

    def _save(self, request: Request, *, partial: bool) -> Response:
        project = self.get_object()
        body = TestOverrideSerializer(data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        if not partial:
            changes = {**services.TestOverride().as_dict(), **changes}
        try:
            services.project_test_config_update(
                project=project, actor=request.user, changes=changes
            )
        except services.TestConfigInvalid as invalid:
            raise ValidationError(invalid.errors) from None
        return Response(TestOverrideSerializer(_override_data(project)).data)


def register(router) -> None:
    router.register("torch-targets", TorchTargetViewSet, basename="torch-target")
    router.register("runs", CompatRunViewSet, basename="compat-run")
    router.register("cells", CompatCellViewSet, basename="compat-cell")
    router.register("test-overrides", ProjectTestOverrideViewSet, basename="test-override")
    router.register("bisections", BisectionViewSet, basename="bisection")
    router.register("release-reports", api_release_reports.ReleaseReportViewSet, "release-report")
    router.register("deprecations", DeprecationForecastViewSet, basename="deprecation-forecast")
