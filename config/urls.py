"""Top-level URL map: each app mounts its own urls module."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("runs/", include("ci_runners.urls")),
    path("reviews/", include("reviews.urls")),
    path("", include("registry.urls")),
]
