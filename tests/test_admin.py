"""Every model of the service's apps has an admin page that staff can open."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

APPS = ["registry", "ci_runners", "reviews"]


def test_every_model_is_registered_in_the_admin():
    models = [m for name in APPS for m in apps.get_app_config(name).get_models()]
    missing = [m.__name__ for m in models if not admin.site.is_registered(m)]
    assert models and missing == []


@pytest.mark.django_db
def test_admin_list_pages_open(admin_client):
    for name in APPS:
        for model in apps.get_app_config(name).get_models():
            meta = model._meta
            changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
            assert admin_client.get(changelist).status_code == 200, changelist
