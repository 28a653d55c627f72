"""Builders for the GitHub sync tests: a typical repository on the fake GitHub, its project,
the project synced."""

from datetime import UTC, datetime, timedelta

import factory

from registry.models import Project
from registry.services import GitHubSyncResult, project_sync_github
from tests.registry.factories import ProjectFactory
from tests.registry.fake_github import FakeCommit, FakeGitHub

NOW = datetime.now(UTC).replace(microsecond=0)


def healthy_repository(fake: FakeGitHub, owner: str = "acme", name: str = "widgets", **extra):
    """A repository with known figures: 7 commits in 90 days by 3 authors, plus 2 older ones."""
    commits = [
        FakeCommit("a" * 40, NOW - timedelta(days=1), login="Alice", email="alice@acme.org"),
        FakeCommit("b" * 40, NOW - timedelta(days=2), login="alice", email="a@home.org"),
        FakeCommit("c" * 40, NOW - timedelta(days=5), login="bob", email="bob@acme.org"),
        FakeCommit("d" * 40, NOW - timedelta(days=10), login=None, email="carol@acme.org"),
        FakeCommit("e" * 40, NOW - timedelta(days=30), login=None, email="Carol@acme.org"),
        FakeCommit("f" * 40, NOW - timedelta(days=60), login="bob", email="bob@acme.org"),
        FakeCommit("0" * 40, NOW - timedelta(days=89), login="bob", email="bob@acme.org"),
        FakeCommit("1" * 40, NOW - timedelta(days=91), login="dave", email="dave@acme.org"),
        FakeCommit("2" * 40, NOW - timedelta(days=200), login="erin", email="erin@acme.org"),
    ]
    fields = {
        "id": 4242,
        "stars": 1234,
        "forks": 56,
        "open_issues": 7,
        "license_spdx": "Apache-2.0",
        "default_branch": "main",
        "pushed_at": NOW - timedelta(hours=3),
        "files": [
            "README.md",
            "LICENSE",
            "pyproject.toml",
            ".github/CODEOWNERS",
            ".github/workflows/tests.yml",
            "docs/CONTRIBUTING.md",
            "docs/index.md",
            "src/widgets/__init__.py",
        ],
        "commits": commits,
        "latest_release": ("v2.1.0", NOW - timedelta(days=4)),
    }
    fields.update(extra)
    return fake.add_repository(owner, name, **fields)


class AcmeProjectFactory(ProjectFactory):
    """The project of a repository on the fake GitHub: acme/<slug> unless `repository` is given,
    slug "widgets" unless given, so `AcmeProjectFactory()` is the project of
    `healthy_repository(fake)`."""

    class Params:
        repository = factory.LazyAttribute(lambda project: f"acme/{project.slug}")

    slug = "widgets"


def synced(project: Project) -> Project:
    """The project after a successful sync (read again from the database)."""
    assert project_sync_github(project=project).result == GitHubSyncResult.SYNCED
    return Project.objects.get(pk=project.pk)
