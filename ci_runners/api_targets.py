"""API of the PyTorch targets: `/api/v1/torch-targets/` (public), and the target serializer the
cells and the release reports nest."""

from rest_framework import serializers, viewsets
from rest_framework.permissions import AllowAny

from ci_runners.models import TorchTarget


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


class TorchTargetViewSet(viewsets.ReadOnlyModelViewSet):
    """The PyTorch builds the compatibility matrix runs against."""

    serializer_class = TorchTargetSerializer
    permission_classes = [AllowAny]
    queryset = TorchTarget.objects.all()
    filterset_fields = ["active", "version", "capability"]
