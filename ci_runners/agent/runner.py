"""One job end to end: checkout, environment, sandboxed pytest, results.

`run_job` never raises for anything a job can do wrong: every failure ends up in the returned
`Result` (state `errored` with `error` set for infrastructure problems).

Callers (the Celery worker) follow a job through optional hooks, all called in the calling
thread:
    on_phase(phase)    "preparing" before the checkout and the environment build, "running"
                       before the test run
    on_output(chunk)   the raw output of the sandboxed project build and test run, as read
    should_stop()      asked between phases and about once a second while a sandboxed command
                       runs; True ends the job like its wall time limit would (its processes
                       killed) and the Result is state `errored` with error "cancelled"
                       (`CANCELLED_ERROR`), no counts and no exit code
An exception raised by a hook ends the job as an agent error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ci_runners.agent import gpu
from ci_runners.agent import sandbox as sandbox_module
from ci_runners.agent.build import BuildStopped
from ci_runners.agent.checkout import CheckoutError, checkout_source
from ci_runners.agent.contracts import LOG_TAIL_CHARS, CellState, Job, Result
from ci_runners.agent.environment import EnvBuildError, build_environment
from ci_runners.agent.results import (
    JunitParseError,
    TestSummary,
    apply_xfail_outcomes,
    parse_junit,
    read_plugin_report,
)
from ci_runners.agent.sandbox import SandboxSpec, SandboxUnavailable, run_sandboxed

PLUGIN_MODULE = "ecoreg_warnings_plugin"
PLUGIN_DIR_IN_SANDBOX = "/opt/ecoreg-agent/plugin"
PHASE_PREPARING = CellState.PREPARING.value
PHASE_RUNNING = CellState.RUNNING.value
CANCELLED_ERROR = "cancelled"
ROOT_TEST_CONFIG_FILES = ("pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini", "conftest.py")
PYTEST_EXIT_MEANINGS = {
    2: "test run interrupted",
    3: "pytest internal error",
    4: "pytest usage error",
    5: "no tests collected",
}


class JobStopped(Exception):
    """`should_stop` asked the job to end."""


class TestConfigError(Exception):
    """The job's test config does not fit the checkout."""

    __test__ = False  # not a pytest test class


def default_work_root() -> Path:
    """AGENT_WORK_ROOT, else `<tempdir>/ecosystem-registry-agent`: the sandbox's uid must
    reach the job dirs, so never under a 0700 home."""
    configured = os.environ.get("AGENT_WORK_ROOT")
    if configured:
        return Path(configured).expanduser()
    return Path(tempfile.gettempdir()) / "ecosystem-registry-agent"


def _prepare_job_dir(*, job: Job, work_root: Path) -> Path:
    work_root.mkdir(parents=True, exist_ok=True)
    label = f"{job.cell_id}-{job.attempt}" if job.cell_id is not None else "local"
    job_dir = work_root / f"job-{label}-{uuid.uuid4().hex[:8]}"
    job_dir.mkdir(mode=0o755)
    job_dir.chmod(0o755)
    return job_dir


def _copy_plugin(*, job_dir: Path) -> Path:
    plugin_dir = job_dir / "plugin"
    plugin_dir.mkdir(mode=0o755)
    target = plugin_dir / f"{PLUGIN_MODULE}.py"
    shutil.copyfile(Path(__file__).with_name("warnings_plugin.py"), target)
    target.chmod(0o444)
    return plugin_dir


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


def _torch_from_venv(venv: Path) -> dict[str, str | None]:
    """Fallback when the plugin did not report: read the installed torch's own files."""
    found: dict[str, str | None] = {"torch": None, "cuda": None}
    for version_file in venv.glob("lib/python*/site-packages/torch/version.py"):
        text = version_file.read_text(errors="replace")
        version = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)", text, re.MULTILINE)
        cuda = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)", text, re.MULTILINE)
        found["torch"] = version.group(1) if version else None
        found["cuda"] = cuda.group(1) if cuda else None
    return found


_deleting: set[Path] = set()
_deleting_lock = threading.Lock()


