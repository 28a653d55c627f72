"""API of the release readiness report: `/api/v1/release-reports/<version>/` (public).

The data is `ci_runners.release_reports.release_report`, the same the page, its downloads and
`manage.py release_report --json` give; the serializers here describe it for the schema and
pass it through unchanged.
"""

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from ci_runners import release_reports
from ci_runners.api_targets import TorchTargetSerializer

CLASSES_HELP = "One of: " + ", ".join(release_reports.CLASSIFICATIONS) + "."


class ReleaseTargetSerializer(TorchTargetSerializer):
    """A target of the release, as `/api/v1/torch-targets/` shows it, fewer fields."""

    class Meta(TorchTargetSerializer.Meta):
        fields = ["id", "label", "version", "variant", "python_version", "capability", "active"]
        read_only_fields = fields


class ReportCellSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.CharField()
    url = serializers.CharField(help_text="The cell's page.")
    counts = serializers.DictField(child=serializers.IntegerField())
    finished_at = serializers.CharField(allow_null=True, help_text="ISO 8601, or null.")


class ReportFailureSerializer(serializers.Serializer):
    test = serializers.CharField(help_text="pytest node id.")
    when = serializers.CharField(help_text="setup, call or teardown (collect for a module).")
    message = serializers.CharField(allow_blank=True, help_text="The error line.")


class ReportWarningSerializer(serializers.Serializer):
    category = serializers.CharField()
    message = serializers.CharField()
    count = serializers.IntegerField()


class ReportComparisonSerializer(serializers.Serializer):
    target = serializers.CharField(help_text="The new release's target.")
    classification = serializers.CharField(help_text=CLASSES_HELP)
    cell = ReportCellSerializer(help_text="The latest final cell there (or the one in flight).")
    previous_target = serializers.CharField(allow_null=True)
    previous_cell = ReportCellSerializer(
        allow_null=True, help_text="The latest final cell on the previous release's target."
    )
    failures = ReportFailureSerializer(many=True)
    error = serializers.CharField(allow_blank=True)
    new_torch_warnings = ReportWarningSerializer(
        many=True, help_text="torch warnings the previous release's cell did not show."
    )


class ReportProjectRefSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    url = serializers.CharField()


class ReportProjectSerializer(serializers.Serializer):
    project = ReportProjectRefSerializer()
    classification = serializers.CharField(help_text=f"The worst over the targets. {CLASSES_HELP}")
    failures = ReportFailureSerializer(many=True, help_text="The first failing tests.")
    new_torch_warnings = ReportWarningSerializer(many=True)
    comparisons = ReportComparisonSerializer(many=True)


class ReportSectionSerializer(serializers.Serializer):
    classification = serializers.CharField(help_text=CLASSES_HELP)
    label = serializers.CharField()
    projects = ReportProjectSerializer(many=True)


class ReportSummarySerializer(serializers.Serializer):
    projects = serializers.IntegerField()
    newly_broken = serializers.IntegerField()
    still_broken = serializers.IntegerField()
    not_installable = serializers.IntegerField()
    errored = serializers.IntegerField()
    pending = serializers.IntegerField()
    newly_fixed = serializers.IntegerField()
    passed = serializers.IntegerField()


class ReleaseReportSerializer(serializers.Serializer):
    """How the active registry projects fare on a PyTorch release against the one before."""

    version = serializers.CharField()
    previous_version = serializers.CharField(
        allow_null=True, help_text="The newest approved release below it."
    )
    approved = serializers.BooleanField()
    targets = ReleaseTargetSerializer(many=True)
    summary = ReportSummarySerializer()
    sections = ReportSectionSerializer(
        many=True, help_text="One per classification, newly broken first; empty when no result."
    )


class ReleaseReportViewSet(viewsets.ViewSet):
    """The release readiness report of a PyTorch version (public: registry projects only).

    A version with no target or no run yet answers the same shape with empty sections."""

    permission_classes = [AllowAny]
    lookup_field = "version"
    lookup_value_regex = r"[0-9A-Za-z.+!_-]+"

    @extend_schema(
        responses=ReleaseReportSerializer,
        parameters=[OpenApiParameter("version", str, OpenApiParameter.PATH)],
    )
    def retrieve(self, request: Request, version: str | None = None) -> Response:
        try:
            report = release_reports.release_report(version or "")
        except release_reports.InvalidReleaseVersion as exc:
            raise Http404(str(exc)) from None
        return Response(report)
