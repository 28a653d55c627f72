"""Declared vs measured, both ways: a project that declares a torch range and breaks inside it
shows a broken claim; one whose range excludes a release its tests pass with (run beyond the
range) shows a range that could widen. On the project page, in the API, in the badge's own
JSON (`/badges/<slug>.json`) and in the TAC evidence; never in the shields.io document.

The two projects are driven end to end: real git repositories, the real agent CLI on stand-in
torch wheels (9.1.0 and 9.2.0, where an API the first project calls is gone), each result
recorded through `services.cell_record_result` as a runner reports it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import uuid
from html import escape
from pathlib import Path

import pytest

from ci_runners import services
from ci_runners.agent.contracts import Result
from ci_runners.models import CompatCell, TorchTarget
from ci_runners.states import CellState
from registry.declared import DisagreementKind, project_compatibility
from reviews import checks
from tests.agent.conftest import TEST_CACHE_DIR, git_commit, run_agent_cli
from tests.ci_runners.factories import ProjectTestConfigFactory, TorchTargetFactory
from tests.registry.factories import ProjectFactory
from tests.standin_wheels import standin_torch_releases

# Runs dispatch their cells to this test session's own Redis (`tests/conftest.py`).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("broker")]

SHIELDS_KEYS = {"schemaVersion", "label", "message", "color", "cacheSeconds"}
BROKEN = "declares torch>=9.0, fails on 9.2.0"
WIDENABLE = "declared range torch>=9.0,<9.2 excludes 9.2.0 but its tests pass with it"


@pytest.fixture
def targets(db):
    return [
        TorchTargetFactory(version="9.1.0", variant=""),
        TorchTargetFactory(version="9.2.0", variant=""),
    ]


@pytest.fixture(scope="module")
def torch_links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-in torch 9.1.0 and 9.2.0 (no code of their own: the agent's torch base cache is
    keyed by version alone, and other tests build the same versions)."""
    return standin_torch_releases(tmp_path_factory.mktemp("widenable-links"), ["9.1.0", "9.2.0"])


