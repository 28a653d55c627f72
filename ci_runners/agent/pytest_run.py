"""The job's pytest run, made ready for the sandbox: its command, dirs, plugin and reports.

The run follows the job's test recipe (`recipe.py`). pytest runs with the warnings plugin
(`warnings_plugin.py`, copied read-only next to the job) and writes its JUnit XML and the
plugin's report into the work dir. Besides the work dir, the only dir it may write is its
torch.compile/inductor cache: the project's own, kept per torch build between its cells
(`compile_cache_dir`), or a fresh one for jobs without a cache scope (applicant runs).
A few failed tests may then be re-run once (`prepare_rerun`, see `flaky.py`): the same run,
keeping only those tests, with reports of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ci_runners.agent.contracts import Job
from ci_runners.agent.environment import BuiltEnvironment
from ci_runners.agent.recipe import Recipe
from ci_runners.agent.sandbox import SandboxSpec, give_to_sandbox_user
from ci_runners.agent.workspace import JobPaths, compile_cache_root

PLUGIN_MODULE = "ecoreg_warnings_plugin"
PLUGIN_DIR_IN_SANDBOX = "/opt/ecoreg-agent/plugin"
COMPILE_CACHE_IN_SANDBOX = "/opt/ecoreg-agent/compile-cache"
ROOT_TEST_CONFIG_FILES = ("pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini", "conftest.py")
# The plugin's `RERUN_ENV`: a JSON list of the node ids a re-run keeps (the rest deselected).
RERUN_TESTS_ENV = "ECOREG_RERUN_TESTS"


class TestConfigError(Exception):
    """The job's test config does not fit the checkout."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True, kw_only=True)
class PytestRun:
    """What to run in the sandbox, and where the run leaves its reports."""

    spec: SandboxSpec
    junit_path: Path
    plugin_report_path: Path
    # The project's compile cache bound into the run, kept between its jobs (None: a fresh one).
    kept_compile_cache: Path | None = None


def prepare_pytest_run(
    *, job: Job, recipe: Recipe, src: Path, built: BuiltEnvironment, paths: JobPaths, sandbox: bool
) -> PytestRun:
    """Lay out the recipe's run (in the checkout, or in a copy of its tests when the source
    tree would shadow the installed build), place the plugin and the compile cache, hand the
    work dir to the sandbox's uid, and describe the run (`sandbox=False`: the plugin is loaded
    from the job dir)."""
    run_dir = _test_run_dir(recipe=recipe, src=src, work=paths.work)
    report_dir = paths.work / ".ecoreg"
    report_dir.mkdir()
    junit_path = report_dir / "junit.xml"
    plugin_report_path = report_dir / "plugin-report.json"
    _copy_plugin(plugin_dir=paths.plugin)
    compile_cache, kept = _compile_cache(job=job, built=built, paths=paths)
    give_to_sandbox_user(paths.work)

    plugin_path = PLUGIN_DIR_IN_SANDBOX if sandbox else str(paths.plugin)
    compile_dir = COMPILE_CACHE_IN_SANDBOX if sandbox else str(compile_cache)
    env = dict(recipe.env)
    env.update(
        {
            "PATH": f"{built.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(built.venv),
            "PYTHONPATH": plugin_path,
            "ECOREG_REPORT_PATH": str(plugin_report_path),
            # The plugin stops the session if another torch than this one runs.
            "ECOREG_EXPECTED_TORCH": expected_torch(job),
            "TORCHINDUCTOR_CACHE_DIR": f"{compile_dir}/inductor",
            "TRITON_CACHE_DIR": f"{compile_dir}/triton",
        }
    )
    pytest_args = recipe.command(gpu=_runs_on_gpu(job=job, recipe=recipe))[3:]
    command = [
        str(built.python),
        "-m",
        "pytest",
        "-p",
        PLUGIN_MODULE,
        f"--junitxml={junit_path}",
        *pytest_args,
    ]
    ro_binds = [built.venv]
    if not str(built.base_prefix).startswith("/usr"):
        ro_binds.append(built.base_prefix)
    spec = SandboxSpec(
        command=command,
        work_dir=paths.work,
        cwd=run_dir,
        ro_binds=ro_binds,
        ro_binds_to={PLUGIN_DIR_IN_SANDBOX: paths.plugin},
        rw_binds_to={COMPILE_CACHE_IN_SANDBOX: compile_cache},
        env=env,
        timeout_s=job.timeout_s,
    )
    return PytestRun(
        spec=spec,
        junit_path=junit_path,
        plugin_report_path=plugin_report_path,
        kept_compile_cache=compile_cache if kept else None,
    )