def _delete_in_background(path: Path) -> None:
    with _deleting_lock:
        if path in _deleting:
            return
        _deleting.add(path)

    def delete() -> None:
        try:
            _remove_tree(path)
        finally:
            with _deleting_lock:
                _deleting.discard(path)

    threading.Thread(target=delete, daemon=True).start()


def _discard_later(*, path: Path, work_root: Path) -> None:
    """Move a big tree (a venv: thousands of hard links) aside and delete it in the background.

    The rename is instant; deleting takes a second or more and is not part of the job.
    """
    if not path.exists():
        return
    trash = work_root / ".trash"
    trash.mkdir(exist_ok=True)
    target = trash / uuid.uuid4().hex
    try:
        path.rename(target)
    except OSError:
        _remove_tree(path)
        return
    _delete_in_background(target)


def _sweep_trash(*, work_root: Path) -> None:
    """Trees an earlier process did not finish deleting."""
    trash = work_root / ".trash"
    if trash.is_dir():
        for leftover in trash.iterdir():
            _delete_in_background(leftover)


def _remove_tree(path: Path) -> None:
    def retry_writable(function, failed_path, _exc_info):  # noqa: ANN001
        if function not in (os.unlink, os.rmdir, os.remove):
            return  # os.open / os.scandir on something gone already
        try:
            os.chmod(os.path.dirname(failed_path), stat.S_IRWXU)
            function(failed_path)
        except OSError:
            pass  # gone already, or truly stuck: the sweep tries again next job

    try:
        shutil.rmtree(path, onerror=retry_writable)
    except OSError:
        pass


def _state_for_exit(*, exit_code: int | None) -> tuple[CellState, str | None]:
    if exit_code == 0:
        return CellState.PASSED, None
    if exit_code == 1:
        return CellState.FAILED, None
    if exit_code in PYTEST_EXIT_MEANINGS:
        return CellState.ERRORED, f"pytest exit {exit_code}: {PYTEST_EXIT_MEANINGS[exit_code]}"
    if exit_code is not None and exit_code < 0:
        return CellState.ERRORED, f"test process killed by signal {-exit_code}"
    return CellState.ERRORED, f"test process ended with exit code {exit_code}"


def _join(*parts: str | None) -> str | None:
    kept = [part for part in parts if part]
    return "; ".join(kept) if kept else None


