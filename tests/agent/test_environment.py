"""A job's environment is what it says: the torch requested, every dependency resolved against
it (extras included), a lock read back from the venv, and a refusal (NotInstallable) when the
project cannot be had with that torch.

Real uv, real torch wheels (2.13.0+cpu from /opt/wheels; 2.14.1 and torchvision from the file
index), real sandboxed project builds; small dependencies are wheels written by the test into
a local find-links dir.
"""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ci_runners.agent import environment
from ci_runners.agent.contracts import CellState, Job, Result, TestConfig
from ci_runners.agent.runner import run_job
from tests.agent.conftest import git_commit, make_wheel

pytestmark = pytest.mark.agent


# --- where wheels come from -------------------------------------------------------------------


def test_pip_config_of_this_host_is_used_when_nothing_else_is_set(monkeypatch):
    monkeypatch.delenv("AGENT_FIND_LINKS", raising=False)
    monkeypatch.delenv("AGENT_INDEX_URLS", raising=False)

    sources = environment.wheel_sources(job=Job(source=".", torch_version="2.13.0"))

    assert "/opt/wheels" in sources.find_links
    assert "file:///opt/pypi-more/simple" in sources.extra_index_urls
    args = sources.uv_args()
    assert args[-2:] == ["--index-strategy", "unsafe-best-match"]


def test_agent_variables_override_pip_config(monkeypatch):
    monkeypatch.setenv("AGENT_FIND_LINKS", "/a, /b")
    monkeypatch.setenv("AGENT_INDEX_URLS", "https://download.pytorch.org/whl/cu126")

    sources = environment.wheel_sources(job=Job(source=".", torch_version="2.13.0"))

    assert sources.find_links == ["/a", "/b"]
    assert sources.extra_index_urls == ["https://download.pytorch.org/whl/cu126"]


def test_job_sources_win(monkeypatch):
    monkeypatch.setenv("AGENT_FIND_LINKS", "/a")
    job = Job(source=".", torch_version="2.13.0", find_links=["/job"], index_urls=[])

    assert environment.wheel_sources(job=job).find_links == ["/job"]


def test_a_requirement_that_is_not_pep_508_is_refused_with_its_text(tmp_path):
    with pytest.raises(environment.EnvBuildError, match=r"requirement 'six\[' is not PEP 508"):
        environment.build_environment(
            job=Job(source=".", torch_version="2.13.0"),
            project_dir=tmp_path,
            venv=tmp_path / "venv",
            extras=[],
            requirements=["six["],
        )
    assert not (tmp_path / "venv").exists()


# --- helpers ----------------------------------------------------------------------------------


def _job(*, links: Path | None = None, torch: str = "2.13.0", variant: str | None = "cpu") -> Job:
    """A job on `torch`, whose wheel sources are this host's plus the test's `links` dir."""
    sources = environment.pip_configured_sources()
    return Job(
        source=".",
        torch_version=torch,
        torch_variant=variant,
        find_links=[*([str(links)] if links else []), *sources.find_links],
        index_urls=[u for u in [sources.index_url] if u] + sources.extra_index_urls,
    )


def _unique(name: str) -> str:
    return f"{name}{uuid.uuid4().hex[:8]}"


