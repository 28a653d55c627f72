"""The public REST API: each app's endpoints assembled under /api/v1/, token login/logout, and
the OpenAPI schema (/api/schema/), Swagger UI (/api/docs/) and Redoc (/api/redoc/)."""

from django.contrib.auth import authenticate, get_user_model
from django.core.exceptions import RequestDataTooBig
from django.urls import include, path
from drf_spectacular.authentication import BasicScheme
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView
from knox import views as knox_views
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.routers import APIRootView, DefaultRouter
from rest_framework.views import exception_handler as drf_exception_handler

from ci_runners import api as ci_runners_api
from config import login_throttle
from config.api_docs import RedocView, SwaggerUIView
from registry import api as registry_api
from reviews import api as reviews_api
from reviews import maintainer_api


class PublicAPIRootView(APIRootView):
    """The map of the endpoints at /api/v1/: public, as the read endpoints it lists are (the
    settings' default permission would answer 401 to a visitor)."""

    permission_classes = [AllowAny]


router = DefaultRouter()
router.APIRootView = PublicAPIRootView
registry_api.register(router)
ci_runners_api.register(router)
reviews_api.register(router)
maintainer_api.register(router)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, plus a JSON 413 for a body past DATA_UPLOAD_MAX_MEMORY_SIZE (Django
    would answer its HTML 400 page)."""
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "Request body too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    return drf_exception_handler(exc, context)


class PasswordAuthentication(BasicAuthentication):
    """Username (or email) and password, from HTTP Basic or a JSON body `{"username" or
    "email", "password"}`,
    checked behind the login throttle (config/login_throttle.py): a refused attempt is a 429
    with Retry-After before any password is hashed. Credentials PostgreSQL cannot compare (a
    NUL byte) are a 401."""

    def authenticate(self, request):
        from_header = super().authenticate(request)
        if from_header is not None:
            return from_header
        from_body = _json_credentials(request)
        if from_body is None:
            return None
        return self.authenticate_credentials(*from_body, request)

    def authenticate_credentials(self, userid, password, request=None):
        if "\x00" in userid or "\x00" in password:
            raise exceptions.AuthenticationFailed("Invalid username/password.")
        credentials = {get_user_model().USERNAME_FIELD: userid, "password": password}
        try:
            user = login_throttle.password_check_throttled(
                request=request,
                login=userid,
                check=lambda: authenticate(request=request, **credentials),
            )
        except login_throttle.LoginThrottled as refused:
            raise exceptions.Throttled(
                wait=refused.retry_after_s, detail="Too many failed logins."
            ) from None
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed("Invalid username/password.")
        return (user, None)


def _json_credentials(request) -> tuple[str, str] | None:
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        return None
    data = request.data
    if not isinstance(data, dict):
        return None
    username, password = data.get("username", data.get("email")), data.get("password")
    if isinstance(username, str) and isinstance(password, str):
        return username, password
    return None


class PasswordScheme(BasicScheme):
    target_class = "config.api.PasswordAuthentication"


@extend_schema(
    tags=["auth"],
    request=inline_serializer(
        name="TokenLoginRequest",
        fields={
            "username": serializers.CharField(required=False),
            "email": serializers.EmailField(required=False, help_text="Instead of username."),
            "password": serializers.CharField(required=False),
        },
    ),
    responses=inline_serializer(
        name="TokenIssued",
        fields={"expiry": serializers.DateTimeField(), "token": serializers.CharField()},
    ),
    description="Issue an API token (sent as `Authorization: Token <token>`). Authenticate "
    "this call with HTTP Basic, a JSON body with `username` and `password`, or a browser "
    "session. The token is stored hashed and expires; it is shown only in this response. "
    "Failed logins are throttled per client address and per account: a refused attempt gets "
    "429 with Retry-After.",
)
class TokenLoginView(knox_views.LoginView):
    authentication_classes = [PasswordAuthentication, SessionAuthentication]
    parser_classes = [JSONParser]


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
    path("docs/", SwaggerUIView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", RedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
