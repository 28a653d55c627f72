"""Public REST API of the registry: projects, categories and the landscape export (read-only).

Assembled under /api/v1/ by `config/api.py`; imports nothing above the registry.
"""

import json

from django.db.models import Q, QuerySet
from django.urls import path, reverse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.filters import OrderingFilter
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import badges
from registry.declared import DisagreementKind, project_compatibility
from registry.landscape import landscape_dump_yaml, landscape_export_document
from registry.models import Category, Project, RepoSnapshot

# -- serializers ----------------------------------------------------------------------------


class CategorySerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    path = serializers.CharField(read_only=True)

    class Meta:
        model = Category
        fields = ["id", "name", "slug", "parent", "path", "position"]


class RepoHealthSerializer(serializers.ModelSerializer):
    class Meta:
        model = RepoSnapshot
        fields = [
            "taken_at",
            "checked_at",
            "stars",
            "forks",
            "open_issues",
            "license_spdx",
            "default_branch",
            "pushed_at",
            "commits_90d",
            "contributors_90d",
            "latest_release",
            "latest_release_at",
            "has_license",
            "has_readme",
            "has_contributing",
            "has_codeowners",
            "has_code_of_conduct",
            "has_security",
            "has_ci_workflows",
        ]


BadgeLinks = inline_serializer(
    name="BadgeLinks",
    fields={
        kind: inline_serializer(
            name=f"BadgeLinks{kind.title()}",
            fields={"svg": serializers.URLField(), "json": serializers.URLField()},
        )
        for kind in badges.KINDS
    },
)


class ProjectCategorySerializer(serializers.ModelSerializer):
    path = serializers.CharField(read_only=True)

    class Meta:
        model = Category
        fields = ["id", "slug", "path"]


class ProjectSerializer(serializers.ModelSerializer):
    category = ProjectCategorySerializer(read_only=True, allow_null=True)
    # URLs are plain strings: "" when unknown (a blank value is not a valid "uri").
    homepage_url = serializers.CharField(read_only=True)
    documentation_url = serializers.CharField(read_only=True)
    repository = serializers.CharField(read_only=True, help_text="owner/name on GitHub.")
    repository_url = serializers.CharField(read_only=True)
    works_with = serializers.ListField(
        child=serializers.CharField(), help_text="PyTorch versions whose latest run passed."
    )
    breaks_with = serializers.ListField(
        child=serializers.CharField(), help_text="PyTorch versions whose latest run failed."
    )
    not_installable_with = serializers.ListField(
        child=serializers.CharField(),
        help_text="PyTorch versions the project cannot be installed with (its own metadata or "
        "its dependencies exclude them): it does not work with them. Versions whose run hit an "
        "infrastructure error are in none of these lists.",
    )
    maintainers = serializers.ListField(child=serializers.CharField(), help_text="GitHub handles.")
    health = serializers.SerializerMethodField(help_text="Latest GitHub figures (null: none).")
    badges = serializers.SerializerMethodField()
    html_url = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "slug",
            "name",
            "kind",
            "status",
            "category",
            "description",
            "homepage_url",
            "documentation_url",
            "pypi_name",
            "repository",
            "repository_url",
            "maintainers",
            "accepted_on",
            "next_review_due",
            "works_with",
            "breaks_with",
            "not_installable_with",
            "review_state",
            "health",
            "badges",
            "html_url",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(RepoHealthSerializer(allow_null=True))
    def get_health(self, project: Project) -> dict | None:
        latest = getattr(project, "latest_snapshots", None)
        return RepoHealthSerializer(latest[0]).data if latest else None

    @extend_schema_field(BadgeLinks)
    def get_badges(self, project: Project) -> dict:
        request = self.context["request"]
        return {
            kind: {
                fmt: request.build_absolute_uri(
                    reverse("badges:badge", kwargs={"slug": project.slug, "kind": kind, "fmt": fmt})
                )
                for fmt in badges.FORMATS
            }
            for kind in badges.KINDS
        }

    @extend_schema_field(OpenApiTypes.URI)
    def get_html_url(self, project: Project) -> str:
        return self.context["request"].build_absolute_uri(project.get_absolute_url())


# -- projects -------------------------------------------------------------------------------


class ProjectFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=Project.Kind.choices)
    status = filters.ChoiceFilter(
        choices=[*Project.Status.choices, ("all", "All")],
        method="filter_status",
        help_text="Default: active projects only; `all` for every status.",
    )
    category = filters.CharFilter(
        method="filter_category", help_text="Slug of a category or subcategory."
    )
    search = filters.CharFilter(
        method="filter_search",
        max_length=100,
        help_text="Text in the name, description or repository.",
    )

    class Meta:
        model = Project
        fields = ["kind", "status", "category", "search"]

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        if not self.form.cleaned_data.get("status"):
            queryset = queryset.filter(status=Project.Status.ACTIVE)
        return super().filter_queryset(queryset)

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset if value == "all" else queryset.filter(status=value)

    def filter_category(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(Q(category__slug=value) | Q(category__parent__slug=value))

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(
            Q(name__icontains=value)
            | Q(description__icontains=value)
            | Q(repo_owner__icontains=value)
            | Q(repo_name__icontains=value)
        )


class DisagreementSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=[str(kind) for kind in DisagreementKind],
        help_text="broken_claim: the declared range includes a version whose latest run failed; "
        "excluded_by_metadata: the declared range excludes a version it cannot be installed with; "
        "widenable_range: the declared range excludes a version its tests pass with when run "
        "beyond the range (a range that could widen).",
    )
    torch = serializers.CharField()
    message = serializers.CharField()


class DeclaredSerializer(serializers.Serializer):
    torch = serializers.CharField(
        required=False, help_text='Torch specifier its metadata declares ("": none).'
    )
    requires_python = serializers.CharField(
        required=False, help_text='Its Requires-Python ("": none).'
    )


class CompatibilitySerializer(serializers.Serializer):
    declared = DeclaredSerializer(
        help_text="What the project's metadata declares, as its latest built run read it "
        "(empty: never built)."
    )
    works_with = serializers.ListField(
        child=serializers.CharField(), help_text="Versions whose latest run passed."
    )
    breaks_with = serializers.ListField(
        child=serializers.CharField(), help_text="Versions whose latest run failed or timed out."
    )
    not_installable_with = serializers.ListField(
        child=serializers.CharField(),
        help_text="Versions it cannot be installed with (its metadata or dependencies exclude "
        "them).",
    )
    widenable_with = serializers.ListField(
        child=serializers.CharField(),
        help_text="Of not_installable_with, the versions its declared torch range excludes but "
        "its tests pass with, run with the range overridden.",
    )
    disagreements = DisagreementSerializer(many=True)


class ProjectDetailSerializer(ProjectSerializer):
    """A project with its declared vs measured compatibility."""

    compatibility = serializers.SerializerMethodField()

    class Meta(ProjectSerializer.Meta):
        fields = [*ProjectSerializer.Meta.fields, "compatibility"]
        read_only_fields = fields

    @extend_schema_field(CompatibilitySerializer)
    def get_compatibility(self, project: Project) -> dict:
        return project_compatibility(project=project).to_dict()


class ProjectViewSet(viewsets.ReadOnlyModelViewSet):
    """Projects of the registry with their latest health figures, compatibility and badges."""

    serializer_class = ProjectSerializer
    permission_classes = [AllowAny]
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    filter_backends = [filters.DjangoFilterBackend, OrderingFilter]
    filterset_class = ProjectFilter
    ordering_fields = ["name", "slug", "accepted_on", "next_review_due", "updated_at"]
    ordering = ["name"]

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return ProjectDetailSerializer if self.action == "retrieve" else ProjectSerializer

    def get_queryset(self) -> QuerySet[Project]:
        return Project.objects.select_related("category__parent").with_latest_snapshot()

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        # Filters (and the active-only default) shape the list; a slug finds any project.
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)


class CategoryViewSet(viewsets.ReadOnlyModelViewSet):
    """The landscape's categories (no parent) and subcategories (with their parent's slug)."""

    serializer_class = CategorySerializer
    permission_classes = [AllowAny]
    queryset = Category.objects.select_related("parent").order_by("parent_id", "position", "name")
    filter_backends = [filters.DjangoFilterBackend]
    filterset_fields = {"parent__slug": ["exact"]}


# -- landscape export -----------------------------------------------------------------------


class YAMLRenderer(BaseRenderer):
    media_type = "application/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        # Through JSON first, so error details and lazy strings become plain data.
        plain = json.loads(JSONRenderer().render(data))
        return landscape_dump_yaml(plain).encode("utf-8")


class LandscapeExportView(APIView):
    """The whole registry as a landscape2 document (`?format=yaml` or `?format=json`)."""

    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer, YAMLRenderer]

    @extend_schema(
        operation_id="landscape_export",
        responses={200: OpenApiTypes.OBJECT},
        description="The landscape2 data file (the format of the foundation's landscape.yml). "
        "JSON by default; YAML with `Accept: application/yaml` or `?format=yaml`.",
    )
    def get(self, request: Request) -> Response:
        return Response(landscape_export_document())


def register(router) -> None:
    router.register("projects", ProjectViewSet, basename="project")
    router.register("categories", CategoryViewSet, basename="category")


extra_urlpatterns = [
    path("landscape/", LandscapeExportView.as_view(), name="landscape-export"),
]
