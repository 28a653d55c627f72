"""Pages of the ci_runners app."""

from django.urls import path  # noqa: F401

app_name = "ci_runners"
urlpatterns: list = []
