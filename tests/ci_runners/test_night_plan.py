"""The incremental night: only what changed runs; the rest is carried from its evidence.

Real PostgreSQL, a real (private) Redis broker and real git repositories: `git ls-remote`
reads local repositories, the GitHub URLs of registry projects redirected to them by git's
own `url.<base>.insteadOf` (set through git's GIT_CONFIG_* environment), so no test touches
the network. Evidence cells get their results through `services.cell_record_result`, as a
runner's would arrive.
"""

from __future__ import annotations

import json
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from ci_runners import services
from ci_runners.agent.contracts import Result
from ci_runners.models import CompatCell, CompatRun, CompatStatus, ProjectTestConfig
from ci_runners.services.night_plan import job_hashes_of
from ci_runners.states import CellState
from registry.models import Project
from tests.agent.conftest import git_commit
from tests.registry.factories import ProjectFactory, RepoSnapshotFactory

NIGHT_1 = date(2026, 11, 1)
NIGHT_2 = date(2026, 11, 2)
NIGHT_3 = date(2026, 11, 3)
OLD_COMMIT = "1" * 40


def result(state: str, *, commit: str, lock_hash: str = "lock-1") -> dict:
    failed = state == CellState.FAILED
    return Result(
        state=state,
        exit_code=1 if failed else 0,
        commit=commit,
        counts={"passed": 3, "failed": 1 if failed else 0},
        failures=[{"test": "tests/test_x.py::test_y", "message": "boom"}] if failed else [],
        tests_collected=4,
        recipe={"hash": "recipe-1", "install": ["pytest"]},
        lock=["torch==9.1.0", "pytest==8.3.0"],
        lock_hash=lock_hash,
        declared={"torch": ">=2", "requires_python": ">=3.10"},
    ).to_dict()


def make_projects(n: int, prefix: str = "p") -> list[Project]:
    return [
        ProjectFactory(
            slug=f"{prefix}{i}", name=f"{prefix.upper()}{i}", repository=f"org/{prefix}{i}"
        )
        for i in range(n)
    ]


def state_of(cell: CompatCell) -> str:
    """A mix of outcomes: failed for every third (project, target), passed otherwise."""
    return CellState.FAILED if (cell.project_id + cell.target_id) % 3 == 0 else CellState.PASSED


_seen: set[int] = set()


@pytest.fixture(autouse=True)
def _forget_cells():
    _seen.clear()
    yield
    _seen.clear()


def run_night(slot: date, callbacks, *, force: bool = False) -> list[CompatCell]:
    """Start the night of `slot` (its messages published); its cells: those not seen yet."""
    with callbacks(execute=True):
        services.nightly_runs(slot=slot, force=force)
    cells = list(CompatCell.objects.exclude(pk__in=_seen).order_by("pk"))
    _seen.update(cell.pk for cell in cells)
    return cells


def record(cells: list[CompatCell], *, commits: dict[int, str], lock_hash: str = "lock-1"):
    """Each queued cell's runner reports: passed or failed (`state_of`), at the project's
    commit."""
    for cell in cells:
        services.cell_record_result(
            cell_id=cell.pk,
            attempt=1,
            runner="r1",
            result=result(state_of(cell), commit=commits[cell.project_id], lock_hash=lock_hash),
        )


def snapshot(project: Project, *, pushed_at) -> None:
    RepoSnapshotFactory(project=project, pushed_at=pushed_at)


def git_repo(path: Path) -> str:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "README").write_text("one\n")
    return git_commit(path, "one")


@pytest.fixture
def github_to(tmp_path, monkeypatch) -> Path:
    """Redirect https://github.com/ to a local folder for git (insteadOf, through git's own
    GIT_CONFIG_* environment): a registry project's repository URL reads a local repo."""
    root = tmp_path / "github"
    root.mkdir()
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{root}/.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "https://github.com/")
    return root


def is_dispatched(cell: CompatCell) -> bool:
    return cell.carried_from_id is None and cell.state == CellState.QUEUED


