"""The project's own build (setup.py, build backend) runs only inside the sandbox.

Dependencies come as wheels only; the project is built into a wheel under bubblewrap (uid
65534, cgroup limits, cleared environment, only its build dir writable) and that wheel is
installed by the agent.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import textwrap
import uuid
import zipfile
from pathlib import Path

import pytest

from ci_runners.agent import build, environment, sandbox
from ci_runners.agent.contracts import CellState, Job, TestConfig
from ci_runners.agent.runner import run_job
from tests.agent.conftest import git_commit
from tests.fakes.http import FakeHTTPServer

pytestmark = pytest.mark.agent

MARKER = f"ecoreg-build-{uuid.uuid4().hex[:10]}"
SECRET = f"s3cr3t-{MARKER}"


def _outside_targets(base_site_packages: Path) -> dict[str, Path]:
    cache = environment.cache_dir()
    return {
        "uv_cache": cache / "uv" / f"{MARKER}.txt",
        "wheel_cache": cache / f"{MARKER}-wheels.txt",
        "base_venv": base_site_packages / f"{MARKER}.py",
        "root_home": Path(f"/root/{MARKER}.txt"),
        "host_tmp": Path(f"/tmp/{MARKER}.txt"),  # noqa: S108 - must NOT be created
    }


@pytest.fixture(scope="module")
def base_site_packages(tmp_path_factory, work_root, require_sandbox) -> Path:
    """The cached base environment (torch 2.13 CPU + pytest) that the hostile build's job uses.

    Built here, so this module does not depend on another module having warmed the cache.
    """
    plain = tmp_path_factory.mktemp("plainbase")
    (plain / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    job = _job(plain)
    venv = work_root / f"venv-base-{uuid.uuid4().hex[:6]}"
    environment.build_environment(job=job, project_dir=plain, venv=venv, extras=[], requirements=[])
    wanted = sorted([job.torch_requirement, "pytest"])
    for key_file in (environment.cache_dir() / "bases").glob("*/ecoreg-base-key.json"):
        if json.loads(key_file.read_text())["requirements"] == wanted:
            return next(key_file.parent.glob("lib/python3.11/site-packages"))
    raise AssertionError(f"no base environment for {wanted} in the agent's cache")


SETUP_PY = """
    import json
    import os
    import socket

    from setuptools import setup

    observed = {{
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "secret_in_env": os.environ.get("AGENT_SECRET_TOKEN"),
        "secret_in_proc": {secret!r}.encode() in open("/proc/self/environ", "rb").read(),
        "env_names": sorted(os.environ),
        "writes": {{}},
    }}
    for label, target in {targets!r}.items():
        try:
            with open(target, "w") as handle:
                handle.write("pwned")
            observed["writes"][label] = "written"
        except OSError as exc:
            observed["writes"][label] = type(exc).__name__
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=3).close()
        observed["redis"] = "connected"
    except OSError as exc:
        observed["redis"] = type(exc).__name__
    with open(os.path.join("src", "buildspy", "observed.json"), "w") as handle:
        json.dump(observed, handle)

    setup(
        name="buildspy",
        version="0.1.0",
        packages=["buildspy"],
        package_dir={{"": "src"}},
        package_data={{"buildspy": ["observed.json"]}},
    )
"""

OBSERVED_TESTS = """
    import json
    from importlib import resources


    def observed():
        return json.loads(resources.files("buildspy").joinpath("observed.json").read_text())


    def test_build_ran_as_the_sandbox_uid():
        assert (observed()["uid"], observed()["euid"]) == (65534, 65534)


    def test_build_saw_no_agent_secret():
        seen = observed()
        assert seen["secret_in_env"] is None
        assert seen["secret_in_proc"] is False
        assert not [name for name in seen["env_names"] if name.startswith(("AGENT_", "CELERY"))]


    def test_build_could_write_nothing_outside_its_build_dir():
        writes = observed()["writes"]
        # /tmp is the sandbox's own tmpfs: writable, and gone with it (the host checks).
        assert writes.pop("host_tmp") == "written"
        assert "written" not in writes.values(), writes


    def test_build_had_no_network_to_the_host():
        assert observed()["redis"] != "connected"
