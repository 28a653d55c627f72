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


@pytest.mark.django_db
def test_the_admin_is_branded_and_names_its_models_properly(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "<title>Administration | Ecosystem Registry admin</title>" in page
    assert 'id="site-name"><a href="/admin/">Ecosystem Registry admin</a>' in page
    assert "Maintainer identities" in page and "identitys" not in page


@pytest.mark.django_db
def test_votes_are_read_only_in_the_admin(admin_client):
    """Votes are cast and withdrawn through reviews.services (which checks who may vote and
    keeps the audit trail): the admin only shows them, even to a superuser."""
    from reviews.models import Vote
    from tests.reviews.factories import VoteFactory

    vote = VoteFactory(choice=Vote.Choice.APPROVE)
    changelist = admin_client.get(reverse("admin:reviews_vote_changelist")).content.decode()
    assert reverse("admin:reviews_vote_add") not in changelist
    assert admin_client.get(reverse("admin:reviews_vote_add")).status_code == 403
    change = reverse("admin:reviews_vote_change", args=[vote.pk])
    assert "View vote" in admin_client.get(change).content.decode()
    assert admin_client.post(change, {"choice": "reject"}).status_code == 403
    delete = reverse("admin:reviews_vote_delete", args=[vote.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    vote.refresh_from_db()
    assert vote.choice == Vote.Choice.APPROVE


@pytest.mark.django_db
def test_list_pages_can_be_searched_and_filtered(admin_client):
    """Every model's list page has a search box or filters, and its search runs."""
    registered = [
        (model, admin.site._registry[model])
        for name in APPS
        for model in apps.get_app_config(name).get_models()
        if admin.site.is_registered(model)  # an unregistered one fails the test above
    ]
    without = [
        m.__name__
        for m, m_admin in registered
        if not (m_admin.search_fields or m_admin.list_filter)
    ]
    assert without == []
    for model, model_admin in registered:
        if model_admin.search_fields:
            meta = model._meta
            changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
            assert admin_client.get(changelist, {"q": "torch"}).status_code == 200, changelist