def test_a_night_where_5_percent_changed_dispatches_only_those(
    targets, broker, github_to, django_capture_on_commit_callbacks, client
):
    projects = make_projects(40)
    changed = projects[:2]
    commits = {project.pk: OLD_COMMIT for project in projects}
    for project in changed:
        commits[project.pk] = git_repo(github_to / "org" / project.slug)
    first = run_night(NIGHT_1, django_capture_on_commit_callbacks)
    assert len(first) == 80 and all(cell.job_hash for cell in first)
    record(first, commits=commits)
    after_first = timezone.now()
    # GitHub sync: 38 projects last pushed before their cells ran; 2 pushed new commits since.
    for project in projects[2:]:
        snapshot(project, pushed_at=after_first - timedelta(days=3))
    for project in changed:
        (github_to / "org" / project.slug / "README").write_text("two\n")
        git_commit(github_to / "org" / project.slug, "two")
        snapshot(project, pushed_at=timezone.now())
    summaries = {p.pk: (p.works_with, p.breaks_with) for p in Project.objects.all()}
    badge = client.get(f"/badges/{projects[5].slug}.json").json()
    queued_before = broker.client().llen("runner.cpu")

    second = run_night(NIGHT_2, django_capture_on_commit_callbacks)

    assert len(second) == 80
    dispatched = [cell for cell in second if is_dispatched(cell)]
    assert {cell.project_id for cell in dispatched} == {project.pk for project in changed}
    assert len(dispatched) == 4 and len(dispatched) / len(second) <= 0.06
    assert broker.client().llen("runner.cpu") - queued_before == 4
    evidence = {(cell.project_id, cell.target_id): cell for cell in first}
    for cell in second:
        if is_dispatched(cell):
            continue
        source = evidence[cell.project_id, cell.target_id]
        assert cell.carried_from_id == source.pk
        source.refresh_from_db()
        assert (cell.state, cell.commit, cell.counts, cell.failures, cell.lock_hash) == (
            source.state,
            source.commit,
            source.counts,
            source.failures,
            source.lock_hash,
        )
        assert cell.recipe_hash == "recipe-1" and cell.tests_collected == 4
        assert cell.finished_at is not None and cell.started_at is None and not cell.log_file
    # The matrix is complete: every (project, target) shows this night's cell, final where
    # carried; summaries and badges say what they said.
    for status in CompatStatus.objects.select_related("latest_cell"):
        assert status.latest_cell_id in {cell.pk for cell in second}
        if status.project_id not in {project.pk for project in changed}:
            assert status.last_final_cell_id == status.latest_cell_id
    assert {p.pk: (p.works_with, p.breaks_with) for p in Project.objects.all()} == summaries
    assert client.get(f"/badges/{projects[5].slug}.json").json() == badge
    # A run whose cells are all carried is over; a changed project's runs on.
    runs = CompatRun.objects.filter(cells__in=second).distinct()
    assert {run.project_id for run in runs if run.finished_at is None} == {p.pk for p in changed}

    # The third night carries from the carried cells' original, never a chain.
    third = run_night(NIGHT_3, django_capture_on_commit_callbacks)
    for cell in third:
        if cell.carried_from_id is not None:
            assert cell.carried_from_id == evidence[cell.project_id, cell.target_id].pk


def test_a_forced_night_dispatches_every_cell(targets, broker, django_capture_on_commit_callbacks):
    projects = make_projects(5)
    first = run_night(NIGHT_1, django_capture_on_commit_callbacks)
    record(first, commits={project.pk: OLD_COMMIT for project in projects})
    for project in projects:
        snapshot(project, pushed_at=timezone.now() - timedelta(days=3))
    queued_before = broker.client().llen("runner.cpu")
    forced = run_night(NIGHT_2, django_capture_on_commit_callbacks, force=True)
    assert len(forced) == 10 and all(is_dispatched(cell) for cell in forced)
    assert broker.client().llen("runner.cpu") - queued_before == 10
    # The same data without force would have carried everything.
    plan = services.night_plan(projects=projects, targets=targets)
    assert plan.carried == plan.planned == 10 and plan.dispatched == 0


def evidence_night(projects, callbacks, *, states=None, lock_hash="lock-1"):
    """A recorded first night whose projects then report no push since."""
    cells = run_night(NIGHT_1, callbacks)
    for cell in cells:
        state = (states or {}).get(cell.project_id, state_of(cell))
        services.cell_record_result(
            cell_id=cell.pk,
            attempt=1,
            runner="r1",
            result=result(state, commit=OLD_COMMIT, lock_hash=lock_hash),
        )
    for project in projects:
        snapshot(project, pushed_at=timezone.now() - timedelta(days=3))
    return cells


def runs_in_plan(plan) -> set[tuple[int, int]]:
    every = {(p.pk, t.pk) for p in plan.projects for t in plan.targets}
    return every - set(plan.carry)


def test_a_changed_test_config_or_target_runs_again(targets, django_capture_on_commit_callbacks):
    projects = make_projects(3)
    evidence_night(projects, django_capture_on_commit_callbacks)
    assert services.night_plan(projects=projects, targets=targets).carried == 6
    ProjectTestConfig.objects.create(project=projects[0], pytest_args=["-x"])
    plan = services.night_plan(projects=projects, targets=targets)
    assert runs_in_plan(plan) == {(projects[0].pk, t.pk) for t in targets}
    targets[1].find_links = ["https://wheels.example.org/"]
    targets[1].save()
    plan = services.night_plan(projects=projects, targets=targets)
    assert runs_in_plan(plan) == {(projects[0].pk, t.pk) for t in targets} | {
        (p.pk, targets[1].pk) for p in projects
    }


