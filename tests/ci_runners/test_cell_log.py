"""A cell's full log downloads from its page, under the cell's visibility rule, with ranges
for the tail."""

import re

import pytest

from ci_runners import services
from ci_runners.agent.contracts import Result
from ci_runners.models import CompatRun
from ci_runners.states import CellState

LOG = "".join(f"line {n}: collected and ran\n" for n in range(2000))


def _finished_cell(*, project, source_url, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.compat_run_request(
            project=project, source_url=source_url, trigger=CompatRun.Trigger.REVIEW
        )
    cell = run.cells.order_by("pk").first()
    result = Result(state=CellState.PASSED, exit_code=0, log_tail=LOG[-100:]).to_dict()
    with django_capture_on_commit_callbacks(execute=True):
        services.cell_record_result(cell_id=cell.pk, attempt=1, runner="r", result=result, log=LOG)
    return cell


@pytest.fixture
def project_cell(project, targets, django_capture_on_commit_callbacks):
    return _finished_cell(
        project=project,
        source_url="",
        django_capture_on_commit_callbacks=django_capture_on_commit_callbacks,
    )


def _log_link(client, cell) -> str:
    page = client.get(f"/runs/cells/{cell.pk}/").content.decode()
    return re.search(r'<a href="([^"]+)">Full log</a>', page).group(1)


def test_the_full_log_link_of_the_cell_page_downloads_the_log(client, project_cell):
    response = client.get(_log_link(client, project_cell))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content == LOG.encode()


def test_the_tail_comes_as_a_range(client, project_cell):
    response = client.get(_log_link(client, project_cell), HTTP_RANGE="bytes=-100")

    assert response.status_code == 206
    assert response.content == LOG.encode()[-100:]
    total = len(LOG.encode())
    assert response["Content-Range"] == f"bytes {total - 100}-{total - 1}/{total}"
    unsatisfiable = client.get(_log_link(client, project_cell), HTTP_RANGE=f"bytes={total + 5}-")
    assert unsatisfiable.status_code == 416


def test_an_applicants_cell_log_is_staff_only(
    client, staff, targets, django_capture_on_commit_callbacks
):
    cell = _finished_cell(
        project=None,
        source_url="https://github.com/applicant/secretthing",
        django_capture_on_commit_callbacks=django_capture_on_commit_callbacks,
    )
    client.force_login(staff)
    link = _log_link(client, cell)
    assert client.get(link).status_code == 200
    client.logout()

    assert client.get(link).status_code == 404


def test_the_log_is_stored_compressed(project_cell):
    project_cell.refresh_from_db()

    assert project_cell.log_file.name.endswith(".log.gz")
    assert project_cell.log_file.size < len(LOG.encode()) / 4


def test_a_log_no_longer_than_its_tail_is_kept_in_the_tail_alone_and_still_downloads(
    client, project, targets, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.compat_run_request(project=project, trigger=CompatRun.Trigger.MANUAL)
    cell = run.cells.order_by("pk").first()
    short = "3 passed in 0.1s\n"
    result = Result(state=CellState.PASSED, exit_code=0, log_tail="").to_dict()
    with django_capture_on_commit_callbacks(execute=True):
        services.cell_record_result(
            cell_id=cell.pk, attempt=1, runner="r", result=result, log=short
        )

    cell.refresh_from_db()
    assert not cell.log_file and cell.log_tail == short
    assert client.get(_log_link(client, cell)).content == short.encode()
