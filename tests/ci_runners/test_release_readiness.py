"""A new PyTorch release end to end: the release watch reads a local fake PyPI (real JSON
shapes), makes a target per runner setup and tells staff once; staff approve it on the fleet
page, which starts the readiness run; results come back through `cell_record_result`; the
readiness report (page, CSV, JSON, API, `manage.py release_report`) compares each project
with the previous release, newly broken projects first."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from ci_runners import services
from ci_runners.agent.contracts import Result
from ci_runners.models import CompatCell, CompatRun, TorchTarget
from ci_runners.states import CellState
from tests.ci_runners.factories import TorchTargetFactory
from tests.factories import UserFactory
from tests.fakes.http import FakeHTTPServer, Reply
from tests.registry.factories import ProjectFactory

CU126_INDEX = "https://download.pytorch.org/whl/cu126"
NEW = "2.15.0"


def pypi_file(version: str, tag: str, *, yanked: bool = False) -> dict:
    """One file of a release as PyPI's JSON API lists it."""
    filename = f"torch-{version}-{tag}.whl"
    return {
        "comment_text": "",
        "digests": {"blake2b_256": "0" * 64, "md5": "0" * 32, "sha256": "1" * 64},
        "downloads": -1,
        "filename": filename,
        "has_sig": False,
        "md5_digest": "0" * 32,
        "packagetype": "bdist_wheel",
        "python_version": "cp311",
        "requires_python": ">=3.9.0",
        "size": 194_000_000,
        "upload_time": "2026-11-25T17:01:02",
        "upload_time_iso_8601": "2026-11-25T17:01:02.123456Z",
        "url": f"https://files.pythonhosted.org/packages/00/00/{filename}",
        "yanked": yanked,
        "yanked_reason": "broken build" if yanked else None,
    }


def pypi_torch(versions: list[str]) -> dict:
    tag = "cp311-cp311-manylinux_2_28_x86_64"
    return {
        "info": {"name": "torch", "version": versions[-1], "requires_python": ">=3.9.0"},
        "last_serial": 26_000_000,
        "releases": {version: [pypi_file(version, tag)] for version in versions},
        "urls": [pypi_file(versions[-1], tag)],
        "vulnerabilities": [],
    }


@pytest.fixture
def fake_pypi(settings):
    server = FakeHTTPServer()
    server.route(
        "GET", "/pypi/torch/json", Reply(200, pypi_torch(["2.13.0", "2.14.1", "2.16.0rc1", NEW]))
    )
    with server:
        settings.PYPI_JSON_URL = server.url + "/pypi/{name}/json"
        yield server


@pytest.fixture
def fleet_targets(db):
    """The catalog before the release: a CPU and a CUDA setup on 2.14.1, CPU on 2.13.0."""
    return {
        "old": TorchTargetFactory(version="2.13.0", variant="cpu"),
        "cpu": TorchTargetFactory(version="2.14.1", variant="cpu"),
        "cu126": TorchTargetFactory(
            version="2.14.1", variant="cu126", capability="cuda.sm90", index_urls=[CU126_INDEX]
        ),
    }


PROJECTS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"]


@pytest.fixture
def projects(db):
    made = {
        slug: ProjectFactory(slug=slug, name=slug.title(), repository=f"org/{slug}")
        for slug in PROJECTS
    }
    ProjectFactory(slug="old", name="Old", status="retired", repository="org/old")
    return made


@pytest.fixture
def staff_users(db):
    """One staff member to mail, and accounts that must not be mailed."""
    UserFactory(username="nomail", email="", is_staff=True)
    UserFactory(username="gone", is_staff=True, is_active=False)
    UserFactory(username="visitor")
    return UserFactory(username="staffer", is_staff=True)


def result(state: CellState, **extra) -> dict:
    """A runner's result as the agent sends it."""
    counts = {"passed": 40, "failed": 0, "errors": 0, "skipped": 2, "xfailed": 0, "xpassed": 0}
    if state == CellState.FAILED:
        counts.update(passed=38, failed=2)
    fields = {
        "exit_code": {CellState.PASSED: 0, CellState.FAILED: 1}.get(state),
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "counts": counts,
        "tests_collected": 42,
        "environment": {"python": "3.11.9", "torch": "x", "cuda": None, "gpu": None},
        "log_tail": f"== {state} ==",
        **extra,
    }
    if state in (CellState.NOT_INSTALLABLE, CellState.ERRORED):
        fields.update(counts={}, tests_collected=None, exit_code=None)
    return Result(state=state, **fields).to_dict()