def test_an_evidence_resolved_too_long_ago_runs_again(
    targets, settings, django_capture_on_commit_callbacks
):
    projects = make_projects(3)
    evidence_night(projects, django_capture_on_commit_callbacks)
    CompatCell.objects.filter(project=projects[1]).update(
        started_at=timezone.now() - timedelta(days=8)
    )
    plan = services.night_plan(projects=projects, targets=targets)
    assert runs_in_plan(plan) == {(projects[1].pk, t.pk) for t in targets}
    settings.COMPAT_CARRY_MAX_AGE_S = 3600
    later = timezone.now() + timedelta(hours=2)
    assert services.night_plan(projects=projects, targets=targets, now=later).carried == 0


@pytest.mark.parametrize(
    "state", [CellState.ERRORED, CellState.NOT_INSTALLABLE, CellState.TIMED_OUT]
)
def test_only_passed_or_failed_evidence_is_carried(
    targets, state, django_capture_on_commit_callbacks
):
    projects = make_projects(3)
    evidence_night(projects, django_capture_on_commit_callbacks, states={projects[2].pk: state})
    plan = services.night_plan(projects=projects, targets=targets)
    assert runs_in_plan(plan) == {(projects[2].pk, t.pk) for t in targets}


def test_an_evidence_without_a_resolved_environment_runs_again(
    targets, django_capture_on_commit_callbacks
):
    projects = make_projects(2)
    evidence_night(projects, django_capture_on_commit_callbacks, lock_hash="")
    assert services.night_plan(projects=projects, targets=targets).carried == 0


def test_stale_sync_data_or_a_push_after_the_evidence_asks_git(
    targets, github_to, settings, django_capture_on_commit_callbacks
):
    """No fresh snapshot, or a push since: `git ls-remote` decides. The same commit (a push
    to another branch) is carried; a repository git cannot reach runs."""
    projects = make_projects(3)
    commits = {p.pk: git_repo(github_to / "org" / p.slug) for p in projects[:2]}
    commits[projects[2].pk] = OLD_COMMIT  # org/p2 does not exist: unreachable
    cells = run_night(NIGHT_1, django_capture_on_commit_callbacks)
    record(cells, commits=commits)
    snapshot(projects[0], pushed_at=timezone.now())  # a push since, HEAD unchanged
    # projects[1]: no snapshot at all; projects[2]: an old one.
    RepoSnapshotFactory(
        project=projects[2],
        taken_at=timezone.now() - timedelta(days=2),
        pushed_at=timezone.now() - timedelta(days=9),
    )
    plan = services.night_plan(projects=projects, targets=targets)
    assert plan.heads == {
        projects[0].pk: commits[projects[0].pk],
        projects[1].pk: commits[projects[1].pk],
        projects[2].pk: None,
    }
    assert runs_in_plan(plan) == {(projects[2].pk, t.pk) for t in targets}


def test_a_source_override_is_asked_with_ls_remote(
    targets, tmp_path, django_capture_on_commit_callbacks
):
    """Staff's source override (a local repository here) is what git asks; a new commit
    there runs the project again, a missing source runs it too."""
    projects = make_projects(3)
    repos = [tmp_path / f"src{i}" for i in range(3)]
    commits = {p.pk: git_repo(repo) for p, repo in zip(projects, repos, strict=True)}
    for project, repo in zip(projects, repos, strict=True):
        ProjectTestConfig.objects.create(project=project, source_override=str(repo))
        # Fresh sync data says "no push", but the override is not the GitHub repository.
        snapshot(project, pushed_at=timezone.now() - timedelta(days=3))
    cells = run_night(NIGHT_1, django_capture_on_commit_callbacks)
    record(cells, commits=commits)
    (repos[1] / "README").write_text("two\n")
    new_head = git_commit(repos[1], "two")
    subprocess.run(["rm", "-rf", str(repos[2])], check=True)
    plan = services.night_plan(projects=projects, targets=targets)
    assert plan.heads == {
        projects[0].pk: commits[projects[0].pk],
        projects[1].pk: new_head,
        projects[2].pk: None,
    }
    assert runs_in_plan(plan) == {(p.pk, t.pk) for p in projects[1:] for t in targets}


def test_the_plan_costs_the_same_queries_for_10_or_40_projects(
    targets, django_capture_on_commit_callbacks
):
    projects = make_projects(40)
    evidence_night(projects, django_capture_on_commit_callbacks)
    counts = []
    for n in (10, 40):
        chosen = list(Project.objects.filter(pk__in=[p.pk for p in projects[:n]]))
        with CaptureQueriesContext(connection) as queries:
            plan = services.night_plan(projects=chosen, targets=targets)
        assert plan.carried == 2 * n and plan.heads == {}
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 4