def prepare_rerun(*, pytest_run: PytestRun, tests: list[str], timeout_s: float) -> PytestRun:
    """The same run again (command, environment, sandbox, compile cache), keeping only
    `tests` (node ids, selected by the plugin after the usual collection, so they are named
    exactly as the first run reported them), with reports of its own next to the first run's
    and the time limit `timeout_s`."""
    report_dir = pytest_run.junit_path.parent
    junit_path = report_dir / "rerun-junit.xml"
    plugin_report_path = report_dir / "rerun-plugin-report.json"
    first_junit = f"--junitxml={pytest_run.junit_path}"
    command = [
        f"--junitxml={junit_path}" if arg == first_junit else arg for arg in pytest_run.spec.command
    ]
    env = {
        **pytest_run.spec.env,
        "ECOREG_REPORT_PATH": str(plugin_report_path),
        RERUN_TESTS_ENV: json.dumps(tests),
    }
    spec = dataclasses.replace(pytest_run.spec, command=command, env=env, timeout_s=timeout_s)
    return dataclasses.replace(
        pytest_run, spec=spec, junit_path=junit_path, plugin_report_path=plugin_report_path
    )


def _runs_on_gpu(*, job: Job, recipe: Recipe) -> bool:
    """A CUDA job keeps the gpu/cuda-marked tests selected."""
    variant = job.torch_variant or ""
    return job.test_config.needs_gpu or recipe.needs_gpu or variant.startswith(("cu", "rocm"))


def compile_cache_dir(*, job: Job, torch_build: str, work_root: Path) -> Path | None:
    """The torch.compile/inductor cache kept between a registry project's cells on one torch
    build (never shared between projects), under the work root (the sandbox uid must reach it;
    the agent's own cache dir may sit in a private home); None for a job without a cache
    scope. `cache.evict` keeps `<work root>/cache` under AGENT_COMPILE_CACHE_MAX_BYTES."""
    if not job.cache_scope:
        return None
    key = hashlib.sha256(f"{job.cache_scope}\n{torch_build}".encode()).hexdigest()[:24]
    return compile_cache_root(work_root) / "compile" / key


def _compile_cache(*, job: Job, built: BuiltEnvironment, paths: JobPaths) -> tuple[Path, bool]:
    """The job's compile cache dir, the sandbox uid's, and whether it is kept between jobs:
    the project's own, or a fresh one in the work dir (applicant and local runs), so a result
    never depends on another project's."""
    torch_build = built.torch_version or expected_torch(job)
    kept = compile_cache_dir(job=job, torch_build=torch_build, work_root=paths.root.parent)
    directory = kept if kept is not None else paths.work / ".compile-cache"
    directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    give_to_sandbox_user(directory)
    return directory, kept is not None


def expected_torch(job: Job) -> str:
    """The torch the job must run: `2.13.0+cpu` with a variant (exactly that build), `2.13.0`
    without one (any local build of that version)."""
    return f"{job.torch_version}+{job.torch_variant}" if job.torch_variant else job.torch_version


def _copy_plugin(*, plugin_dir: Path) -> None:
    plugin_dir.mkdir(mode=0o755)
    target = plugin_dir / f"{PLUGIN_MODULE}.py"
    shutil.copyfile(Path(__file__).with_name("warnings_plugin.py"), target)
    target.chmod(0o444)


def _safe_subpath(*, base: Path, relative: str) -> Path:
    candidate = (base / relative).resolve()
    if candidate != base.resolve() and base.resolve() not in candidate.parents:
        raise TestConfigError(f"test config: path escapes the checkout: {relative}")
    return candidate


def _test_run_dir(*, recipe: Recipe, src: Path, work: Path) -> Path:
    """Where pytest runs: the recipe's cwd in the checkout, or a fresh dir holding copies of its
    `copy_paths` and the root config files, so that the installed build is what is imported."""
    base = _safe_subpath(base=src, relative=recipe.cwd)
    if not base.is_dir():
        raise TestConfigError(f"test recipe: working directory not found: {recipe.cwd}")
    if not recipe.copy_tests_out:
        return base
    run_dir = work / "run"
    run_dir.mkdir()
    for relative in recipe.copy_paths:
        source = _safe_subpath(base=base, relative=relative)
        if not source.exists():
            raise TestConfigError(f"test recipe: path to copy out not found: {relative}")
        target = run_dir / source.relative_to(base.resolve())
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)
    for name in ROOT_TEST_CONFIG_FILES:
        source = base / name
        if source.is_file() and not (run_dir / name).exists():
            shutil.copyfile(source, run_dir / name)
    return run_dir
