"""Public REST API of the compatibility runs: torch targets, runs and cells (read-only).

Runs of registry projects are public; runs of an applicant's repository (no project yet) are
visible to staff only. Assembled under /api/v1/ by `config/api.py`.
"""

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from rest_framework import serializers, viewsets
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny

from ci_runners.models import CompatCell, CompatRun, TorchTarget
from ci_runners.states import CELL_STATE_CHOICES


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


class CompatRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Compatibility runs (one project against several targets), newest first."""

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


class CellCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 50


class CompatCellFilter(filters.FilterSet):
    project = filters.CharFilter(field_name="project__slug", help_text="Project slug.")
    state = filters.ChoiceFilter(choices=CELL_STATE_CHOICES)
    version = filters.CharFilter(field_name="target__version", help_text="PyTorch version.")

    class Meta:
        model = CompatCell
        fields = ["run", "project", "state", "version"]


class CompatCellViewSet(viewsets.ReadOnlyModelViewSet):
    """Cells (one run x one target) with their results, failures and warnings."""

    serializer_class = CompatCellSerializer
    permission_classes = [AllowAny]
    pagination_class = CellCursorPagination
    filterset_class = CompatCellFilter

    def get_queryset(self) -> QuerySet[CompatCell]:
        return CompatCell.objects.visible_to(self.request.user).select_related("target", "project")


def register(router) -> None:
    router.register("torch-targets", TorchTargetViewSet, basename="torch-target")
    router.register("runs", CompatRunViewSet, basename="compat-run")
    router.register("cells", CompatCellViewSet, basename="compat-cell")
