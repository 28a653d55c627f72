"""First bad release: the search (`bisect.py`), the published releases it searches
(`wheel_index.py`) and `python -m ci_runners.agent bisect`.

The search is a pure function of a `run_one` callable, so its unit tests give it a fake one;
everything else is real: wheel sources read over a real socket from a local fake index (PEP 691
JSON, PEP 503 HTML, find-links pages) or from disk, and the CLI bisects a real git project
over stand-in torch wheels 9.0.0 to 9.6.0 in a find-links dir, each release a real sandboxed
run. The project's test checks `torch.__version__`, so it breaks from 9.4.0 on whatever a
stand-in's body holds.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from packaging import tags
from packaging.version import Version

from ci_runners.agent import bisect as bisect_module
from ci_runners.agent import wheel_index
from ci_runners.agent.bisect import BisectError, BisectionPlan
from ci_runners.agent.contracts import CellState, Job, Result
from ci_runners.agent.environment import WheelSources
from tests.agent.conftest import ProjectFactory, run_agent_cli
from tests.fakes.http import FakeHTTPServer, Reply
from tests.standin_wheels import standin_torch

RELEASES = [f"9.{minor}.0" for minor in range(7)]  # 9.0.0 .. 9.6.0
FIRST_BAD = "9.4.0"
# A CPython 3.11 wheel's tags for this host's platform (the first one it installs).
HOST_WHEEL = f"cp311-cp311-{next(iter(tags.platform_tags()))}"

# --- the search, with a fake run_one ----------------------------------------------------------


def _plan(versions: list[str]) -> BisectionPlan:
    parsed = [Version(v) for v in versions]
    return BisectionPlan(good=parsed[0], bad=parsed[-1], candidates=parsed[1:-1])


def _fake_runs(first_bad: str, *, bad_state: CellState = CellState.FAILED):
    """run_one for a project that breaks from `first_bad` on; and the versions it ran."""
    ran: list[str] = []

    def run_one(version: str) -> Result:
        ran.append(version)
        environment = {"python": "3.11", "torch": version, "cuda": None, "gpu": None}
        if Version(version) < Version(first_bad):
            return Result(state=CellState.PASSED, environment=environment)
        failures = [{"test": "tests/test_api.py::test_api", "message": f"broken on {version}"}]
        return Result(state=bad_state, failures=failures, environment=environment)

    return run_one, ran


@pytest.mark.parametrize("count", range(0, 10))
def test_search_finds_the_first_bad_release_at_every_position(count: int) -> None:
    versions = [f"9.{minor}.0" for minor in range(count + 2)]  # count releases between ends
    for first in range(1, count + 2):
        run_one, ran = _fake_runs(versions[first])
        found = bisect_module.bisect(plan=_plan(versions), run_one=run_one)
        assert (found.first_bad, found.last_good) == (versions[first], versions[first - 1])
        assert found.tried == [{"torch": v, "state": _state(v, versions[first])} for v in ran]
        assert versions[0] not in ran and versions[-1] not in ran  # the ends are not re-run
        assert len(found.tried) <= math.ceil(math.log2(count + 1))
        assert len(found.tried) == len(set(ran))
        if first <= count:  # a release between the ends: it ran, its failures are reported
            assert found.failures[0]["message"] == f"broken on {versions[first]}"
        else:  # the bad end itself, not re-run
            assert found.failures == []


def _state(version: str, first_bad: str) -> str:
    return "passed" if Version(version) < Version(first_bad) else "failed"


def test_checked_ends_run_first_and_stay_within_two_more_runs() -> None:
    versions = RELEASES
    run_one, ran = _fake_runs(versions[-1])  # breaks only on the bad end
    found = bisect_module.bisect(plan=_plan(versions), run_one=run_one, check_ends=True)
    assert ran[:2] == ["9.0.0", "9.6.0"]
    assert found.first_bad == "9.6.0" and found.last_good == "9.5.0"
    assert found.failures[0]["message"] == "broken on 9.6.0"  # the bad end ran: its failures
    assert len(found.tried) <= bisect_module.max_runs(5, check_ends=True) == 5


@pytest.mark.parametrize(
    ("first_bad", "why"),
    [("9.0.0", "the good end 9.0.0 does not pass (failed)"), ("9.9.0", "the bad end 9.6.0 passes")],
)
def test_checked_ends_that_disagree_refuse_the_bisection(first_bad: str, why: str) -> None:
    run_one, ran = _fake_runs(first_bad)
    with pytest.raises(BisectError, match=re.escape(why)) as caught:
        bisect_module.bisect(plan=_plan(RELEASES), run_one=run_one, check_ends=True)
    assert caught.value.exit_code == bisect_module.EXIT_ENDS_DISAGREE == 1
    assert [entry["torch"] for entry in caught.value.tried] == ran


@pytest.mark.parametrize("bad_state", [CellState.TIMED_OUT, CellState.NOT_INSTALLABLE])
def test_timed_out_and_not_installable_releases_are_bad(bad_state: CellState) -> None:
    run_one, _ = _fake_runs("9.2.0", bad_state=bad_state)
    found = bisect_module.bisect(plan=_plan(RELEASES), run_one=run_one)
    assert found.first_bad == "9.2.0" and found.last_good == "9.1.0"
    assert {"torch": "9.2.0", "state": str(bad_state)} in found.tried


def test_a_not_installable_release_reports_its_reason() -> None:
    def run_one(version: str) -> Result:
        if Version(version) < Version("9.3.0"):
            return Result(state=CellState.PASSED)
        return Result(state=CellState.NOT_INSTALLABLE, error=f"p requires torch<9.3; {version}")

    found = bisect_module.bisect(plan=_plan(RELEASES), run_one=run_one)
    assert found.first_bad == "9.3.0"
    assert found.failures == [{"test": "", "message": "p requires torch<9.3; 9.3.0"}]


def test_an_errored_release_stops_the_search_naming_it() -> None:
    ran: list[str] = []

    def run_one(version: str) -> Result:
        ran.append(version)
        if version == "9.3.0":
            return Result(
                state=CellState.ERRORED, error_code="env_build_failed", error="uv crashed"
            )
        return Result(state=CellState.PASSED)

    with pytest.raises(BisectError) as caught:
        bisect_module.bisect(plan=_plan(RELEASES), run_one=run_one)
    message = str(caught.value)
    assert "9.3.0" in message and "env_build_failed" in message and "uv crashed" in message
    assert caught.value.exit_code == bisect_module.EXIT_UNDECIDED == 3
    assert caught.value.tried == [{"torch": "9.3.0", "state": "errored"}]
    assert ran == ["9.3.0"]


def test_a_run_of_another_torch_than_asked_stops_the_search() -> None:
    def run_one(version: str) -> Result:  # e.g. `torch==9.3.0` resolved to 9.3.0+cpu
        environment = {"python": "3.11", "torch": f"{version}+cpu", "cuda": None, "gpu": None}
        return Result(state=CellState.PASSED, environment=environment)

    with pytest.raises(BisectError, match=r"torch 9\.3\.0 was asked for but 9\.3\.0\+cpu ran"):
        bisect_module.bisect(plan=_plan(RELEASES), run_one=run_one)


# --- the plan: ends matched to what is published ----------------------------------------------


def _published(*versions: str) -> list[Version]:
    return sorted(Version(v) for v in versions)


def test_an_end_without_local_tag_matches_the_only_build_published() -> None:
    published = _published(*(f"{v}+cpu" for v in RELEASES), "9.3.0+cu126", "9.4.0rc1+cpu")
    plan = bisect_module.plan_bisection(published=published, good="9.0.0", bad="9.6.0")
    assert (str(plan.good), str(plan.bad)) == ("9.0.0+cpu", "9.6.0+cpu")
    # one build per public version, the ends' variant; no pre-release between final ends
    assert [str(v) for v in plan.candidates] == [f"9.{m}.0+cpu" for m in range(1, 6)]


def test_an_end_is_matched_exactly_when_published_as_asked() -> None:
    published = _published("9.0.0", "9.1.0", "9.1.0+cpu", "9.2.0+cpu", "9.2.0+cu126", "9.3.0")
    plan = bisect_module.plan_bisection(published=published, good="9.1.0+cpu", bad="9.3.0")
    assert (str(plan.good), str(plan.bad)) == ("9.1.0+cpu", "9.3.0")
    assert [str(v) for v in plan.candidates] == ["9.2.0+cpu"]
    plan = bisect_module.plan_bisection(published=published, good="9.2.0+cu126", bad="9.3.0")
    assert str(plan.good) == "9.2.0+cu126" and plan.candidates == []


def test_a_build_without_local_tag_beside_local_builds_is_never_run() -> None:
    # `torch==9.1.0` installs 9.1.0+cpu when both are published: 9.1.0 alone cannot be run.
    published = _published("9.0.0", "9.1.0", "9.1.0+cpu", "9.2.0", "9.3.0")
    plan = bisect_module.plan_bisection(published=published, good="9.0.0", bad="9.3.0")
    assert [str(v) for v in plan.candidates] == ["9.2.0"]
    assert [str(v) for v in plan.left_out] == ["9.1.0"]
    assert "left out, no build like the ends': 9.1.0" in plan.describe()
    plan = bisect_module.plan_bisection(published=published, good="9.1.0", bad="9.3.0")
    assert str(plan.good) == "9.1.0+cpu"  # what `run --torch 9.1.0` runs


@pytest.mark.parametrize(
    ("good", "bad", "message"),
    [
        ("9.0.0", "9.9.0", "--bad 9.9.0: no torch 9.9.0 is published"),
        ("9.0.0+cu126", "9.2.0", "--good 9.0.0+cu126: no torch 9.0.0+cu126 is published"),
        ("9.1.0", "9.2.0", "--good 9.1.0 is published as 9.1.0+cpu, 9.1.0+cu126: name one"),
        ("9.2.0", "9.0.0+cpu", "--good 9.2.0 is not older than --bad 9.0.0+cpu"),
        ("nine", "9.2.0", "--good 'nine' is not a version"),
    ],
)
def test_ends_that_name_no_published_build_are_refused(good: str, bad: str, message: str) -> None:
    published = _published("9.0.0+cpu", "9.1.0+cpu", "9.1.0+cu126", "9.2.0")
    with pytest.raises(BisectError, match=re.escape(message)) as caught:
        bisect_module.plan_bisection(published=published, good=good, bad=bad)
    assert caught.value.exit_code == bisect_module.EXIT_BAD_REQUEST == 2


def test_a_job_for_a_published_build_splits_its_local_tag() -> None:
    base = Job(source="/src", torch_version="9.0.0", python_version="3.12")
    job = bisect_module.job_for(base, "9.3.0+cpu")
    assert (job.torch_version, job.torch_variant, job.python_version) == ("9.3.0", "cpu", "3.12")
    assert job.torch_requirement == "torch==9.3.0+cpu"
    assert bisect_module.job_for(base, "9.3.0").torch_requirement == "torch==9.3.0"


# --- wheel sources, read for real -------------------------------------------------------------

FILES = [
    f"torch-9.0.0-{HOST_WHEEL}.whl",
    "torch-9.1.0-py3-none-any.whl",
    "torch-9.2.0-cp311-cp311-win_amd64.whl",  # not for this host
    "torch-9.3.0-cp39-cp39-manylinux_2_28_x86_64.whl",  # not for this python
    "torch-9.4.0.tar.gz",  # no wheel
    "torchvision-9.5.0-py3-none-any.whl",  # another project
]


def _supported() -> frozenset[tags.Tag]:
    return wheel_index.supported_tags("3.11")


def test_pep_691_json_index_lists_the_wheels_this_python_installs() -> None:
    body = {"meta": {"api-version": "1.1"}, "name": "torch", "files": []}
    body["files"] = [{"filename": name, "url": f"/f/{name}", "hashes": {}} for name in FILES]
    with FakeHTTPServer() as index:
        headers = {"Content-Type": wheel_index.SIMPLE_JSON}
        index.route("GET", "/simple/torch/", Reply(200, body, headers))
        names = wheel_index.index_filenames(f"{index.url}/simple", project="torch")
        assert wheel_index.SIMPLE_JSON in index.requests[0].headers["Accept"]
    versions = wheel_index.installable_versions(names, project="torch", supported=_supported())
    assert sorted(map(str, versions)) == ["9.0.0", "9.1.0"]


def test_pep_503_html_index_and_find_links_page_are_read_from_their_links() -> None:
    page = (
        "<!DOCTYPE html><html><body>"
        f'<a href="/files/torch-9.0.0%2Bcpu-{HOST_WHEEL}.whl#sha256=ab">x</a>'
        '<a href="https://cdn.example/torch-9.1.0%2Bcpu-py3-none-any.whl" data-yanked="">y</a>'
        '<a href="torch-9.2.0%2Bcpu-cp311-cp311-win_amd64.whl">z</a>'
        "</body></html>"
    )
    html = {"Content-Type": "text/html"}
    with FakeHTTPServer() as server:
        server.route("GET", "/simple/torch/", Reply(200, page, html))
        server.route("GET", "/links.html", Reply(200, page, html))
        from_index = wheel_index.index_filenames(f"{server.url}/simple/", project="torch")
        from_links = wheel_index.find_links_filenames(f"{server.url}/links.html")
    assert from_index == from_links
    versions = wheel_index.installable_versions(from_index, project="torch", supported=_supported())
    assert sorted(map(str, versions)) == ["9.0.0+cpu", "9.1.0+cpu"]


def test_an_index_without_torch_publishes_none_but_a_failing_source_is_an_error(
    tmp_path: Path,
) -> None:
    with FakeHTTPServer() as server:
        server.route("GET", "/broken/torch/", Reply(503, "busy", {"Content-Type": "text/plain"}))
        assert wheel_index.index_filenames(f"{server.url}/empty", project="torch") == []
        with pytest.raises(wheel_index.WheelIndexError, match=r"/broken/torch/ answered HTTP 503"):
            wheel_index.index_filenames(f"{server.url}/broken", project="torch")
        with pytest.raises(wheel_index.WheelIndexError, match="is not there"):
            wheel_index.find_links_filenames(f"{server.url}/nowhere.html")
    with pytest.raises(wheel_index.WheelIndexError, match="cannot be read"):
        wheel_index.find_links_filenames(str(tmp_path / "missing"))


def test_a_local_simple_tree_is_an_index(tmp_path: Path) -> None:
    (tmp_path / "simple" / "torch").mkdir(parents=True)
    link = f'<a href="../../files/torch-9.0.0-{HOST_WHEEL}.whl#sha256=00">w</a>'
    (tmp_path / "simple" / "torch" / "index.html").write_text(link)
    index = (tmp_path / "simple").as_uri()
    assert wheel_index.index_filenames(index, project="torch") == [f"torch-9.0.0-{HOST_WHEEL}.whl"]
    assert wheel_index.index_filenames(index, project="numpy") == []


def test_the_default_index_stays_beside_find_links_unless_an_index_url_replaces_it() -> None:
    only_links = wheel_index.source_list(WheelSources(find_links=["/w"]))
    assert only_links.indexes == ["https://pypi.org/simple"]
    extra = wheel_index.source_list(WheelSources(extra_index_urls=["https://x.example/simple"]))
    assert extra.indexes == ["https://pypi.org/simple", "https://x.example/simple"]
    own = wheel_index.source_list(WheelSources(index_url="https://u:secret@mirror.example/s"))
    assert own.indexes == ["https://u:secret@mirror.example/s"]
    assert "secret" not in own.describe()


def test_published_versions_come_from_the_jobs_sources_and_the_default_index(
    tmp_path: Path,
) -> None:
    links = tmp_path / "links"
    for version in ("9.0.0", "9.1.0+cpu"):
        standin_torch(links, version)
    body = {"meta": {"api-version": "1.1"}, "name": "torch", "files": []}
    body["files"] = [{"filename": f"torch-9.2.0-{HOST_WHEEL}.whl", "url": "/f", "hashes": {}}]
    with FakeHTTPServer() as index:
        headers = {"Content-Type": wheel_index.SIMPLE_JSON}
        index.route("GET", "/simple/torch/", Reply(200, body, headers))
        job = Job(
            source="/src",
            torch_version="9.0.0",
            find_links=[str(links)],
            index_urls=[f"{index.url}/simple"],
        )
        versions = wheel_index.published_torch_versions(job=job)
    assert [str(v) for v in versions if v.major == 9] == ["9.0.0", "9.1.0+cpu", "9.2.0"]
    assert any(v.major == 2 for v in versions)  # PyPI, uv's default index, is read too


# --- the CLI, for real ------------------------------------------------------------------------

PROJECT_TEST = """
import torch


