"""After "Run now" the project's matrix says what happened and follows the run live: the
fragment polls itself while cells are in flight, and stops once they are final."""

from django.urls import reverse

from ci_runners import services
from ci_runners.agent.contracts import Result
from ci_runners.states import CellState

POLLS = 'hx-trigger="every'


def test_run_now_answers_with_a_message_and_a_polling_matrix(client, staff, project, targets):
    client.force_login(staff)

    response = client.post(
        reverse("ci_runners:project_run_now", args=[project.slug]), HTTP_HX_REQUEST="true"
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "queued on 2 PyTorch versions" in page and "updates by itself" in page
    assert POLLS in page


def test_the_matrix_stops_polling_once_every_cell_is_final(
    client, staff, project, targets, django_capture_on_commit_callbacks
):
    client.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.compat_run_request(project=project, trigger="manual")
    fragment = reverse("ci_runners:project_matrix", args=[project.slug])
    assert POLLS in client.get(fragment).content.decode()

    for cell in run.cells.all():
        result = Result(state=CellState.PASSED, exit_code=0).to_dict()
        with django_capture_on_commit_callbacks(execute=True):
            services.cell_record_result(cell_id=cell.pk, attempt=1, runner="r", result=result)

    page = client.get(fragment).content.decode()
    assert POLLS not in page and "Passed" in page
