"""The repository file's recipe override (`[tool.pytorch-ecosystem.test]`, stored on sync in
`Project.repo_config`) reaches the job a runner gets; staff's or a maintainer's
`ProjectTestConfig` wins where it sets a field; the timeout is settable through the service."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import LogEntry

from ci_runners import services
from ci_runners.agent.contracts import Job
from ci_runners.models import MAX_CELL_TIMEOUT_S, CompatRun, ProjectTestConfig
from ci_runners.services.dispatch import job_hash_of
from tests.ci_runners.factories import ProjectTestConfigFactory
from tests.registry.factories import ProjectFactory

pytestmark = pytest.mark.django_db

FILE_TEST = {
    "extras": ["test"],
    "pytest_args": ["-q", "-p", "no:cacheprovider"],
    "test_paths": ["tests/unit"],
    "deselect": ["slow"],
    "env": {"OMP_NUM_THREADS": "1", "MODE": "file"},
    "timeout_s": 1800,
    # Refused on sync (staff only); were it ever stored, a job must not use it.
    "source_override": "https://evil.example/repo.git",
}


@pytest.fixture
def file_project(db):
    return ProjectFactory(
        slug="filerecipe",
        repository="fileorg/filerecipe",
        repo_config={"found": True, "test": FILE_TEST, "read_at": "2026-01-01T00:00:00+00:00"},
    )


def sent_jobs(project, targets, broker, django_capture_on_commit_callbacks) -> list[Job]:
    with django_capture_on_commit_callbacks(execute=True):
        services.compat_run_request(
            project=project, trigger=CompatRun.Trigger.MANUAL, targets=targets[:1]
        )
    return [Job.from_dict(m["kwargs"]["job"]) for m in broker.messages("runner.cpu")]


def test_the_repository_files_recipe_reaches_the_job(
    file_project, targets, broker, django_capture_on_commit_callbacks
):
    [job] = sent_jobs(file_project, targets, broker, django_capture_on_commit_callbacks)

    recipe = job.test_config
    assert recipe.pytest_args == ["-q", "-p", "no:cacheprovider"]
    assert recipe.deselect == ["slow"] and recipe.extras == ["test"]
    assert recipe.test_paths == ["tests/unit"] and recipe.env["MODE"] == "file"
    assert job.timeout_s == 1800
    assert job.source == "https://github.com/fileorg/filerecipe"  # never the file's override


def test_a_project_test_config_wins_where_it_sets_a_field(
    file_project, targets, broker, django_capture_on_commit_callbacks
):
    ProjectTestConfigFactory(
        project=file_project,
        pytest_args=["-x"],
        env={"MODE": "staff"},
        extras=[],  # set: no extras at all
        timeout_s=600,
    )

    [job] = sent_jobs(file_project, targets, broker, django_capture_on_commit_callbacks)

    recipe = job.test_config
    assert recipe.pytest_args == ["-x"] and job.timeout_s == 600
    assert recipe.extras == []
    assert recipe.env == {"OMP_NUM_THREADS": "1", "MODE": "staff"}  # merged, the config's first
    assert recipe.deselect == ["slow"] and recipe.test_paths == ["tests/unit"]  # the file's


def test_a_default_timeout_leaves_the_files(file_project, targets):
    config = ProjectTestConfigFactory(project=file_project, pytest_args=[], timeout_s=900)
    hashed = job_hash_of(project=file_project, config=config, target=targets[0])

    file_project.repo_config = {"test": {**FILE_TEST, "timeout_s": 2400}}
    changed = job_hash_of(project=file_project, config=config, target=targets[0])

    assert hashed != changed  # a changed file changes the job: the night plan re-runs it


def test_a_damaged_stored_table_is_left_out(targets, broker, django_capture_on_commit_callbacks):
    project = ProjectFactory(
        slug="damaged",
        repository="fileorg/damaged",
        repo_config={"test": {"pytest_args": "-x", "timeout_s": 99999, "env": ["A"]}},
    )

    [job] = sent_jobs(project, targets, broker, django_capture_on_commit_callbacks)

    assert job.test_config.pytest_args == [] and job.test_config.env == {}
    assert job.timeout_s == services.DEFAULT_TIMEOUT_S


# --- the timeout through project_test_config_update ----------------------------------------------


def test_the_timeout_is_set_and_audited(project, staff):
    config = services.project_test_config_update(
        project=project, actor=staff, changes={"timeout_s": 2700}
    )

    config.refresh_from_db()
    assert config.timeout_s == 2700 and config.pytest_args == ["-x"]
    change = json.loads(LogEntry.objects.get(object_id=str(config.pk)).change_message)
    assert change[0] == {"changed": {"fields": ["timeout_s"]}}
    assert change[1]["override"]["timeout_s"] == {"from": 300, "to": 2700}


@pytest.mark.parametrize("value", [9, MAX_CELL_TIMEOUT_S + 1, True, "600", 60.5, None])
def test_a_timeout_out_of_bounds_is_refused(project, staff, value):
    with pytest.raises(services.TestConfigInvalid) as refused:
        services.project_test_config_update(
            project=project, actor=staff, changes={"timeout_s": value, "pytest_args": ["-v"]}
        )
    assert "timeout_s" in refused.value.errors
    config = ProjectTestConfig.objects.get(project=project)
    assert (config.timeout_s, config.pytest_args) == (300, ["-x"])  # nothing written
