"""The runner's outcome vocabulary on the web side: not_installable, error codes, what newer
agents report (recipe, lock, collected tests, network-only failures), and the shrunk-suite flag.
Results go through the real recording service (and its Celery task entry), as agents send them.
"""

from __future__ import annotations

from django.urls import reverse

from ci_runners import services, tasks
from ci_runners.agent.contracts import Job, Result
from ci_runners.models import CellResult, CompatCell, CompatRun
from ci_runners.states import CellState
from tests.ci_runners.factories import TorchTargetFactory

RECIPE = {
    "install": ["torchthing[test]", "pytest-xdist==3.6.1"],
    "extras": ["test"],
    "groups": [],
    "run": {
        "command": ["python", "-m", "pytest", "-p", "no:cacheprovider"],
        "cwd": "tests-copy",
        "testpaths": ["tests"],
        "copy_tests_out": True,
        "copy_paths": ["tests"],
        "pytest_args": ["-x"],
    },
    "env": {"OMP_NUM_THREADS": "1"},
    "deselect": ["gpu", "slow"],
    "needs_gpu": False,
    "override": {},
    "provenance": [
        {"part": "install", "file": "pyproject.toml", "line": 31, "detail": "extra 'test'"},
        {"part": "testpaths", "file": "pyproject.toml", "line": 58, "detail": ""},
        {"part": "deselect", "file": "", "line": None, "detail": "registry default"},
    ],
    "hash": "sha256:4f9a0c1d2e3b",
}


def request_run(project, capture, **kwargs) -> CompatRun:
    with capture(execute=True):
        return services.compat_run_request(project=project, trigger="manual", **kwargs)


def record(cell: CompatCell, state: CellState = CellState.PASSED, **fields) -> CellResult:
    """Record a result for the cell's attempt through the agent's task entry point."""
    counts = fields.pop("counts", {"passed": 10, "failed": 0})
    result = Result(state=state, exit_code=0, counts=counts, **fields).to_dict()
    tasks.record_cell_result.apply(
        kwargs={"cell_id": cell.pk, "attempt": cell.attempt, "runner": "r1", "result": result}
    )
    return CellResult.objects.get(cell=cell, attempt=cell.attempt)


def cell_on(run: CompatRun, version: str) -> CompatCell:
    return run.cells.get(target__version=version)


# --- what the agent reports is stored ------------------------------------------------------------


def test_the_recipe_lock_and_collected_tests_are_stored_on_the_cell_and_its_result(
    project, targets, django_capture_on_commit_callbacks
):
    run = request_run(project, django_capture_on_commit_callbacks)
    cell = cell_on(run, "2.13.0")
    needs_network = [{"test": "tests/test_hub.py::test_download", "message": "no network"}]
    stored = record(
        cell,
        tests_collected=42,
        needs_network=needs_network,
        recipe=RECIPE,
        lock=["numpy==2.1.0", "torch==2.13.0+cpu"],
        lock_hash="sha256:77aa",
    )
    cell.refresh_from_db()
    assert cell.state == CellState.PASSED
    assert cell.tests_collected == 42
    assert cell.needs_network == needs_network
    assert cell.recipe == RECIPE and cell.recipe_hash == "sha256:4f9a0c1d2e3b"
    assert cell.lock_hash == "sha256:77aa" and cell.error_code == ""
    assert stored.lock == ["numpy==2.1.0", "torch==2.13.0+cpu"]
    assert stored.lock_hash == "sha256:77aa" and stored.recipe_hash == "sha256:4f9a0c1d2e3b"
    assert stored.tests_collected == 42
    assert "lock" not in stored.payload  # kept once, in its own field
    assert stored.payload["recipe"] == RECIPE


def test_an_older_agent_without_the_new_fields_is_still_understood(
    project, targets, django_capture_on_commit_callbacks
):
    run = request_run(project, django_capture_on_commit_callbacks)
    cell = cell_on(run, "2.13.0")
    old_result = {"state": "failed", "exit_code": 1, "counts": {"passed": 3, "failed": 1}}
    tasks.record_cell_result.apply(
        kwargs={"cell_id": cell.pk, "attempt": 1, "runner": "old-agent", "result": old_result}
    )
    cell.refresh_from_db()
    assert cell.state == CellState.FAILED
    assert cell.tests_collected is None and cell.recipe == {} and cell.recipe_hash == ""
    assert cell.needs_network == [] and cell.error_code == "" and not cell.suite_shrunk
    stored = CellResult.objects.get(cell=cell)
    assert stored.lock == [] and stored.lock_hash == ""


def test_an_errored_result_keeps_its_error_code_and_message(
    project, targets, django_capture_on_commit_callbacks, client
):
    run = request_run(project, django_capture_on_commit_callbacks)
    cell = cell_on(run, "2.13.0")
    record(
        cell,
        CellState.ERRORED,
        counts={},
        error="uv could not reach the wheel index",
        error_code="wheel_source_unreachable",
    )
    cell.refresh_from_db()
    assert cell.error_code == "wheel_source_unreachable"
    page = client.get(reverse("ci_runners:cell", args=[cell.pk])).content.decode()
    assert "Infrastructure error" in page
    assert '<span class="error-code">wheel_source_unreachable</span>' in page
    assert "uv could not reach the wheel index" in page


