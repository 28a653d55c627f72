"""GitHub sync: real PyGithub against a local fake GitHub API, real PostgreSQL."""

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from io import StringIO
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from config.celery import app as celery_app
from registry.models import Project, RepoSnapshot
from registry.services import GitHubSyncResult, project_sync_github
from registry.sources import github
from registry.tasks import sync_github_all, sync_github_project
from tests.registry.factories import ProjectFactory
from tests.registry.fake_github import FakeCommit
from tests.registry.github_fixtures import NOW, AcmeProjectFactory, healthy_repository


@pytest.fixture
def closed_port_url(settings) -> str:
    """The URL of a local port nobody listens on: GitHub unreachable."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    settings.GITHUB_API_URL = url
    return url


FULL_SYNC_PATHS = [
    "/repos/acme/widgets",
    "/repos/acme/widgets/contents/",
    "/repos/acme/widgets/contents/.github",
    "/repos/acme/widgets/contents/.github/workflows",
    "/repos/acme/widgets/contents/docs",
    "/repos/acme/widgets/commits",
    "/repos/acme/widgets/releases/latest",
]


# --- the pure fetch -----------------------------------------------------------------------------


def test_fetch_repository_health_reads_every_figure(fake_github):
    healthy_repository(fake_github)

    health = github.fetch_repository_health(owner="acme", name="widgets")

    assert isinstance(health, github.RepositoryHealth)
    assert (health.github_id, health.full_name) == (4242, "acme/widgets")
    assert health.html_url == "https://github.com/acme/widgets"
    assert health.owner_type == "Organization"
    assert (health.stars, health.forks, health.open_issues) == (1234, 56, 7)
    assert health.license_spdx == "Apache-2.0"
    assert health.default_branch == "main"
    assert health.pushed_at == NOW - timedelta(hours=3)
    assert health.commits_90d == 7
    assert health.contributors_90d == 3  # alice (two spellings), bob, carol (by email)
    assert health.latest_release == "v2.1.0"
    assert health.latest_release_at == NOW - timedelta(days=4)
    assert health.has_license and health.has_readme and health.has_ci_workflows
    assert health.has_codeowners  # in .github/
    assert health.has_contributing  # in docs/
    assert not health.has_code_of_conduct and not health.has_security
    assert health.etag.startswith('W/"')
    assert fake_github.paths() == FULL_SYNC_PATHS
    commits_request = fake_github.requests[5]
    assert "since=" in commits_request.query and "per_page=100" in commits_request.query


def test_fetch_follows_commit_pagination_links(fake_github):
    commits = [
        FakeCommit(f"{index:040x}", NOW - timedelta(hours=index), email=f"dev{index % 17}@x.org")
        for index in range(250)
    ]
    healthy_repository(fake_github, commits=commits, files=["README"], latest_release=None)

    health = github.fetch_repository_health(owner="acme", name="widgets")

    assert (health.commits_90d, health.contributors_90d) == (250, 17)
    assert [p for p in fake_github.paths() if p.endswith("/commits")] == [
        "/repos/acme/widgets/commits"
    ] * 3
    assert "page=3" in fake_github.requests[-2].query  # the Link "next" URLs were followed
    assert (health.latest_release, health.latest_release_at) == ("", None)
    assert health.has_readme


def test_fetch_community_files_in_root_github_and_docs(fake_github):
    healthy_repository(
        fake_github,
        license_spdx="",
        files=[
            "COPYING",
            ".github/CODE_OF_CONDUCT.md",
            "docs/SECURITY.rst",
            ".github/README.md",
            "CONTRIBUTING",
        ],
    )

    health = github.fetch_repository_health(owner="acme", name="widgets")

    assert health.license_spdx == ""
    assert health.has_license  # a COPYING file counts without a detected license
    assert health.has_code_of_conduct and health.has_security and health.has_readme
    assert health.has_contributing
    assert not health.has_codeowners and not health.has_ci_workflows
    assert "/repos/acme/widgets/contents/.github/workflows" not in fake_github.paths()


def test_fetch_empty_repository(fake_github):
    healthy_repository(fake_github, files=[], commits=[], latest_release=None, license_spdx="")

    health = github.fetch_repository_health(owner="acme", name="widgets")

    assert (health.commits_90d, health.contributors_90d) == (0, 0)
    assert not any(
        [health.has_license, health.has_readme, health.has_contributing, health.has_security]
    )


def test_fetch_returns_not_modified_for_the_stored_etag(fake_github):
    healthy_repository(fake_github)
    first = github.fetch_repository_health(owner="acme", name="widgets")
    before = len(fake_github.requests)

    second = github.fetch_repository_health(owner="acme", name="widgets", etag=first.etag)

    assert second == github.NotModified(etag=first.etag)
    assert len(fake_github.requests) == before + 1
    assert fake_github.requests[-1].headers["If-None-Match"] == first.etag


def test_fetch_sends_the_configured_token(fake_github, settings):
    healthy_repository(fake_github)
    settings.GITHUB_TOKEN = "ghp_example"  # noqa: S105 - a test value

    github.fetch_repository_health(owner="acme", name="widgets")

    assert {r.headers.get("Authorization") for r in fake_github.requests} == {"token ghp_example"}
    assert {r.headers.get("User-Agent") for r in fake_github.requests} == {"ecosystem-registry"}


def test_fetch_refuses_invalid_names_without_a_request(fake_github):
    with pytest.raises(github.RepositoryNotFound, match="not a valid"):
        github.fetch_repository_health(owner="acme", name="..")
    with pytest.raises(github.RepositoryNotFound):
        github.fetch_repository_health(owner="../etc", name="passwd")
    assert fake_github.requests == []


def test_fetch_errors_are_typed(fake_github):
    healthy_repository(fake_github, status=403)
    with pytest.raises(github.RepositoryNotFound):
        github.fetch_repository_health(owner="acme", name="missing")
    with pytest.raises(github.RepositoryPrivate, match="403"):
        github.fetch_repository_health(owner="acme", name="widgets")
    fake_github.rate_limit(retry_after=3600, status=429)
    with pytest.raises(github.RateLimited) as limited:
        github.fetch_repository_health(owner="acme", name="widgets")
    assert limited.value.reset_at > datetime.now(UTC) + timedelta(minutes=59)


def test_fetch_unreachable_github(closed_port_url):
    with pytest.raises(github.GitHubUnavailable, match="unreachable") as error:
        github.fetch_repository_health(owner="acme", name="widgets")
    assert error.value.unreachable


# --- the service ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_full_sync_writes_a_snapshot_with_exact_figures(fake_github):
    healthy_repository(fake_github)
    project = AcmeProjectFactory()

    outcome = project_sync_github(project=project)

    assert outcome.result == GitHubSyncResult.SYNCED
    snapshot = RepoSnapshot.objects.get(project=project)
    assert outcome.snapshot == snapshot
    assert (snapshot.stars, snapshot.forks, snapshot.open_issues) == (1234, 56, 7)
    assert (snapshot.license_spdx, snapshot.default_branch) == ("Apache-2.0", "main")
    assert snapshot.pushed_at == NOW - timedelta(hours=3)
    assert (snapshot.commits_90d, snapshot.contributors_90d) == (7, 3)
    assert (snapshot.latest_release, snapshot.latest_release_at) == (
        "v2.1.0",
        NOW - timedelta(days=4),
    )
    flags = [
        snapshot.has_license,
        snapshot.has_readme,
        snapshot.has_contributing,
        snapshot.has_codeowners,
        snapshot.has_code_of_conduct,
        snapshot.has_security,
        snapshot.has_ci_workflows,
    ]
    assert flags == [True, True, True, True, False, False, True]
    assert snapshot.etag and snapshot.taken_at == snapshot.checked_at
    project.refresh_from_db()
    assert project.github_id == 4242
    assert project.repo_state == Project.RepoState.OK
    assert project.repo_state_detail == ""
    assert project.github_checked_at == snapshot.taken_at


@pytest.mark.django_db
def test_unchanged_repository_costs_one_request_answered_304(fake_github):
    healthy_repository(fake_github)
    project = AcmeProjectFactory()
    first = project_sync_github(project=project).snapshot
    fake_github.requests.clear()

    outcome = project_sync_github(project=Project.objects.get(pk=project.pk))

    assert outcome.result == GitHubSyncResult.UNCHANGED
    assert len(fake_github.requests) == 1
    request = fake_github.requests[0]
    assert request.path == "/repos/acme/widgets"
    assert request.headers["If-None-Match"] == first.etag
    snapshot = RepoSnapshot.objects.get(project=project)  # still one snapshot
    assert snapshot.checked_at > first.checked_at
    assert snapshot.taken_at == first.taken_at
    project.refresh_from_db()
    assert project.github_checked_at == snapshot.checked_at


@pytest.mark.django_db
def test_changed_repository_adds_a_snapshot(fake_github):
    repository = healthy_repository(fake_github)
    project = AcmeProjectFactory()
    project_sync_github(project=project)
    repository.stars = 1300

    outcome = project_sync_github(project=project)

    assert outcome.result == GitHubSyncResult.SYNCED
    assert list(project.snapshots.values_list("stars", flat=True)) == [1300, 1234]


@pytest.mark.django_db
def test_rate_limit_within_max_wait_is_waited_out_once(fake_github):
    healthy_repository(fake_github)
    project = AcmeProjectFactory()
    fake_github.rate_limit(retry_after=1)

    outcome = project_sync_github(project=project)

    assert outcome.result == GitHubSyncResult.SYNCED
    assert fake_github.paths()[:2] == ["/repos/acme/widgets", "/repos/acme/widgets"]
    assert project.snapshots.count() == 1


@pytest.mark.django_db
def test_rate_limit_beyond_max_wait_writes_nothing(fake_github):
    healthy_repository(fake_github)
    project = AcmeProjectFactory()
    fake_github.rate_limit(retry_after=600)

    outcome = project_sync_github(project=project)

    assert outcome.result == GitHubSyncResult.RATE_LIMITED
    assert outcome.retry_at > datetime.now(UTC) + timedelta(minutes=9)
    assert len(fake_github.requests) == 1  # no hammering
    project.refresh_from_db()
    assert project.snapshots.count() == 0
    assert project.repo_state == Project.RepoState.UNKNOWN
    assert project.github_checked_at is None


@pytest.mark.django_db
def test_rate_limit_mid_sync_with_reset_header(fake_github):
    """A 403 with X-RateLimit-Remaining: 0 on a later request (the commits) also counts."""
    healthy_repository(fake_github)
    project = AcmeProjectFactory()
    commits_route = ("GET", "/repos/acme/widgets/commits")
    serve_commits = fake_github.server.routes[commits_route]

    def commits_after_the_limit_is_reached(request):
        fake_github.rate_limit(retry_after=None)  # X-RateLimit-Reset in an hour, no Retry-After
        return serve_commits(request)

    fake_github.server.route(*commits_route, commits_after_the_limit_is_reached)

    outcome = project_sync_github(project=project)

    assert outcome.result == GitHubSyncResult.RATE_LIMITED
    assert outcome.retry_at > datetime.now(UTC) + timedelta(minutes=59)
    assert fake_github.paths()[-1] == "/repos/acme/widgets/commits"
    assert project.snapshots.count() == 0


@pytest.mark.django_db
def test_not_found_is_recorded(fake_github):
    project = AcmeProjectFactory(repository="acme/gone")

    outcome = project_sync_github(project=project)

    assert outcome.result == GitHubSyncResult.NOT_FOUND
    project.refresh_from_db()
    assert project.repo_state == Project.RepoState.NOT_FOUND
    assert "acme/gone" in project.repo_state_detail and "404" in project.repo_state_detail
    assert project.github_checked_at is not None
    assert project.snapshots.count() == 0


@pytest.mark.django_db
def test_forbidden_is_recorded_as_private(fake_github):
    healthy_repository(fake_github, status=403)
    project = AcmeProjectFactory()

    outcome = project_sync_github(project=project)

    assert outcome.result == GitHubSyncResult.PRIVATE
    project.refresh_from_db()
    assert project.repo_state == Project.RepoState.PRIVATE
    assert "403" in project.repo_state_detail


@pytest.mark.django_db
def test_rename_is_followed_and_recorded(fake_github):
    repository = healthy_repository(fake_github)
    project = AcmeProjectFactory()
    project_sync_github(project=project)
    fake_github.rename(repository, "acme-labs", "widgets-ng")
    fake_github.requests.clear()

    outcome = project_sync_github(project=project)

    assert outcome.result == GitHubSyncResult.RENAMED
    assert fake_github.paths()[:2] == ["/repos/acme/widgets", "/repositories/4242"]
    assert "/repos/acme-labs/widgets-ng/commits" in fake_github.paths()
    project.refresh_from_db()
    assert project.repo_state == Project.RepoState.RENAMED
    assert project.repo_state_detail == "Renamed from acme/widgets to acme-labs/widgets-ng."
    assert (project.repo_owner, project.repo_name) == ("acme-labs", "widgets-ng")
    assert project.snapshots.count() == 2

    # The next sync asks for the new name directly, and the repository is fine again.
    assert project_sync_github(project=project).result == GitHubSyncResult.UNCHANGED
    assert fake_github.requests[-1].path == "/repos/acme-labs/widgets-ng"


@pytest.mark.django_db
def test_rename_onto_a_name_another_project_lists_keeps_the_name(fake_github):
    repository = healthy_repository(fake_github)
    project = AcmeProjectFactory()
    other = AcmeProjectFactory(slug="other", repository="acme-labs/widgets-ng")
    fake_github.rename(repository, "acme-labs", "widgets-ng")

    outcome = project_sync_github(project=project)

    assert outcome.result == GitHubSyncResult.RENAMED
    project.refresh_from_db()
    assert (project.repo_owner, project.repo_name) == ("acme", "widgets")
    assert "'other' already lists" in project.repo_state_detail
    assert project.github_id == 4242
    other.refresh_from_db()
    assert other.github_id is None


@pytest.mark.django_db
def test_unreachable_github_is_recorded_as_error(closed_port_url):
    project = AcmeProjectFactory()

    outcome = project_sync_github(project=project)

    assert outcome.result == GitHubSyncResult.ERROR and outcome.unreachable
    project.refresh_from_db()
    assert project.repo_state == Project.RepoState.ERROR
    assert closed_port_url in project.repo_state_detail
    assert "unreachable" in project.repo_state_detail


@pytest.mark.django_db
def test_server_error_is_recorded_as_error(fake_github):
    from tests.fakes.http import Reply

    fake_github.server.route("GET", "/repos/acme/widgets", Reply(502, {"message": "Bad Gateway"}))
    project = AcmeProjectFactory()

    outcome = project_sync_github(project=project)

    assert outcome.result == GitHubSyncResult.ERROR and not outcome.unreachable
    project.refresh_from_db()
    assert project.repo_state_detail == "GitHub answered acme/widgets with HTTP 502: Bad Gateway"
    assert len(fake_github.requests) == 1  # PyGithub's own retries are off


@pytest.mark.django_db
def test_malformed_answer_is_recorded_as_error(fake_github):
    from tests.fakes.http import Reply

    fake_github.server.route("GET", "/repos/acme/widgets", Reply(200, "<html>proxy</html>"))
    project = AcmeProjectFactory()

    outcome = project_sync_github(project=project)

    assert outcome.result == GitHubSyncResult.ERROR
    project.refresh_from_db()
    assert project.repo_state_detail == "GitHub answered acme/widgets with an unexpected body."


@pytest.mark.django_db
def test_project_without_repository_is_skipped(fake_github):
    project = ProjectFactory(slug="bare", name="Bare")

    assert project_sync_github(project=project).result == GitHubSyncResult.SKIPPED
    assert fake_github.requests == []


# --- tasks --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_task_reschedules_after_the_rate_limit_reset(fake_github, monkeypatch):
    healthy_repository(fake_github)
    project = AcmeProjectFactory()
    fake_github.rate_limit(retry_after=3600)
    retries = []
    original_retry = sync_github_project.retry

    def spy_retry(*args, **kwargs):
        retries.append(kwargs)
        return original_retry(*args, **kwargs)

    monkeypatch.setattr(sync_github_project, "retry", spy_retry)

    # apply() runs eagerly, and so does the retry it asks for (the countdown is not waited).
    result = sync_github_project.apply(args=[project.id])

    assert result.get() == "synced"
    assert len(retries) == 1
    assert 3600 <= retries[0]["countdown"] <= 3601 + 30
    assert project.snapshots.count() == 1


@pytest.mark.django_db
def test_sync_all_fans_out_one_task_per_active_project(fake_github):
    healthy_repository(fake_github)
    healthy_repository(fake_github, owner="acme", name="gears", id=7)
    AcmeProjectFactory()
    AcmeProjectFactory(slug="gears")
    AcmeProjectFactory(slug="old", repository="acme/old-thing", status=Project.Status.RETIRED)
    ProjectFactory(slug="bare", name="Bare")
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True  # each queued task runs here, against the fake
    try:
        assert sync_github_all() == 2
    finally:
        celery_app.conf.task_always_eager = eager

    states = dict(Project.objects.values_list("slug", "repo_state"))
    assert states == {"widgets": "ok", "gears": "ok", "old": "unknown", "bare": "unknown"}


# --- the command ------------------------------------------------------------------------------


def run_command(*args):
    out, err = StringIO(), StringIO()
    call_command("sync_github", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_command_syncs_every_active_project_with_progress_and_summary(fake_github):
    healthy_repository(fake_github)
    AcmeProjectFactory()
    AcmeProjectFactory(slug="gone")
    AcmeProjectFactory(slug="old", status=Project.Status.RETIRED)

    out, err = run_command()

    assert "GitHub sync" in err and "2/2" in err  # the tqdm progress bar
    assert "gone: not_found: GitHub has no repository acme/gone (404)." in out
    assert (
        "GitHub sync of 2 project(s): 1 synced, 0 unchanged (304), 1 not found, 0 private, "
        "0 renamed, 0 errors." in out
    )

    out, err = run_command()
    assert "1 unchanged (304), 1 not found" in out


@pytest.mark.django_db
def test_command_syncs_one_project(fake_github):
    healthy_repository(fake_github)
    AcmeProjectFactory()
    AcmeProjectFactory(slug="gone")

    out, _ = run_command("--project", "widgets")

    assert "GitHub sync of 1 project(s): 1 synced" in out
    assert Project.objects.get(slug="gone").repo_state == Project.RepoState.UNKNOWN


@pytest.mark.django_db
def test_command_unknown_slug_is_a_clear_error(fake_github):
    with pytest.raises(CommandError, match="No project with slug 'nope'"):
        run_command("--project", "nope")
    assert fake_github.requests == []


@pytest.mark.django_db
def test_command_stops_with_a_clear_error_when_github_is_unreachable(closed_port_url):
    AcmeProjectFactory()
    AcmeProjectFactory(slug="gears")

    with pytest.raises(CommandError, match="Cannot reach the GitHub API at http://127.0.0.1:"):
        run_command()

    states = sorted(Project.objects.values_list("repo_state", flat=True))
    assert states == ["error", "unknown"]  # stopped after the first failure


@pytest.mark.django_db(transaction=True)
def test_command_exit_status_from_the_shell(closed_port_url):
    """Through manage.py's own error handling: exit status 1, a message, no traceback."""
    AcmeProjectFactory()
    database = django_settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "GITHUB_API_URL": closed_port_url,
        # The command runs in its own process against this test's database.
        "DATABASE_URL": "postgres://{}{}@{}:{}/{}".format(
            quote(database["USER"], safe=""),
            ":" + quote(database["PASSWORD"], safe="") if database["PASSWORD"] else "",
            database["HOST"] or "127.0.0.1",
            database["PORT"] or 5432,
            database["NAME"],
        ),
    }
    completed = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "sync_github"],
        capture_output=True,
        text=True,
        env=env,
        cwd=django_settings.BASE_DIR,
        timeout=120,
    )

    assert completed.returncode == 1
    assert f"CommandError: Cannot reach the GitHub API at {closed_port_url}" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert Project.objects.get().repo_state == Project.RepoState.ERROR
