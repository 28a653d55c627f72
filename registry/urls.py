"""Public registry pages."""

from django.urls import path, register_converter

from registry import views


class _SHA256Converter:
    regex = "[0-9a-f]{64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(_SHA256Converter, "sha256")

app_name = "registry"
urlpatterns = [
    path("", views.landscape, name="landscape"),
    path("projects/<slug:slug>/", views.project_detail, name="project"),
    path("logos/<sha256:sha256>", views.logo, name="logo"),
    path("logos/<sha256:sha256>/card", views.logo, {"rendering": "card"}, name="logo_card"),
]
