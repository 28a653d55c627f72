"""REST API of the maintainers' listing management: `/api/v1/maintained-projects/<slug>/...`.

The same rule as the pages (`registry.listing.projects_managed_by`: staff, or a verified GitHub
handle among the project's maintainers) scopes the queryset, so any other caller gets a 404 for
every project. Input serializers parse; the services write and audit; their refusals come back
as 400 (with the service's message) or 403 (a role the action needs is missing).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from ci_runners.models import MAX_CELL_TIMEOUT_S
from ci_runners.services.test_configs import MIN_TIMEOUT_S, TestConfigInvalid
from registry import listing
from registry.models import Category, ListingChange, Project, ProjectExemption
from registry.services import project_webhook_secret_rotate
from reviews import criteria
from reviews import maintainer_services as services
from reviews.models import OnboardingTask
from reviews.states import NotAllowed, ReviewError


def _service_call(function, **kwargs) -> Any:
    """Run a service; its refusals become API errors with the service's own message."""
    try:
        return function(**kwargs)
    except (listing.ListingNotAllowed, NotAllowed) as refused:
        raise exceptions.PermissionDenied(str(refused)) from None
    except TestConfigInvalid as refused:
        raise exceptions.ValidationError({"detail": str(refused), **refused.errors}) from None
    except (listing.ListingRefused, ReviewError) as refused:
        raise exceptions.ValidationError({"detail": str(refused)}) from None


# --- output ----------------------------------------------------------------------------------


class ListingExemptionSerializer(serializers.ModelSerializer):
    title = serializers.SerializerMethodField()
    claimed_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = ProjectExemption
        fields = [
            "id",
            "criterion",
            "title",
            "reason",
            "source",
            "claimed_by",
            "created_at",
            "withdrawn_at",
        ]
        read_only_fields = fields

    def get_title(self, exemption: ProjectExemption) -> str:
        found = criteria.BY_NUMBER.get(exemption.criterion)
        return found.title if found else ""


class RecipeSerializer(serializers.Serializer):
    """The maintainer-editable test recipe override (omitted fields keep their value)."""

    extra_requirements = serializers.ListField(child=serializers.CharField(), required=False)
    extras = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        allow_null=True,
        help_text="null: the extras the recipe discovers.",
    )
    pytest_args = serializers.ListField(child=serializers.CharField(), required=False)
    test_paths = serializers.ListField(child=serializers.CharField(), required=False)
    deselect = serializers.ListField(child=serializers.CharField(), required=False)
    env = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    timeout_s = serializers.IntegerField(
        required=False,
        min_value=MIN_TIMEOUT_S,
        max_value=MAX_CELL_TIMEOUT_S,
        help_text="Seconds a cell may run; 900 (the default) lets the repository file's "
        "timeout_s apply.",
    )


class ManagedProjectSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    proposed_category = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )
    owner = serializers.SerializerMethodField()
    maintainers = serializers.ListField(child=serializers.CharField(), read_only=True)
    maintainer_candidates = serializers.ListField(child=serializers.DictField(), read_only=True)
    logo_sha256 = serializers.CharField(source="logo_file_id", read_only=True, allow_null=True)

    class Meta:
        model = Project
        fields = [
            "slug",
            "name",
            "description",
            "homepage_url",
            "documentation_url",
            "category",
            "proposed_category",
            "logo_sha256",
            "maintainers",
            "maintainer_candidates",
            "owner",
            "webhook_secret_set_at",
        ]
        read_only_fields = fields

    def get_owner(self, project: Project) -> str:
        return listing.project_owner(project)


class ListingChangeSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = ListingChange
        fields = ["id", "field", "old_value", "new_value", "actor", "reverts", "created_at"]
        read_only_fields = fields


class OnboardingTaskSerializer(serializers.ModelSerializer):
    done = serializers.BooleanField(read_only=True)

    class Meta:
        model = OnboardingTask
        fields = ["id", "key", "label", "suggested", "for_applicant", "done", "done_at"]
        read_only_fields = fields


# --- input -----------------------------------------------------------------------------------


class ListingInputSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    homepage_url = serializers.CharField(required=False, allow_blank=True)
    documentation_url = serializers.CharField(required=False, allow_blank=True)
    proposed_category = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Category.objects.filter(parent__isnull=False),
        required=False,
        allow_null=True,
        help_text="A subcategory's slug (staff confirm it); null withdraws the proposal.",
    )


class HandleInputSerializer(serializers.Serializer):
    handle = serializers.CharField(max_length=40, help_text="A GitHub user name.")


class TransferInputSerializer(serializers.Serializer):
    new_owner = serializers.CharField(max_length=40, help_text="One of the maintainers.")


class ListingExemptionInputSerializer(serializers.Serializer):
    criterion = serializers.ChoiceField(choices=[c.number for c in criteria.CRITERIA])
    reason = serializers.CharField(max_length=listing.MAX_REASON_CHARS)


class LogoInputSerializer(serializers.Serializer):
    logo = serializers.FileField(help_text="PNG or SVG, at most 512 KB.")


