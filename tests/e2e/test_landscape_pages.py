"""The public pages in a real browser, on the real landscape with its logos: the landscape
(grouped, filtered, every logo loaded), a project page (charts, badge tabs), and the global
matrix. Each runs under the strict CSP without a violation; screenshots at 1280 px and 390 px
go to tests/e2e/artifacts/."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from ci_runners.models import CompatStatus
from ci_runners.states import CellState
from registry import services
from registry.models import Project
from tests.ci_runners.factories import CompatCellFactory, CompatRunFactory, TorchTargetFactory
from tests.registry.conftest import REAL_LANDSCAPE
from tests.registry.factories import RepoSnapshotFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const blocked = event.blockedURI || "inline";
  window.__cspViolations.push(`${event.effectiveDirective} blocked ${blocked}`);
});
"""
# Results on the two newest PyTorch versions: (project slug, 2.13.0, 2.14.1)
RESULTS = [
    ("vllm", CellState.PASSED, CellState.PASSED),
    ("pytorch", CellState.PASSED, CellState.PASSED),
    ("deepspeed", CellState.PASSED, CellState.FAILED),
    ("captum", CellState.PASSED, CellState.PASSED),
    ("opacus", CellState.FAILED, CellState.FAILED),
    ("torchgeo", CellState.PASSED, CellState.TIMED_OUT),
    ("ray", CellState.PASSED, CellState.RUNNING),
]


@pytest.fixture
def landscape(transactional_db):
    """The real landscape and its logos; a year of GitHub history for a few projects, and
    compatibility results on two PyTorch versions for some (as the runners would leave them)."""
    call_command("import_landscape", str(REAL_LANDSCAPE), stdout=io.StringIO())
    now = timezone.now()
    for index, slug in enumerate(["vllm", "pytorch", "deepspeed", "captum", "torchgeo"]):
        project = Project.objects.get(slug=slug)
        for weeks_ago in range(52, -1, -2):
            RepoSnapshotFactory(
                project=project,
                taken_at=now - timedelta(weeks=weeks_ago),
                stars=(index + 1) * 9000 + (52 - weeks_ago) * 180 + (weeks_ago % 6) * 40,
                commits_90d=300 + (weeks_ago * 37) % 140,
                contributors_90d=40 + (weeks_ago * 13) % 25,
                latest_release=f"v0.{(52 - weeks_ago) // 13 + 4}.0",
                latest_release_at=now - timedelta(weeks=weeks_ago - weeks_ago % 13),
                license_spdx="Apache-2.0",
                has_license=True,
                has_readme=True,
                has_contributing=True,
            )
    targets = [TorchTargetFactory(version="2.13.0"), TorchTargetFactory(version="2.14.1")]
    for slug, *states in RESULTS:
        project = Project.objects.get(slug=slug)
        run = CompatRunFactory(project=project)
        for target, state in zip(targets, states, strict=True):
            cell = CompatCellFactory(run=run, target=target, state=state)
            final = cell if state not in (CellState.RUNNING, CellState.QUEUED) else None
            CompatStatus.objects.create(
                project=project, target=target, latest_cell=cell, last_final_cell=final
            )
        services.project_set_compat_summary(
            project=project,
            works_with=[
                t.version for t, s in zip(targets, states, strict=True) if s == CellState.PASSED
            ],
            breaks_with=[
                t.version
                for t, s in zip(targets, states, strict=True)
                if s in (CellState.FAILED, CellState.TIMED_OUT)
            ],
        )


class Visitor:
    """A page at one width that collects CSP violations and script errors."""

    def __init__(self, browser, live_server, width: int, height: int):
        self.base = live_server.url
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.context.add_init_script(WATCH_VIOLATIONS)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))

    def open(self, path: str, ready: str) -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_selector(ready)
        self.page.wait_for_load_state("networkidle")
        self.check()

    def check(self) -> None:
        self.problems += self.page.evaluate("window.__cspViolations")
        self.page.evaluate("window.__cspViolations = []")

    def fits(self, width: int) -> None:
        assert self.page.evaluate("document.documentElement.scrollWidth") <= width

    def broken_logos(self) -> list[str]:
        """The logos that did not load, once every one has finished (loaded or failed)."""
        for _ in range(100):
            if self.page.evaluate("[...document.images].every((img) => img.complete)"):
                break
            self.page.wait_for_timeout(100)
        return self.page.evaluate(
            "[...document.querySelectorAll('img.logo')]"
            ".filter((img) => !img.complete || img.naturalWidth === 0).map((img) => img.src)"
        )


