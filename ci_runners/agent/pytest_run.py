"""The job's pytest run, made ready for the sandbox: its command, dirs, plugin and reports.

pytest runs with the warnings plugin (`warnings_plugin.py`, copied read-only next to the job)
and writes its JUnit XML and the plugin's report into the work dir, the only dir it may write.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ci_runners.agent.contracts import Job
from ci_runners.agent.environment import BuiltEnvironment
from ci_runners.agent.sandbox import SandboxSpec, give_to_sandbox_user
from ci_runners.agent.workspace import JobPaths

PLUGIN_MODULE = "ecoreg_warnings_plugin"
PLUGIN_DIR_IN_SANDBOX = "/opt/ecoreg-agent/plugin"
ROOT_TEST_CONFIG_FILES = ("pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini", "conftest.py")


class TestConfigError(Exception):
    """The job's test config does not fit the checkout."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True, kw_only=True)
class PytestRun:
    """What to run in the sandbox, and where the run leaves its reports."""

    spec: SandboxSpec
    junit_path: Path
    plugin_report_path: Path


def prepare_pytest_run(
    *, job: Job, src: Path, built: BuiltEnvironment, paths: JobPaths, sandbox: bool
) -> PytestRun:
    """Copy the tests out if asked, place the plugin, hand the work dir to the sandbox's uid,
    and describe the run (`sandbox=False`: the plugin is loaded from the job dir)."""
    run_dir, test_paths = _test_run_dir(job=job, src=src, work=paths.work)
    report_dir = paths.work / ".ecoreg"
    report_dir.mkdir()
    junit_path = report_dir / "junit.xml"
    plugin_report_path = report_dir / "plugin-report.json"
    _copy_plugin(plugin_dir=paths.plugin)
    give_to_sandbox_user(paths.work)

    plugin_path = PLUGIN_DIR_IN_SANDBOX if sandbox else str(paths.plugin)
    env = dict(job.test_config.env)
    env.update(
        {
            "PATH": f"{built.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(built.venv),
            "PYTHONPATH": plugin_path,
            "ECOREG_REPORT_PATH": str(plugin_report_path),
            # The plugin stops the session if another torch than this one runs.
            "ECOREG_EXPECTED_TORCH": expected_torch(job),
        }
    )
    command = [
        str(built.python),
        "-m",
        "pytest",
        "-p",
        PLUGIN_MODULE,
        f"--junitxml={junit_path}",
        *job.test_config.pytest_args,
        *test_paths,
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
        env=env,
        timeout_s=job.timeout_s,
    )
    return PytestRun(spec=spec, junit_path=junit_path, plugin_report_path=plugin_report_path)


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


def _test_run_dir(*, job: Job, src: Path, work: Path) -> tuple[Path, list[str]]:
    """Where pytest runs, and which paths it is given."""
    config = job.test_config
    if not config.copy_tests:
        return src, list(config.test_paths)
    tests = _safe_subpath(base=src, relative=config.copy_tests)
    if not tests.is_dir():
        raise TestConfigError(f"test config: copy_tests folder not found: {config.copy_tests}")
    run_dir = work / "run"
    run_dir.mkdir()
    relative = tests.relative_to(src.resolve())
    shutil.copytree(tests, run_dir / relative, symlinks=True)
    for name in ROOT_TEST_CONFIG_FILES:
        source = src / name
        if source.is_file() and not (run_dir / name).exists():
            shutil.copyfile(source, run_dir / name)
    return run_dir, list(config.test_paths) or [str(relative)]
