"""Browser tests: real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright."""

from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture
def browser(monkeypatch):
    """A browser for one test. Playwright's sync API keeps an event loop running in this thread
    while it is open: Django's ORM refuses to run under one unless told it is safe (it is here:
    the test drives the browser, the live server runs in its own thread), and the loop must be
    gone before the next test, so the browser never outlives its test."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def shoot():
    """`shoot(page, "name")` saves a full-page screenshot under tests/e2e/artifacts/."""

    def save(page, name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    return save
