"""The deprecation forecast in the REST API (/api/v1/deprecations/): the deprecated torch APIs
the ecosystem's tests call, by projects affected, and each project's count; the same figures
as the page (`ci_runners.deprecations`). Public: it reads registry projects' cells only."""

from __future__ import annotations

import re

from drf_spectacular.helpers import forced_singular_serializer
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from ci_runners.deprecations import forecast
from registry.models import Project

SLUG = re.compile(r"[-a-zA-Z0-9_]{1,120}")


class ProjectUseSerializer(serializers.Serializer):
    slug = serializers.CharField(help_text="Project slug.")
    name = serializers.CharField()
    tests = serializers.ListField(
        child=serializers.CharField(),
        help_text="Tests that raised the warning, first seen first (at most 20); "
        "'<collection>' for one raised while collecting tests or importing torch.",
    )
    count = serializers.IntegerField(help_text="Warnings raised, over its latest cells.")


class TorchApiSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Stable id of the API and its category.")
    api = serializers.CharField(
        help_text="The warning's message, normalised: addresses, shapes, paths and quoted "
        "varying values replaced by '…', torch's C++ location dropped."
    )
    category = serializers.CharField(help_text="FutureWarning, DeprecationWarning or UserWarning.")
    sample_message = serializers.CharField(help_text="The message as one run raised it.")
    project_count = serializers.IntegerField(help_text="Projects whose latest cells raised it.")
    total_count = serializers.IntegerField(help_text="Warnings raised, over all those cells.")
    torch_versions = serializers.ListField(
        child=serializers.CharField(), help_text="PyTorch versions it was seen on, oldest first."
    )
    projects = ProjectUseSerializer(many=True)


class ProjectApisSerializer(serializers.Serializer):
    slug = serializers.CharField(help_text="Project slug.")
    name = serializers.CharField()
    api_count = serializers.IntegerField(help_text="Deprecated torch APIs the project calls.")
    api_ids = serializers.ListField(
        child=serializers.CharField(), help_text="Their `id`s in `apis`, most widespread first."
    )


class ForecastSerializer(serializers.Serializer):
    cells = serializers.IntegerField(help_text="Latest final cells read.")
    apis = TorchApiSerializer(many=True, help_text="Most projects affected first.")
    projects = ProjectApisSerializer(many=True, help_text="Most APIs called first.")


class DeprecationForecastViewSet(viewsets.ViewSet):
    """The deprecation forecast: torch APIs behind the torch warnings (FutureWarning,
    DeprecationWarning, UserWarning raised by torch about an API) of the latest finished cell of
    each active project on each active PyTorch version."""

    permission_classes = [AllowAny]
    pagination_class = None
    filter_backends: list = []

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "project",
                OpenApiTypes.STR,
                description="Only this project's part (its slug); 404 when there is none.",
            )
        ],
        # One document, though `list` is the action that answers GET on the collection.
        responses={
            200: forced_singular_serializer(ForecastSerializer),
            404: OpenApiResponse(description="`project` names no project."),
        },
    )
    def list(self, request: Request) -> Response:
        slug = request.query_params.get("project")
        project = None
        if slug is not None:
            # A slug's characters only: anything else (a NUL byte) names no project.
            valid = SLUG.fullmatch(slug) is not None
            project = Project.objects.filter(slug=slug).first() if valid else None
            if project is None:
                raise NotFound("No project with this name.")
        return Response(ForecastSerializer(forecast(project=project)).data)
