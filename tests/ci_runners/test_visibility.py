"""One rule decides who sees a run or a cell, on pages and in the API alike.

Runs of registry projects are public; a run of an applicant's repository (no project yet)
is the TAC's business: staff only, everywhere.
"""

import pytest

from ci_runners import services
from ci_runners.models import CompatRun


@pytest.fixture
def applicant_cell(targets, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.compat_run_request(
            project=None,
            source_url="https://github.com/applicant/secretthing",
            trigger=CompatRun.Trigger.REVIEW,
        )
    return run.cells.order_by("pk").first()


@pytest.fixture
def project_cell(project, targets, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.compat_run_request(project=project, trigger=CompatRun.Trigger.MANUAL)
    return run.cells.order_by("pk").first()


def test_anonymous_sees_neither_page_nor_api_of_an_applicant_cell(client, applicant_cell):
    page = client.get(f"/runs/cells/{applicant_cell.pk}/")
    api = client.get(f"/api/v1/cells/{applicant_cell.pk}/")

    assert (page.status_code, api.status_code) == (404, 404)
    assert b"secretthing" not in page.content


def test_staff_see_an_applicant_cell_on_both(client, staff, applicant_cell):
    client.force_login(staff)

    page = client.get(f"/runs/cells/{applicant_cell.pk}/")
    api = client.get(f"/api/v1/cells/{applicant_cell.pk}/")

    assert (page.status_code, api.status_code) == (200, 200)


def test_a_project_cell_is_public_on_both(client, project_cell):
    page = client.get(f"/runs/cells/{project_cell.pk}/")
    api = client.get(f"/api/v1/cells/{project_cell.pk}/")

    assert (page.status_code, api.status_code) == (200, 200)
