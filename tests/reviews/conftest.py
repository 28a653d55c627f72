"""Fixtures of the review tests: users in their roles, fake GitHub and PyPI, eager Celery."""

from datetime import UTC, datetime, timedelta

import pytest

from reviews.roles import REVIEWERS_GROUP, STAFF_GROUP, VOTING_GROUP
from tests.factories import UserFactory
from tests.fakes.http import FakeHTTPServer, Reply
from tests.registry.factories import CategoryFactory, SubcategoryFactory
from tests.registry.fake_github import FakeCommit, FakeGitHub

DESCRIPTION = " ".join(["word"] * 150)
HEALTHY_FILES = [
    "LICENSE",
    "README.md",
    "CONTRIBUTING.md",
    "CODE_OF_CONDUCT.md",
    ".github/CODEOWNERS",
    ".github/workflows/ci.yml",
    "src/torchgood/__init__.py",
]


def answers(**overrides) -> dict:
    data = {
        "kind": "ecosystem",
        "project_name": "TorchGood",
        "contact_emails": ["lead@example.org", "second@example.org"],
        "summary": "A good PyTorch library.",
        "description": DESCRIPTION,
        "similar_projects": "none",
        "repository_url": "https://github.com/goodorg/torchgood",
        "license": "BSD-3-Clause",
        "maintainer_handles": ["alice", "bob"],
        "website_url": "https://torchgood.example.org",
        "documentation_url": "https://torchgood.example.org/docs",
        "documentation": "Getting started at /docs/quickstart, full docs at /docs.",
        "ci_description": "GitHub Actions on CPU and CUDA.",
        "pytorch_versions": "2.13, 2.14",
        "pytorch_components": "torch.nn, torch.compile",
        "pypi_name": "torchgood",
    }
    data.update(overrides)
    return data


def form_data(**overrides) -> dict:
    """The same answers as an HTML form posts them."""
    data = answers(**overrides)
    for key in ("contact_emails", "maintainer_handles", "additional_repos"):
        if isinstance(data.get(key), list):
            data[key] = "\n".join(data[key])
    return data


@pytest.fixture(autouse=True)
def eager_celery():
    """Tasks run in-process (their on_commit enqueueing is what the tests capture)."""
    from config.celery import app

    before = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


def _user(username: str, *groups: str, **extra):
    return UserFactory(username=username, groups=list(groups), **extra)


@pytest.fixture
def make_user(db):
    return _user


@pytest.fixture
def applicant(db):
    return _user("applicant")


@pytest.fixture
def other_applicant(db):
    return _user("intruder")


@pytest.fixture
def reviewer(db):
    return _user("reviewer", REVIEWERS_GROUP)


@pytest.fixture
def staff_user(db):
    return _user("staffer", STAFF_GROUP)


@pytest.fixture
def voters(db):
    return [_user(f"voter{i}", VOTING_GROUP) for i in range(1, 4)]


@pytest.fixture
def category(db):
    return SubcategoryFactory(name="Vision", parent=CategoryFactory(name="Modeling"))


def healthy_repository(github: FakeGitHub, owner="goodorg", name="torchgood", **fields):
    now = datetime.now(UTC)
    commits = [
        FakeCommit(
            sha=f"{i:040x}",
            date=now - timedelta(days=i % 80, hours=1),
            login=f"dev{i % 6}",
            email=f"dev{i % 6}@example.org",
            name=f"Dev {i % 6}",
        )
        for i in range(40)
    ]
    defaults = {
        "stars": 1200,
        "forks": 80,
        "license_spdx": "BSD-3-Clause",
        "pushed_at": now - timedelta(days=1),
        "files": list(HEALTHY_FILES),
        "commits": commits,
        "latest_release": ("v1.2.0", now - timedelta(days=20)),
    }
    defaults.update(fields)
    return github.add_repository(owner, name, **defaults)


def github_unavailable(github: FakeGitHub, owner="goodorg", name="torchgood") -> None:
    """GitHub answers 503 for the repository, until `healthy_repository` routes it again."""
    github.server.route(
        "GET", f"/repos/{owner}/{name}", Reply(503, {"message": "Service Unavailable"})
    )


@pytest.fixture
def github(settings):
    with FakeGitHub() as fake:
        settings.GITHUB_API_URL = fake.url
        settings.GITHUB_TOKEN = ""
        yield fake


@pytest.fixture
def pypi(settings):
    """A fake PyPI JSON API: `pypi.publish(name)` makes a package appear."""
    with FakeHTTPServer() as server:
        settings.PYPI_JSON_URL = server.url + "/pypi/{name}/json"

        def publish(name: str, version: str = "1.2.0") -> None:
            server.route(
                "GET",
                f"/pypi/{name}/json",
                Reply(
                    200,
                    {
                        "info": {"name": name, "version": version},
                        "urls": [{"filename": f"{name}-{version}-py3-none-any.whl"}],
                        "releases": {version: [{"filename": "x.whl"}]},
                    },
                ),
            )

        server.publish = publish
        yield server
