"""Public REST API of bisections (first bad release), read-only: registered by
`ci_runners.api.register` under /api/v1/bisections/.

Bisections are of registry projects only, so every one is public (as their runs are).
"""

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from rest_framework import serializers, viewsets
from rest_framework.permissions import AllowAny

from ci_runners.models import Bisection


class BisectionProbeSerializer(serializers.Serializer):
    """One probe of a bisection: the release, its cell's state, the cell."""

    torch = serializers.CharField(help_text="The torch release probed, as published.")
    state = serializers.CharField(help_text="The probe cell's state (queued while in flight).")
    cell_id = serializers.IntegerField(help_text="The cell (see /api/v1/cells/{id}/).")


class BisectionSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    variant = serializers.CharField(
        source="template_target.variant", read_only=True, help_text="The probes' torch variant."
    )
    python_version = serializers.CharField(
        source="template_target.python_version", read_only=True, help_text="The probes' Python."
    )
    capability = serializers.CharField(
        source="template_target.capability",
        read_only=True,
        help_text="The runner capability the probes ran on.",
    )
    candidates = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="torch releases published strictly between the ends, oldest first.",
    )
    tried = BisectionProbeSerializer(many=True, read_only=True)
    failures = serializers.ListField(
        child=serializers.DictField(),
        read_only=True,
        help_text="The failing tests of the first bad release.",
    )

    class Meta:
        model = Bisection
        fields = [
            "id",
            "project",
            "good_version",
            "bad_version",
            "variant",
            "python_version",
            "capability",
            "candidates",
            "tried",
            "state",
            "first_bad",
            "last_good",
            "failures",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class BisectionFilter(filters.FilterSet):
    project = filters.CharFilter(field_name="project__slug", help_text="Project slug.")
    state = filters.ChoiceFilter(choices=Bisection.State.choices)

    class Meta:
        model = Bisection
        fields = ["project", "state"]


class BisectionViewSet(viewsets.ReadOnlyModelViewSet):
    """Bisections: which torch release first broke a project (first bad) and the last one it
    passed (last good), with the failing tests and the probe cells run, newest first."""

    serializer_class = BisectionSerializer
    permission_classes = [AllowAny]
    filterset_class = BisectionFilter

    def get_queryset(self) -> QuerySet[Bisection]:
        return Bisection.objects.select_related("project", "template_target").order_by(
            "-created_at", "-id"
        )
