"""The site header on every page (config/navigation.py): the sections a visitor may open, by
role, the current one marked with aria-current, Sign in or a user menu whose Sign out is a POST
form, and the favicon."""

import re

import pytest
from django.urls import reverse

from reviews.roles import REVIEWERS_GROUP, VOTING_GROUP
from tests.factories import UserFactory
from tests.registry.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def header(response) -> str:
    page = response.content.decode()
    return page[page.index('<header class="site-header"') : page.index("</header>")]


def nav_links(response) -> dict[str, str]:
    """Label -> href of the header's links."""
    found = re.findall(r'<a href="([^"]*)"[^>]*>\s*([^<]*?)\s*</a>', header(response))
    return {label: href for href, label in found}


def current_links(response) -> list[str]:
    return re.findall(r'<a href="([^"]*)" aria-current="[a-z]+"', header(response))


def test_a_visitor_sees_the_public_sections_and_sign_in(client):
    links = nav_links(client.get("/runs/"))
    assert links["Landscape"] == "/"
    assert links["Runs"] == "/runs/"
    assert links["API docs"] == "/api/docs/"
    assert links["Sign in"] == "/accounts/login/?next=/runs/"
    assert not {"Apply", "My applications", "TAC dashboard", "Admin"} & set(links)
    assert "Sign out" not in header(client.get("/runs/"))


def test_an_applicant_sees_apply_and_their_applications_and_signs_out_with_a_post(client):
    client.force_login(UserFactory(username="ada", email="ada@example.org"))
    response = client.get("/")
    links = nav_links(response)
    assert links["Apply"] == reverse("reviews:apply")
    assert links["My applications"] == reverse("reviews:mine")
    assert "TAC dashboard" not in links and "Sign in" not in links
    sign_out = re.search(
        r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', header(response), re.S
    )
    assert sign_out and sign_out.group(1) == reverse("account_logout")
    assert 'name="csrfmiddlewaretoken"' in sign_out.group(2) and "Sign out" in sign_out.group(2)
    assert "ada" in header(response)

    client.post(reverse("account_logout"))
    assert "Sign in" in nav_links(client.get("/"))


@pytest.mark.parametrize("group", [REVIEWERS_GROUP, VOTING_GROUP])
def test_tac_members_see_their_dashboard(client, group):
    client.force_login(UserFactory(username="tac", groups=[group]))
    assert nav_links(client.get("/"))["TAC dashboard"] == reverse("reviews:dashboard")


def test_staff_see_the_admin(client):
    client.force_login(UserFactory(username="staff", is_staff=True))
    assert nav_links(client.get("/"))["Admin"] == reverse("admin:index")


def test_the_current_section_is_marked(client):
    ProjectFactory(slug="torchgeo", name="TorchGeo")
    client.force_login(UserFactory(username="rita", groups=[REVIEWERS_GROUP]))
    assert current_links(client.get("/runs/")) == ["/runs/"]
    assert current_links(client.get("/")) == ["/"]
    assert current_links(client.get("/projects/torchgeo/")) == ["/"]  # within the landscape
    assert current_links(client.get("/reviews/apply/")) == ["/reviews/apply/"]
    assert current_links(client.get("/reviews/")) == ["/reviews/"]
    assert current_links(client.get("/reviews/dashboard/")) == ["/reviews/dashboard/"]
    assert '<a href="/runs/" aria-current="page"' in header(client.get("/runs/"))
    assert '<a href="/" aria-current="true"' in header(client.get("/projects/torchgeo/"))


def test_every_page_has_the_header_and_the_favicon(client):
    ProjectFactory(slug="torchgeo", name="TorchGeo")
    pages = ["/", "/projects/torchgeo/", "/runs/", "/runs/fleet/", "/accounts/login/",
             "/accounts/signup/", "/projects/no-such-project/"]  # fmt: skip
    for url in pages:
        response = client.get(url)
        assert set(nav_links(response)) >= {"Landscape", "Runs", "API docs", "Sign in"}, url
        assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in (
            response.content.decode()
        ), url
    client.force_login(UserFactory(username="ada"))
    for url in ("/reviews/", "/reviews/apply/"):
        assert set(nav_links(client.get(url))) >= {"Landscape", "Runs", "Apply"}, url


def test_the_favicon_is_served(client):
    response = client.get("/static/favicon.svg")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("image/svg+xml")
    assert b"<script" not in b"".join(response.streaming_content)


def test_no_link_appears_twice_in_the_header(client):
    """The review pages once added their own links to the header (reviews/_nav.html)."""
    client.force_login(UserFactory(username="rita", groups=[REVIEWERS_GROUP]))
    for url in ("/reviews/", "/reviews/dashboard/", "/accounts/email/"):
        response = client.get(url)
        hrefs = re.findall(r'<a href="([^"]*)"', header(response))
        assert len(hrefs) == len(set(hrefs)), (url, hrefs)
        assert header(response).count("Sign out") == 1, url
