"""Pages and permissions of the compatibility runs."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from ci_runners import services
from ci_runners.agent.contracts import Result
from ci_runners.models import CompatRun
from ci_runners.states import CellState
from registry.models import Project
from tests.ci_runners.factories import RunnerHostFactory
from tests.registry.factories import CategoryFactory, ProjectFactory


@pytest.fixture
def run(project, targets, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return services.compat_run_request(project=project, trigger="manual")


@pytest.mark.parametrize(
    ("who", "allowed"),
    [("anonymous", False), ("other_user", False), ("maintainer", True), ("staff", True)],
)
def test_run_now_is_for_staff_and_maintainers(
    client, request, project, targets, who, allowed, django_capture_on_commit_callbacks
):
    if who != "anonymous":
        client.force_login(request.getfixturevalue(who))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("ci_runners:project_run_now", args=[project.slug]))
    if allowed:
        assert response.status_code == 302
        run = CompatRun.objects.get()
        assert run.trigger == "manual" and run.cells.count() == 2
    else:
        assert response.status_code == 403
        assert not CompatRun.objects.exists()


@pytest.mark.parametrize(
    ("who", "allowed"),
    [("anonymous", False), ("other_user", False), ("maintainer", True), ("staff", True)],
)
def test_cancel_is_for_staff_and_maintainers(
    client, request, run, who, allowed, django_capture_on_commit_callbacks
):
    if who != "anonymous":
        client.force_login(request.getfixturevalue(who))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("ci_runners:run_cancel", args=[run.pk]))
    states = set(run.cells.values_list("state", flat=True))
    if allowed:
        assert response.status_code == 302 and states == {CellState.CANCELLED}
    else:
        assert response.status_code == 403 and states == {CellState.QUEUED}


def test_run_now_needs_post_and_an_existing_project(client, staff, project):
    client.force_login(staff)
    assert client.get(reverse("ci_runners:project_run_now", args=[project.slug])).status_code == 405
    assert client.post(reverse("ci_runners:project_run_now", args=["nope"])).status_code == 404


def test_run_now_without_targets_says_why(client, staff, project):
    client.force_login(staff)
    response = client.post(
        reverse("ci_runners:project_run_now", args=[project.slug]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400
    assert b"No active PyTorch target" in response.content


def test_project_fragment_shows_the_matrix_and_buttons_for_allowed_users(
    client, run, maintainer, project
):
    cell = run.cells.order_by("pk").first()
    services.cell_record_result(
        cell_id=cell.pk,
        attempt=1,
        runner="r1",
        result=Result(state=CellState.PASSED, counts={"passed": 5, "failed": 0}).to_dict(),
    )
    url = reverse("ci_runners:project_matrix", args=[project.slug])
    page = client.get(url).content.decode()
    assert 'class="state passed"' in page and "5 passed" in page
    assert 'class="state queued"' in page
    assert "Run now" not in page
    client.force_login(maintainer)
    page = client.get(url).content.decode()
    assert "Run now" in page and f"Cancel run {run.pk}" in page
    # The registry's project page pulls the fragment in.
    detail = client.get(project.get_absolute_url()).content.decode()
    assert url in detail


def test_cell_page_polls_only_while_the_cell_is_not_final(client, run):
    cell = run.cells.order_by("pk").first()
    services.cell_record_progress(
        cell_id=cell.pk, attempt=1, runner="r1", phase="running", log_tail="tests/test_a.py ..F"
    )
    url = reverse("ci_runners:cell", args=[cell.pk])
    page = client.get(url).content.decode()
    assert 'hx-trigger="every 2s"' in page and "tests/test_a.py ..F" in page
    failures = [{"test": "tests/test_a.py::test_c", "message": "assert 1 == 2"}]
    warnings = [
        {
            "category": "FutureWarning",
            "message": "torch.load default changed",
            "torch_api": True,
            "count": 2,
        }
    ]
    services.cell_record_result(
        cell_id=cell.pk,
        attempt=1,
        runner="r1",
        result=Result(
            state=CellState.FAILED,
            counts={"passed": 2, "failed": 1},
            failures=failures,
            warnings=warnings,
            environment={"python": "3.11.2", "torch": "2.13.0+cpu", "cuda": None, "gpu": None},
        ).to_dict(),
        log="whole log",
    )
    page = client.get(url).content.decode()
    assert "every 2s" not in page
    assert "tests/test_a.py::test_c" in page and "torch.load default changed" in page
    assert "2.13.0+cpu" in page and "Full log" in page
    fragment = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert fragment.startswith('<div id="cell-live">')
    assert client.get(reverse("ci_runners:cell", args=[999999])).status_code == 404


def test_fleet_page_shows_runners_queues_and_running_cells(client, run, broker):
    cell = run.cells.order_by("pk").first()
    services.cell_record_progress(cell_id=cell.pk, attempt=1, runner="gpu-7", phase="running")
    services.runner_heartbeat_record(
        name="gpu-7", queues=["runner.cpu"], version="1.0", cell_id=cell.pk, attempt=1
    )
    RunnerHostFactory(name="gpu-gone", last_heartbeat=timezone.now() - timedelta(hours=1))
    RunnerHostFactory(name="gpu-never")
    page = client.get(reverse("ci_runners:fleet")).content.decode()
    assert "gpu-7" in page and "alive" in page
    assert page.count('<span class="state errored">silent</span>') == 2
    assert "runner.cpu</dt><dd>2 waiting" in page  # no agent consumed them
    assert "TorchThing on 2.13.0+cpu py3.11" in page


def projects_with_scheduled_runs(n: int, targets, category) -> None:
    projects = [ProjectFactory(slug=f"p{i}", name=f"P{i:03d}", category=category) for i in range(n)]
    services.compat_runs_request_for_projects(
        projects=projects, targets=targets, trigger="schedule"
    )


def matrix_queries(client, **params) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("ci_runners:matrix"), params)
    assert response.status_code == 200
    return len(queries)


def test_global_matrix_answers_which_projects_break_on_a_version(client, targets, broker):
    category = CategoryFactory(name="Training", slug="training")
    projects_with_scheduled_runs(3, targets, category)
    broken = Project.objects.get(slug="p1")
    cell = broken.compat_cells.get(target=targets[1])
    services.cell_record_result(
        cell_id=cell.pk, attempt=1, runner="r", result=Result(state=CellState.FAILED).to_dict()
    )
    page = client.get(
        reverse("ci_runners:matrix"), {"target": targets[1].pk, "state": "failed"}
    ).content.decode()
    assert "P001" in page and "P000" not in page and "P002" not in page
    assert "1 project" in page
    page = client.get(reverse("ci_runners:matrix"), {"category": "training"}).content.decode()
    assert "3 projects" in page
    bad = client.get(reverse("ci_runners:matrix"), {"target": "x", "state": "<b>", "page": "zz"})
    assert bad.status_code == 200


def test_global_matrix_query_count_does_not_grow_with_projects(client, targets, broker):
    category = CategoryFactory(name="Training", slug="training")
    projects_with_scheduled_runs(3, targets, category)
    few = matrix_queries(client)
    more = [ProjectFactory(slug=f"q{i}", name=f"Q{i:03d}") for i in range(60)]
    services.compat_runs_request_for_projects(projects=more, targets=targets, trigger="schedule")
    assert matrix_queries(client) == few
    assert matrix_queries(client, page=2) == few
