"""On sync, the repository's own files: the PyPI name, maintainer candidates and the
`[tool.pytorch-ecosystem]` table, against the fake GitHub and a fake PyPI (real PyGithub,
real requests, real PostgreSQL)."""

import base64
import textwrap

import pytest

from registry.models import Project, ProjectExemption
from registry.services import GitHubSyncResult, project_sync_github
from registry.sources import github
from tests.fakes.http import FakeHTTPServer, Reply
from tests.registry.fake_github import FakeCollaborator
from tests.registry.github_fixtures import AcmeProjectFactory, healthy_repository, synced

pytestmark = pytest.mark.django_db

PYPROJECT = textwrap.dedent(
    """
    [project]
    name = "acme_widgets"
    version = "1.0"

    [tool.pytorch-ecosystem]
    maintainers = ["Alice", "@carol", "not a handle"]
    contact = "team@acme.org"
    exemptions = [
      { criterion = 3, reason = "Docs live in the parent project." },
      { criterion = 12, reason = "Single-maintainer research code." },
    ]
    colour = "blue"

    [tool.pytorch-ecosystem.test]
    pytest_args = ["-x"]
    timeout_s = 1200
    source_override = "https://evil.example/repo.git"
    """
)
CODEOWNERS = "# owners\n* @alice @acme/core dev@acme.org\n/docs/ @dora  # docs team\n"
MAINTAINERS = "- Erin (@erin-x), erin@acme.org\n- [Fay](https://github.com/fay)\n"


@pytest.fixture
def fake_pypi(settings):
    """PyPI's JSON API: `fake_pypi.publish(name)` makes a package appear; others are 404."""
    with FakeHTTPServer() as server:
        settings.PYPI_JSON_URL = server.url + "/pypi/{name}/json"

        def publish(name: str, listed_as: str | None = None) -> None:
            body = {"info": {"name": listed_as or name, "version": "1.0"}, "releases": {}}
            server.route("GET", f"/pypi/{name}/json", Reply(200, body))

        server.publish = publish
        yield server


def acme_repository(fake, **extra):
    contents = {
        "pyproject.toml": PYPROJECT,
        ".github/CODEOWNERS": CODEOWNERS,
        "MAINTAINERS.md": MAINTAINERS,
    }
    files = ["README.md", "pyproject.toml", ".github/CODEOWNERS", "MAINTAINERS.md", "src/a.py"]
    return healthy_repository(
        fake, files=extra.pop("files", files), contents=extra.pop("contents", contents), **extra
    )


# --- the fake serves files as GitHub does ----------------------------------------------------


def test_the_fake_serves_file_contents_base64_and_collaborators(fake_github):
    import requests

    acme_repository(fake_github, collaborators=[FakeCollaborator("alice", "admin")])
    base = f"{fake_github.url}/repos/acme/widgets"

    body = requests.get(f"{base}/contents/pyproject.toml", timeout=5).json()
    assert body["type"] == "file" and body["encoding"] == "base64"
    assert base64.b64decode(body["content"]).decode() == PYPROJECT
    people = requests.get(f"{base}/collaborators", timeout=5).json()
    assert people[0]["login"] == "alice" and people[0]["permissions"]["admin"] is True


def test_fetch_repository_files_reads_only_what_the_listing_shows(fake_github):
    acme_repository(fake_github)

    files = github.fetch_repository_files(owner="acme", name="widgets")

    assert files.pyproject == PYPROJECT and files.setup_cfg is None
    assert files.codeowners == CODEOWNERS and files.maintainers == (MAINTAINERS,)
    assert files.collaborators is None  # 403: no push access, not an error
    contents = [p for p in fake_github.paths() if "/contents/" in p]
    assert "/repos/acme/widgets/contents/setup.cfg" not in contents  # not there: not asked
    assert "/repos/acme/widgets" not in fake_github.paths()  # the lazy repository is not read


# --- PyPI name ------------------------------------------------------------------------------


def test_sync_sets_the_pypi_name_pypi_confirms(fake_github, fake_pypi):
    acme_repository(fake_github)
    fake_pypi.publish("acme_widgets", listed_as="acme-widgets")

    project = synced(AcmeProjectFactory())

    assert (project.pypi_name, project.pypi_name_origin) == ("acme-widgets", "sync")
    assert [r.path for r in fake_pypi.requests] == ["/pypi/acme_widgets/json"]


def test_a_name_pypi_does_not_know_is_not_set(fake_github, fake_pypi):
    acme_repository(fake_github)

    project = synced(AcmeProjectFactory())

    assert (project.pypi_name, project.pypi_name_origin) == ("", "")
    assert len(fake_pypi.requests) == 1