def _plain_project(root: Path) -> Path:
    """A checkout with no build system: only the job's requirements are installed."""
    project = root / f"plain-{uuid.uuid4().hex[:6]}"
    project.mkdir()
    (project / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    return project


def _project(root: Path, *, name: str, pyproject: str = "", setup_py: str = "") -> Path:
    """A project in its own git repo, built in the sandbox: hatchling, or a setup.py."""
    repo = root / name
    (repo / "src" / name).mkdir(parents=True)
    (repo / "src" / name / "__init__.py").write_text("")
    if setup_py:
        (repo / "setup.py").write_text(textwrap.dedent(setup_py))
    else:
        build = (
            '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
            f'[tool.hatch.build.targets.wheel]\npackages = ["src/{name}"]\n\n'
        )
        (repo / "pyproject.toml").write_text(build + textwrap.dedent(pyproject))
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git_commit(repo, "initial")
    return repo


def _build(job: Job, project: Path, work_root: Path, **kwargs) -> environment.BuiltEnvironment:
    venv = work_root / f"venv-{uuid.uuid4().hex[:8]}"
    kwargs.setdefault("extras", [])
    kwargs.setdefault("requirements", [])
    return environment.build_environment(job=job, project_dir=project, venv=venv, **kwargs)


def _in_venv(built: environment.BuiltEnvironment, code: str) -> str:
    completed = subprocess.run(
        [str(built.python), "-c", code], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


# --- the lock, and the cache keyed by it -----------------------------------------------------


def test_new_release_of_an_unpinned_dependency_is_picked_up_and_locked(tmp_path, work_root):
    links = tmp_path / "links"
    depx = _unique("depx")  # the cache outlives test sessions: a lock never seen before
    make_wheel(links, name=depx, version="1.0")
    job = _job(links=links)
    project = _plain_project(tmp_path)
    version_of = f"import {depx}; print({depx}.VERSION)"

    first = _build(job, project, work_root, requirements=[depx])
    warm = _build(job, project, work_root, requirements=[depx])
    make_wheel(links, name=depx, version="1.1")
    after_release = _build(job, project, work_root, requirements=[depx])

    assert f"{depx}==1.0" in first.lock and first.cache_hit is False
    assert warm.lock == first.lock and warm.lock_hash == first.lock_hash
    assert warm.cache_hit is True and warm.base_cache_hit is True
    assert f"{depx}==1.1" in after_release.lock and f"{depx}==1.0" not in after_release.lock
    assert after_release.lock_hash != first.lock_hash
    assert after_release.cache_hit is False
    assert _in_venv(after_release, version_of) == "1.1"
    assert _in_venv(first, version_of) == "1.0"  # its own environment is kept


def test_two_jobs_building_the_same_environment_at_once_share_it(tmp_path, work_root):
    links = tmp_path / "links"
    shared = _unique("depshared")
    make_wheel(links, name=shared, version="1.0")
    job = _job(links=links)
    project = _plain_project(tmp_path)

    with ThreadPoolExecutor(max_workers=2) as pool:
        both = list(
            pool.map(lambda _: _build(job, project, work_root, requirements=[shared]), range(2))
        )

    assert sorted(built.cache_hit for built in both) == [False, True]
    assert both[0].lock == both[1].lock
    for built in both:
        assert _in_venv(built, f"import {shared}; print({shared}.VERSION)") == "1.0"


def test_lock_records_everything_installed_with_torchs_exact_build(
    tmp_path, work_root, require_sandbox
):
    repo = _project(
        tmp_path,
        name="lockedproj",
        pyproject='[project]\nname = "lockedproj"\nversion = "0.3.0"\ndependencies = ["six"]\n',
    )
    built = _build(_job(), repo, work_root)

    assert built.torch_version == "2.13.0+cpu"
    assert "torch==2.13.0+cpu" in built.lock
    assert "lockedproj==0.3.0" in built.lock and any(x.startswith("six==") for x in built.lock)
    assert any(line.startswith("pytest==") for line in built.lock)
    assert built.lock == sorted(built.lock)
    assert built.lock_hash == hashlib.sha256("\n".join(built.lock).encode()).hexdigest()
    frozen = _in_venv(
        built,
        "import importlib.metadata as m\n"
        "for d in m.distributions(): print(f\"{d.metadata['Name']}=={d.version}\")",
    )
    assert {line.lower().replace("_", "-") for line in frozen.splitlines()} == set(built.lock)


# --- the torch that ran is the torch requested -----------------------------------------------


PINNED_TORCH_SETUP_PY = """
    from setuptools import setup

    setup(
        name="pinnedtorch",
        version="0.1.0",
        packages=["pinnedtorch"],
        package_dir={"": "src"},
        install_requires=["torch==2.14.1"],
    )
"""


def test_project_pinning_another_torch_is_not_installable(tmp_path, work_root, require_sandbox):
    repo = _project(tmp_path, name="pinnedtorch", setup_py=PINNED_TORCH_SETUP_PY)

    with pytest.raises(environment.NotInstallable) as raised:
        _build(_job(), repo, work_root)

    assert str(raised.value) == (
        "pinnedtorch requires torch==2.14.1 (its Requires-Dist); 2.13.0 is excluded"
    )


def test_dependency_needing_another_torch_is_not_installable_with_the_resolvers_reason(
    tmp_path, work_root
):
    links = tmp_path / "links"
    make_wheel(links, name="needs-new-torch", version="1.0", requires=("torch>=2.14",))

    with pytest.raises(environment.NotInstallable) as raised:
        _build(
            _job(links=links), _plain_project(tmp_path), work_root, requirements=["needs-new-torch"]
        )

    reason = str(raised.value)
    assert reason.startswith("Because"), reason
    assert "needs-new-torch" in reason and "torch>=2.14" in reason
    assert "\n" not in reason


def test_requires_python_excluding_the_jobs_python_is_not_installable(
    tmp_path, work_root, require_sandbox
):
    repo = _project(
        tmp_path,
        name="newpython",
        pyproject='[project]\nname = "newpython"\nversion = "0.1.0"\nrequires-python = ">=3.12"\n',
    )

    with pytest.raises(environment.NotInstallable) as raised:
        _build(_job(), repo, work_root)

    assert str(raised.value).startswith(
        "newpython requires Python>=3.12 (its Requires-Python); 3.11."
    )
    assert str(raised.value).endswith(" is excluded")


def test_declared_torch_range_is_checked_for_this_python_and_the_requested_extras():
    metadata = environment.WheelMetadata(
        name="proj",
        version="1.0",
        requires_python=None,
        requires_dist=[
            'torch<2.0; python_version < "3.8"',
            'torch<2.14; extra == "legacy"',
            "torch>=2.1",
        ],
    )

    def check(torch: str, extras: list[str]) -> None:
        environment.check_declared_support(
            metadata=metadata, torch_version=torch, python_version="3.11.2", extras=extras
        )

    check("2.14.1", [])  # the old-python pin does not apply to 3.11, the extra is not wanted
    with pytest.raises(environment.NotInstallable, match=r"^proj requires torch<2.14 .*2.14.1"):
        check("2.14.1", ["legacy"])
    with pytest.raises(
        environment.NotInstallable, match=r"torch>=2.1 \(its Requires-Dist\); 2.0.1"
    ):
        check("2.0.1+cpu", [])


def test_declared_support_is_the_applying_torch_range_and_requires_python():
    metadata = environment.WheelMetadata(
        name="proj",
        version="1.0",
        requires_python=">=3.9",
        requires_dist=[
            'torch<2.0; python_version < "3.8"',
            'torch<2.15; extra == "cuda"',
            "torch>=2.3",
            "numpy>=1.0",
        ],
    )

    def declared(extras: list[str]) -> dict[str, str]:
        return environment.declared_support(
            metadata=metadata, python_version="3.11.2", extras=extras
        )

    assert declared([]) == {"torch": ">=2.3", "requires_python": ">=3.9"}
    assert declared(["cuda"]) == {"torch": ">=2.3,<2.15", "requires_python": ">=3.9"}
    bare = environment.WheelMetadata(
        name="p", version="1", requires_python=None, requires_dist=["numpy"]
    )
    assert environment.declared_support(metadata=bare, python_version="3.11.2", extras=[]) == {
        "torch": "",
        "requires_python": "",
    }


DECLARED_RANGE_PYPROJECT = """
    [project]
    name = "{name}"
    version = "0.1.0"
    requires-python = ">=3.9"
    dependencies = ["torch>=2.3,<2.15"]
"""


def test_built_projects_declared_torch_range_reaches_the_result(
    tmp_path, work_root, require_sandbox
):
    name = _unique("declares")
    repo = _project(tmp_path, name=name, pyproject=DECLARED_RANGE_PYPROJECT.format(name=name))
    (repo / "tests").mkdir()
    (repo / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")
    git_commit(repo, "tests")
    job = dataclasses.replace(
        _job(), source=str(repo), test_config=TestConfig(copy_tests="tests"), timeout_s=300
    )

    result = run_job(job=job, work_root=work_root)

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.declared == {"torch": ">=2.3,<2.15", "requires_python": ">=3.9"}
    assert Result.from_dict(result.to_dict()).declared == result.declared


def test_not_installable_project_still_reports_what_it_declares(
    tmp_path, work_root, require_sandbox
):
    repo = _project(tmp_path, name="pinnedtorch", setup_py=PINNED_TORCH_SETUP_PY)
    (repo / "test_a.py").write_text("def test_a():\n    pass\n")
    git_commit(repo, "a test")

    result = run_job(job=dataclasses.replace(_job(), source=str(repo)), work_root=work_root)

    assert result.state == CellState.NOT_INSTALLABLE, (result.error, result.log_tail)
    assert result.declared == {"torch": "==2.14.1", "requires_python": ""}


# --- extras, with their dependencies ---------------------------------------------------------


def test_extra_installs_its_dependencies_including_a_self_referencing_extra(
    tmp_path, work_root, require_sandbox
):
    repo = _project(
        tmp_path,
        name="extraproj",
        pyproject="""
            [project]
            name = "extraproj"
            version = "0.1.0"

            [project.optional-dependencies]
            full = ["six"]
            test = ["extraproj[full]", "iniconfig"]
        """,
    )

    built = _build(_job(), repo, work_root, extras=["test"])

    names = {line.split("==")[0] for line in built.lock}
    assert {"six", "iniconfig", "extraproj"} <= names
    _in_venv(built, "import six, iniconfig, extraproj")


# --- companions ------------------------------------------------------------------------------


def test_torchvision_with_no_build_for_a_cpu_torch_is_not_installable(tmp_path, work_root):
    with pytest.raises(environment.NotInstallable) as raised:
        _build(_job(), _plain_project(tmp_path), work_root, requirements=["torchvision"])

    assert str(raised.value) == (
        "no torchvision build matching torch 2.13.0+cpu on the configured wheel sources"
    )


@pytest.mark.slow
def test_torchvision_is_matched_to_the_torch_under_test_and_works(tmp_path, work_root):
    # torch 2.14.1 without a variant: the CUDA build (it runs on CPU too), with torchvision 0.29
    # from the same sources (0.29.1 on the file index; the default index may have a newer one).
    job = _job(torch="2.14.1", variant=None)

    built = _build(job, _plain_project(tmp_path), work_root, requirements=["torchvision"])

    assert built.torch_version == "2.14.1"
    assert "torch==2.14.1" in built.lock
    torchvision = [line for line in built.lock if line.startswith("torchvision==")]
    assert len(torchvision) == 1 and torchvision[0].startswith("torchvision==0.29.")
    assert "+" not in torchvision[0]  # the same (no) variant tag as torch
    kept = _in_venv(
        built,
        "import torch, torchvision; "
        "boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]]); "
        "print(torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist())",
    )
    assert kept == "[0, 2]"


# --- infrastructure stays infrastructure -----------------------------------------------------


def test_requirement_no_source_has_is_not_a_fact_about_torch(tmp_path, work_root):
    with pytest.raises(environment.EnvBuildError) as raised:
        _build(_job(), _plain_project(tmp_path), work_root, requirements=["no-such-pkg-ecoreg"])

    message = str(raised.value)
    assert message.startswith("env build failed: the dependencies cannot be resolved: Because")
    assert "no-such-pkg-ecoreg" in message


def test_unreachable_wheel_source_is_an_env_build_error(tmp_path, work_root):
    job = Job(
        source=".",
        torch_version="2.13.0",
        torch_variant="cpu",
        find_links=[str(tmp_path / "missing-links-dir")],
    )

    with pytest.raises(environment.EnvBuildError) as raised:
        _build(job, _plain_project(tmp_path), work_root)

    assert str(raised.value).startswith("wheel source unreachable:"), str(raised.value)
