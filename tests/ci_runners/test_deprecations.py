"""The deprecation forecast: one key per torch API, aggregated over the latest final cells of the
active projects (page, API, the project page's fragment); and, end to end, two real projects
whose tests call the same deprecated API of a stand-in torch, run by the real agent."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from ci_runners import services
from ci_runners.agent.contracts import Result
from ci_runners.deprecations import api_key, forecast
from ci_runners.models import CompatRun
from ci_runners.states import CellState
from registry.models import Project
from tests.agent import conftest as agent_conftest
from tests.ci_runners.factories import TorchTargetFactory
from tests.registry.factories import ProjectFactory
from tests.standin_wheels import standin_torch

# The agent tests' fixtures: a small real project in its own git repo, a work dir the sandbox
# can reach, and a sandbox that must work here.
make_project = agent_conftest.make_project
work_root = agent_conftest.work_root
require_sandbox = agent_conftest.require_sandbox

RESIZE = (
    "An output with one or more elements was resized since it had shape [1], which does not "
    "match the required output shape []. This behavior is deprecated, and in a future PyTorch "
    "release outputs will not be resized unless they have zero elements."
)
AUTOCAST = (
    "`torch.cuda.amp.autocast(args...)` is deprecated. Please use "
    "`torch.amp.autocast('cuda', args...)` instead."
)


# --- one key per API ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "key"),
    [
        # torch's C++ location differs per build and moves between releases: dropped.
        (
            f"{RESIZE} (Triggered internally at /pytorch/aten/src/ATen/native/Resize.cpp:35.)",
            RESIZE.replace("shape [1]", "shape […]"),
        ),
        (
            "Using a target size (torch.Size([16])) that is different to the input size "
            "(torch.Size([16, 1])).  ",
            "Using a target size (torch.Size([…])) that is different to the input size "
            "(torch.Size([…])).",
        ),
        (
            "Expected a tensor of shape (3, 4), got (2, 5)",
            "Expected a tensor of shape (…), got (…)",
        ),
        (
            "Cannot pickle <function helper at 0x7f3a2b1c4d60>, saving by reference",
            "Cannot pickle <function helper at 0x…>, saving by reference",
        ),
        (
            "torch.load of '/home/alice/.cache/ckpt/model.pt' uses weights_only=False",
            "torch.load of '…' uses weights_only=False",
        ),
        (
            'Loading "https://example.org/w.pt" with 42 retries, limit "8"',
            'Loading "…" with 42 retries, limit "…"',
        ),
        ("Module at /srv/venv/lib/foo.py:12 is\n  deprecated\t", "Module at … is deprecated"),
        # What names the API stays: quoted names, version numbers, a single number in brackets.
        (AUTOCAST, AUTOCAST),
        (
            "The parameter 'pretrained' is deprecated since 0.13 and may be removed in 0.15",
            "The parameter 'pretrained' is deprecated since 0.13 and may be removed in 0.15",
        ),
        ("use t.resize_(0) instead", "use t.resize_(0) instead"),
    ],
)
def test_api_key_replaces_only_what_varies(message, key):
    assert api_key(message) == key


def test_one_api_has_one_key_across_torch_builds():
    on_one = f"{RESIZE} (Triggered internally at /pytorch/aten/src/ATen/native/Resize.cpp:35.)"
    on_other = f"{RESIZE} (Triggered internally at /opt/conda/aten/src/ATen/native/Resize.cpp:31.)"

    assert api_key(on_one) == api_key(on_other)


# --- aggregation over the latest final cells ----------------------------------------------------


def _warning(category, message, *, count=1, tests=(), torch_api=True) -> dict:
    return {
        "category": category,
        "message": message,
        "torch_api": torch_api,
        "count": count,
        "tests": list(tests),
    }


def _run(project, targets, on_commit, trigger=CompatRun.Trigger.MANUAL) -> CompatRun:
    with on_commit(execute=True):
        return services.compat_run_request(project=project, targets=targets, trigger=trigger)


def _record(cell, warnings, on_commit, state=CellState.PASSED) -> None:
    result = Result(
        state=state,
        exit_code=0 if state == CellState.PASSED else 1,
        commit="abc123",
        counts={"passed": 3, "failed": int(state == CellState.FAILED)},
        warnings=warnings,
        environment={"python": "3.11.2", "torch": cell.target.version},
    )
    with on_commit(execute=True):
        services.cell_record_result(cell_id=cell.pk, attempt=1, runner="r", result=result.to_dict())


def _ran(project, targets, warnings_by_target, on_commit) -> CompatRun:
    """A run of `project` on `targets`, each cell finished with its target's warnings."""
    run = _run(project, targets, on_commit)
    for target, warnings in zip(targets, warnings_by_target, strict=True):
        _record(run.cells.get(target=target), warnings, on_commit)
    return run


