"""First bad release: bisection over the torch releases published between a good and a bad end.

Service level: the probes' results are recorded through `services.cell_record_result` (what
the results worker does) and the tasks the services send by name to the `default` queue are
taken from the private broker and run here (`deliver`). Through the fleet: real web-side
workers, a real runner agent and stand-in torch wheels 9.0.0..9.6.0 in a find-links dir.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from celery import current_app
from packaging.version import Version

import ci_runners.tasks  # noqa: F401 - registers the tasks `deliver` runs by name
from ci_runners import services
from ci_runners.agent.contracts import Result
from ci_runners.models import Bisection, CompatCell, CompatRun, CompatStatus, TorchTarget
from ci_runners.states import FINAL_STATES, CellState
from registry.models import Project
from tests.ci_runners.factories import TorchTargetFactory
from tests.ci_runners.test_fleet_e2e import Processes, demo_project, run_finished, wait_for
from tests.fakes.http import FakeHTTPServer, Reply
from tests.standin_wheels import standin_torch_releases

FILES = [{"filename": "torch-x-py3-none-any.whl", "yanked": False}]


def torch_json(versions: list[str]) -> dict:
    """PyPI's JSON API answer for torch: these releases, plus ones every search must skip (a
    pre-release, a yanked release, and releases outside any 9.x window)."""
    releases = {version: FILES for version in versions}
    releases.update(
        {
            "9.2.0rc1": FILES,
            "9.3.5": [{"filename": "torch.whl", "yanked": True}],
            "8.0.0": FILES,
            "10.0.0": FILES,
        }
    )
    return {"info": {"name": "torch"}, "releases": releases}


@pytest.fixture
def fake_pypi(settings):
    """A local PyPI JSON API; `fake_pypi(versions)` publishes torch `versions`."""
    server = FakeHTTPServer()
    with server:
        settings.PYPI_JSON_URL = server.url + "/pypi/{name}/json"

        def publish(versions: list[str]) -> FakeHTTPServer:
            server.route("GET", "/pypi/torch/json", Reply(200, torch_json(versions)))
            return server

        yield publish


def nines(count: int) -> list[str]:
    return [f"9.{minor}.0" for minor in range(count)]


def result(state: str, *, failures: list[dict] | None = None) -> dict:
    failed = len(failures or [])
    counts = {"passed": 2, "failed": failed}
    return Result(
        state=state, exit_code=1 if failed else 0, counts=counts, failures=failures or []
    ).to_dict()


def failure(version: str) -> dict:
    return {"test": f"tests/test_api.py::test_on_{version}", "message": f"broke on {version}"}


def deliver(broker, capture) -> list[str]:
    """Run the tasks waiting in the `default` queue here, in order, as the web worker would
    (and those they send, until none is left). Returns their names."""
    ran = []
    while messages := broker.messages("default"):
        broker.client().delete("default")
        for message in messages:
            with capture(execute=True):
                current_app.tasks[message["task"]](**message["kwargs"])
            ran.append(message["task"])
    return ran


def record(cell: CompatCell, state: str, capture, failures: list[dict] | None = None) -> None:
    with capture(execute=True):
        services.cell_record_result(
            cell_id=cell.pk, attempt=1, runner="r", result=result(state, failures=failures)
        )


def matrix_run(project, good, bad, capture, *, bad_state=CellState.FAILED) -> CompatRun:
    """A matrix run of the project on both ends: passed on `good`, `bad_state` on `bad`."""
    with capture(execute=True):
        run = services.compat_run_request(
            project=project, targets=[good, bad], trigger=CompatRun.Trigger.MANUAL
        )
    record(run.cells.get(target=good), CellState.PASSED, capture)
    record(run.cells.get(target=bad), bad_state, capture, failures=[failure(bad.version)])
    return run


def pending_probe(bisection: Bisection) -> CompatCell | None:
    bisection.refresh_from_db()
    pending = [e for e in bisection.tried if e["state"] not in FINAL_STATES]
    return CompatCell.objects.get(pk=pending[0]["cell_id"]) if pending else None


def answer_probes(bisection: Bisection, first_bad: str, broker, capture) -> Bisection:
    """Play the fleet: each probe fails from `first_bad` on and passes before it."""
    while (cell := pending_probe(bisection)) is not None:
        if Version(cell.target.version) >= Version(first_bad):
            record(cell, CellState.FAILED, capture, failures=[failure(cell.target.version)])
        else:
            record(cell, CellState.PASSED, capture)
        assert deliver(broker, capture) == [Bisection.STEP_TASK]
    bisection.refresh_from_db()
    return bisection


@pytest.fixture
def ends(db):
    """Matrix targets 9.0.0 and 9.9.0 of one variant (the ends' builds share it)."""
    return (
        TorchTargetFactory(version="9.0.0", variant="", find_links=["/wheels"]),
        TorchTargetFactory(version="9.9.0", variant="", find_links=["/wheels"]),
    )


@pytest.mark.parametrize("between", [5, 6, 7, 8])
def test_bisection_finds_the_first_bad_release_at_every_position_within_the_bound(
    between, project, fake_pypi, broker, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    versions = nines(between + 2)
    fake_pypi(versions)
    good = TorchTargetFactory(version=versions[0], variant="")
    bad = TorchTargetFactory(version=versions[-1], variant="", find_links=["/wheels"])
    matrix_run(project, good, bad, capture)
    broker.client().delete("default")  # the auto-start: tested on its own below
    bound = math.ceil(math.log2(between + 1))
    for position in range(1, between + 2):  # the first bad: each candidate, then the bad end
        bisection = services.bisection_start(project=project, good_target=good, bad_target=bad)
        assert bisection.candidates == versions[1:-1]
        bisection = answer_probes(bisection, versions[position], broker, capture)
        assert bisection.state == Bisection.State.FOUND and bisection.finished_at
        assert (bisection.first_bad, bisection.last_good) == (
            versions[position],
            versions[position - 1],
        )
        assert bisection.failures == [failure(versions[position])]
        assert 1 <= len(bisection.tried) <= bound
        probes = CompatCell.objects.filter(pk__in=[e["cell_id"] for e in bisection.tried])
        assert {cell.run.trigger for cell in probes} == {CompatRun.Trigger.BISECTION}
        # The probes ran on inactive targets built like the bad end (its sources too).
        assert all(not c.target.active and c.target.find_links == ["/wheels"] for c in probes)
        assert all(c.target.variant == "" for c in probes)


def test_bisection_cells_stay_out_of_the_matrix_and_the_project_summary(
    project, fake_pypi, broker, ends, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    fake_pypi([*nines(8), "9.9.0"])
    good, bad = ends
    matrix_run(project, good, bad, capture)
    broker.client().delete("default")  # the auto-start: tested on its own below
    statuses = list(CompatStatus.objects.values_list("target_id", "latest_cell", "last_final_cell"))
    project.refresh_from_db()
    summary = (project.works_with, project.breaks_with, project.not_installable_with)
    assert summary == (["9.0.0"], ["9.9.0"], [])

    bisection = services.bisection_start(project=project, good_target=good, bad_target=bad)
    bisection = answer_probes(bisection, "9.5.0", broker, capture)
    assert (bisection.first_bad, bisection.last_good) == ("9.5.0", "9.4.0")
    assert len(bisection.tried) >= 3  # passed and failed probes, both recorded
    project.refresh_from_db()
    assert (project.works_with, project.breaks_with, project.not_installable_with) == summary
    assert (
        list(CompatStatus.objects.values_list("target_id", "latest_cell", "last_final_cell"))
        == statuses
    )
    # A finished bisection run starts no other bisection.
    assert broker.messages("default") == []


@pytest.fixture
def started(project, fake_pypi, ends) -> tuple[Bisection, CompatCell]:
    """A bisection of `project` between the `ends` (releases 9.1.0 to 9.7.0 between them) and
    its first probe, not answered yet."""
    fake_pypi(nines(8) + ["9.9.0"])
    good, bad = ends
    bisection = services.bisection_start(project=project, good_target=good, bad_target=bad)
    return bisection, pending_probe(bisection)


def test_a_second_delivery_of_a_probes_end_changes_nothing(
    started, broker, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    bisection, probe = started
    record(probe, CellState.PASSED, capture)
    [message] = broker.messages("default")
    assert message["kwargs"] == {"run_id": probe.run_id, "bisection_id": bisection.pk}
    deliver(broker, capture)
    bisection.refresh_from_db()
    tried, runs = list(bisection.tried), CompatRun.objects.count()
    assert len(tried) == 2 and tried[0]["state"] == CellState.PASSED

    for _ in range(2):  # the same message again (a redelivery)
        with capture(execute=True):
            current_app.tasks[message["task"]](**message["kwargs"])
    bisection.refresh_from_db()
    assert bisection.tried == tried and CompatRun.objects.count() == runs
    assert bisection.state == Bisection.State.RUNNING
    assert broker.messages("default") == []


def test_an_errored_probe_fails_the_bisection_with_the_reason(
    project, started, broker, ends, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    bisection, probe = started
    with capture(execute=True):
        outcome = Result(state=CellState.ERRORED, error="the runner lost", error_code="runner_lost")
        services.cell_record_result(
            cell_id=probe.pk, attempt=1, runner="r", result=outcome.to_dict()
        )
    deliver(broker, capture)
    bisection.refresh_from_db()
    assert bisection.state == Bisection.State.FAILED and bisection.finished_at
    assert f"torch {probe.target.version} errored" in bisection.error
    assert "runner_lost" in bisection.error
    assert bisection.tried == [
        {"torch": probe.target.version, "state": CellState.ERRORED, "cell_id": probe.pk}
    ]
    assert (bisection.first_bad, bisection.last_good) == ("", "")
    # The project may be bisected again.
    good, bad = ends
    again = services.bisection_start(project=project, good_target=good, bad_target=bad)
    assert again.state == Bisection.State.RUNNING


def test_no_release_between_the_ends_is_an_immediate_result_without_a_cell(
    project, fake_pypi, broker, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    fake_pypi(nines(2))
    good = TorchTargetFactory(version="9.0.0", variant="")
    bad = TorchTargetFactory(version="9.1.0", variant="")
    matrix_run(project, good, bad, capture)
    runs = CompatRun.objects.count()
    bisection = services.bisection_start(project=project, good_target=good, bad_target=bad)
    assert bisection.state == Bisection.State.FOUND
    assert (bisection.first_bad, bisection.last_good) == ("9.1.0", "9.0.0")
    assert bisection.candidates == [] and bisection.tried == []
    # The failing tests are those of the matrix's latest final cell on the bad end.
    assert bisection.failures == [failure("9.1.0")]
    assert CompatRun.objects.count() == runs


def test_a_matrix_break_starts_a_bisection_once(
    project, fake_pypi, broker, ends, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    fake_pypi(nines(4) + ["9.9.0"])
    good, bad = ends
    matrix_run(project, good, bad, capture)
    assert [m["kwargs"] for m in broker.messages("default")] == [{"project_id": project.pk}]
    assert deliver(broker, capture) == [Bisection.AUTOSTART_TASK]
    bisection = Bisection.objects.get()
    assert (bisection.good_version, bisection.bad_version) == ("9.0.0", "9.9.0")
    assert bisection.template_target == bad and bisection.requested_by is None
    assert bisection.candidates == ["9.1.0", "9.2.0", "9.3.0"]
    answer_probes(bisection, "9.2.0", broker, capture)

    # The same break seen again by the next run: already searched, nothing is sent.
    matrix_run(project, good, bad, capture)
    assert broker.messages("default") == []
    # A run that passes everywhere shows no break.
    matrix_run(project, good, bad, capture, bad_state=CellState.PASSED)
    assert broker.messages("default") == []
    assert Bisection.objects.count() == 1


def test_no_auto_start_across_variants_or_on_a_not_installable_end(
    project, fake_pypi, broker, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    fake_pypi(nines(5))
    cpu = TorchTargetFactory(version="9.0.0", variant="cpu")
    plain = TorchTargetFactory(version="9.4.0", variant="")
    matrix_run(project, cpu, plain, capture)
    assert broker.messages("default") == []
    other = TorchTargetFactory(version="9.4.0", variant="cpu")
    matrix_run(project, cpu, other, capture, bad_state=CellState.NOT_INSTALLABLE)
    assert broker.messages("default") == []
    assert services.bisection_pairs(project=project) == []


def test_start_refuses_incomparable_ends_and_a_second_running_bisection(
    project, fake_pypi, ends, django_capture_on_commit_callbacks
):
    fake_pypi(nines(8) + ["9.9.0"])
    good, bad = ends
    cpu = TorchTargetFactory(version="9.5.0", variant="cpu")
    with pytest.raises(services.BisectionRefused, match="same variant"):
        services.bisection_start(project=project, good_target=good, bad_target=cpu)
    with pytest.raises(services.BisectionRefused, match="must be older"):
        services.bisection_start(project=project, good_target=bad, bad_target=good)
    with django_capture_on_commit_callbacks(execute=True):
        services.bisection_start(project=project, good_target=good, bad_target=bad)
    with pytest.raises(services.BisectionRefused, match="already running"):
        services.bisection_start(project=project, good_target=good, bad_target=bad)
    assert Bisection.objects.count() == 1


def test_cancel_stops_the_bisection_and_its_probe(
    started, broker, staff, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    bisection, probe = started
    with capture(execute=True):
        services.bisection_cancel(bisection=bisection, actor=staff)
    bisection.refresh_from_db()
    probe.refresh_from_db()
    assert bisection.state == Bisection.State.CANCELLED and bisection.finished_at
    assert probe.state == CellState.CANCELLED
    assert bisection.tried[0]["state"] == CellState.CANCELLED
    # The cancelled probe run's end arrives: nothing more happens.
    assert deliver(broker, capture) == [Bisection.STEP_TASK]
    bisection.refresh_from_db()
    assert bisection.state == Bisection.State.CANCELLED and len(bisection.tried) == 1


# --- the page and the API ----------------------------------------------------------------


@pytest.fixture
def found(project, fake_pypi, broker, ends, django_capture_on_commit_callbacks) -> Bisection:
    capture = django_capture_on_commit_callbacks
    fake_pypi(nines(8) + ["9.9.0"])
    good, bad = ends
    matrix_run(project, good, bad, capture)
    deliver(broker, capture)
    return answer_probes(Bisection.objects.get(), "9.3.0", broker, capture)


def test_the_project_page_shows_the_first_bad_release_with_its_cells(client, found, staff):
    page = client.get(f"/runs/projects/{found.project.slug}/testing/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "First bad release" in html
    assert "<code>9.3.0</code>" in html and "<code>9.2.0</code>" in html
    assert "tests/test_api.py::test_on_9.3.0" in html
    for entry in found.tried:
        assert f'href="/runs/cells/{entry["cell_id"]}/"' in html
    assert "Bisect " not in html  # the form is staff's
    client.force_login(staff)
    html = client.get(f"/runs/projects/{found.project.slug}/testing/").content.decode()
    assert 'action="/runs/projects/torchthing/bisect/"' in html
    # A probe cell's page is public, like the project's other cells.
    client.logout()
    assert client.get(f"/runs/cells/{found.tried[0]['cell_id']}/").status_code == 200


def test_only_staff_start_a_bisection_from_the_page(
    client, project, fake_pypi, ends, staff, maintainer, django_capture_on_commit_callbacks
):
    fake_pypi(nines(8) + ["9.9.0"])
    good, bad = ends
    url = f"/runs/projects/{project.slug}/bisect/"
    data = {"good": good.pk, "bad": bad.pk}
    assert client.post(url, data).status_code == 403
    client.force_login(maintainer)
    assert client.post(url, data).status_code == 403
    assert client.get(url).status_code == 405
    client.force_login(staff)
    assert client.post(url, {"good": "x", "bad": bad.pk}).status_code == 400
    assert client.post(url, {"good": 99999, "bad": bad.pk}).status_code == 400
    assert client.post("/runs/projects/nope/bisect/", data).status_code == 404
    assert not Bisection.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, data)
    assert response.status_code == 302 and response["Location"].endswith("#bisections")
    bisection = Bisection.objects.get()
    assert bisection.requested_by == staff and bisection.candidates == nines(8)[1:]
    # A refused one (already running) is a message, not an error page.
    response = client.post(url, data, follow=True)
    assert "already running" in response.content.decode()
    assert Bisection.objects.count() == 1


def test_the_api_lists_bisections_publicly_and_filters_by_project(client, found):
    other = Project.objects.create(slug="other", name="Other")
    response = client.get("/api/v1/bisections/", {"project": found.project.slug})
    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row["project"] == "torchthing" and row["state"] == "found"
    assert (row["first_bad"], row["last_good"]) == ("9.3.0", "9.2.0")
    assert row["failures"] == [failure("9.3.0")]
    assert row["tried"] == found.tried and row["variant"] == ""
    assert client.get("/api/v1/bisections/", {"project": other.slug}).json()["results"] == []
    assert client.get(f"/api/v1/bisections/{found.pk}/").json()["id"] == found.pk
    assert client.get("/api/v1/bisections/", {"state": "bogus"}).status_code == 400
    assert client.get("/api/v1/bisections/999999/").status_code == 404
    assert client.get("/api/v1/bisections/abc/").status_code == 404


# --- through the fleet ---------------------------------------------------------------------

LEGACY_USER = {
    "name": "Legacy User",
    "description": "Calls torch.legacy_add, which the stand-in torch drops in 9.4.0.",
    "files": {
        "src/legacy_user/__init__.py": (
            "import torch\n\n\ndef add(a, b):\n    return torch.legacy_add(a, b)\n"
        ),
        "tests/test_legacy.py": (
            "from legacy_user import add\n\n\ndef test_add_uses_legacy_add():\n"
            "    assert add(2, 3) == 5\n"
        ),
    },
}
FLEET_RELEASES = nines(7)  # 9.0.0 .. 9.6.0


@pytest.fixture
def fleet(transactional_db, broker, tmp_path):
    """The web-side workers and the runner agent as real processes (`test_fleet_e2e`)."""
    processes = Processes(tmp=tmp_path, broker_url=broker.url)
    yield processes
    processes.stop_all()


def standin_releases(directory: Path) -> Path:
    """torch 9.0.0..9.6.0 stand-ins: `torch.legacy_add` exists before 9.4.0 only."""
    directory.mkdir(parents=True)
    directory.chmod(0o755)
    standin_torch_releases(directory, FLEET_RELEASES)
    return directory


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_bisection_through_the_fleet_finds_the_first_bad_stand_in_release(
    fleet, fake_pypi, tmp_path
):
    processes = fleet
    server = fake_pypi(FLEET_RELEASES)
    wheels = standin_releases(processes.work_root / "wheels")
    good, bad = (
        TorchTarget.objects.create(
            version=version, variant="", active=True, find_links=[str(wheels)]
        )
        for version in ("9.0.0", "9.6.0")
    )
    project = demo_project(tmp_path, "legacy-user", LEGACY_USER)
    processes.start_web_worker("web", "default", PYPI_JSON_URL=f"{server.url}/pypi/{{name}}/json")
    processes.start_results_worker()
    processes.start_agent("agent-1")

    # The matrix run: passed on 9.0.0, failed on 9.6.0. Its end starts the bisection.
    run = services.compat_run_request(
        project=project, targets=[good, bad], trigger=CompatRun.Trigger.MANUAL
    )
    wait_for("the matrix run to finish", lambda: run_finished(run), processes)
    states = dict(run.cells.values_list("target__version", "state"))
    assert states == {"9.0.0": CellState.PASSED, "9.6.0": CellState.FAILED}, [
        (c.error, c.log_tail[-2000:]) for c in run.cells.all()
    ]

    def bisection_done() -> Bisection | None:
        bisection = Bisection.objects.filter(project=project).first()
        return bisection if bisection and bisection.state != Bisection.State.RUNNING else None

    bisection = wait_for("the bisection to finish", bisection_done, processes, timeout=300)
    print(f"bisection {bisection.state}: tried {bisection.tried}")
    assert bisection.state == Bisection.State.FOUND, bisection.error
    assert (bisection.good_version, bisection.bad_version) == ("9.0.0", "9.6.0")
    assert bisection.candidates == ["9.1.0", "9.2.0", "9.3.0", "9.4.0", "9.5.0"]
    assert (bisection.first_bad, bisection.last_good) == ("9.4.0", "9.3.0")
    assert [f["test"].rsplit("::", 1)[-1] for f in bisection.failures] == [
        "test_add_uses_legacy_add"
    ]
    assert "legacy_add" in bisection.failures[0]["message"]
    cells = CompatCell.objects.filter(run__trigger=CompatRun.Trigger.BISECTION)
    assert cells.count() == len(bisection.tried)
    assert cells.count() <= math.ceil(math.log2(len(FLEET_RELEASES))) + 1
    for cell in cells:  # each probe really ran its stand-in torch
        assert cell.environment["torch"].startswith(cell.target.version), cell.error
        assert cell.state in (CellState.PASSED, CellState.FAILED)
    # The matrix knows only the ends; the probes' targets stay inactive.
    assert set(CompatStatus.objects.values_list("target__version", flat=True)) == {
        "9.0.0",
        "9.6.0",
    }
    assert not TorchTarget.objects.filter(active=True).exclude(pk__in=[good.pk, bad.pk]).exists()
