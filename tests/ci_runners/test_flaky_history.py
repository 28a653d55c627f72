"""Flaky tests on the web side: cells keep the tests that failed and then passed on their
re-run apart from their failures; a project's history marks a test known flaky once it was
flaky in at least 2 of its last 10 runs (bisection runs left out); the cell page, the
project's testing section and the API show them apart, and never as breaks."""

from __future__ import annotations

from django.urls import reverse

from ci_runners import selectors, services
from ci_runners.agent.contracts import Result
from ci_runners.models import CompatCell, CompatRun
from ci_runners.states import CellState
from tests.ci_runners.factories import CompatCellFactory, CompatRunFactory

SOMETIMES = "tests/test_io.py::test_sometimes"
RARELY = "tests/test_io.py::test_rarely"
BROKEN = "tests/test_model.py::test_forward"


def _flaky(*tests: str) -> list[dict[str, str]]:
    return [{"test": test, "message": f"AssertionError: {test} lost a race"} for test in tests]


def _record(cell: CompatCell, *, flaky=(), failures=()) -> None:
    """The cell's result as an agent reports it: flaky tests counted once, as passed."""
    state = CellState.FAILED if failures else CellState.PASSED
    result = Result(
        state=state,
        exit_code=1 if failures or flaky else 0,
        commit="abc123",
        counts={"passed": 9 - len(failures), "failed": len(failures)},
        failures=[{"test": test, "message": f"RuntimeError: {test} broke"} for test in failures],
        flaky=_flaky(*flaky),
        tests_collected=9,
    )
    services.cell_record_result(cell_id=cell.pk, attempt=1, runner="r", result=result.to_dict())


def _finished_run(project, capture, *, flaky=((), ()), failures=((), ())) -> CompatRun:
    """A manual run of `project` whose two cells (2.13.0, 2.14.1) reported `flaky` and
    `failures` (one tuple of node ids per cell)."""
    with capture(execute=True):
        run = services.compat_run_request(project=project, trigger="manual")
    for cell, cell_flaky, cell_failures in zip(
        run.cells.order_by("target__version"), flaky, failures, strict=True
    ):
        _record(cell, flaky=cell_flaky, failures=cell_failures)
    return run


def test_history_counts_the_runs_in_which_each_test_was_flaky(
    project, targets, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    # Flaky on both targets of one run: one run.
    _finished_run(project, capture, flaky=((SOMETIMES, RARELY), (SOMETIMES,)))
    _finished_run(project, capture, flaky=((), (SOMETIMES,)))
    _finished_run(project, capture)
    bisection = CompatRunFactory(project=project, trigger=CompatRun.Trigger.BISECTION)
    _record(CompatCellFactory(run=bisection, target=targets[0]), flaky=(RARELY,))

    history = selectors.flaky_test_history(project=project)

    assert history.runs == 3  # the bisection run is no run of the project's suite
    assert history.flaky_in == {SOMETIMES: 2, RARELY: 1}
    assert history.known == {SOMETIMES: 2}


def test_only_the_last_10_runs_count(project, targets, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    for _ in range(2):
        _finished_run(project, capture, flaky=((RARELY,), ()))
    for _ in range(8):
        _finished_run(project, capture)
    for _ in range(2):
        _finished_run(project, capture, flaky=((), (SOMETIMES,)))
    with capture(execute=True):  # still running: no result yet, not a run that counts
        services.compat_run_request(project=project, trigger="manual")

    history = selectors.flaky_test_history(project=project)

    assert history.runs == 10
    assert history.flaky_in == {SOMETIMES: 2}
    assert history.known == {SOMETIMES: 2}


def test_a_test_flaky_once_is_not_known_flaky(project, targets, django_capture_on_commit_callbacks):
    _finished_run(project, django_capture_on_commit_callbacks, flaky=((RARELY,), ()))

    history = selectors.flaky_test_history(project=project)

    assert (history.runs, history.flaky_in, history.known) == (1, {RARELY: 1}, {})
    assert selectors.flaky_test_history(project=None).known == {}


def test_cell_page_shows_flaky_tests_apart_and_labels_known_flaky_failures(
    project, targets, django_capture_on_commit_callbacks, client
):
    capture = django_capture_on_commit_callbacks
    _finished_run(project, capture, flaky=((SOMETIMES,), ()))
    _finished_run(project, capture, flaky=((), (SOMETIMES,)))
    # Known flaky now, it fails on its re-run too: a failure, labelled.
    run = _finished_run(project, capture, flaky=((RARELY,), ()), failures=((), (SOMETIMES,)))
    flaky_cell, failed_cell = run.cells.order_by("target__version")
    flaky_cell.refresh_from_db()
    assert flaky_cell.state == CellState.PASSED  # its flaky test is no break
    assert flaky_cell.flaky == _flaky(RARELY)
    assert flaky_cell.failures == []

    page = client.get(reverse("ci_runners:cell", args=[flaky_cell.pk])).content.decode()
    failed = client.get(reverse("ci_runners:cell", args=[failed_cell.pk])).content.decode()

    assert "Flaky (passed on re-run) (1)" in page
    assert f"<code>{RARELY}</code>" in page
    assert "<h2>Failures" not in page
    assert "known flaky" not in page  # flaky once: not (yet) known flaky
    failures = failed.split("<h2>Failures (1)</h2>")[1].split("</section>")[0]
    assert f"<code>{SOMETIMES}</code>" in failures
    assert "known flaky</span>" in failures
    assert "Flaky in 2 of the last 3 runs of this project" in failures
    assert "Flaky (passed on re-run)" not in failed


def test_project_testing_section_lists_known_flaky_tests(
    project, targets, django_capture_on_commit_callbacks, client
):
    capture = django_capture_on_commit_callbacks
    _finished_run(project, capture, flaky=((SOMETIMES, RARELY), ()))
    _finished_run(project, capture, flaky=((), (SOMETIMES,)))
    _finished_run(project, capture)
    url = reverse("ci_runners:project_testing", args=[project.slug])

    section = client.get(url).content.decode()

    assert "Known flaky tests" in section
    assert f"<code>{SOMETIMES}</code> — flaky in 2 of the last 3 runs" in section
    assert RARELY not in section  # flaky in 1 run only


def test_project_testing_section_without_known_flaky_tests_says_none(
    project, targets, django_capture_on_commit_callbacks, client
):
    _finished_run(project, django_capture_on_commit_callbacks)
    url = reverse("ci_runners:project_testing", args=[project.slug])

    section = client.get(url).content.decode()

    assert "Known flaky tests" in section
    assert "None in the last 1 run:" in section


def test_api_exposes_a_cells_flaky_tests_and_beyond_range(
    project, targets, django_capture_on_commit_callbacks, client
):
    run = _finished_run(project, django_capture_on_commit_callbacks, flaky=((SOMETIMES,), ()))
    cell = run.cells.order_by("target__version").first()

    data = client.get(f"/api/v1/cells/{cell.pk}/").json()

    assert data["state"] == "passed"
    assert data["flaky"] == _flaky(SOMETIMES)
    assert data["failures"] == []
    assert data["beyond_range"] == {}
    schema = client.get(reverse("api-schema")).content.decode()
    assert "Flaky tests: failed, then passed when re-run once" in schema