"""


def _setup_py_project(root: Path, *, setup_py: str, tests: str) -> Path:
    repo = root / "buildspy"
    (repo / "src" / "buildspy").mkdir(parents=True)
    (repo / "src" / "buildspy" / "__init__.py").write_text("")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_observed.py").write_text(textwrap.dedent(tests))
    (repo / "setup.py").write_text(setup_py)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git_commit(repo, "initial")
    return repo


def _job(repo: Path, **overrides) -> Job:
    values = {
        "source": str(repo),
        "torch_version": "2.13.0",
        "torch_variant": "cpu",
        "test_config": TestConfig(copy_tests="tests"),
        "timeout_s": 300,
    }
    values.update(overrides)
    return Job(**values)


def test_hostile_setup_py_is_contained(
    tmp_path, work_root, require_sandbox, base_site_packages, monkeypatch
):
    monkeypatch.setenv("AGENT_SECRET_TOKEN", SECRET)
    targets = _outside_targets(base_site_packages)
    setup_py = textwrap.dedent(SETUP_PY).format(
        secret=SECRET, targets={label: str(path) for label, path in targets.items()}
    )
    repo = _setup_py_project(tmp_path, setup_py=setup_py, tests=OBSERVED_TESTS)

    result = run_job(job=_job(repo), work_root=work_root)

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.counts["passed"] == 4
    for label, path in targets.items():
        assert not path.exists(), f"the build wrote {label}: {path}"


def test_built_wheel_is_cached_by_commit_only(make_project, work_root, require_sandbox):
    repo = make_project(name="wheelcache", files={"tests/test_a.py": "def test_a():\n    pass\n"})
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    job = _job(repo)
    built = {}
    for label, sha in (("first", commit), ("second", commit), ("no_commit", None)):
        venv = work_root / f"venv-{label}-{uuid.uuid4().hex[:6]}"
        built[label] = environment.build_environment(
            job=job, project_dir=repo, venv=venv, commit=sha, extras=[], requirements=[]
        )
        site = next(venv.glob("lib/python3.11/site-packages"))
        assert (site / "wheelcache" / "__init__.py").is_file()
        assert not venv.with_name(f"{venv.name}.build").exists()

    assert built["first"].wheel_cache_hit is False
    assert built["second"].wheel_cache_hit is True
    assert built["no_commit"].wheel_cache_hit is False


def test_failing_build_is_an_infrastructure_error_with_its_output(
    tmp_path, work_root, require_sandbox
):
    setup_py = "raise SystemExit('ecoreg: this build refuses to run')\n"
    repo = _setup_py_project(tmp_path, setup_py=setup_py, tests=OBSERVED_TESTS)

    result = run_job(job=_job(repo), work_root=work_root)

    assert result.state == CellState.ERRORED
    assert result.error.startswith("env build failed: project build failed in the sandbox")
    assert "this build refuses to run" in result.error
    assert result.exit_code is None


def test_project_without_build_system_runs_from_the_checkout(tmp_path, work_root, require_sandbox):
    repo = tmp_path / "plainproj"
    (repo / "plainmod").mkdir(parents=True)
    (repo / "plainmod" / "__init__.py").write_text("VALUE = 42\n")
    (repo / "test_plain.py").write_text(
        "import plainmod\n\n\ndef test_value():\n    assert plainmod.VALUE == 42\n"
    )
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git_commit(repo, "initial")

    result = run_job(job=_job(repo, test_config=TestConfig()), work_root=work_root)

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.counts["passed"] == 1


def _sdist(links: Path, name: str) -> None:
    staging = links / f"{name}-1.0"
    staging.mkdir(parents=True)
    (staging / "setup.py").write_text(
        f"open('/tmp/{MARKER}-sdist-ran', 'w').write('ran')\n"
        f"from setuptools import setup\nsetup(name='{name}', version='1.0')\n"
    )
    (staging / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    with tarfile.open(links / f"{name}-1.0.tar.gz", "w:gz") as archive:
        archive.add(staging, arcname=f"{name}-1.0")


def test_dependency_only_available_as_sdist_is_refused(
    make_project, tmp_path, work_root, require_sandbox
):
    links = tmp_path / "links"
    links.mkdir()
    _sdist(links, "ecoreg-sdist-only")
    repo = make_project(name="needsdist", files={"tests/test_a.py": "def test_a():\n    pass\n"})
    sources = environment.pip_configured_sources()
    job = _job(
        repo,
        find_links=[str(links), *sources.find_links],
        index_urls=[u for u in [sources.index_url] if u] + sources.extra_index_urls,
        test_config=TestConfig(extra_requirements=["ecoreg-sdist-only"]),
    )

    result = run_job(job=job, work_root=work_root)

    assert result.state == CellState.ERRORED
    assert result.error.startswith("env build failed: ecoreg-sdist-only has no wheel")
    assert "source builds run only in the sandbox" in result.error
    assert not Path(f"/tmp/{MARKER}-sdist-ran").exists()  # noqa: S108


MEMORY_HOG_TESTS = f"""
    import subprocess


    def test_memory_hog():
        # a child tagged so the host can look for leftovers, then eat memory
        subprocess.Popen(["sh", "-c", "exec -a {MARKER}-hog sleep 100000"])
        chunks = [b"x" * (64 << 20) for _ in range(64)]
        assert len(chunks) < 0
