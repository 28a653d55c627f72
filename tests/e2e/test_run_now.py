"""Staff press Run now on a project page: a message says what was queued, and the matrix follows
the run to its results without a reload."""

import pytest
from playwright.sync_api import expect

from ci_runners import services
from ci_runners.agent.contracts import Result
from ci_runners.models import CompatCell
from ci_runners.states import CellState
from tests.ci_runners.factories import TorchTargetFactory
from tests.e2e.conftest import PASSWORD, sign_in
from tests.factories import UserFactory
from tests.registry.factories import ProjectFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_run_now_then_the_matrix_updates_live(browser, live_server, shoot_widths):
    staff = UserFactory(email="staff@example.org", password=PASSWORD, is_staff=True)
    project = ProjectFactory(slug="torchlive", repository="liveorg/torchlive")
    for version in ("2.13.0", "2.14.1"):
        TorchTargetFactory(version=version, variant="cpu")
    page = sign_in(browser, live_server, staff.email)
    page.goto(f"{live_server.url}/projects/{project.slug}/")

    page.click("#compat-matrix button:has-text('Run now')")

    matrix = page.locator("#compat-matrix")
    expect(matrix.locator(".notice")).to_contain_text("queued on 2 PyTorch versions")
    expect(matrix.locator(".state.queued")).to_have_count(2)
    url_before = page.url
    for cell in CompatCell.objects.filter(project=project):
        state = CellState.PASSED if cell.target.version == "2.13.0" else CellState.FAILED
        result = Result(state=state, exit_code=0 if state == CellState.PASSED else 1).to_dict()
        services.cell_record_result(cell_id=cell.pk, attempt=1, runner="r", result=result)

    expect(matrix.locator(".state.passed")).to_have_count(1, timeout=15_000)
    expect(matrix.locator(".state.failed")).to_have_count(1)
    assert page.url == url_before  # no reload
    assert page.problems == []
    shoot_widths(page, "project-run-now")
