"""The OpenAPI schema: valid with no warnings, served with its two UIs, and fuzzed with
schemathesis (bounded) against the WSGI application: no operation may answer 5xx."""

from datetime import date

import pytest
import schemathesis
from django.core import signals
from django.core.management import call_command
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from knox.models import AuthToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.factories import UserFactory
from tests.registry.factories import CategoryFactory, ProjectFactory, SubcategoryFactory

pytestmark = pytest.mark.django_db


def test_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert "/api/v1/projects/" in target.read_text()


def test_schema_and_ui_pages(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/schema/?format=json").json()["openapi"].startswith("3.")
    docs = client.get("/api/docs/").content.decode()
    redoc = client.get("/api/redoc/").content.decode()
    assert "swagger-ui" in docs and "redoc" in redoc
    # The UI assets come from our own static files: no CDN is reachable from every network.
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs
    assert "/static/drf_spectacular_sidecar/redoc/" in redoc
    assert "cdn.jsdelivr.net" not in docs + redoc


@pytest.fixture
def api_schema(db, django_user_model):
    from django.core.wsgi import get_wsgi_application

    category = CategoryFactory(name="Modeling", slug="modeling")
    sub = CategoryFactory(name="Vision", slug="vision", parent=category)
    ProjectFactory(
        slug="torchgeo", name="TorchGeo", category=sub, works_with=["2.14"],
        accepted_on=date(2025, 1, 1),
    )  # fmt: skip
    ProjectFactory(slug="oldie", name="Oldie", status="retired")
    # As Django's test client does: keep the test's connection (and transaction) open.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def staff_token(db):
    user = UserFactory(username="fuzz-staff", is_staff=True, is_superuser=True)
    return AuthToken.objects.create(user=user)[1]


@pytest.fixture
def no_throttle(monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {})
    monkeypatch.setattr(SimpleRateThrottle, "get_rate", lambda self: None)


FUZZ = settings(
    max_examples=20,
    deadline=10_000,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CHECKS = [not_a_server_error, response_schema_conformance]


def fuzz_every_operation(
    api_schema, headers: dict, *, prefixes: tuple[str, ...] = ("",), ids: dict | None = None
) -> list[str]:
    """Up to FUZZ.max_examples cases per operation (those whose path starts with one of
    `prefixes`); returns the operations tried. `ids` pins the `{id}` of paths under a prefix
    to a row that exists, so that the cases reach past the 404."""
    tried = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith(prefixes):
            continue
        pinned = next(
            (pk for prefix, pk in (ids or {}).items() if operation.path.startswith(prefix)), None
        )
        fuzz_operation(operation, headers=headers, pinned_id=pinned)
        tried.append(operation.label)
    return tried


def fuzz_operation(operation, *, headers: dict, pinned_id: int | None) -> None:
    @given(case=operation.as_strategy())
    @FUZZ
    def check(case):
        if pinned_id is not None and "id" in (case.path_parameters or {}):
            case.path_parameters["id"] = pinned_id
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()


# The lazy pytest loader of schemathesis (from_fixture) does not run under pytest 9, so the
# operations are driven here, one bounded Hypothesis run each.
def test_fuzz_anonymous(api_schema, no_throttle):
    tried = fuzz_every_operation(api_schema, headers={})
    assert "GET /api/v1/projects/" in tried


def test_fuzz_as_staff(api_schema, no_throttle, staff_token):
    tried = fuzz_every_operation(api_schema, headers={"Authorization": f"Token {staff_token}"})
    assert "POST /api/v1/auth/login/" in tried


def test_criteria_results_conform_to_the_schema_before_and_after_measurement(
    api_schema, staff_token
):
    """`automated_outcome` is '' until a criterion is measured (and always for the human
    criteria): the schema's enum says so, so a real response validates against it."""
    from reviews.checks import Measurement
    from reviews.services import criteria_ensure_rows
    from reviews.services.results import criterion_result_record
    from tests.reviews.factories import SubmissionFactory

    submission = SubmissionFactory(state="in_review")
    criteria_ensure_rows(submission=submission)
    operation = api_schema["/api/v1/review-queue/{id}/criteria/"]["GET"]
    headers = {"Authorization": f"Token {staff_token}"}
    case = operation.Case(path_parameters={"id": submission.pk})
    response = case.call(headers=headers)
    assert response.status_code == 200
    assert {row["automated_outcome"] for row in response.json()} == {""}
    case.validate_response(response, checks=[response_schema_conformance])

    criterion_result_record(
        submission=submission,
        measurement=Measurement(criterion=14, outcome="met", value="1200 stars", url=""),
    )
    response = case.call(headers=headers)
    assert {row["automated_outcome"] for row in response.json()} == {"", "met"}
    case.validate_response(response, checks=[response_schema_conformance])


@pytest.fixture
def review_and_run(db):
    """An application in review of a project whose maintainer is `fuzz-maintainer`, and a run
    of that project: the review moves and run endpoints fuzzed on real rows."""
    from ci_runners.services import compat_run_request
    from registry.models import MaintainerIdentity
    from tests.ci_runners.factories import TorchTargetFactory
    from tests.reviews.factories import SubmissionFactory

    project = ProjectFactory(slug="fuzzed", repository="fuzz/fuzzed", maintainers=["fuzz-gh"])
    maintainer = UserFactory(username="fuzz-maintainer")
    MaintainerIdentity.objects.create(user=maintainer, github_handle="fuzz-gh", verified=True)
    TorchTargetFactory(version="2.14.1")
    SubcategoryFactory()
    submission = SubmissionFactory(state="in_review", project=project, repository="fuzz/fuzzed")
    application = SubmissionFactory(applicant=maintainer, state="changes_requested")
    run = compat_run_request(project=project, trigger="manual")
    return {
        "ids": {
            "/api/v1/review-queue/": submission.pk,
            "/api/v1/applications/": application.pk,
            "/api/v1/runs/": run.pk,
        },
        "maintainer": maintainer,
    }


MOVES_AND_RUNS = ("/api/v1/review-queue/", "/api/v1/applications/", "/api/v1/runs/")


@pytest.mark.parametrize("who", ["reviewer", "voter", "staff", "maintainer"])
def test_fuzz_review_moves_and_runs_on_real_rows(api_schema, no_throttle, review_and_run, who):
    """The TAC's moves, the discussion, the tally and starting/cancelling runs, each caller
    on rows that exist (an application in review, a run): no 5xx, responses as documented."""
    from django.contrib.auth.models import Group

    from reviews.roles import REVIEWERS_GROUP, VOTING_GROUP

    if who == "maintainer":
        user = review_and_run["maintainer"]
    else:
        user = UserFactory(username=f"fuzz-{who}", is_staff=who == "staff")
        group = {"reviewer": REVIEWERS_GROUP, "voter": VOTING_GROUP}.get(who)
        if group:
            user.groups.add(Group.objects.get_or_create(name=group)[0])
    token = AuthToken.objects.create(user=user)[1]
    tried = fuzz_every_operation(
        api_schema,
        headers={"Authorization": f"Token {token}"},
        prefixes=MOVES_AND_RUNS,
        ids=review_and_run["ids"],
    )
    assert {
        "POST /api/v1/review-queue/{id}/transition/",
        "GET /api/v1/review-queue/{id}/tally/",
        "POST /api/v1/applications/{id}/comments/",
        "POST /api/v1/runs/",
        "POST /api/v1/runs/{id}/cancel/",
    } <= set(tried)