@pytest.fixture
def projects(project):
    """Three active projects with repositories (`project` is TorchThing)."""
    return [
        project,
        ProjectFactory(slug="alpha", name="Alpha", repository="org/alpha"),
        ProjectFactory(slug="beta", name="Beta", repository="org/beta"),
    ]


def test_forecast_counts_each_api_by_projects_tests_and_torch_versions(
    projects, targets, django_capture_on_commit_callbacks, django_assert_num_queries
):
    on_commit = django_capture_on_commit_callbacks
    thing, alpha, beta = projects
    resize_213 = f"{RESIZE} (Triggered internally at /pytorch/aten/src/ATen/native/Resize.cpp:35.)"
    resize_214 = f"{RESIZE} (Triggered internally at /pytorch/aten/src/ATen/native/Resize.cpp:38.)"
    _ran(
        thing,
        targets,
        [
            [
                _warning(
                    "FutureWarning", AUTOCAST, count=2, tests=["t.py::test_a", "t.py::test_b"]
                ),
                _warning("UserWarning", resize_213, tests=["t.py::test_c"]),
                # The project's own warning, and one not announcing a change: not counted.
                _warning("DeprecationWarning", "thing.old is deprecated", torch_api=False),
                _warning("RuntimeWarning", "overflow in torch.exp"),
            ],
            [
                _warning(
                    "FutureWarning", AUTOCAST, count=3, tests=["t.py::test_b", "t.py::test_d"]
                ),
                _warning("UserWarning", resize_214, tests=["t.py::test_c"]),
            ],
        ],
        on_commit,
    )
    _ran(
        alpha,
        targets[:1],
        [[_warning("FutureWarning", AUTOCAST, tests=["<collection>"])]],
        on_commit,
    )
    _ran(beta, targets[:1], [[]], on_commit)

    with django_assert_num_queries(1):
        result = forecast()

    assert result.cells == 4
    assert [(api.api, api.project_count, api.total_count) for api in result.apis] == [
        (AUTOCAST, 2, 6),
        (api_key(resize_213), 1, 2),
    ]
    autocast = result.apis[0]
    assert autocast.category == "FutureWarning"
    assert autocast.torch_versions == ["2.13.0+cpu", "2.14.1"]
    assert [(use.slug, use.count, use.tests) for use in autocast.projects] == [
        ("alpha", 1, ["<collection>"]),
        ("torchthing", 5, ["t.py::test_a", "t.py::test_b", "t.py::test_d"]),
    ]
    resize = result.apis[1]
    assert resize.sample_message == resize_213  # as one run raised it
    assert [(p.slug, p.api_count, p.api_ids) for p in result.projects] == [
        ("torchthing", 2, [autocast.id, resize.id]),
        ("alpha", 1, [autocast.id]),
    ]