OLD_TORCH_WARNING = {
    "category": "UserWarning",
    "message": "TypedStorage is deprecated.",
    "torch_api": True,
    "count": 4,
}
NEW_TORCH_WARNING = {
    "category": "FutureWarning",
    "message": "torch.nn.utils.weight_norm is deprecated in favor of parametrizations.",
    "torch_api": True,
    "count": 2,
}
OWN_WARNING = {"category": "DeprecationWarning", "message": "beta.old", "torch_api": False}
GAMMA_FAILURES = [
    {
        "test": "tests/test_ops.py::test_conv2d",
        "when": "call",
        "message": "RuntimeError: expected scalar type Float but found BFloat16",
        "network": False,
    },
    {
        "test": "tests/test_hub.py::test_download",
        "when": "call",
        "message": "URLError: no network",
        "network": True,
    },
    {
        "test": "tests/test_ops.py::test_linear",
        "when": "call",
        "message": "AttributeError: module 'torch' has no attribute 'legacy_linear'",
        "network": False,
    },
]
DELTA_FAILURES = [{"test": "tests/test_io.py::test_load", "when": "call", "message": "E"}]

# Per project: the result on the previous release, then on the new one (None: still queued).
OUTCOMES = {
    "alpha": (result(CellState.PASSED), result(CellState.PASSED)),
    "beta": (
        result(CellState.PASSED, warnings=[OLD_TORCH_WARNING]),
        result(CellState.PASSED, warnings=[OLD_TORCH_WARNING, NEW_TORCH_WARNING, OWN_WARNING]),
    ),
    "gamma": (result(CellState.PASSED), result(CellState.FAILED, failures=GAMMA_FAILURES)),
    "delta": (
        result(CellState.FAILED, failures=DELTA_FAILURES),
        result(CellState.FAILED, failures=DELTA_FAILURES),
    ),
    "epsilon": (
        result(CellState.PASSED),
        result(
            CellState.NOT_INSTALLABLE,
            error="epsilon depends on torch<2.15",
            error_code="resolution_failed",
        ),
    ),
    "zeta": (result(CellState.PASSED), None),
    "eta": (
        result(CellState.PASSED),
        result(CellState.ERRORED, error="uv: disk full", error_code="env_build_failed"),
    ),
}


def record(cells, outcome_index: int, capture) -> None:
    for cell in cells:
        outcome = OUTCOMES[cell.project.slug][outcome_index]
        if outcome is None:
            continue
        with capture(execute=True):
            services.cell_record_result(cell_id=cell.pk, attempt=1, runner="r1", result=outcome)


def run_previous_release(fleet_targets, projects, capture) -> None:
    """Every project's results on 2.14.1 (both setups), as a nightly run leaves them."""
    with capture(execute=True):
        services.compat_runs_request_for_projects(
            projects=list(projects.values()),
            targets=[fleet_targets["cpu"], fleet_targets["cu126"]],
            trigger=CompatRun.Trigger.SCHEDULE,
        )
    record(CompatCell.objects.select_related("project"), 0, capture)


def detect(capture) -> list[TorchTarget]:
    with capture(execute=True):
        return services.torch_releases_check()


def approve_as(user, capture) -> object:
    client = Client()
    client.force_login(user)
    with capture(execute=True):
        return client.post(reverse("ci_runners:release_approve", kwargs={"version": NEW}))


@pytest.fixture
def readiness(
    fake_pypi, fleet_targets, projects, staff_users, django_capture_on_commit_callbacks
) -> dict:
    """The whole story up to the report: previous results, detection, approval, results."""
    capture = django_capture_on_commit_callbacks
    run_previous_release(fleet_targets, projects, capture)
    detect(capture)
    assert approve_as(staff_users, capture).status_code == 302
    new_cells = CompatCell.objects.filter(target__version=NEW).select_related("project")
    record(new_cells, 1, capture)
    return {"targets": fleet_targets, "projects": projects, "staff": staff_users}


def test_a_new_release_gets_a_target_per_runner_setup_and_one_staff_email(
    fake_pypi, fleet_targets, staff_users, settings, django_capture_on_commit_callbacks
):
    created = detect(django_capture_on_commit_callbacks)

    setups = sorted(
        (t.version, t.variant, t.python_version, t.capability, t.index_urls, t.active)
        for t in created
    )
    assert setups == [
        (NEW, "cpu", "3.11", "cpu", [], False),
        (NEW, "cu126", "3.11", "cuda.sm90", [CU126_INDEX], False),
    ]
    assert len(mail.outbox) == 1
    notice = mail.outbox[0]
    assert notice.to == [staff_users.email]
    assert NEW in notice.subject
    assert "2.15.0+cpu py3.11" in notice.body and "2.15.0+cu126 py3.11" in notice.body
    assert f"{settings.SITE_URL}/runs/fleet/" in notice.body
    assert f"{settings.SITE_URL}/runs/releases/{NEW}/" in notice.body

    assert detect(django_capture_on_commit_callbacks) == []
    assert len(mail.outbox) == 1
    assert TorchTarget.objects.filter(version=NEW).count() == 2