class DoneInputSerializer(serializers.Serializer):
    done = serializers.BooleanField()


WebhookSecretSerializer = inline_serializer(
    name="WebhookSecret",
    fields={"secret": serializers.CharField(), "set_at": serializers.DateTimeField()},
)


# --- the viewset ---------------------------------------------------------------------------

TASK_ID = OpenApiParameter("task_id", int, OpenApiParameter.PATH)
EXEMPTION_ID = OpenApiParameter("exemption_id", int, OpenApiParameter.PATH)
CHANGE_ID = OpenApiParameter("change_id", int, OpenApiParameter.PATH)


class MaintainedProjectViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The projects the caller manages (staff: all), and the management of their listing."""

    permission_classes = [IsAuthenticated]
    serializer_class = ManagedProjectSerializer
    lookup_field = "slug"
    parser_classes = [JSONParser, MultiPartParser]
    queryset = Project.objects.none()  # for the schema; get_queryset applies the rule

    def get_queryset(self) -> QuerySet[Project]:
        return (
            listing.projects_managed_by(user=self.request.user)
            .select_related("category", "proposed_category")
            .order_by("name", "pk")
        )

    def _input(self, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
        body = serializer_class(data=self.request.data)
        body.is_valid(raise_exception=True)
        return dict(body.validated_data)

    def _project(self) -> Response:
        return Response(ManagedProjectSerializer(self.get_object()).data)

    def _apply(self, service, serializer_class: type[serializers.Serializer]) -> Response:
        """The project (404 first), the body (400), the service with the body's fields as its
        keywords; the answer is the project as it is now."""
        project = self.get_object()
        data = self._input(serializer_class)
        _service_call(service, project=project, actor=self.request.user, **data)
        return self._project()

    @extend_schema(request=ListingInputSerializer, responses=ManagedProjectSerializer)
    def partial_update(self, request: Request, slug: str | None = None) -> Response:
        """Change the description, links, or the proposed category (each change audited)."""
        project = self.get_object()
        data = self._input(ListingInputSerializer)
        category = data.pop("proposed_category", ...)
        _service_call(
            listing.listing_fields_update, project=project, actor=request.user, changes=data
        )
        if category is not ...:
            _service_call(
                listing.listing_category_propose,
                project=project,
                actor=request.user,
                category=category,
            )
        return self._project()

    @extend_schema(
        request={"multipart/form-data": LogoInputSerializer}, responses=ManagedProjectSerializer
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser])
    def logo(self, request: Request, slug: str | None = None) -> Response:
        """Upload the logo: PNG or SVG, size-capped; the SVG itself is never inlined."""
        project = self.get_object()
        upload = self._input(LogoInputSerializer)["logo"]
        if upload.size > listing.LISTING_LOGO_MAX_BYTES:
            raise exceptions.ValidationError(
                {"logo": [f"At most {listing.LISTING_LOGO_MAX_BYTES // 1024} KB."]}
            )
        _service_call(
            listing.listing_logo_set,
            project=project,
            actor=request.user,
            data=upload.read(),
            file_name=upload.name or "logo",
        )
        return self._project()

    @extend_schema(request=HandleInputSerializer, responses=ManagedProjectSerializer)
    @action(detail=True, methods=["post"], url_path="maintainers/add")
    def maintainer_add(self, request: Request, slug: str | None = None) -> Response:
        """Add a co-maintainer (every maintainer with an email is told)."""
        return self._apply(listing.listing_maintainer_add, HandleInputSerializer)

    @extend_schema(request=HandleInputSerializer, responses=ManagedProjectSerializer)
    @action(detail=True, methods=["post"], url_path="maintainers/remove")
    def maintainer_remove(self, request: Request, slug: str | None = None) -> Response:
        """Remove a maintainer (the owner or staff; or oneself); never the owner."""
        return self._apply(listing.listing_maintainer_remove, HandleInputSerializer)

    @extend_schema(request=TransferInputSerializer, responses=ManagedProjectSerializer)
    @action(detail=True, methods=["post"])
    def transfer(self, request: Request, slug: str | None = None) -> Response:
        """Hand the listing to another maintainer (the owner or staff only)."""
        return self._apply(listing.listing_owner_transfer, TransferInputSerializer)

    @extend_schema(request=None, responses=ManagedProjectSerializer)
    @action(detail=True, methods=["post"], url_path="category/confirm")
    def category_confirm(self, request: Request, slug: str | None = None) -> Response:
        """Staff make the proposed category the project's."""
        _service_call(
            listing.listing_category_confirm, project=self.get_object(), actor=request.user
        )
        return self._project()

    @extend_schema(methods=["GET"], request=None, responses=RecipeSerializer)
    @extend_schema(methods=["PATCH"], request=RecipeSerializer, responses=RecipeSerializer)
    @action(detail=True, methods=["get", "patch"], url_path="test-recipe")
    def test_recipe(self, request: Request, slug: str | None = None) -> Response:
        """The test recipe override a maintainer may set (audited; the next run uses it)."""
        project = self.get_object()
        if request.method == "GET":
            return Response(services.maintainer_recipe_of(project=project))
        changes = self._input(RecipeSerializer)
        recipe = _service_call(
            services.maintainer_recipe_update, project=project, actor=request.user, changes=changes
        )
        return Response(recipe)

    @extend_schema(methods=["GET"], request=None, responses=ListingExemptionSerializer(many=True))
    @extend_schema(
        methods=["POST"],
        request=ListingExemptionInputSerializer,
        responses={201: ListingExemptionSerializer},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def exemptions(self, request: Request, slug: str | None = None) -> Response:
        """The project's exemptions; POST claims one, with a public reason."""
        project = self.get_object()
        if request.method == "GET":
            rows = project.exemptions.select_related("claimed_by").order_by("criterion", "pk")
            return Response(ListingExemptionSerializer(rows, many=True).data)
        data = self._input(ListingExemptionInputSerializer)
        exemption = _service_call(
            services.maintainer_exemption_claim, project=project, actor=request.user, **data
        )
        return Response(ListingExemptionSerializer(exemption).data, status=201)

    @extend_schema(request=None, responses=ListingExemptionSerializer, parameters=[EXEMPTION_ID])
    @action(detail=True, methods=["post"], url_path=r"exemptions/(?P<exemption_id>[0-9]+)/withdraw")
    def exemption_withdraw(
        self, request: Request, slug: str | None = None, exemption_id: str = ""
    ) -> Response:
        """Withdraw a standing exemption."""
        exemption = self._child(self.get_object().exemptions.all(), exemption_id)
        _service_call(listing.project_exemption_withdraw, exemption=exemption, actor=request.user)
        return Response(ListingExemptionSerializer(exemption).data)

    @extend_schema(responses=OnboardingTaskSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def onboarding(self, request: Request, slug: str | None = None) -> Response:
        """The onboarding checklist of the project's accepted application (maybe empty)."""
        tasks = services.project_onboarding_tasks(project=self.get_object())
        return Response(OnboardingTaskSerializer(tasks, many=True).data)

    @extend_schema(
        request=DoneInputSerializer, responses=OnboardingTaskSerializer, parameters=[TASK_ID]
    )
    @action(detail=True, methods=["post"], url_path=r"onboarding/(?P<task_id>[0-9]+)")
    def onboarding_tick(
        self, request: Request, slug: str | None = None, task_id: str = ""
    ) -> Response:
        """Tick (or untick) a task of the checklist that is the maintainers' to do."""
        tasks = services.project_onboarding_tasks(project=self.get_object())
        task = next((t for t in tasks if str(t.pk) == task_id), None)
        if task is None:
            raise exceptions.NotFound("No such task of this project.")
        done = self._input(DoneInputSerializer)["done"]
        _service_call(
            services.maintainer_onboarding_task_set, task=task, done=done, actor=request.user
        )
        task.refresh_from_db()
        return Response(OnboardingTaskSerializer(task).data)

    @extend_schema(request=None, responses=WebhookSecretSerializer)
    @action(detail=True, methods=["post"], url_path="webhook-secret")
    def webhook_secret(self, request: Request, slug: str | None = None) -> Response:
        """A new webhook secret (the old one stops working), in this response only."""
        project = self.get_object()
        secret = project_webhook_secret_rotate(project=project, actor=request.user)
        response = Response({"secret": secret, "set_at": project.webhook_secret_set_at})
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(responses=ListingChangeSerializer(many=True))
    @action(detail=True, methods=["get"])
    def changes(self, request: Request, slug: str | None = None) -> Response:
        """The audit trail of the listing, newest first."""
        rows = self.get_object().listing_changes.select_related("actor")
        page = self.paginate_queryset(rows)
        if page is not None:
            return self.get_paginated_response(ListingChangeSerializer(page, many=True).data)
        return Response(ListingChangeSerializer(rows, many=True).data)

    @extend_schema(
        request=None, responses=ListingChangeSerializer(many=True), parameters=[CHANGE_ID]
    )
    @action(detail=True, methods=["post"], url_path=r"changes/(?P<change_id>[0-9]+)/revert")
    def change_revert(
        self, request: Request, slug: str | None = None, change_id: str = ""
    ) -> Response:
        """Staff revert one change; the answer is the audit trail's newest rows."""
        project = self.get_object()
        if not request.user.is_staff:
            raise exceptions.PermissionDenied("Only staff revert a change of a listing.")
        change = self._child(project.listing_changes.all(), change_id)
        _service_call(services.listing_change_revert_any, change=change, actor=request.user)
        rows = project.listing_changes.select_related("actor")[:10]
        return Response(ListingChangeSerializer(rows, many=True).data)

    @staticmethod
    def _child(rows: QuerySet, pk: str) -> Any:
        found = rows.filter(pk=int(pk)).first() if pk.isdigit() and len(pk) < 18 else None
        if found is None:
            raise exceptions.NotFound()
        return found


def register(router) -> None:
    router.register("maintained-projects", MaintainedProjectViewSet, basename="maintained-project")
