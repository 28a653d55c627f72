"""The public REST API: each app's endpoints assembled under /api/v1/, plus the OpenAPI schema
(/api/schema/), Swagger UI (/api/docs/) and Redoc (/api/redoc/)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from registry import api as registry_api

router = DefaultRouter()
registry_api.register(router)

urlpatterns = [
    path("v1/", include(registry_api.extra_urlpatterns)),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