def run_job(
    *,
    job: Job,
    work_root: Path,
    sandbox: bool = True,
    on_phase: Callable[[str], None] | None = None,
    on_output: Callable[[bytes], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Result:
    """Run `job` and return its Result; the job's log and result stay in its dir.

    The hooks are optional; see the module docstring.
    """
    started = time.monotonic()
    result = Result(state=CellState.ERRORED)
    # Groups of this agent's jobs whose process was killed (e.g. kill -9 of the agent).
    sandbox_module.reap_stale_cgroups()
    job_dir = _prepare_job_dir(job=job, work_root=work_root)
    _sweep_trash(work_root=work_root)
    work = job_dir / "work"
    venv = job_dir / "venv"
    log_text = ""

    def stop_if_asked() -> None:
        if should_stop is not None and should_stop():
            raise JobStopped

    try:
        stop_if_asked()
        if on_phase is not None:
            on_phase(PHASE_PREPARING)
        if sandbox:
            sandbox_module.check_sandbox()
        work.mkdir(mode=0o755)
        phase = time.monotonic()
        checkout = checkout_source(source=job.source, ref=job.ref, destination=work / "src")
        result.commit = checkout.commit
        result.timings["checkout_s"] = round(time.monotonic() - phase, 3)

        stop_if_asked()
        built = build_environment(
            job=job,
            project_dir=checkout.path,
            venv=venv,
            commit=checkout.commit,
            sandbox=sandbox,
            on_output=on_output,
            should_stop=should_stop,
        )
        result.timings["env_s"] = built.env_s
        result.timings["env_cache_hit"] = built.cache_hit

        run_dir, test_paths = _test_run_dir(job=job, src=checkout.path, work=work)
        report_dir = work / ".ecoreg"
        report_dir.mkdir()
        junit_path = report_dir / "junit.xml"
        plugin_report_path = report_dir / "plugin-report.json"
        plugin_dir = _copy_plugin(job_dir=job_dir)
        sandbox_module.give_to_sandbox_user(work)

        plugin_path = PLUGIN_DIR_IN_SANDBOX if sandbox else str(plugin_dir)
        env = dict(job.test_config.env)
        env.update(
            {
                "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
                "VIRTUAL_ENV": str(venv),
                "PYTHONPATH": plugin_path,
                "ECOREG_REPORT_PATH": str(plugin_report_path),
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
        ro_binds = [venv]
        if not str(built.base_prefix).startswith("/usr"):
            ro_binds.append(built.base_prefix)
        spec = SandboxSpec(
            command=command,
            work_dir=work,
            cwd=run_dir,
            ro_binds=ro_binds,
            ro_binds_to={PLUGIN_DIR_IN_SANDBOX: plugin_dir},
            env=env,
            timeout_s=job.timeout_s,
        )
        stop_if_asked()
        if on_phase is not None:
            on_phase(PHASE_RUNNING)
        energy_before = gpu.energy_millijoules()
        run = run_sandboxed(
            spec=spec, sandbox=sandbox, on_output=on_output, should_stop=should_stop
        )
        result.energy_j = gpu.energy_joules(
            before_mj=energy_before, after_mj=gpu.energy_millijoules()
        )
        result.timings["tests_s"] = run.duration_s
        notes = "; ".join(run.notes) or None
        log_text = run.output + "".join(f"\n[agent] {note}" for note in run.notes)
        if run.stopped:
            raise JobStopped

        plugin_report = read_plugin_report(path=plugin_report_path)
        result.warnings = plugin_report.get("warnings", [])
        environment = {"python": None, **_torch_from_venv(venv), "gpu": None}
        environment.update(
            {k: v for k, v in plugin_report.get("environment", {}).items() if v is not None}
        )
        info = gpu.gpu_info()
        environment["gpu"] = info.name if info else None
        result.environment = {key: environment.get(key) for key in result.environment}

        result.exit_code = run.exit_code
        if run.timed_out:
            result.state = CellState.TIMED_OUT
            result.error = _join(f"wall time limit of {job.timeout_s:g} s exceeded", notes)
        else:
            state, problem = _state_for_exit(exit_code=run.exit_code)
            result.state = state
            result.error = _join(problem, notes if state != CellState.PASSED else None)
        summary: TestSummary | None = None
        try:
            summary = parse_junit(path=junit_path)
        except JunitParseError as exc:
            if result.state in (CellState.PASSED, CellState.FAILED):
                result.state = CellState.ERRORED
                result.error = _join(str(exc), result.error)
        if summary is not None:
            apply_xfail_outcomes(summary=summary, outcomes=plugin_report.get("outcomes", {}))
            result.counts = summary.counts
            result.failures = summary.failures
    except (JobStopped, BuildStopped):
        result = Result(
            state=CellState.ERRORED,
            commit=result.commit,
            timings=result.timings,
            error=CANCELLED_ERROR,
        )
        log_text += "\n[agent] job stopped on request: cancelled"
    except (CheckoutError, EnvBuildError, SandboxUnavailable, TestConfigError) as exc:
        result.state = CellState.ERRORED
        message = str(exc)
        if isinstance(exc, CheckoutError) and not message.startswith("clone failed"):
            message = f"clone failed: {message}"
        result.error = message
        log_text = log_text or message
    except Exception as exc:  # noqa: BLE001 - a bug must still produce a Result
        result.state = CellState.ERRORED
        result.error = f"agent error: {type(exc).__name__}: {exc}"
        log_text = log_text or result.error
    finally:
        for leftover in (work, job_dir / "plugin"):
            _remove_tree(leftover)
        _discard_later(path=venv, work_root=work_root)
        result.timings["total_s"] = round(time.monotonic() - started, 3)
        result.log_tail = log_text[-LOG_TAIL_CHARS:]
        try:
            (job_dir / "log.txt").write_text(log_text, errors="replace")
            (job_dir / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
        except OSError:
            pass
    return result