# --- not installable: a compatibility fact -------------------------------------------------


def test_not_installable_does_not_work_with_that_torch_and_errored_says_nothing(
    project, targets, django_capture_on_commit_callbacks
):
    run = request_run(project, django_capture_on_commit_callbacks)
    record(
        cell_on(run, "2.13.0"),
        CellState.NOT_INSTALLABLE,
        counts={},
        error="torchthing 1.2 requires torch<2.13",
    )
    record(cell_on(run, "2.14.1"), CellState.ERRORED, counts={}, error_code="runner_lost")
    project.refresh_from_db()
    assert cell_on(run, "2.13.0").state == CellState.NOT_INSTALLABLE
    assert project.not_installable_with == ["2.13.0"]
    assert project.works_with == [] and project.breaks_with == []  # errored: unknown


def test_a_later_pass_takes_the_version_out_of_not_installable(
    project, targets, django_capture_on_commit_callbacks
):
    first = request_run(project, django_capture_on_commit_callbacks, targets=targets[:1])
    record(cell_on(first, "2.13.0"), CellState.NOT_INSTALLABLE, counts={})
    second = request_run(project, django_capture_on_commit_callbacks, targets=targets[:1])
    record(cell_on(second, "2.13.0"))
    project.refresh_from_db()
    assert project.works_with == ["2.13.0"] and project.not_installable_with == []


def test_pages_show_not_installable_apart_from_errored(
    project, targets, django_capture_on_commit_callbacks, client
):
    run = request_run(project, django_capture_on_commit_callbacks)
    not_installable = cell_on(run, "2.13.0")
    record(
        not_installable,
        CellState.NOT_INSTALLABLE,
        counts={},
        error="requires-python <3.11 excludes this build",
        error_code="requires_python",
    )
    record(cell_on(run, "2.14.1"), CellState.ERRORED, counts={}, error_code="disk_quota")

    matrix = client.get(reverse("ci_runners:matrix")).content.decode()
    assert 'class="heat not_installable"' in matrix and 'class="heat errored"' in matrix
    assert ">Not installable</a>" in matrix
    assert "infrastructure error (disk_quota)" in matrix  # the errored cell's title
    assert '<span class="total not_installable">1 not installable</span>' in matrix
    assert "it does not work with it. Not an infrastructure problem." in matrix  # the legend

    page = client.get(reverse("ci_runners:cell", args=[not_installable.pk])).content.decode()
    assert "Not installable with this PyTorch" in page
    assert "requires-python &lt;3.11 excludes this build" in page
    assert "Infrastructure error" not in page

    fragment = client.get(reverse("ci_runners:project_matrix", args=[project.slug]))
    text = fragment.content.decode()
    assert '<span class="state not_installable"' in text
    assert "Cannot be installed with PyTorch 2.13.0" in text
    assert '<span class="error-code">disk_quota</span>' in text


def test_the_state_filters_of_the_matrix_and_the_api_know_not_installable(
    project, targets, django_capture_on_commit_callbacks, client
):
    run = request_run(project, django_capture_on_commit_callbacks)
    cell = cell_on(run, "2.13.0")
    record(cell, CellState.NOT_INSTALLABLE, counts={})
    record(cell_on(run, "2.14.1"))
    page = client.get(reverse("ci_runners:matrix"), {"state": "not_installable"})
    assert project.name in page.content.decode()
    assert '<option value="not_installable" selected>' in page.content.decode()
    api = client.get("/api/v1/cells/", {"state": "not_installable"}).json()
    assert [row["id"] for row in api["results"]] == [cell.pk]


# --- the suite that shrank ----------------------------------------------------------------------


def test_a_suite_that_lost_more_than_a_tenth_of_its_tests_is_flagged_but_still_passes(
    project, targets, django_capture_on_commit_callbacks, client
):
    run = request_run(project, django_capture_on_commit_callbacks)
    reference, shrunk = cell_on(run, "2.13.0"), cell_on(run, "2.14.1")
    record(reference, tests_collected=100)
    record(shrunk, tests_collected=89)
    shrunk.refresh_from_db()
    reference.refresh_from_db()
    assert shrunk.state == CellState.PASSED and shrunk.suite_shrunk
    assert shrunk.suite_shrink == {
        "collected": 89,
        "reference": 100,
        "reference_cell": reference.pk,
        "reference_target": reference.target.label,
    }
    assert not reference.suite_shrunk  # it had nothing to compare with
    project.refresh_from_db()
    assert "2.14.1" in project.works_with  # a shrunk pass is still a pass

    expected = f"Suite shrank: 89 tests collected, 100 on {reference.target.label}"
    matrix = client.get(reverse("ci_runners:matrix")).content.decode()
    assert 'class="heat passed shrunk"' in matrix and expected in matrix
    page = client.get(reverse("ci_runners:cell", args=[shrunk.pk])).content.decode()
    assert expected in page
    data = client.get(f"/api/v1/cells/{shrunk.pk}/").json()
    assert data["suite_shrunk"] is True and data["suite_shrink"]["reference"] == 100
    assert data["tests_collected"] == 89