"""


def test_memory_limit_ends_the_job(make_project, work_root, require_sandbox, monkeypatch):
    limit = 384 * 1024**2
    monkeypatch.setenv("AGENT_MEMORY_BYTES", str(limit))
    repo = make_project(name="memhog", files={"tests/test_hog.py": MEMORY_HOG_TESTS})

    result = run_job(job=_job(repo, timeout_s=120), work_root=work_root)

    assert result.state in (CellState.ERRORED, CellState.FAILED), (result.error, result.log_tail)
    assert f"memory limit reached ({limit} bytes)" in result.error
    leftovers = subprocess.run(["pgrep", "-f", f"{MARKER}-hog"], capture_output=True, text=True)
    assert leftovers.stdout == "", f"processes left behind: {leftovers.stdout}"
    assert os.listdir(work_root)


NETWORK_SETUP_PY = """
import json
import os
import socket

from setuptools import setup

observed = {}
for port in (6379, 5432):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        observed[str(port)] = "connected"
    except OSError as exc:
        observed[str(port)] = type(exc).__name__
observed["interfaces"] = sorted(name for _, name in socket.if_nameindex())
with open(os.path.join("src", "buildspy", "observed.json"), "w") as handle:
    json.dump(observed, handle)

setup(
    name="buildspy",
    version="0.1.0",
    packages=["buildspy"],
    package_dir={"": "src"},
    package_data={"buildspy": ["observed.json"]},
)
"""


def test_build_has_no_network_even_with_remote_sources(
    tmp_path, work_root, require_sandbox, monkeypatch
):
    repo = _setup_py_project(tmp_path, setup_py=NETWORK_SETUP_PY, tests=OBSERVED_TESTS)
    specs: list[sandbox.SandboxSpec] = []
    real_run = sandbox.run_sandboxed

    def recording_run(**kwargs):
        specs.append(kwargs["spec"])
        return real_run(**kwargs)

    monkeypatch.setattr(build.sandbox_module, "run_sandboxed", recording_run)
    local = environment.pip_configured_sources()
    with FakeHTTPServer() as remote_index:  # a remote index that knows no package (404s)
        sources = environment.WheelSources(
            find_links=local.find_links,
            index_url=local.index_url,
            extra_index_urls=[*local.extra_index_urls, f"{remote_index.url}/simple"],
        )
        uv = environment.uv_executable()
        wheel = build.build_wheel(
            project_dir=repo,
            build_root=work_root / f"build-{uuid.uuid4().hex[:8]}",
            interpreter=environment._interpreter("3.11"),
            uv=uv,
            index_args=sources.uv_args(),
            env_cache_root=tmp_path / "build-envs",
            tool_env=environment._uv_env(environment.cache_dir()),
        )
        asked = {request.path for request in remote_index.requests}

    # The build requirements (setup.py project: setuptools and wheel) were looked up on the
    # remote index, outside the sandbox ...
    assert {"/simple/setuptools/", "/simple/wheel/"} <= asked, asked
    # ... and the build itself ran with no network at all.
    assert len(specs) == 1
    command, _ = sandbox.bwrap_command(spec=specs[0])
    assert "--unshare-net" in command and "--share-net" not in command
    assert "--no-build-isolation" in specs[0].command
    assert specs[0].env["UV_OFFLINE"] == "1"
    with zipfile.ZipFile(wheel) as archive:
        observed = json.loads(archive.read("buildspy/observed.json"))
    assert observed["6379"] != "connected" and observed["5432"] != "connected", observed
    assert observed["interfaces"] == ["lo"], observed


def test_build_requires_come_from_pyproject_or_default_to_setuptools(tmp_path):
    assert build.build_requires(tmp_path) == ["setuptools>=40.8.0", "wheel"]
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert build.build_requires(tmp_path) == ["setuptools>=40.8.0", "wheel"]
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling>=1.20", " "]\nbuild-backend = "hatchling.build"\n'
    )
    assert build.build_requires(tmp_path) == ["hatchling>=1.20"]
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = "hatchling"\n')
    with pytest.raises(build.BuildError, match="must be a list of strings"):
        build.build_requires(tmp_path)
