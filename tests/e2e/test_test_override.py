"""Staff change how a project is tested from its page, on a phone: the recipe the last run used
is shown with where each part came from, and the override form saves in place (htmx)."""

import pytest
from playwright.sync_api import expect

from ci_runners import services
from ci_runners.agent.contracts import Result
from ci_runners.models import ProjectTestConfig
from ci_runners.states import CellState
from tests.ci_runners.factories import TorchTargetFactory
from tests.ci_runners.test_outcomes import RECIPE
from tests.e2e.conftest import PASSWORD, sign_in
from tests.factories import UserFactory
from tests.registry.factories import ProjectFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_staff_edit_the_override_on_a_phone(browser, live_server, shoot_widths):
    staff = UserFactory(email="staff@example.org", password=PASSWORD, is_staff=True)
    project = ProjectFactory(slug="torchrecipe", repository="reciporg/torchrecipe")
    target = TorchTargetFactory(version="2.14.1", variant="cpu")
    run = services.compat_run_request(project=project, trigger="manual", targets=[target])
    cell = run.cells.get()
    result = Result(state=CellState.PASSED, tests_collected=9, recipe=RECIPE).to_dict()
    services.cell_record_result(cell_id=cell.pk, attempt=1, runner="r", result=result)

    page = sign_in(browser, live_server, staff.email, width=390)
    page.goto(f"{live_server.url}/projects/{project.slug}/")
    section = page.locator("#testing")
    expect(section).to_contain_text("How we test this project")
    expect(section).to_contain_text("install — pyproject.toml:31")
    section.locator("summary", has_text="Edit the override").click()
    section.locator("input[name=deselect]").fill("slow, network")
    section.locator("textarea[name=env]").fill("OMP_NUM_THREADS=2")
    url_before = page.url
    section.locator("button", has_text="Save override").click()

    expect(page.locator("#testing .notice")).to_contain_text("Override saved")
    expect(page.locator("#testing")).to_contain_text("OMP_NUM_THREADS=2")
    assert page.url == url_before  # saved in place
    config = ProjectTestConfig.objects.get(project=project)
    assert config.deselect == ["slow", "network"] and config.env == {"OMP_NUM_THREADS": "2"}
    # Nothing wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.problems == []
    shoot_widths(page, "project-test-override")
