"""Top-level URL map: each app mounts its own urls module."""

from django.contrib import admin
from django.urls import include, path

from config.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("runs/", include("ci_runners.urls")),
    path("reviews/", include("reviews.urls")),
    path("badges/", include("registry.badge_views")),
    path("api/", include("config.api")),
    path("", include("registry.urls")),
]