def test_setup_cfg_name_when_pyproject_has_none(fake_github, fake_pypi):
    healthy_repository(
        fake_github,
        files=["setup.cfg", "pyproject.toml"],
        contents={
            "setup.cfg": "[metadata]\nname = gears\n",
            "pyproject.toml": "[build-system]\nrequires = ['setuptools']\n",
        },
    )
    fake_pypi.publish("gears")

    project = synced(AcmeProjectFactory())

    assert (project.pypi_name, project.pypi_name_origin) == ("gears", "sync")


@pytest.mark.parametrize(
    ("name", "origin"),
    [("acme-old", "staff"), ("acme-old", "maintainer"), ("acme-old", "landscape"), ("", "staff")],
)
def test_a_name_set_elsewhere_is_never_overwritten(fake_github, fake_pypi, name, origin):
    acme_repository(fake_github)
    fake_pypi.publish("acme_widgets")

    project = synced(AcmeProjectFactory(pypi_name=name, pypi_name_origin=origin))

    assert (project.pypi_name, project.pypi_name_origin) == (name, origin)
    assert fake_pypi.requests == []


def test_a_name_found_by_an_earlier_sync_follows_the_repository(fake_github, fake_pypi):
    acme_repository(fake_github)
    fake_pypi.publish("acme_widgets")

    project = synced(AcmeProjectFactory(pypi_name="acme-old", pypi_name_origin="sync"))

    assert project.pypi_name == "acme_widgets"


def test_pypi_down_leaves_the_name_and_the_sync_succeeds(fake_github, fake_pypi):
    acme_repository(fake_github)
    fake_pypi.route("GET", "/pypi/acme_widgets/json", Reply(503, "unavailable"))

    project = synced(AcmeProjectFactory(pypi_name="acme-old", pypi_name_origin="sync"))

    assert (project.pypi_name, project.pypi_name_origin) == ("acme-old", "sync")
    assert project.maintainer_candidates  # the rest was recorded
    assert project.snapshots.count() == 1


# --- maintainer candidates ----------------------------------------------------------------------


def test_candidates_from_every_source_deduplicated_and_sorted(fake_github, fake_pypi):
    acme_repository(
        fake_github,
        collaborators=[
            FakeCollaborator("ALICE", "admin"),  # also in CODEOWNERS and the file
            FakeCollaborator("gus", "maintain"),
            FakeCollaborator("hal", "write"),  # no admin or maintain: not a candidate
            FakeCollaborator("ivy", "read"),
        ],
    )

    project = synced(AcmeProjectFactory(maintainers=["zed", "CAROL"]))

    assert project.maintainer_candidates == [
        {"handle": "Alice", "source": "repository_file"},
        {"handle": "dora", "source": "codeowners"},
        {"handle": "erin-x", "source": "maintainers_file"},
        {"handle": "fay", "source": "maintainers_file"},
        {"handle": "gus", "source": "collaborator"},
    ]
    # Candidates only (sign-in promotes them); a maintainer already is no candidate.
    assert project.maintainers == ["zed", "CAROL"]


def test_collaborators_403_is_no_candidates_not_an_error(fake_github):
    healthy_repository(fake_github, files=["README.md"])

    outcome = project_sync_github(project=AcmeProjectFactory())

    assert outcome.result == GitHubSyncResult.SYNCED
    project = Project.objects.get()
    assert project.maintainer_candidates == []
    assert project.repo_config["read_at"] and project.repo_config["found"] is False
    assert "/repos/acme/widgets/collaborators" in fake_github.paths()


def test_candidates_are_capped(fake_github):
    owners = " ".join(f"@dev{n:03d}" for n in range(80))
    healthy_repository(fake_github, files=["CODEOWNERS"], contents={"CODEOWNERS": f"* {owners}"})

    project = synced(AcmeProjectFactory())

    assert len(project.maintainer_candidates) == 50
    assert project.maintainer_candidates[0] == {"handle": "dev000", "source": "codeowners"}


# --- the repository file -----------------------------------------------------------------------


def test_repo_config_is_stored_with_its_problems(fake_github, fake_pypi):
    acme_repository(fake_github)

    config = synced(AcmeProjectFactory()).repo_config

    assert config["found"] is True
    assert config["maintainers"] == ["Alice", "carol"]
    assert config["contact"] == "team@acme.org"
    assert config["test"] == {"pytest_args": ["-x"], "timeout_s": 1200}
    problems = " | ".join(config["problems"])
    assert "'colour'" in problems and "'source_override'" in problems
    assert "'not a handle'" in problems
    assert config["read_at"]


