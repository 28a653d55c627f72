"""Management commands: compat_run and demo_compat."""

import json
import subprocess

import pytest
from django.core.management import CommandError, call_command

from ci_runners.models import CompatRun, ProjectTestConfig, TorchTarget
from registry.models import Project


def test_compat_run_json_prints_the_run_and_its_cells(
    project, targets, broker, capsys, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("compat_run", "--project", project.slug, "--target", "2.14.1", "--json")
    data = json.loads(capsys.readouterr().out)
    run = CompatRun.objects.get()
    assert data["id"] == run.pk and data["project"] == project.slug
    assert [cell["torch_version"] for cell in data["cells"]] == ["2.14.1"]
    assert data["cells"][0]["state"] == "queued"
    assert broker.client().llen("runner.cpu") == 1


def test_compat_run_explains_bad_input(project, targets):
    with pytest.raises(CommandError, match="No project with slug"):
        call_command("compat_run", "--project", "nope")
    with pytest.raises(CommandError, match="No target '9.9'"):
        call_command("compat_run", "--project", project.slug, "--target", "9.9")


def test_demo_sets_up_git_projects_of_several_shapes_and_two_targets(
    tmp_path, db, broker, django_capture_on_commit_callbacks
):
    call_command("demo_compat", "--no-run", "--root", str(tmp_path))
    call_command("demo_compat", "--no-run", "--root", str(tmp_path))  # idempotent
    assert sorted(TorchTarget.objects.values_list("version", "active")) == [
        ("2.13.0", True),
        ("2.14.1", True),
    ]
    slugs = ("tinytorch-ops", "tensorshim", "flat-shadow", "pep735-groups", "import-break")
    for slug in slugs:
        config = ProjectTestConfig.objects.get(project__slug=slug)
        log = subprocess.run(
            ["git", "log", "--oneline"],
            cwd=config.source_override,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "demo project" in log.stdout
    assert Project.objects.count() == len(slugs)
    # No hand-written test configuration: the agent discovers each shape's recipe.
    assert not ProjectTestConfig.objects.exclude(env={}, pytest_args=[], test_paths=[]).exists()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("demo_compat", "--root", str(tmp_path))
    assert CompatRun.objects.count() == len(slugs)
    assert broker.client().llen("runner.cpu") == 2 * len(slugs)


def test_the_run_summary_says_why_a_cell_errored_and_flags_a_shrunk_suite():
    from ci_runners.management.commands.compat_run import cell_summary

    base = {"target": "2.14.1 py3.11", "counts": {}, "error": "", "error_code": "",
            "suite_shrunk": False}  # fmt: skip
    errored = {**base, "state": "errored", "error_code": "runner_lost", "error": "runner lost"}
    assert (
        cell_summary(errored) == "2.14.1 py3.11: errored [runner_lost] (infrastructure) runner lost"
    )
    not_installable = {**base, "state": "not_installable", "error": "needs torch<2.14"}
    assert cell_summary(not_installable) == "2.14.1 py3.11: not_installable (needs torch<2.14)"
    shrunk = {**base, "state": "passed", "counts": {"passed": 8}, "suite_shrunk": True}
    assert cell_summary(shrunk).endswith("WARNING: fewer tests collected than on another version")