def test_forecast_reads_only_latest_final_matrix_cells_of_active_projects(
    projects, targets, django_capture_on_commit_callbacks
):
    on_commit = django_capture_on_commit_callbacks
    thing, alpha, beta = projects
    on_213 = targets[:1]
    _ran(thing, on_213, [[_warning("FutureWarning", "torch.gone() is deprecated")]], on_commit)
    # A later run replaces it: only the latest final cell on a target speaks.
    _ran(thing, on_213, [[_warning("FutureWarning", AUTOCAST)]], on_commit)
    # A bisection's cell never speaks for the project.
    bisection = _run(thing, on_213, on_commit, trigger=CompatRun.Trigger.BISECTION)
    _record(bisection.cells.get(), [_warning("FutureWarning", "torch.bisected is old")], on_commit)
    # A run still in progress says nothing yet; a retired project is left out.
    _run(alpha, on_213, on_commit)
    _ran(beta, on_213, [[_warning("FutureWarning", AUTOCAST)]], on_commit)
    Project.objects.filter(pk=beta.pk).update(status=Project.Status.RETIRED)
    # Targets no longer tested are left out too.
    _ran(alpha, targets[1:], [[_warning("FutureWarning", "torch.older is old")]], on_commit)
    targets[1].active = False
    targets[1].save()

    result = forecast()

    assert [(api.api, [use.slug for use in api.projects]) for api in result.apis] == [
        (AUTOCAST, ["torchthing"])
    ]
    # A project's own part, whatever its status (its project page).
    assert [api.api for api in forecast(project=beta).apis] == [AUTOCAST]
    assert forecast(project=alpha).cells == 0


def test_junk_warnings_from_an_agent_are_skipped(
    project, targets, django_capture_on_commit_callbacks
):
    junk = [
        "not a group",
        {"category": "FutureWarning", "torch_api": True},
        {"category": "FutureWarning", "message": "torch.x is deprecated", "torch_api": "yes"},
        {
            "category": "FutureWarning",
            "message": "torch.y is deprecated",
            "torch_api": True,
            "count": "many",
            "tests": "t.py::test_a",
        },
    ]
    _ran(project, targets[:1], [junk], django_capture_on_commit_callbacks)

    result = forecast()

    assert [(api.api, api.total_count, api.projects[0].tests) for api in result.apis] == [
        ("torch.y is deprecated", 0, [])
    ]


# --- page, API, project page ------------------------------------------------------------------


def test_page_and_api_show_the_forecast(
    client, projects, targets, django_capture_on_commit_callbacks
):
    thing, alpha, _ = projects
    sneaky = "torch.<script>alert(1)</script> is deprecated"
    for project in (thing, alpha):
        _ran(
            project,
            targets[:1],
            [[_warning("FutureWarning", AUTOCAST, tests=["t.py::test_a"])]],
            django_capture_on_commit_callbacks,
        )
    _ran(
        alpha,
        targets[1:],
        [[_warning("DeprecationWarning", sneaky)]],
        django_capture_on_commit_callbacks,
    )

    page = client.get(reverse("ci_runners:deprecations")).content.decode()
    data = client.get("/api/v1/deprecations/").json()

    assert "<script>alert(1)</script>" not in page
    assert "torch.&lt;script&gt;alert(1)&lt;/script&gt; is deprecated" in page
    assert "Alpha</a> calls 2 deprecated torch APIs" in page
    assert "TorchThing</a> calls 1 deprecated torch API<" in page
    assert [(api["api"], api["project_count"]) for api in data["apis"]] == [
        (AUTOCAST, 2),
        (sneaky, 1),
    ]
    assert data["apis"][0]["projects"][0] == {
        "slug": "alpha",
        "name": "Alpha",
        "tests": ["t.py::test_a"],
        "count": 1,
    }
    assert [(p["slug"], p["api_count"]) for p in data["projects"]] == [
        ("alpha", 2),
        ("torchthing", 1),
    ]
    matrix = client.get(reverse("ci_runners:matrix")).content.decode()
    assert reverse("ci_runners:deprecations") in matrix
    mine = client.get("/api/v1/deprecations/", {"project": "torchthing"}).json()
    assert [p["slug"] for p in mine["projects"]] == ["torchthing"]
    for slug in ("no-such-project", "bad\x00slug", "x" * 500):
        missing = client.get("/api/v1/deprecations/", {"project": slug})
        assert missing.status_code == 404
        assert missing.json() == {"detail": "No project with this name."}
    schema = client.get(reverse("api-schema"), {"format": "json"}).json()
    documented = schema["paths"]["/api/v1/deprecations/"]["get"]["responses"]["200"]
    # One document, not a list of them.
    assert documented["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Forecast"
    }


