"""Badge snippets on the project page: one fragment with Markdown, reST and HTML per badge."""

import pytest
from django.conf import settings
from django.urls import reverse

from tests.registry.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_fragment_is_wired_into_the_project_page():
    assert "badges:snippets" in settings.PROJECT_PAGE_FRAGMENTS
    assert reverse("badges:snippets", kwargs={"slug": "x"}) == "/badges/x/snippets/"


def test_snippets_for_each_badge(client):
    ProjectFactory(slug="torchgeo", name='Torch "Geo" <b>')
    response = client.get("/badges/torchgeo/snippets/")
    assert response.status_code == 200
    html = response.content.decode()
    svg = "http://testserver/badges/torchgeo/compat.svg"
    page = "http://testserver/projects/torchgeo/"
    assert f"[![Torch &quot;Geo&quot; &lt;b&gt;: pytorch]({svg})]({page})" in html
    assert f".. image:: {svg}\n   :target: {page}" in html
    # The HTML snippet is escaped once for HTML, then again to sit in the textarea.
    assert "&lt;a href=&quot;http://testserver/projects/torchgeo/&quot;&gt;" in html
    assert "alt=&quot;Torch &amp;quot;Geo&amp;quot; &amp;lt;b&amp;gt;: pytorch&quot;" in html
    assert "<b>" not in html
    for kind in ("ecosystem", "compat", "review"):
        for fmt in ("md", "rst", "html"):
            assert f'data-copy-target="snippet-{kind}-{fmt}"' in html
    assert "badge_snippets.js" in html
    assert "img.shields.io/endpoint?url=http%3A%2F%2Ftestserver%2Fbadges%2Ftorchgeo" in html


def test_unknown_project_fragment_is_404(client):
    assert client.get("/badges/nope/snippets/").status_code == 404
