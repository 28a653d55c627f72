"""Public registry pages."""

from django.urls import path

from registry import views

app_name = "registry"
urlpatterns = [
    path("", views.landscape, name="landscape"),
    path("projects/<slug:slug>/", views.project_detail, name="project"),
]
