"""Staff's override of a project's test recipe: the service (validation, audit), the "How we
test this project" section of the project page with its staff-only form, and the staff-only API.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from ci_runners import services
from ci_runners.agent.contracts import Result
from ci_runners.models import ProjectTestConfig
from ci_runners.states import CellState
from tests.ci_runners.test_outcomes import RECIPE
from tests.registry.factories import ProjectFactory

PAGE_FIELDS = {
    "extra_requirements": "scipy>=1.11\nhypothesis",
    "extras": "test, vision",
    "groups": "",
    "pytest_args": "-k\nnot slow_io",
    "test_paths": "tests/unit",
    "env": "OMP_NUM_THREADS=2",
    "deselect": "slow, network",
    "copy_tests": "tests",
}


def testing_url(project) -> str:
    return reverse("ci_runners:project_testing", args=[project.slug])


# --- the service ------------------------------------------------------------------------------


def test_an_override_is_saved_and_audited(project, staff):
    config = services.project_test_config_update(
        project=project,
        actor=staff,
        changes={"groups": ["test"], "deselect": ["slow"], "env": {"OMP_NUM_THREADS": "1"}},
    )
    config.refresh_from_db()
    assert config.groups == ["test"] and config.deselect == ["slow"]
    assert config.env == {"OMP_NUM_THREADS": "1"}
    assert config.pytest_args == ["-x"]  # untouched fields stay
    entry = LogEntry.objects.get(object_id=str(config.pk))
    assert entry.user == staff and entry.get_change_message().startswith("Changed")
    change = json.loads(entry.change_message)
    assert change[0] == {"changed": {"fields": ["groups", "env", "deselect"]}}
    assert change[1]["override"]["groups"] == {"from": None, "to": ["test"]}


def test_a_project_without_a_config_gets_one(staff):
    project = ProjectFactory(slug="bare", repository="o/bare")
    services.project_test_config_update(project=project, actor=staff, changes={"extras": []})
    assert ProjectTestConfig.objects.get(project=project).extras == []


def test_saving_the_same_override_twice_logs_once(project, staff):
    for _ in range(2):
        services.project_test_config_update(
            project=project, actor=staff, changes={"deselect": ["slow"]}
        )
    assert LogEntry.objects.count() == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("extra_requirements", ["scipy >>> 1"], "is not a requirement"),
        ("extra_requirements", ["evil @ https://example.org/x.whl"], "direct URL"),
        ("extra_requirements", "scipy", "Expected a list of strings."),
        ("extras", ["te st"], "is not an extra or group name"),
        ("groups", ["docs;rm"], "is not an extra or group name"),
        ("deselect", ["slow or True"], "is not a pytest marker name"),
        ("test_paths", ["/etc"], "a path inside the repository"),
        ("test_paths", ["tests/../../x"], "a path inside the repository"),
        ("copy_tests", "../up", "a path inside the repository"),
        ("env", {"LD_PRELOAD": "/x.so"}, "set by the runner"),
        ("env", {"PATH": "/tmp"}, "set by the runner"),
        ("env", {"1BAD": "x"}, "is not a variable name"),
        ("pytest_args", [""], "cannot be empty"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message_and_nothing_is_written(
    project, staff, field, value, message
):
    valid = {"groups": ["test"]} if field == "deselect" else {"deselect": ["slow"]}
    with pytest.raises(services.TestConfigInvalid) as refused:
        services.project_test_config_update(
            project=project, actor=staff, changes={field: value, **valid}
        )
    assert message in " ".join(refused.value.errors[field])
    config = ProjectTestConfig.objects.get(project=project)
    # The valid field of the same change was not written either.
    assert config.deselect == [] and config.groups is None
    assert not LogEntry.objects.exists()


# --- the project page section -------------------------------------------------------------------


def finish_with_recipe(project, targets, capture):
    with capture(execute=True):
        run = services.compat_run_request(project=project, trigger="manual", targets=targets[:1])
    cell = run.cells.get()
    result = Result(state=CellState.PASSED, tests_collected=5, recipe=RECIPE).to_dict()
    services.cell_record_result(cell_id=cell.pk, attempt=1, runner="r", result=result)
    return cell


def test_the_project_page_pulls_in_how_we_test(client, project):
    page = client.get(project.get_absolute_url()).content.decode()
    assert f'hx-get="{testing_url(project)}"' in page


def test_everyone_sees_the_recipe_of_the_latest_finished_cell_and_the_override(
    client, project, targets, django_capture_on_commit_callbacks
):
    cell = finish_with_recipe(project, targets, django_capture_on_commit_callbacks)
    services.project_test_config_update(project=project, actor=None, changes={"deselect": ["io"]})
    page = client.get(testing_url(project)).content.decode()
    assert "How we test this project" in page
    assert reverse("ci_runners:cell", args=[cell.pk]) in page
    assert "<code>torchthing[test]</code>" in page
    assert "<code>python -m pytest -p no:cacheprovider</code>" in page
    assert "<code>tests-copy</code>" in page  # cwd
    assert "<code>OMP_NUM_THREADS=1</code>" in page
    assert "testpaths — pyproject.toml:58" in page
    assert "<dt>Deselected markers</dt><dd><code>io</code></dd>" in page  # the override
    assert "Edit the override" not in page and "<form" not in page  # no form for visitors


def test_a_project_with_no_recipe_yet_says_so(client, project):
    page = client.get(testing_url(project)).content.decode()
    assert "No finished run has reported its test recipe yet" in page
    assert "<dt>pytest arguments</dt><dd><code>-x</code>" in page  # the fixture's override


def test_recipe_values_from_a_runner_are_escaped(
    client, project, targets, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.compat_run_request(project=project, trigger="manual", targets=targets[:1])
    cell = run.cells.get()
    hostile = {**RECIPE, "install": ["<script>alert(1)</script>"], "env": {"X": '"><img>'}}
    result = Result(state=CellState.PASSED, recipe=hostile).to_dict()
    services.cell_record_result(cell_id=cell.pk, attempt=1, runner="r", result=result)
    for url in (testing_url(project), reverse("ci_runners:cell", args=[cell.pk])):
        page = client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in page and "<img>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_staff_see_the_form_and_save_through_it(client, project, staff):
    client.force_login(staff)
    page = client.get(testing_url(project)).content.decode()
    assert "Edit the override (staff)" in page and "csrfmiddlewaretoken" in page
    response = client.post(testing_url(project), PAGE_FIELDS)
    assert response.status_code == 302
    assert response["Location"] == f"{project.get_absolute_url()}#testing"
    config = ProjectTestConfig.objects.get(project=project)
    assert config.extra_requirements == ["scipy>=1.11", "hypothesis"]
    assert config.extras == ["test", "vision"] and config.groups is None
    assert config.pytest_args == ["-k", "not slow_io"] and config.test_paths == ["tests/unit"]
    assert config.env == {"OMP_NUM_THREADS": "2"} and config.deselect == ["slow", "network"]
    assert config.copy_tests == "tests"
    assert LogEntry.objects.filter(user=staff).count() == 1


def test_the_form_shows_the_current_override_and_none_means_no_extras(client, project, staff):
    client.force_login(staff)
    client.post(testing_url(project), {**PAGE_FIELDS, "extras": "none"})
    assert ProjectTestConfig.objects.get(project=project).extras == []
    page = client.get(testing_url(project)).content.decode()
    assert 'name="extras" value="none"' in page
    assert "OMP_NUM_THREADS=2</textarea>" in page


def test_an_htmx_save_answers_the_refreshed_section(client, project, staff):
    client.force_login(staff)
    response = client.post(testing_url(project), PAGE_FIELDS, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    text = response.content.decode()
    assert "Override saved: the next run uses it." in text
    assert "<code>network</code>" in text


def test_invalid_form_input_shows_errors_by_the_field_and_saves_nothing(client, project, staff):
    client.force_login(staff)
    bad = {**PAGE_FIELDS, "deselect": "slow or 1", "env": "NOVALUE"}
    response = client.post(testing_url(project), bad)
    assert response.status_code == 400
    text = response.content.decode()
    assert "&#x27;NOVALUE&#x27;: write NAME=value." in text
    config = ProjectTestConfig.objects.get(project=project)
    assert config.deselect == [] and config.extra_requirements == []
    response = client.post(testing_url(project), {**PAGE_FIELDS, "deselect": "slow or 1"},
                           HTTP_HX_REQUEST="true")  # fmt: skip
    assert response.status_code == 200  # htmx swaps 2xx answers only
    assert "is not a pytest marker name" in response.content.decode()
    assert ProjectTestConfig.objects.get(project=project).deselect == []


@pytest.mark.parametrize("who", ["anonymous", "maintainer", "other_user"])
def test_only_staff_may_change_the_override(client, request, project, who):
    if who != "anonymous":
        client.force_login(request.getfixturevalue(who))
    response = client.post(testing_url(project), PAGE_FIELDS)
    assert response.status_code == 403
    assert ProjectTestConfig.objects.get(project=project).deselect == []


def test_the_form_needs_the_csrf_token(project, staff):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post(testing_url(project), PAGE_FIELDS).status_code == 403


def test_an_unknown_project_is_404(client, db):
    assert client.get("/runs/projects/nope/testing/").status_code == 404


# --- the API ----------------------------------------------------------------------------------


def api_url(project) -> str:
    return f"/api/v1/test-overrides/{project.slug}/"


@pytest.mark.parametrize(("who", "status"), [("anonymous", 401), ("maintainer", 403)])
def test_the_override_api_is_for_staff_only(client, request, project, who, status):
    if who != "anonymous":
        client.force_login(request.getfixturevalue(who))
    assert client.get(api_url(project)).status_code == status
    body = {"deselect": ["slow"]}
    assert client.patch(api_url(project), body, content_type="application/json").status_code in (
        status,
    )
    assert ProjectTestConfig.objects.get(project=project).deselect == []


def test_staff_read_and_change_an_override_through_the_api(client, project, staff):
    client.force_login(staff)
    data = client.get(api_url(project)).json()
    assert data == {
        "project": "torchthing",
        "extra_requirements": [],
        "extras": None,
        "groups": None,
        "pytest_args": ["-x"],
        "test_paths": [],
        "env": {},
        "deselect": [],
        "copy_tests": "",
    }
    patched = client.patch(
        api_url(project),
        {"groups": ["test"], "deselect": ["slow"]},
        content_type="application/json",
    )
    assert patched.status_code == 200
    assert patched.json()["groups"] == ["test"] and patched.json()["pytest_args"] == ["-x"]
    # PUT replaces the whole override: what it leaves out goes back to the default.
    put = client.put(api_url(project), {"extras": ["vision"]}, content_type="application/json")
    assert put.status_code == 200
    assert put.json()["extras"] == ["vision"]
    assert put.json()["groups"] is None and put.json()["pytest_args"] == []
    assert LogEntry.objects.filter(user=staff).count() == 2


def test_bad_api_input_is_a_400_naming_the_field(client, project, staff):
    client.force_login(staff)
    response = client.patch(
        api_url(project), {"env": {"LD_PRELOAD": "x.so"}}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "set by the runner" in response.json()["env"][0]
    assert client.get("/api/v1/test-overrides/nope/").status_code == 404


def test_the_admin_form_applies_the_same_checks(admin_client, project):
    config = ProjectTestConfig.objects.get(project=project)
    url = reverse("admin:ci_runners_projecttestconfig_change", args=[config.pk])
    form = {
        "project": project.pk,
        "extra_requirements": "[]",
        "extras": "null",
        "groups": "null",
        "pytest_args": '["-x"]',
        "test_paths": "[]",
        "env": '{"LD_PRELOAD": "/x.so"}',
        "deselect": '["slow or 1"]',
        "copy_tests": "",
        "timeout_s": 300,
        "source_override": "",
        "max_concurrent": 4,
    }
    response = admin_client.post(url, form)
    assert response.status_code == 200  # the form again, with its errors
    text = response.content.decode()
    assert "set by the runner" in text and "is not a pytest marker name" in text
    config.refresh_from_db()
    assert config.env == {} and config.deselect == []
    response = admin_client.post(url, {**form, "env": "{}", "deselect": '["slow"]'})
    assert response.status_code == 302
    config.refresh_from_db()
    assert config.deselect == ["slow"]
