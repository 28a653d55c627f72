"""Public REST API of the compatibility runs: cells (read) and the staff-only test overrides
of projects, and `register`, which assembles this app's endpoints under /api/v1/ for
`config/api.py`: the torch targets (`api_targets`), runs started and cancelled by staff and a
project's maintainers (`api_runs`), bisections, release reports and deprecation forecasts.

Cells of registry projects are public; cells of an applicant's repository (no project yet) are
visible to staff only.
"""

from django.db.models import QuerySet
from django.http import Http404
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny, IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from ci_runners import api_release_reports, services
from ci_runners.api_bisections import BisectionViewSet
from ci_runners.api_deprecations import DeprecationForecastViewSet
from ci_runners.api_runs import CompatRunViewSet
from ci_runners.api_targets import TorchTargetSerializer, TorchTargetViewSet
from ci_runners.models import CompatCell, ProjectTestConfig
from ci_runners.states import CELL_STATE_CHOICES
from registry.models import Project


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
