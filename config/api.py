"""The public REST API: each app's endpoints assembled under /api/v1/, token login/logout, and
the OpenAPI schema (/api/schema/), Swagger UI (/api/docs/) and Redoc (/api/redoc/)."""

from django.core.exceptions import RequestDataTooBig
from django.urls import include, path
from drf_spectacular.authentication import BasicScheme
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from knox import views as knox_views
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import exception_handler as drf_exception_handler

from ci_runners import api as ci_runners_api
from registry import api as registry_api
from reviews import api as reviews_api

router = DefaultRouter()
registry_api.register(router)
ci_runners_api.register(router)
reviews_api.register(router)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, plus a JSON 413 for a body past DATA_UPLOAD_MAX_MEMORY_SIZE (Django
    would answer its HTML 400 page)."""
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "Request body too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    return drf_exception_handler(exc, context)


class StrictBasicAuthentication(BasicAuthentication):
    """HTTP Basic that refuses credentials PostgreSQL cannot compare (a NUL byte) with a 401."""

    def authenticate_credentials(self, userid, password, request=None):
        if "\x00" in userid or "\x00" in password:
            raise exceptions.AuthenticationFailed("Invalid username/password.")
        return super().authenticate_credentials(userid, password, request)


class StrictBasicScheme(BasicScheme):
    target_class = "config.api.StrictBasicAuthentication"


@extend_schema(
    tags=["auth"],
    request=None,
    responses=inline_serializer(
        name="TokenIssued",
        fields={"expiry": serializers.DateTimeField(), "token": serializers.CharField()},
    ),
    description="Issue an API token (sent as `Authorization: Token <token>`). Authenticate "
    "this call with HTTP Basic (username and password) or a browser session. The token is "
    "stored hashed and expires; it is shown only in this response.",
)
class TokenLoginView(knox_views.LoginView):
    authentication_classes = [StrictBasicAuthentication, SessionAuthentication]


@extend_schema(tags=["auth"], request=None, responses={204: None})
class TokenLogoutView(knox_views.LogoutView):
    """Revoke the token this request is authenticated with."""


@extend_schema(tags=["auth"], request=None, responses={204: None})
class TokenLogoutAllView(knox_views.LogoutAllView):
    """Revoke every token of the caller."""


auth_urlpatterns = [
    path("login/", TokenLoginView.as_view(), name="api-login"),
    path("logout/", TokenLogoutView.as_view(), name="api-logout"),
    path("logoutall/", TokenLogoutAllView.as_view(), name="api-logoutall"),
]

urlpatterns = [
    path("v1/auth/", include(auth_urlpatterns)),
    path("v1/", include(registry_api.extra_urlpatterns)),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