def test_exemptions_follow_the_file(fake_github, fake_pypi):
    repository = acme_repository(fake_github)
    project = AcmeProjectFactory()
    listing = ProjectExemption.objects.create(
        project=project, criterion=7, reason="Claimed on the page.", source="listing"
    )
    synced(project)
    standing = project.exemptions.filter(withdrawn_at__isnull=True)
    assert sorted(standing.values_list("criterion", "source")) == [
        (3, "repository_file"),
        (7, "listing"),
        (12, "repository_file"),
    ]

    # The file drops criterion 12, changes the reason of 3 and claims 7 (the page has it).
    repository.contents["pyproject.toml"] = PYPROJECT.replace(
        '{ criterion = 12, reason = "Single-maintainer research code." },',
        '{ criterion = 7, reason = "From the file." },',
    ).replace("Docs live in the parent project.", "Docs live elsewhere.")
    repository.stars += 1  # a changed repository: the sync reads its files again
    config = synced(project).repo_config

    standing = {e.criterion: e for e in project.exemptions.filter(withdrawn_at__isnull=True)}
    assert sorted(standing) == [3, 7]
    assert standing[3].reason == "Docs live elsewhere." and standing[7].pk == listing.pk
    withdrawn = project.exemptions.exclude(withdrawn_at=None)
    assert sorted(withdrawn.values_list("criterion", flat=True)) == [3, 12]
    assert any("criterion 7" in problem for problem in config["problems"])


def test_an_unreadable_file_changes_nothing_it_said(fake_github, fake_pypi):
    repository = acme_repository(fake_github)
    project = synced(AcmeProjectFactory())
    repository.contents["pyproject.toml"] = "[tool.pytorch-ecosystem\nbroken"
    repository.stars += 1

    project = synced(project)

    assert project.exemptions.filter(withdrawn_at__isnull=True).count() == 2
    assert project.repo_config["contact"] == "team@acme.org"
    assert project.repo_config["problems"][0].startswith("pyproject.toml is not valid TOML")
    assert {"handle": "carol", "source": "repository_file"} in project.maintainer_candidates


def test_github_failure_while_reading_files_keeps_everything(fake_github, fake_pypi):
    repository = acme_repository(fake_github)
    project = synced(AcmeProjectFactory())
    before = (project.repo_config, project.maintainer_candidates)
    repository.stars += 1
    fake_github.server.route(
        "GET", "/repos/acme/widgets/contents/pyproject.toml", Reply(502, {"message": "Bad"})
    )

    project = synced(project)  # the health sync itself succeeds

    assert (project.repo_config, project.maintainer_candidates) == before
    assert project.exemptions.filter(withdrawn_at__isnull=True).count() == 2
    assert project.snapshots.count() == 2


def test_unchanged_repository_reads_its_files_once(fake_github, fake_pypi):
    acme_repository(fake_github)
    project = synced(AcmeProjectFactory())
    Project.objects.filter(pk=project.pk).update(repo_config={}, maintainer_candidates=[])
    fake_github.requests.clear()

    outcome = project_sync_github(project=Project.objects.get(pk=project.pk))

    assert outcome.result == GitHubSyncResult.UNCHANGED
    project.refresh_from_db()
    assert project.repo_config["found"] and project.maintainer_candidates
    assert "/repos/acme/widgets/contents/pyproject.toml" in fake_github.paths()
    fake_github.requests.clear()
    assert project_sync_github(project=project).result == GitHubSyncResult.UNCHANGED
    assert len(fake_github.requests) == 1  # read already: the 304 alone


# --- staff edit the name in the admin ------------------------------------------------------------


def test_staff_editing_the_pypi_name_makes_it_theirs(admin_client, fake_github, fake_pypi):
    project = AcmeProjectFactory(pypi_name="acme-widgets", pypi_name_origin="sync")
    url = f"/admin/registry/project/{project.pk}/change/"
    form = admin_client.get(url).context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and not isinstance(value, list | dict)
    }
    data.update(
        {
            "pypi_name": "acme-widgets-core",
            "category": "",
            "snapshots-TOTAL_FORMS": "0",
            "snapshots-INITIAL_FORMS": "0",
            "additional_repos": "[]",
            "maintainers": "[]",
            "flags": "[]",
            "landscape_extra": "{}",
            "declared": "{}",
            "widenable_with": "[]",
        }
    )

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    project.refresh_from_db()
    assert (project.pypi_name, project.pypi_name_origin) == ("acme-widgets-core", "staff")
    acme_repository(fake_github)
    fake_pypi.publish("acme_widgets")
    assert synced(project).pypi_name == "acme-widgets-core"
