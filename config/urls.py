"""Top-level URL map: each app mounts its own urls module."""

from django.contrib import admin
from django.urls import include, path

from ci_runners.webhooks import github_hook
from config import accounts
from config.views import healthz

admin.site.site_header = admin.site.site_title = "Ecosystem Registry admin"
admin.site.index_title = "Administration"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # allauth's sign-in, answering 429 when the login throttle refuses (config/accounts.py).
    path("accounts/login/", accounts.LoginView.as_view(), name="account_login"),
    path("accounts/", include("allauth.urls")),
    path("runs/", include("ci_runners.urls")),
    path("reviews/", include("reviews.urls")),
    path("badges/", include("registry.badge_views")),
    path("hooks/github/", github_hook, name="github_hook"),
    path("api/", include("config.api")),
    path("", include("registry.urls")),
]