def test_a_drop_of_at_most_a_tenth_is_not_flagged(
    project, targets, django_capture_on_commit_callbacks
):
    run = request_run(project, django_capture_on_commit_callbacks)
    record(cell_on(run, "2.13.0"), tests_collected=100)
    record(cell_on(run, "2.14.1"), tests_collected=90)
    assert not cell_on(run, "2.14.1").suite_shrunk


def test_the_comparison_is_with_another_target_never_the_same_one(
    project, targets, django_capture_on_commit_callbacks
):
    """The same target's older cell (200 tests) is not the reference; the other target's
    latest (100) is, so 95 is no shrink."""
    older = request_run(project, django_capture_on_commit_callbacks, targets=targets[1:])
    record(cell_on(older, "2.14.1"), tests_collected=200)
    newer = request_run(project, django_capture_on_commit_callbacks)
    record(cell_on(newer, "2.13.0"), tests_collected=100)
    record(cell_on(newer, "2.14.1"), tests_collected=95)
    assert not cell_on(newer, "2.14.1").suite_shrunk
    # And the 2.13.0 cell compared with the older 2.14.1 one: 100 against 200 shrank.
    flagged = cell_on(newer, "2.13.0")
    assert flagged.suite_shrunk and flagged.suite_shrink["reference"] == 200


def test_another_projects_cells_are_never_the_reference(
    project, targets, django_capture_on_commit_callbacks
):
    from tests.registry.factories import ProjectFactory

    other = ProjectFactory(slug="other", repository="o/other")
    elsewhere = request_run(other, django_capture_on_commit_callbacks, targets=targets[:1])
    record(cell_on(elsewhere, "2.13.0"), tests_collected=1000)
    run = request_run(project, django_capture_on_commit_callbacks, targets=targets[1:])
    record(cell_on(run, "2.14.1"), tests_collected=10)
    assert not cell_on(run, "2.14.1").suite_shrunk


# --- the job carries the override and the cache scope -------------------------------------------


def test_the_job_carries_groups_deselect_and_the_projects_cache_scope(
    project, targets, broker, django_capture_on_commit_callbacks
):
    services.project_test_config_update(
        project=project,
        actor=None,
        changes={"groups": ["test", "docs"], "deselect": ["slow"]},
    )
    request_run(project, django_capture_on_commit_callbacks, targets=targets[:1])
    [message] = broker.messages("runner.cpu")
    job = Job.from_dict(message["kwargs"]["job"])
    assert job.test_config.groups == ["test", "docs"]
    assert job.test_config.deselect == ["slow"]
    assert job.test_config.pytest_args == ["-x"]  # the rest of the config still rides along
    assert job.cache_scope == f"project-{project.pk}"


def test_an_applicants_run_gets_no_shared_cache(
    targets, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.compat_run_request(
            project=None,
            source_url="https://github.com/someone/newthing",
            targets=targets[:1],
            trigger="review",
        )
    [message] = broker.messages("runner.cpu")
    job = Job.from_dict(message["kwargs"]["job"])
    assert job.cache_scope is None
    assert job.test_config.groups is None and job.test_config.deselect == []


def test_a_fresh_target_cell_page_shows_the_recipe_and_where_it_came_from(
    project, django_capture_on_commit_callbacks, client
):
    target = TorchTargetFactory(version="2.15.0")
    run = request_run(project, django_capture_on_commit_callbacks, targets=[target])
    cell = run.cells.get()
    record(cell, tests_collected=12, recipe=RECIPE)
    page = client.get(reverse("ci_runners:cell", args=[cell.pk])).content.decode()
    assert "<code>python -m pytest -p no:cacheprovider</code>" in page
    assert "install — pyproject.toml:31 (extra &#x27;test&#x27;)" in page
    assert "deselect (registry default)" in page
    assert "<code>gpu</code>, <code>slow</code>" in page
    assert "<dt>collected</dt><dd>12" in page


def test_a_recipe_of_an_unexpected_shape_is_shown_as_far_as_it_makes_sense():
    """Recipes come from runners: missing parts and odd shapes never break a page."""
    from ci_runners.templatetags.compat_tags import recipe_view

    assert recipe_view(None).is_empty and recipe_view({}).is_empty and recipe_view([1]).is_empty
    view = recipe_view(
        {
            "install": "torchthing",
            "run": "pytest -q",
            "env": ["not", "a", "dict"],
            "provenance": ["junk", {"part": "run", "file": "tox.ini", "line": 7}, {"file": "x"}],
            "hash": "h1",
        }
    )
    assert view.install == ["torchthing"] and view.command == ""  # run is not a dict
    assert view.env == [] and view.hash == "h1"
    assert view.provenance == ["run — tox.ini:7", "? — x"]
    assert recipe_view({"run": {"command": "python -m pytest"}}).command == "python -m pytest"
