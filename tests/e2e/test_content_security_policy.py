"""The strict Content-Security-Policy in a real browser: every main page loads with no CSP
violation (console message or `securitypolicyviolation` event) and no script error, and what
runs on scripts still runs: htmx search and fragments, Swagger UI, Redoc, the confirm dialog."""

import pytest

from reviews.models import Submission
from reviews.states import SubmissionState
from tests.e2e.conftest import PASSWORD
from tests.registry.factories import ProjectFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Runs before the page's own scripts (Playwright injects it outside the page's policy).
WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} ` +
    `(${event.sourceFile}:${event.lineNumber})`
  );
});
"""


class Watched:
    """A browser context whose pages report CSP violations and script errors."""

    def __init__(self, browser, live_server):
        self.live_server = live_server
        self.context = browser.new_context(viewport={"width": 1200, "height": 900})
        self.context.add_init_script(WATCH_VIOLATIONS)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.problems.append(f"console: {message.text}")

    def visit(self, path: str, ready: str | None = None) -> None:
        """Open `path`, wait until `ready` (a selector) shows and the network is quiet."""
        response = self.page.goto(self.live_server.url + path)
        policy = response.headers.get("content-security-policy", "") if response else ""
        if "script-src 'self'" not in policy:
            self.problems.append(f"{path}: no strict policy ({policy!r})")
        if ready:
            self.page.wait_for_selector(ready)
        self.page.wait_for_load_state("networkidle")
        self.collect(path)

    def collect(self, where: str) -> None:
        violations = self.page.evaluate("window.__cspViolations || []")
        self.problems += [f"{where}: {violation}" for violation in violations]
        self.page.evaluate("window.__cspViolations = []")

    def sign_in(self, email: str) -> None:
        self.visit("/accounts/login/", "input[name=login]")
        self.page.fill("input[name=login]", email)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("form button[type=submit]")
        self.page.wait_for_url("**/reviews/")
        self.collect("/reviews/")


def test_public_pages_run_under_the_policy(browser, live_server, in_review):
    ProjectFactory(slug="torchgeo", name="TorchGeo", description="Geospatial data.")
    watched = Watched(browser, live_server)
    page = watched.page

    watched.visit("/", "#project-list")
    page.fill("input[name=q]", "TorchGeo")  # htmx: search as you type swaps the list
    page.wait_for_selector("#project-list a:has-text('TorchGeo')")
    assert page.locator("#project-list article").count() == 1
    watched.collect("/ (search)")

    watched.visit("/projects/torchgeo/", "h1:has-text('TorchGeo')")
    # htmx pulled in every fragment (matrix, review history, badge snippets): none still loading
    page.wait_for_function("!document.body.innerText.includes('Loading…')")
    assert page.locator("img[src*='/badges/torchgeo/']").count() >= 1
    watched.collect("/projects/torchgeo/ (fragments)")

    watched.visit("/runs/", "h1")
    watched.visit("/runs/fleet/", "h1")
    watched.visit("/admin/login/", "input[name=username]")
    watched.visit("/api/docs/", ".swagger-ui .info .title")
    assert "Ecosystem Registry API" in page.inner_text(".swagger-ui .info .title")
    watched.visit("/api/redoc/", "h1:has-text('Ecosystem Registry API')")
    page.fill("input[placeholder='Search...']", "projects")  # Redoc's search runs in a worker
    page.wait_for_selector("[role=search] li, [data-role='search:results'] li")
    watched.collect("/api/redoc/ (search)")

    assert watched.problems == []


def test_reviewer_pages_run_under_the_policy(browser, live_server, in_review, reviewer):
    watched = Watched(browser, live_server)
    page = watched.page
    watched.sign_in(reviewer.email)

    watched.visit("/reviews/dashboard/", "#queue")
    page.fill("input[type=search]", "TorchBrowse")  # htmx: the queue filters in place
    page.wait_for_selector("#queue a:has-text('TorchBrowse')")
    watched.collect("/reviews/dashboard/ (filter)")

    watched.visit(f"/reviews/dashboard/{in_review.pk}/", "h1:has-text('TorchBrowse')")
    watched.visit("/reviews/apply/", "form [name=project_name]")

    assert watched.problems == []


def test_the_applicant_confirms_a_withdrawal_in_a_dialog(
    browser, live_server, in_review, applicant
):
    """The confirm question moved from an inline onsubmit handler to static/js/confirm.js."""
    watched = Watched(browser, live_server)
    page = watched.page
    watched.sign_in(applicant.email)
    watched.visit(f"/reviews/applications/{in_review.pk}/", "#state")

    questions = []

    def answer(dialog, accept):
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, accept=False))
    page.click("button:has-text('Withdraw')")
    page.wait_for_timeout(300)
    in_review.refresh_from_db()
    assert in_review.state == SubmissionState.IN_REVIEW

    page.once("dialog", lambda dialog: answer(dialog, accept=True))
    page.click("button:has-text('Withdraw')")
    page.wait_for_selector("#state:has-text('Withdrawn')")
    assert questions == ["Withdraw this application?"] * 2
    assert Submission.objects.get(pk=in_review.pk).state == SubmissionState.WITHDRAWN
    watched.collect("withdraw")
    assert watched.problems == []
