"""Starting and cancelling compatibility runs over the API, under the project page's rule
(staff and the project's maintainers), and the maintainers' hourly allowance of runs per
project, on the API (429 with Retry-After) and on the page (a message, no run)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from ci_runners import services
from ci_runners.models import CompatRun
from ci_runners.states import CellState
from registry.models import MaintainerIdentity
from reviews.roles import REVIEWERS_GROUP
from tests.ci_runners.factories import TorchTargetFactory
from tests.registry.factories import ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def targets(db):
    return [TorchTargetFactory(version="2.13.0"), TorchTargetFactory(version="2.14.1")]


@pytest.fixture
def project(db):
    return ProjectFactory(
        slug="torchthing", repository="thingorg/torchthing", maintainers=["Alice-GH", "bob-gh"]
    )


@pytest.fixture
def people(make_user, project):
    def maintainer(username: str, handle: str):
        user = make_user(username)
        MaintainerIdentity.objects.create(user=user, github_handle=handle, verified=True)
        return user

    ProjectFactory(slug="elsewhere", repository="else/where", maintainers=["mallory-gh"])
    reviewer = make_user("rita")  # a TAC reviewer: no say over runs
    reviewer.groups.add(Group.objects.get_or_create(name=REVIEWERS_GROUP)[0])
    return {
        "anonymous": None,
        "other": make_user("oscar"),
        "reviewer": reviewer,
        "other_maintainer": maintainer("mallory", "mallory-gh"),
        "maintainer": maintainer("alice", "alice-gh"),
        "co_maintainer": maintainer("bob", "bob-gh"),
        "staff": make_user("stella", is_staff=True),
    }


def as_user(api, user):
    api.force_authenticate(user)
    return api


def start(api, user, slug="torchthing"):
    return as_user(api, user).post("/api/v1/runs/", {"project": slug}, format="json")


WHO = [
    ("anonymous", 401),
    ("other", 403),
    ("reviewer", 403),
    ("other_maintainer", 403),
    ("maintainer", 201),
    ("staff", 201),
]


@pytest.mark.parametrize(("who", "expected"), WHO)
def test_start_a_run(api, people, project, targets, who, expected):
    response = start(api, people[who])
    assert response.status_code == expected, response.content
    if expected == 201:
        run = CompatRun.objects.get()
        assert response.json()["id"] == run.pk and response.json()["project"] == "torchthing"
        assert run.trigger == "manual" and run.requested_by == people[who]
        assert response.json()["cell_states"] == {"queued": 2}
    else:
        assert not CompatRun.objects.exists()


def test_start_an_unknown_project_or_without_targets_is_a_400(api, people, project):
    assert start(api, people["staff"], slug="nope").status_code == 400
    response = start(api, people["staff"])  # no active target yet
    assert response.status_code == 400
    assert "No active PyTorch target" in response.json()["detail"]
    assert not CompatRun.objects.exists()


@pytest.fixture
def run(project, targets):
    return services.compat_run_request(project=project, trigger="manual")


@pytest.mark.parametrize(("who", "expected"), [(w, 200 if e == 201 else e) for w, e in WHO])
def test_cancel_a_run(api, people, run, who, expected):
    response = as_user(api, people[who]).post(f"/api/v1/runs/{run.pk}/cancel/")
    assert response.status_code == expected, response.content
    states = set(run.cells.values_list("state", flat=True))
    if expected == 200:
        assert response.json()["cancelled"] == 2
        assert response.json()["run"]["cell_states"] == {"cancelled": 2}
        assert states == {CellState.CANCELLED}
    else:
        assert states == {CellState.QUEUED}


def test_an_applicants_run_is_cancelled_by_staff_alone(api, people, targets):
    run = services.compat_run_request(
        source_url="https://github.com/someone/applied", trigger="review"
    )
    assert (
        as_user(api, people["maintainer"]).post(f"/api/v1/runs/{run.pk}/cancel/").status_code == 404
    )
    assert as_user(api, people["staff"]).post(f"/api/v1/runs/{run.pk}/cancel/").status_code == 200


# -- the maintainers' hourly allowance -------------------------------------------------------


@pytest.fixture
def allowance(settings):
    settings.COMPAT_MAINTAINER_RUNS_PER_HOUR = 2
    return 2


def test_maintainers_share_an_hourly_allowance_per_project(
    api, people, project, targets, allowance
):
    assert start(api, people["maintainer"]).status_code == 201
    assert start(api, people["co_maintainer"]).status_code == 201
    refused = start(api, people["maintainer"])
    assert refused.status_code == 429
    assert 3500 < int(refused["Retry-After"]) <= 3601
    assert "may start 2 runs an hour" in refused.json()["detail"]
    assert CompatRun.objects.count() == 2
    # Staff are not limited, and their runs do not count against the maintainers.
    assert start(api, people["staff"]).status_code == 201
    # An hour after the oldest of the two, one may start again.
    oldest = CompatRun.objects.filter(requested_by=people["maintainer"]).get()
    CompatRun.objects.filter(pk=oldest.pk).update(created_at=timezone.now() - timedelta(minutes=61))
    assert start(api, people["co_maintainer"]).status_code == 201
    assert start(api, people["co_maintainer"]).status_code == 429


def test_the_allowance_is_per_project(api, people, project, targets, allowance):
    ProjectFactory(slug="second", repository="thingorg/second", maintainers=["alice-gh"])
    for _ in range(2):
        assert start(api, people["maintainer"]).status_code == 201
    assert start(api, people["maintainer"]).status_code == 429
    assert start(api, people["maintainer"], slug="second").status_code == 201


def test_the_page_refuses_past_the_allowance_with_a_message(
    client, people, project, targets, allowance
):
    client.force_login(people["maintainer"])
    url = reverse("ci_runners:project_run_now", args=[project.slug])
    for _ in range(2):
        assert client.post(url).status_code == 302
    page = client.post(url, follow=True).content.decode()
    assert "may start 2 runs an hour; the next one can start in 60 minutes" in page
    fragment = client.post(url, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200  # htmx swaps it in: the refusal is the notice
    assert "may start 2 runs an hour" in fragment.content.decode()
    assert CompatRun.objects.count() == 2
    client.force_login(people["staff"])
    assert client.post(url).status_code == 302
    assert CompatRun.objects.count() == 3


def test_a_nul_byte_in_the_project_is_a_400(api, people, project, targets):
    assert start(api, people["staff"], slug="torch\x00thing").status_code == 400
    assert not CompatRun.objects.exists()