def test_the_fleet_page_shows_the_waiting_release_and_only_staff_get_the_button(
    client, fake_pypi, fleet_targets, staff_users, django_capture_on_commit_callbacks
):
    detect(django_capture_on_commit_callbacks)
    approve_url = reverse("ci_runners:release_approve", kwargs={"version": NEW})

    page = client.get(reverse("ci_runners:fleet")).content.decode()
    assert "New PyTorch releases waiting for approval" in page
    assert f"PyTorch {NEW}" in page and "2.15.0+cu126 py3.11" in page
    assert approve_url not in page

    client.force_login(staff_users)
    page = client.get(reverse("ci_runners:fleet")).content.decode()
    assert approve_url in page and "Approve and run readiness" in page
    assert "csrfmiddlewaretoken" in page


def test_approval_is_staff_only_with_csrf_and_starts_the_readiness_run_once(
    client, fake_pypi, fleet_targets, projects, staff_users, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    detect(capture)
    approve_url = reverse("ci_runners:release_approve", kwargs={"version": NEW})
    assert client.post(approve_url).status_code == 403
    visitor = UserFactory(username="someone")
    assert approve_as(visitor, capture).status_code == 403
    no_token = Client(enforce_csrf_checks=True)
    no_token.force_login(staff_users)
    assert no_token.post(approve_url).status_code == 403
    assert not TorchTarget.objects.filter(version=NEW, active=True).exists()

    response = approve_as(staff_users, capture)

    assert response.status_code == 302
    assert response["Location"] == reverse("ci_runners:release_report", kwargs={"version": NEW})
    assert TorchTarget.objects.filter(version=NEW, active=True).count() == 2
    runs = CompatRun.objects.filter(trigger=CompatRun.Trigger.NEW_RELEASE)
    assert sorted(run.project.slug for run in runs) == sorted(PROJECTS)
    cells = CompatCell.objects.filter(run__in=runs)
    assert cells.count() == len(PROJECTS) * 2
    assert {cell.target.label for cell in cells} == {"2.15.0+cpu py3.11", "2.15.0+cu126 py3.11"}
    assert approve_as(staff_users, capture).status_code == 302  # a second click
    assert services.torch_release_approve(version=NEW) == 0
    assert CompatCell.objects.filter(target__version=NEW).count() == len(PROJECTS) * 2
    page = client.get(reverse("ci_runners:fleet")).content.decode()
    assert "waiting for approval" not in page


def rows_of(report: dict) -> list[dict]:
    return [row for section in report["sections"] for row in section["projects"]]


def test_the_report_lists_newly_broken_first_with_failing_tests_and_new_warnings(readiness):
    from ci_runners.release_reports import release_report

    report = release_report(NEW)

    assert report["previous_version"] == "2.14.1"
    assert report["approved"] is True
    assert report["summary"] == {
        "projects": 7,
        "newly_broken": 1,
        "still_broken": 1,
        "not_installable": 1,
        "errored": 1,
        "pending": 1,
        "newly_fixed": 0,
        "passed": 2,
    }
    order = [(row["project"]["slug"], row["classification"]) for row in rows_of(report)]
    assert order == [
        ("gamma", "newly_broken"),
        ("delta", "still_broken"),
        ("epsilon", "not_installable"),
        ("eta", "errored"),
        ("zeta", "pending"),
        ("alpha", "passed"),
        ("beta", "passed"),
    ]
    gamma = rows_of(report)[0]
    assert [failure["test"] for failure in gamma["failures"]] == [
        "tests/test_ops.py::test_conv2d",
        "tests/test_ops.py::test_linear",
    ]
    assert "expected scalar type Float" in gamma["failures"][0]["message"]
    assert all("test_download" not in f["test"] for f in gamma["failures"])  # network only
    comparison = gamma["comparisons"][0]
    assert comparison["previous_target"] == "2.14.1+cpu py3.11"
    assert comparison["previous_cell"]["state"] == "passed"
    assert comparison["cell"]["url"] == f"/runs/cells/{comparison['cell']['id']}/"
    assert gamma["comparisons"][1]["previous_target"] == "2.14.1+cu126 py3.11"
    beta = next(row for row in rows_of(report) if row["project"]["slug"] == "beta")
    new_warning = {"category": "FutureWarning", "message": NEW_TORCH_WARNING["message"], "count": 2}
    # Raised on both targets of the new release: once for the project, once per comparison.
    assert beta["new_torch_warnings"] == [new_warning]
    assert [c["new_torch_warnings"] for c in beta["comparisons"]] == [[new_warning]] * 2
    alpha = next(row for row in rows_of(report) if row["project"]["slug"] == "alpha")
    assert alpha["new_torch_warnings"] == [] and alpha["failures"] == []


def test_page_csv_json_api_and_command_all_say_the_same(client, readiness):
    url = reverse("ci_runners:release_report", kwargs={"version": NEW})
    api = client.get(f"/api/v1/release-reports/{NEW}/")
    download = client.get(url, {"format": "json"})
    out = io.StringIO()
    call_command("release_report", NEW, "--json", stdout=out)

    assert api.status_code == 200 and download.status_code == 200
    assert api.json() == download.json() == json.loads(out.getvalue())
    report = api.json()

    page = client.get(url).content.decode()
    positions = [page.index(f'data-project="{row["project"]["slug"]}"') for row in rows_of(report)]
    assert positions == sorted(positions)  # the page's order is the report's
    assert "tests/test_ops.py::test_conv2d" in page
    assert NEW_TORCH_WARNING["message"] in page
    assert f'href="{rows_of(report)[0]["project"]["url"]}"' in page
    cell_url = rows_of(report)[0]["comparisons"][0]["cell"]["url"]
    assert cell_url in page

    response = client.get(url, {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    lines = list(csv.DictReader(io.StringIO(response.content.decode())))
    expected = [
        (row["project"]["slug"], c["target"], c["classification"], c["cell"]["state"])
        for row in rows_of(report)
        for c in row["comparisons"]
    ]
    assert [
        (line["project"], line["target"], line["classification"], line["state"]) for line in lines
    ] == expected
    assert lines[0]["project"] == "gamma"
    assert "tests/test_ops.py::test_conv2d" in lines[0]["failing_tests"]

    human = io.StringIO()
    call_command("release_report", NEW, stdout=human)
    text = human.getvalue()
    assert "1 newly broken" in text and "- Gamma: newly_broken" in text
    assert text.index("Gamma") < text.index("Delta")


def test_a_version_without_targets_or_results_gives_empty_sections(
    client, fake_pypi, fleet_targets, projects, django_capture_on_commit_callbacks
):
    out = io.StringIO()
    call_command("release_report", "3.0.0", "--json", stdout=out)
    nothing = json.loads(out.getvalue())
    assert nothing["targets"] == [] and nothing["approved"] is False
    assert nothing["previous_version"] == "2.14.1"
    assert all(section["projects"] == [] for section in nothing["sections"])
    assert len(nothing["sections"]) == 7
    assert set(nothing["summary"].values()) == {0}

    detect(django_capture_on_commit_callbacks)  # targets, no run yet
    api = client.get(f"/api/v1/release-reports/{NEW}/").json()
    assert [target["label"] for target in api["targets"]] == [
        "2.15.0+cpu py3.11",
        "2.15.0+cu126 py3.11",
    ]
    assert api["approved"] is False and api["summary"]["projects"] == 0
    assert all(section["projects"] == [] for section in api["sections"])
    page = client.get(reverse("ci_runners:release_report", kwargs={"version": NEW}))
    assert page.status_code == 200 and "No project has a result" in page.content.decode()


def test_bad_versions_and_formats_are_clear_client_errors(client, db):
    assert client.get("/api/v1/release-reports/not-a-version/").status_code == 404
    assert client.get("/runs/releases/not-a-version/").status_code == 404
    assert client.get("/runs/releases/2.15.0/", {"format": "xml"}).status_code == 400
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not a PyTorch version"):
        call_command("release_report", "not-a-version", "--json", stdout=io.StringIO())


def test_the_releases_page_links_each_version_to_its_report(client, fleet_targets):
    page = client.get(reverse("ci_runners:release_list")).content.decode()
    assert page.index("PyTorch 2.14.1") < page.index("PyTorch 2.13.0")
    assert reverse("ci_runners:release_report", kwargs={"version": "2.14.1"}) in page
    fleet_page = client.get(reverse("ci_runners:fleet")).content.decode()
    assert reverse("ci_runners:release_list") in fleet_page


def test_the_api_answer_conforms_to_its_schema_with_results_and_when_fuzzed(readiness):
    """The real report (every class present) validates against the published schema, and
    fuzzed versions never answer 5xx."""
    import schemathesis
    from django.core import signals
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
        operation = schema["/api/v1/release-reports/{version}/"]["GET"]
        case = operation.Case(path_parameters={"version": NEW})
        response = case.call()
        assert response.status_code == 200 and response.json()["summary"]["projects"] == 7
        case.validate_response(response, checks=[response_schema_conformance])

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=10_000,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        def fuzz(case):
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        fuzz()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