def test_torch_api():
    release = tuple(int(part) for part in torch.__version__.split("+")[0].split("."))
    assert release < (9, 4), f"torch {torch.__version__} broke the API"
"""


@pytest.fixture(scope="module")
def breaking_project(make_project: ProjectFactory) -> Path:
    """A project whose test passes with torch below 9.4 and fails from 9.4.0 on."""
    return make_project(name="bisect-me", files={"tests/test_api.py": PROJECT_TEST})


def _bisect(project: Path, links: Path, work_root: Path, *args: str):
    return run_agent_cli(
        "bisect",
        "--source",
        str(project),
        "--json",
        "--work-root",
        str(work_root),
        *args,
        env={"AGENT_FIND_LINKS": str(links)},
    )


def test_cli_finds_the_first_bad_release(
    require_sandbox: None, work_root: Path, breaking_project: Path, tmp_path: Path
) -> None:
    links = tmp_path / "links"
    for version in RELEASES:
        standin_torch(links, version)
    completed = _bisect(breaking_project, links, work_root, "--good", "9.0.0", "--bad", "9.6.0")
    assert completed.returncode == 0, completed.stderr
    found = json.loads(completed.stdout)
    assert (found["first_bad"], found["last_good"]) == (FIRST_BAD, "9.3.0")
    assert found["failures"][0]["test"] == "tests/test_api.py::test_torch_api"
    assert "torch 9.4.0 broke the API" in found["failures"][0]["message"]
    assert {"torch": "9.4.0", "state": "failed"} in found["tried"]
    assert all(entry["torch"] not in ("9.0.0", "9.6.0") for entry in found["tried"])
    n = len(RELEASES)  # releases from good to bad, both included
    assert len(found["tried"]) <= math.ceil(math.log2(n)) + 1
    assert len(found["tried"]) <= math.ceil(math.log2(n - 2)) + 2


def test_cli_matches_a_published_local_tag_and_checks_the_ends(
    require_sandbox: None, work_root: Path, breaking_project: Path, tmp_path: Path
) -> None:
    links = tmp_path / "links"
    for version in RELEASES:
        standin_torch(links, f"{version}+cpu")
    completed = _bisect(
        breaking_project, links, work_root, "--good", "9.0.0", "--bad", "9.6.0", "--check-ends"
    )
    assert completed.returncode == 0, completed.stderr
    found = json.loads(completed.stdout)
    assert (found["first_bad"], found["last_good"]) == ("9.4.0+cpu", "9.3.0+cpu")
    assert found["tried"][:2] == [
        {"torch": "9.0.0+cpu", "state": "passed"},
        {"torch": "9.6.0+cpu", "state": "failed"},
    ]
    assert found["failures"][0]["test"] == "tests/test_api.py::test_torch_api"
    assert len(found["tried"]) <= math.ceil(math.log2(len(RELEASES) - 2)) + 2


def test_cli_refuses_an_end_the_sources_do_not_publish(
    work_root: Path, breaking_project: Path, tmp_path: Path
) -> None:
    links = tmp_path / "links"
    for version in RELEASES:
        standin_torch(links, version)
    completed = _bisect(breaking_project, links, work_root, "--good", "9.0.0", "--bad", "9.9.0")
    assert completed.returncode == 2
    assert "--bad 9.9.0: no torch 9.9.0 is published on the wheel sources" in completed.stderr
    assert f"find-links {links}; index https://pypi.org/simple" in completed.stderr
    failed = json.loads(completed.stdout)
    assert failed["first_bad"] is None and failed["tried"] == []
    assert "9.9.0" in failed["error"]


def test_cli_stops_when_a_wheel_source_cannot_be_read(
    work_root: Path, breaking_project: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-dir"
    completed = _bisect(breaking_project, missing, work_root, "--good", "9.0.0", "--bad", "9.6.0")
    assert completed.returncode == 3
    assert f"the torch releases cannot be listed: find-links {missing}" in completed.stderr
    assert json.loads(completed.stdout)["tried"] == []
