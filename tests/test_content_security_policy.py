"""The Content-Security-Policy of the HTML pages (config/content_security_policy.py): every page
carries a strict policy with no inline script; responses that set their own policy (the badge
SVGs) keep it, and JSON carries none. The templates hold no inline script, no inline event
handler and no inline style, so the strict policy breaks nothing (tests/e2e checks it in a
real browser)."""

import re
from pathlib import Path

import pytest
from django.urls import reverse

from tests.factories import UserFactory
from tests.registry.factories import ProjectFactory

ROOT = Path(__file__).resolve().parents[1]
CSP = "Content-Security-Policy"


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


@pytest.fixture
def pages(db):
    ProjectFactory(slug="torchgeo", name="TorchGeo")
    return [
        "/",
        "/projects/torchgeo/",
        "/runs/",
        "/runs/fleet/",
        reverse("account_login"),
        reverse("account_signup"),
        "/admin/login/",
        "/projects/no-such-project/",  # a 404 page is a page too
    ]


def test_every_html_page_carries_the_strict_policy(client, pages):
    for url in pages:
        response = client.get(url)
        assert response["Content-Type"].startswith("text/html"), url
        policy = directives(response[CSP])
        assert policy["default-src"] == ["'self'"], url
        assert policy["script-src"] == ["'self'"], url
        assert policy["style-src"] == ["'self'"], url
        assert policy["object-src"] == ["'none'"], url
        assert policy["base-uri"] == ["'self'"], url
        assert policy["frame-ancestors"] == ["'none'"], url
        assert policy["form-action"] == ["'self'"], url
        assert policy["img-src"] == ["'self'", "data:", "https:"], url


def test_signed_in_pages_carry_it_too(client, db):
    from reviews.roles import REVIEWERS_GROUP

    client.force_login(UserFactory(username="rita", groups=[REVIEWERS_GROUP]))
    for url in ("/reviews/", "/reviews/apply/", "/reviews/dashboard/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "'unsafe-inline'" not in response[CSP] and "script-src 'self'" in response[CSP]


def test_the_api_docs_run_their_scripts_from_files(client, db):
    for url in ("/api/docs/", "/api/redoc/"):
        response = client.get(url)
        policy = directives(response[CSP])
        assert policy["script-src"] == ["'self'"], url
        body = response.content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", body), url
        assert "fonts.googleapis.com" not in body, url
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in script.content.decode()


def test_badges_keep_their_own_policy_and_json_carries_none(client, db):
    ProjectFactory(slug="torchgeo")
    svg = client.get("/badges/torchgeo/compat.svg")
    assert svg[CSP] == "default-src 'none'; style-src 'unsafe-inline'"
    assert CSP not in client.get("/badges/torchgeo/compat.json")
    api = client.get("/api/v1/projects/")
    assert api["Content-Type"] == "application/json" and CSP not in api


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"javascript:", re.IGNORECASE)


def test_templates_hold_no_inline_script_handler_or_style():
    offenders = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        text = path.read_text()
        for name, pattern in [
            ("inline <script>", INLINE_SCRIPT),
            ("inline event handler", INLINE_HANDLER),
            ("inline style", INLINE_STYLE),
            ("javascript: URL", JAVASCRIPT_URL),
        ]:
            offenders += [f"{path.relative_to(ROOT)}: {name}" for _ in pattern.finditer(text)]
    assert offenders == []
