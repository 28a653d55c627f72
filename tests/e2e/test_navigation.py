"""The site header in a real browser: at desktop and phone widths every link is on screen and
nothing scrolls sideways; the user menu opens without script and Sign out (a POST form) signs
out. Screenshots of the landscape with the header go to tests/e2e/artifacts/."""

import pytest

from tests.e2e.conftest import PASSWORD
from tests.registry.factories import ProjectFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


@pytest.fixture
def projects(transactional_db):
    for name in ("TorchGeo", "DeepSpeed", "vLLM", "Ray", "Captum", "Opacus"):
        ProjectFactory(slug=name.lower(), name=name, description=f"{name} does things.")


def header_fits(page, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for link in page.locator("header.site-header a, header.site-header summary").all():
        box = link.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, link.inner_text()


@pytest.mark.parametrize("device", WIDTHS)
def test_a_visitor_finds_every_section_at_any_width(browser, live_server, projects, shoot, device):
    width, height = WIDTHS[device]
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(f"{live_server.url}/")
    page.wait_for_selector("#project-list")
    header_fits(page, width)
    nav = page.locator("header.site-header nav")
    for label in ("Landscape", "Runs", "API docs", "Sign in"):
        assert nav.get_by_role("link", name=label).is_visible(), label
    assert nav.get_by_role("link", name="Landscape").get_attribute("aria-current") == "page"
    assert page.evaluate("document.querySelector('link[rel=icon]').href").endswith("favicon.svg")
    shoot(page, f"nav-landscape-{width}")

    nav.get_by_role("link", name="Runs").click()
    page.wait_for_url("**/runs/")
    assert nav.get_by_role("link", name="Runs").get_attribute("aria-current") == "page"


@pytest.mark.parametrize("device", WIDTHS)
def test_a_member_signs_in_and_out_from_the_header(
    browser, live_server, projects, reviewer, shoot, device
):
    width, height = WIDTHS[device]
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(f"{live_server.url}/runs/")
    page.locator("header.site-header").get_by_role("link", name="Sign in").click()
    page.fill("input[name=login]", reviewer.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url("**/runs/")  # back where the visitor was

    page.goto(f"{live_server.url}/")
    page.wait_for_selector("#project-list")
    nav = page.locator("header.site-header nav")
    for label in ("Apply", "My applications", "TAC dashboard"):
        assert nav.get_by_role("link", name=label).is_visible(), label
    sign_out = nav.get_by_role("button", name="Sign out")
    assert not sign_out.is_visible()  # inside the closed user menu
    nav.locator("summary", has_text="reviewer").click()
    assert sign_out.is_visible()
    header_fits(page, width)
    shoot(page, f"nav-landscape-signed-in-{width}")

    sign_out.click()
    page.wait_for_selector("header.site-header a:has-text('Sign in')")
    assert nav.get_by_role("link", name="Apply").count() == 0