def test_project_page_pulls_in_the_projects_line(
    client, project, targets, django_capture_on_commit_callbacks
):
    detail = client.get(project.get_absolute_url()).content.decode()
    url = reverse("ci_runners:project_deprecations", kwargs={"slug": project.slug})
    assert f'hx-get="{url}"' in detail
    # No finished cell yet: the fragment is empty.
    assert client.get(url).content.decode().strip() == ""

    _ran(
        project,
        targets[:1],
        [
            [
                _warning("FutureWarning", AUTOCAST, tests=["t.py::test_a"]),
                _warning("UserWarning", "x"),
            ]
        ],
        django_capture_on_commit_callbacks,
    )
    fragment = client.get(url).content.decode()

    assert "TorchThing calls 2 deprecated torch APIs" in fragment
    assert "t.py::test_a" in fragment
    assert client.get(reverse("ci_runners:project_deprecations", args=["nope"])).status_code == 404


# --- end to end: two real projects, one deprecated API -----------------------------------------

# A stand-in torch whose own module warns about one of its APIs, as torch's deprecations do:
# raised inside torch, reported (stacklevel=2) against the caller's line. Its version is this
# test's own: the agent caches a torch base by version, in a cache other tests share.
STANDIN_VERSION = "9.62.0"
OLD_API = "torch.old_api is deprecated, use torch.new_api"


def _agent_result(repo, *, wheels, work) -> dict:
    """The Result the real agent prints for `repo` on the stand-in torch."""
    completed = agent_conftest.run_agent_cli(
        "run",
        "--source",
        str(repo),
        "--torch",
        STANDIN_VERSION,
        "--timeout",
        "120",
        "--work-root",
        str(work),
        "--json",
        env={
            "AGENT_FIND_LINKS": str(wheels),
            "AGENT_CACHE_DIR": str(agent_conftest.TEST_CACHE_DIR),
        },
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)


@pytest.mark.slow
def test_two_projects_calling_one_deprecated_api_count_2(
    client, db, make_project, work_root, require_sandbox, django_capture_on_commit_callbacks
):
    wheels = work_root / "standin-torch-forecast"
    standin_torch(wheels, STANDIN_VERSION)  # its torch.old_api() warns
    tests = {
        "tests/test_old.py": """
            import torch


            def test_calls_old_api():
                assert torch.old_api() == 1
        """
    }
    repos = [make_project(name=name, files=tests) for name in ("oldcaller-one", "oldcaller-two")]
    results = [_agent_result(repo, wheels=wheels, work=work_root) for repo in repos]
    target = TorchTargetFactory(version=STANDIN_VERSION, variant="")
    projects = [
        ProjectFactory(slug=f"oldcaller-{n}", name=f"Old caller {n}", repository=f"org/old-{n}")
        for n in ("one", "two")
    ]
    for project, result in zip(projects, results, strict=True):
        run = _run(project, [target], django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            services.cell_record_result(
                cell_id=run.cells.get().pk, attempt=1, runner="r", result=result
            )

    data = client.get("/api/v1/deprecations/").json()
    page = client.get(reverse("ci_runners:deprecations")).content.decode()

    # torch's own module raised it: the plugin counts a stand-in torch as torch.
    assert [(w["message"], w["torch_api"]) for w in results[0]["warnings"]] == [(OLD_API, True)]
    old_api = next(api for api in data["apis"] if api["api"] == OLD_API)
    assert old_api["project_count"] == 2
    assert [use["slug"] for use in old_api["projects"]] == ["oldcaller-one", "oldcaller-two"]
    assert old_api["projects"][0]["tests"] == ["tests/test_old.py::test_calls_old_api"]
    assert old_api["torch_versions"] == [STANDIN_VERSION]
    row = re.search(rf'<tr id="api-{old_api["id"]}">.*?</tr>', page, re.S).group(0)
    assert '<td class="count"><span class="total">2</span></td>' in row  # projects
    assert '<span class="warnings">2 warnings</span>' in row
