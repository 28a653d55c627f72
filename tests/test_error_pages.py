"""The 403, 404 and 500 pages with DEBUG off: the site's templates (not Django's bare pages),
each saying what to do next; 500.html stands alone, so it renders with no database and no
context processors (Django renders it without the request)."""

import pytest
from django.template import loader
from django.test import Client

from reviews.roles import REVIEWERS_GROUP
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.failing_urls")]


@pytest.fixture(autouse=True)
def production_errors(settings):
    settings.DEBUG = False


def template_names(response) -> list[str]:
    return [template.name for template in response.templates]


def test_403_page_offers_sign_in_to_a_visitor(client):
    response = client.get("/failing/forbidden/")
    assert response.status_code == 403
    assert "403.html" in template_names(response)
    page = response.content.decode()
    assert "Only the TAC may open this." in page  # the view's reason
    assert 'href="/accounts/login/?next=/failing/forbidden/"' in page
    assert "site.css" in page and "script-src 'self'" in response["Content-Security-Policy"]


def test_403_page_tells_a_signed_in_user_who_they_are(client):
    client.force_login(UserFactory(username="ada", email="ada@example.org"))
    response = client.get("/reviews/dashboard/")  # a real view: the dashboard is for the TAC
    assert response.status_code == 403
    assert "403.html" in template_names(response)
    page = response.content.decode()
    assert "signed in as ada" in page
    assert "The dashboard is for the TAC." in page


def test_404_page_offers_the_landscape_search(client):
    for url in ("/failing/not-found/", "/projects/no-such-project/", "/no/such/page/"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "404.html" in template_names(response), url
        page = response.content.decode()
        assert "Page not found" in page
        assert '<form method="get" action="/"' in page and 'name="q"' in page


def test_500_page_is_the_sites_own(client):
    client.raise_request_exception = False
    response = client.get("/failing/broken/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on our side" in page
    assert '<link rel="stylesheet" href="/static/css/site.css">' in page
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_500_page_needs_no_database_and_no_request(django_db_blocker):
    source = loader.get_template("500.html").template.source
    assert "{% extends" not in source and "{% url" not in source
    with django_db_blocker.block():
        page = loader.get_template("500.html").render()  # as django.views.defaults does
    assert "Something went wrong on our side" in page and 'href="/"' in page


def test_csrf_failure_page_says_to_reload():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"login": "a@example.org", "password": "x"})
    assert response.status_code == 403
    page = response.content.decode()
    assert "403_csrf.html" in template_names(response)
    assert "reload" in page.lower() and "site.css" in page


def test_reviewer_sees_no_error_page_where_they_belong(client):
    client.force_login(UserFactory(username="rita", groups=[REVIEWERS_GROUP]))
    assert client.get("/reviews/dashboard/").status_code == 200