def test_staff_start_a_full_run_from_the_fleet_page(
    targets, staff, other_user, broker, django_capture_on_commit_callbacks
):
    projects = make_projects(2)
    evidence_night(projects, django_capture_on_commit_callbacks)
    url = reverse("ci_runners:night_run_full")
    client = Client()
    assert client.post(url).status_code == 403  # anonymous
    client.force_login(other_user)
    assert "Run every project now (full)" not in client.get(reverse("ci_runners:fleet")).text
    assert client.post(url).status_code == 403
    assert client.get(url).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    page = strict.get(reverse("ci_runners:fleet")).text
    assert "Run every project now (full)" in page
    assert strict.post(url).status_code == 403  # no CSRF token
    token = strict.cookies["csrftoken"].value
    before = CompatCell.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        response = strict.post(url, {"csrfmiddlewaretoken": token}, follow=True)
    assert response.status_code == 200 and "Full run started: 4 cells queued" in response.text
    new = CompatCell.objects.exclude(pk__in=_seen)
    assert CompatCell.objects.count() - before == 4 == new.filter(state="queued").count()
    assert not new.filter(carried_from__isnull=False).exists()
    assert {run.trigger for run in CompatRun.objects.filter(cells__in=new)} == {"manual"}
    # A second click the same minute queues nothing.
    response = strict.post(url, {"csrfmiddlewaretoken": token}, follow=True)
    assert "Nothing queued" in response.text and CompatCell.objects.count() - before == 4


def test_carried_cells_show_their_evidence_on_pages_and_the_api(
    targets, staff, django_capture_on_commit_callbacks
):
    projects = make_projects(2)
    first = evidence_night(projects, django_capture_on_commit_callbacks)
    second = run_night(NIGHT_2, django_capture_on_commit_callbacks)
    carried = second[0]
    source = next(
        c for c in first if (c.project_id, c.target_id) == (carried.project_id, carried.target_id)
    )
    source.refresh_from_db()
    client = Client()
    page = client.get(reverse("ci_runners:cell", args=[carried.pk])).text
    assert "carried" in page and reverse("ci_runners:cell", args=[source.pk]) in page
    assert source.finished_at.strftime("%Y-%m-%d") in page
    matrix = client.get(reverse("ci_runners:matrix")).text
    assert f"carried from cell {source.pk} of {source.finished_at:%Y-%m-%d}" in matrix
    data = client.get(f"/api/v1/cells/{carried.pk}/").json()
    assert data["carried_from"] == source.pk and data["job_hash"] == carried.job_hash
    assert json.dumps(data)  # plain JSON


def test_the_command_prints_planned_dispatched_and_carried(
    targets, capsys, django_capture_on_commit_callbacks
):
    projects = make_projects(3)
    evidence_night(projects, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("nightly_runs", "--json")
    counts = json.loads(capsys.readouterr().out)
    assert counts["started"] and (counts["planned"], counts["dispatched"], counts["carried"]) == (
        6,
        0,
        6,
    )
    call_command("nightly_runs")
    assert "already started" in capsys.readouterr().out
    with django_capture_on_commit_callbacks(execute=True):
        call_command("nightly_runs", "--force")
    assert "(full): 6 cells planned for 3 projects, 6 dispatched, 0 carried." in (
        capsys.readouterr().out
    )


def test_a_whole_carried_night_costs_the_same_queries_for_10_or_40_projects(
    targets, django_capture_on_commit_callbacks
):
    """Plan, runs, carried cells, matrix, summaries and run ends: no query per project."""
    projects = make_projects(50)
    evidence_night(projects, django_capture_on_commit_callbacks)
    counts = []
    for chosen in (projects[:10], projects[10:50]):
        chosen = list(Project.objects.filter(pk__in=[p.pk for p in chosen]))
        with CaptureQueriesContext(connection) as queries:
            plan = services.night_plan(projects=chosen, targets=targets)
            services.compat_runs_request_for_projects(
                projects=chosen, targets=targets, trigger="schedule", carry=plan.carry
            )
        assert plan.carried == plan.planned
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_every_new_cell_records_its_job_hash(targets, django_capture_on_commit_callbacks):
    """A manual run without a ref asks what the night asks (its cells can be evidence); a ref
    or another override is another job."""
    [project] = make_projects(1)
    with django_capture_on_commit_callbacks(execute=True):
        plain = services.compat_run_request(project=project, trigger="manual")
        at_ref = services.compat_run_request(project=project, trigger="manual", ref="v1.0")
    hashes = job_hashes_of(projects=[project], targets=targets)
    assert {c.target_id: c.job_hash for c in plain.cells.all()} == {
        t.pk: hashes[project.pk, t.pk] for t in targets
    }
    assert len(set(hashes.values())) == 2  # one per target
    assert not {c.job_hash for c in at_ref.cells.all()} & set(hashes.values())