@pytest.fixture(scope="module")
def work_root() -> Path:
    # Not under pytest's tmp dir: that is 0700 and the sandbox's uid could not reach it.
    root = Path(f"/tmp/ecoreg-widenable-work-{uuid.uuid4().hex[:8]}")  # noqa: S108
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _repo(parent: Path, name: str, *, torch_range: str, test: str) -> Path:
    """A real git repository of a small hatchling project declaring `torch<range>`."""
    repo = parent / name
    module = repo / "src" / name.replace("-", "_")
    module.mkdir(parents=True)
    (module / "__init__.py").write_text("")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_it.py").write_text(textwrap.dedent(test))
    (repo / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "{name}"
            version = "0.1.0"
            dependencies = ["torch{torch_range}"]

            [tool.hatch.build.targets.wheel]
            packages = ["src/{name.replace("-", "_")}"]
            """
        )
    )
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git_commit(repo, "initial")
    return repo


def _agent_result(repo: Path, torch: str, *, links: Path, work_root: Path) -> dict:
    """The real agent CLI's JSON for `repo` on stand-in `torch`, beyond its range if need be
    (as a registry project's dispatched job asks)."""
    completed = run_agent_cli(
        "run",
        "--source",
        str(repo),
        "--torch",
        torch,
        "--test-beyond-declared-range",
        "--work-root",
        str(work_root),
        "--json",
        env={"AGENT_FIND_LINKS": str(links), "AGENT_CACHE_DIR": str(TEST_CACHE_DIR)},
    )
    assert completed.stdout, completed.stderr
    return json.loads(completed.stdout)


def _measured_project(slug: str, *, repo: Path, targets, links: Path, work_root: Path, capture):
    """A registry project whose cells on 9.1.0 and 9.2.0 the real agent ran and reported."""
    project = ProjectFactory(slug=slug, name=slug.title(), repository=f"org/{slug}")
    ProjectTestConfigFactory(project=project)
    with capture(execute=True):
        run = services.compat_run_request(project=project, trigger="manual")
    for target in targets:
        cell = run.cells.get(target=target)
        result = _agent_result(repo, target.version, links=links, work_root=work_root)
        with capture(execute=True):
            services.cell_record_result(cell_id=cell.pk, attempt=1, runner="r", result=result)
    project.refresh_from_db()
    return project, run


def test_broken_claim_and_widenable_range_end_to_end(
    client,
    targets,
    torch_links,
    work_root,
    tmp_path,
    django_capture_on_commit_callbacks,
):
    breaks_on_9_2 = """
        import torch


        def test_api_removed_in_9_2():
            major, minor = (int(part) for part in torch.__version__.split(".")[:2])
            assert (major, minor) < (9, 2), "uses an API gone in 9.2"
    """
    passes_anywhere = """
        import torch


        def test_version():
            assert torch.__version__.startswith("9.")
    """
    breaker_repo = _repo(tmp_path, "breaker", torch_range=">=9.0", test=breaks_on_9_2)
    widener_repo = _repo(tmp_path, "widener", torch_range=">=9.0,<9.2", test=passes_anywhere)
    common = {
        "targets": targets,
        "links": torch_links,
        "work_root": work_root,
        "capture": django_capture_on_commit_callbacks,
    }
    breaker, _ = _measured_project("breaker", repo=breaker_repo, **common)
    widener, widener_run = _measured_project("widener", repo=widener_repo, **common)

    # What the agent reported, as stored on the widener's 9.2.0 cell.
    cell = widener_run.cells.get(target=targets[1])
    assert cell.state == CellState.NOT_INSTALLABLE
    assert cell.counts["passed"] == 0
    assert cell.beyond_range["state"] == "passed"
    assert cell.beyond_range["counts"]["passed"] == 1
    assert cell.declared == {"torch": ">=9.0,<9.2", "requires_python": ""}

    assert (breaker.works_with, breaker.breaks_with) == (["9.1.0"], ["9.2.0"])
    assert (widener.works_with, widener.not_installable_with) == (["9.1.0"], ["9.2.0"])
    assert widener.widenable_with == ["9.2.0"]
    assert breaker.widenable_with == []

    for project, kind, message in (
        (breaker, "broken_claim", BROKEN),
        (widener, "widenable_range", WIDENABLE),
    ):
        disagreement = {"kind": kind, "torch": "9.2.0", "message": message}
        page = client.get(project.get_absolute_url()).content.decode()
        assert escape(message) in page
        assert kind.replace("_", " ") in page
        api = client.get(f"/api/v1/projects/{project.slug}/").json()["compatibility"]
        assert api["disagreements"] == [disagreement]
        document = client.get(f"/badges/{project.slug}.json").json()
        assert document["compatibility"] == api
    assert "Passes beyond its range" in client.get(widener.get_absolute_url()).content.decode()
    widener_api = client.get("/api/v1/projects/widener/").json()["compatibility"]
    assert widener_api["widenable_with"] == ["9.2.0"]
    assert widener_api["declared"] == {"torch": ">=9.0,<9.2", "requires_python": ""}


def _result(state: CellState, *, beyond: dict) -> dict:
    data = Result(state=state, commit="abc123").to_dict()
    data["declared"] = {"torch": ">=9.0,<9.2", "requires_python": ""}
    data["beyond_range"] = beyond
    return data


def test_only_a_pass_beyond_the_range_makes_it_widenable(
    targets, django_capture_on_commit_callbacks
):
    project = ProjectFactory(slug="narrow", repository="org/narrow")
    ProjectTestConfigFactory(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.compat_run_request(project=project, trigger="manual")
    on_9_2 = run.cells.get(target=targets[1])
    failed_beyond = {"state": "failed", "counts": {"failed": 1}, "failures": []}

    with django_capture_on_commit_callbacks(execute=True):
        services.cell_record_result(
            cell_id=on_9_2.pk,
            attempt=1,
            runner="r",
            result=_result(CellState.NOT_INSTALLABLE, beyond=failed_beyond),
        )

    project.refresh_from_db()
    assert (project.not_installable_with, project.widenable_with) == (["9.2.0"], [])
    compat = project_compatibility(project=project)
    assert [(d.kind, d.torch) for d in compat.disagreements] == [
        (DisagreementKind.EXCLUDED_BY_METADATA, "9.2.0")
    ]


def test_widenable_only_for_a_version_its_range_excludes():
    project = ProjectFactory(
        slug="mixed",
        declared={"torch": "<9.2", "requires_python": ""},
        works_with=["9.1.0"],
        not_installable_with=["9.2.0", "9.3.0", "9.0.0"],
        widenable_with=["9.2.0"],
    )

    compat = project_compatibility(project=project)

    assert compat.widenable_with == ["9.2.0"]
    # 9.0.0 is inside the range: not installable for another reason, no disagreement.
    assert [d.to_dict() for d in compat.disagreements] == [
        {"kind": "widenable_range", "torch": "9.2.0", "message": WIDENABLE.replace(">=9.0,", "")},
        {
            "kind": "excluded_by_metadata",
            "torch": "9.3.0",
            "message": "declared range torch<9.2 excludes 9.3.0: not installable by its own "
            "metadata",
        },
    ]


def test_the_shields_document_keeps_exactly_the_shields_keys(client):
    ProjectFactory(
        slug="widened",
        declared={"torch": "<9.2", "requires_python": ""},
        works_with=["9.1.0"],
        not_installable_with=["9.2.0"],
        widenable_with=["9.2.0"],
    )

    for kind in ("ecosystem", "compat", "review"):
        shields = client.get(f"/badges/widened/{kind}.json").json()
        assert set(shields) == SHIELDS_KEYS

    compat = client.get("/badges/widened/compat.json").json()
    document = client.get("/badges/widened.json").json()
    assert document["badges"]["compat"] == {
        "label": compat["label"],
        "message": compat["message"],
        "color": compat["color"],
        "svg": "http://testserver/badges/widened/compat.svg",
        "json": "http://testserver/badges/widened/compat.json",
    }
    assert set(document["badges"]) == {"ecosystem", "compat", "review"}
    assert document["compatibility"]["widenable_with"] == ["9.2.0"]


def test_badge_document_answers_unknown_projects_and_methods_clearly(client):
    ProjectFactory(slug="known")

    assert client.get("/badges/nosuchproject.json").status_code == 404
    assert client.get("/badges/nosuchproject.json").json() == {
        "detail": "No project with this slug."
    }
    assert client.post("/badges/known.json").status_code == 405
    first = client.get("/badges/known.json")
    assert first["Content-Type"] == "application/json"
    assert first["Access-Control-Allow-Origin"] == "*"
    again = client.get("/badges/known.json", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304


def test_badge_snippets_link_the_badge_document(client):
    ProjectFactory(slug="linked")

    page = client.get("/badges/linked/snippets/").content.decode()

    assert 'href="http://testserver/badges/linked.json"' in page


def test_tac_evidence_names_the_versions_that_pass_beyond_the_range():
    declared = {"torch": ">=9.0,<9.2", "requires_python": ""}
    cells = [
        CompatCell(
            target=TorchTarget(version="9.1.0", variant=""),
            state="passed",
            counts={"passed": 3},
            declared=declared,
        ),
        CompatCell(
            target=TorchTarget(version="9.2.0", variant=""),
            state="not_installable",
            declared=declared,
            beyond_range={"state": "passed", "counts": {"passed": 3}},
        ),
    ]

    one, _ = checks.compat_measurements(cells, run_url="")

    label = cells[1].target.label
    assert one.outcome == checks.UNMET  # as published, it cannot be installed with 9.2.0
    assert one.value == (
        f"cannot be installed with PyTorch {label} (its metadata declares torch>=9.0,<9.2; "
        f"its tests pass beyond that range on {label})"
    )