@pytest.mark.parametrize("device", WIDTHS)
def test_the_landscape_shows_every_logo_grouped_and_filters(
    browser, live_server, landscape, shoot, device
):
    width, height = WIDTHS[device]
    visitor = Visitor(browser, live_server, width, height)
    page = visitor.page
    visitor.open("/", "#project-list article")

    assert page.locator("#project-list article").count() == 75
    assert page.locator("#project-list img.logo").count() == 75
    assert visitor.broken_logos() == []
    headings = page.locator(".landscape-group > h2").all_inner_texts()
    assert [" ".join(h.split()) for h in headings] == [
        "Modeling 23",
        "Training 21",
        "Optimizations 25",
        "PyTorch Projects 6",
    ]
    vllm = page.locator("article", has=page.locator("h4", has_text="vLLM"))
    assert "hosted" in vllm.inner_text() and "✓ 2.14.1" in vllm.inner_text()
    assert "★" in vllm.inner_text()
    visitor.fits(width)
    shoot(page, f"landscape-{width}")

    page.check("input[name=breaks]")  # htmx swaps the list in place
    expect(page.locator("#project-list article")).to_have_count(3)
    breaking = sorted(page.locator("#project-list article h4").all_inner_texts())
    assert breaking == ["DeepSpeed", "Opacus", "torchgeo"]
    assert "breaks=latest" in page.url
    visitor.check()

    page.uncheck("input[name=breaks]")
    page.select_option("select[name=status]", "all")
    expect(page.locator("#project-list article")).to_have_count(143)
    page.wait_for_load_state("networkidle")
    assert visitor.broken_logos() == []
    visitor.check()
    assert visitor.problems == []


@pytest.mark.parametrize("device", WIDTHS)
def test_a_visitor_goes_from_the_landscape_to_a_project_and_copies_a_badge(
    browser, live_server, landscape, shoot, device
):
    width, height = WIDTHS[device]
    visitor = Visitor(browser, live_server, width, height)
    visitor.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = visitor.page
    visitor.open("/?q=vllm", "#project-list article")
    page.locator("#project-list h4").get_by_role("link", name="vLLM", exact=True).click()
    page.wait_for_url("**/projects/vllm/")
    expect(page.get_by_text("Loading…")).to_have_count(0)
    page.wait_for_load_state("networkidle")
    visitor.check()

    assert visitor.broken_logos() == []
    assert page.locator(".health-charts svg.chart").count() == 4
    assert page.locator(".health-charts polyline").count() == 3
    # The badge widget: one snippet and one Copy button on show at a time.
    assert page.locator(".snippet-panel:visible").count() == 1
    assert page.locator("button.copy-button:visible").count() == 1
    page.click("label[for=badge-kind-compat]")
    page.click("label[for=badge-format-html]")
    shown = page.locator(".snippet-panel:visible textarea")
    assert "/badges/vllm/compat.svg" in shown.input_value()
    assert shown.input_value().startswith("<a href=")
    page.click("button.copy-button:visible")
    page.wait_for_selector("button.copy-button:visible:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == shown.input_value()
    visitor.fits(width)
    shoot(page, f"project-vllm-{width}")

    badge = page.request.get(f"{live_server.url}/badges/vllm/compat.svg")
    assert badge.status == 200 and badge.headers["content-type"].startswith("image/svg+xml")
    visitor.check()
    assert visitor.problems == []


@pytest.mark.parametrize("device", WIDTHS)
def test_the_global_matrix_is_a_heat_map_with_results_first(
    browser, live_server, landscape, shoot, device
):
    width, height = WIDTHS[device]
    visitor = Visitor(browser, live_server, width, height)
    page = visitor.page
    visitor.open("/runs/", "table.heatmap")

    first_rows = page.locator("table.heatmap tbody th").all_inner_texts()[:8]
    # Projects with results first, in case-insensitive order (torchgeo is spelt in lower case).
    assert first_rows[:7] == ["Captum", "DeepSpeed", "Opacus", "PyTorch", "Ray", "torchgeo", "vLLM"]
    assert page.locator("td.heat.passed").count() == 9
    assert page.locator("td.heat.running").count() == 1
    assert "75 projects, active" in page.inner_text("#matrix-table")
    assert page.locator("tr.totals .total.failed").count() == 2
    shoot(page, f"runs-{width}")

    page.select_option("select[name=kind]", "hosted")
    expect(page.locator("#matrix-table tbody tr")).to_have_count(6)
    visitor.check()
    assert visitor.problems == []
