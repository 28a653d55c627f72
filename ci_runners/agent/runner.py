"""One job end to end: checkout, environment, sandboxed pytest, results.

`run_job` never raises for anything a job can do wrong: every failure ends up in the returned
`Result`. The project's own outcomes are `passed`, `failed` (collection and conftest import
errors included), `timed_out` (with what finished before the limit) and `not_installable`;
`errored` is kept for what says nothing about the project (infrastructure, a torch other than
the one asked for, a run that broke), always with an `ErrorCode` in `error_code`.

Callers (the Celery worker) follow a job through optional hooks, all called in the calling
thread:
    on_phase(phase)    "preparing" before the checkout and the environment build, "running"
                       before the test run
    on_output(chunk)   the raw output of the sandboxed project build and test run, as read
    should_stop()      asked between phases and about once a second while a sandboxed command
                       runs; True ends the job at once (its processes killed, with no
                       interrupt first as at the wall time limit) and the Result is state
                       `errored` with error "cancelled" (`CANCELLED_ERROR`, error_code
                       `cancelled`), no counts and no exit code
An exception raised by a hook ends the job as an agent error.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ci_runners.agent import cache, gpu
from ci_runners.agent import sandbox as sandbox_module
from ci_runners.agent.build import BuildStopped
from ci_runners.agent.checkout import Checkout, CheckoutError, checkout_source
from ci_runners.agent.contracts import LOG_TAIL_CHARS, CellState, ErrorCode, Job, Result
from ci_runners.agent.environment import (
    BuiltEnvironment,
    EnvBuildError,
    NotInstallable,
    build_environment,
)
from ci_runners.agent.pytest_run import PytestRun, TestConfigError, prepare_pytest_run
from ci_runners.agent.recipe import NoTestsFound, Recipe, RecipeError, discover_recipe
from ci_runners.agent.results import (
    RunEnd,
    join_problems,
    judge_run,
    read_plugin_report,
    torch_from_venv,
)
from ci_runners.agent.sandbox import (
    SandboxLimitsUnavailable,
    SandboxRun,
    SandboxUnavailable,
    run_sandboxed,
)
from ci_runners.agent.workspace import (
    JobPaths,
    discard_later,
    prepare_job_dir,
    remove_tree,
    sweep_trash,
)

PHASE_PREPARING = CellState.PREPARING.value
PHASE_RUNNING = CellState.RUNNING.value
CANCELLED_ERROR = "cancelled"
# Errors of the job's infrastructure (not of its tests), reported as their own message.
INFRASTRUCTURE_ERRORS: dict[type[Exception], ErrorCode] = {
    CheckoutError: ErrorCode.CHECKOUT_FAILED,
    EnvBuildError: ErrorCode.ENV_BUILD_FAILED,
    # Before SandboxUnavailable, which it is a kind of: no per-job limits, job refused.
    SandboxLimitsUnavailable: ErrorCode.SANDBOX_LIMITS_UNAVAILABLE,
    SandboxUnavailable: ErrorCode.SANDBOX_UNAVAILABLE,
    TestConfigError: ErrorCode.BAD_RECIPE,
    NoTestsFound: ErrorCode.NO_TESTS,
    RecipeError: ErrorCode.BAD_RECIPE,
}
# What uv says when an index or a find-links source cannot be read at all.
UNREACHABLE_WHEEL_SOURCE = re.compile(
    r"Failed to fetch|Failed to read `--find-links`|error sending request|dns error"
    r"|tcp connect error|Could not connect"
)


class JobStopped(Exception):
    """`should_stop` asked the job to end."""


@dataclass(frozen=True, kw_only=True)
class JobHooks:
    """The caller's optional hooks (see the module docstring)."""

    on_phase: Callable[[str], None] | None = None
    on_output: Callable[[bytes], None] | None = None
    should_stop: Callable[[], bool] | None = None

    def enter_phase(self, phase: str) -> None:
        if self.on_phase is not None:
            self.on_phase(phase)

    def stop_if_asked(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise JobStopped


@dataclass(kw_only=True)
class JobRecord:
    """What a job has produced so far: its Result and its log."""

    result: Result = field(default_factory=lambda: Result(state=CellState.ERRORED))
    log: str = ""


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
    hooks = JobHooks(on_phase=on_phase, on_output=on_output, should_stop=should_stop)
    record = JobRecord()
    # Groups of this agent's jobs whose process was killed (e.g. kill -9 of the agent).
    sandbox_module.reap_stale_cgroups()
    paths = prepare_job_dir(job=job, work_root=work_root)
    sweep_trash(work_root=work_root)
    try:
        _start_preparing(paths=paths, sandbox=sandbox, hooks=hooks)
        sandbox_module.check_gpu(needs_gpu=job.test_config.needs_gpu)
        checkout = _check_out(job=job, paths=paths, result=record.result)
        recipe = _discover_recipe(job=job, checkout=checkout, result=record.result)
        hooks.stop_if_asked()
        built = _build_environment(
            job=job,
            checkout=checkout,
            recipe=recipe,
            paths=paths,
            sandbox=sandbox,
            hooks=hooks,
            record=record,
        )
        pytest_run = prepare_pytest_run(
            job=job, recipe=recipe, src=checkout.path, built=built, paths=paths, sandbox=sandbox
        )
        hooks.stop_if_asked()
        hooks.enter_phase(PHASE_RUNNING)
        run = _run_tests(pytest_run=pytest_run, sandbox=sandbox, hooks=hooks, record=record)
        _collect_results(job=job, run=run, pytest_run=pytest_run, paths=paths, record=record)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the job still has a Result
        _record_failure(record=record, exc=exc)
    finally:
        _finish(record=record, paths=paths, work_root=work_root, started=started)
    return record.result


def _start_preparing(*, paths: JobPaths, sandbox: bool, hooks: JobHooks) -> None:
    hooks.stop_if_asked()
    hooks.enter_phase(PHASE_PREPARING)
    if sandbox:
        sandbox_module.check_sandbox()
        # Fail closed: no untrusted code (build or tests) runs without per-job limits.
        sandbox_module.check_limits()
    paths.work.mkdir(mode=0o755)


def _check_out(*, job: Job, paths: JobPaths, result: Result) -> Checkout:
    started = time.monotonic()
    checkout = checkout_source(source=job.source, ref=job.ref, destination=paths.work / "src")
    result.commit = checkout.commit
    result.timings["checkout_s"] = round(time.monotonic() - started, 3)
    return checkout


def _discover_recipe(*, job: Job, checkout: Checkout, result: Result) -> Recipe:
    """The test recipe from the repository at the commit under test, with the job's override
    (the listing's, or the CLI's flags) merged over it; kept in the Result to reproduce it."""
    recipe = discover_recipe(checkout=checkout.path, override=job.test_config)
    result.recipe = recipe.to_dict()
    return recipe


def _build_environment(
    *,
    job: Job,
    checkout: Checkout,
    recipe: Recipe,
    paths: JobPaths,
    sandbox: bool,
    hooks: JobHooks,
    record: JobRecord,
) -> BuiltEnvironment:
    built = build_environment(
        job=job,
        project_dir=checkout.path,
        venv=paths.venv,
        commit=checkout.commit,
        extras=list(recipe.extras),
        requirements=list(recipe.requirements),
        sandbox=sandbox,
        on_output=hooks.on_output,
        should_stop=hooks.should_stop,
    )
    record.result.timings["env_s"] = built.env_s
    record.result.timings["env_cache_hit"] = built.cache_hit
    record.result.lock = list(built.lock)
    record.result.lock_hash = built.lock_hash
    record.result.declared = dict(built.declared)
    return built


def _run_tests(
    *, pytest_run: PytestRun, sandbox: bool, hooks: JobHooks, record: JobRecord
) -> SandboxRun:
    """The sandboxed pytest run; its output (with the sandbox's notes) becomes the job's log."""
    energy_before = gpu.energy_millijoules()
    kept = pytest_run.kept_compile_cache
    with cache.entry_in_use(kept) if kept is not None else contextlib.nullcontext():
        run = run_sandboxed(
            spec=pytest_run.spec,
            sandbox=sandbox,
            on_output=hooks.on_output,
            should_stop=hooks.should_stop,
        )
    record.result.energy_j = gpu.energy_joules(
        before_mj=energy_before, after_mj=gpu.energy_millijoules()
    )
    record.result.timings["tests_s"] = run.duration_s
    record.log = run.output + "".join(f"\n[agent] {note}" for note in run.notes)
    if run.stopped:
        raise JobStopped
    return run


def _collect_results(
    *, job: Job, run: SandboxRun, pytest_run: PytestRun, paths: JobPaths, record: JobRecord
) -> None:
    """State, counts, failures, warnings and environment from what the run left behind."""
    result = record.result
    plugin_report = read_plugin_report(path=pytest_run.plugin_report_path)
    result.warnings = plugin_report.get("warnings", [])
    result.tests_collected = plugin_report.get("tests_collected")
    result.environment = _environment_seen(
        venv=paths.venv,
        reported=plugin_report.get("environment", {}),
        keys=list(result.environment),
    )
    result.exit_code = None if run.timed_out else run.exit_code
    verdict = judge_run(
        RunEnd(
            exit_code=run.exit_code,
            timed_out=run.timed_out,
            timeout_s=job.timeout_s,
            junit_path=pytest_run.junit_path,
            plugin_report=plugin_report,
            output_tail=run.output[-2000:],
        )
    )
    result.state = verdict.state
    result.error_code = verdict.error_code
    notes = "; ".join(run.notes) or None
    result.error = join_problems(
        verdict.error, notes if verdict.state != CellState.PASSED else None
    )
    if run.disk_quota_exceeded:  # killed mid-run: what it left says nothing of the project
        result.state, result.error_code = CellState.ERRORED, str(ErrorCode.DISK_QUOTA)
        result.error = notes
        return
    if verdict.error_code == ErrorCode.TORCH_MISMATCH:
        return  # nothing the tests did counts: they ran against another torch (or none)
    result.counts = verdict.counts
    result.failures = verdict.failures
    result.needs_network = verdict.needs_network


def _environment_seen(
    *, venv: Path, reported: dict[str, str | None], keys: list[str]
) -> dict[str, str | None]:
    """python, torch and cuda as the plugin saw them (else torch's own files), and the GPU."""
    environment = {"python": None, **torch_from_venv(venv), "gpu": None}
    environment.update({k: v for k, v in reported.items() if v is not None})
    info = gpu.gpu_info()
    environment["gpu"] = info.label if info else None
    return {key: environment.get(key) for key in keys}


def error_code_for(exc: Exception) -> ErrorCode:
    """The `ErrorCode` of an infrastructure error (an env build that could not reach its wheel
    sources is told apart from one that failed), `AGENT_ERROR` for anything else."""
    for kind, code in INFRASTRUCTURE_ERRORS.items():
        if isinstance(exc, kind):
            if code == ErrorCode.ENV_BUILD_FAILED and UNREACHABLE_WHEEL_SOURCE.search(str(exc)):
                return ErrorCode.WHEEL_SOURCE_UNREACHABLE
            return code
    return ErrorCode.AGENT_ERROR


def _record_failure(*, record: JobRecord, exc: Exception) -> None:
    """A stop request, a project that cannot be installed, an infrastructure error or an agent
    bug, as the job's Result."""
    if isinstance(exc, JobStopped | BuildStopped):
        record.result = Result(
            state=CellState.ERRORED,
            commit=record.result.commit,
            timings=record.result.timings,
            error=CANCELLED_ERROR,
            error_code=str(ErrorCode.CANCELLED),
        )
        record.log += "\n[agent] job stopped on request: cancelled"
        return
    if isinstance(exc, NotInstallable):
        record.result.state = CellState.NOT_INSTALLABLE
        record.result.error = str(exc).strip().splitlines()[0] if str(exc).strip() else None
        record.result.error_code = None
        record.result.declared = dict(exc.declared)
        record.log = record.log or f"not installable: {record.result.error}"
        return
    code = error_code_for(exc)
    if code != ErrorCode.AGENT_ERROR:
        message = str(exc)
        if isinstance(exc, CheckoutError) and not message.startswith("clone failed"):
            message = f"clone failed: {message}"
    else:
        message = f"agent error: {type(exc).__name__}: {exc}"
    record.result.state = CellState.ERRORED
    record.result.error = message
    record.result.error_code = str(code)
    record.log = record.log or message


def _finish(*, record: JobRecord, paths: JobPaths, work_root: Path, started: float) -> None:
    """Empty the job dir but for its log and result, and time the whole job."""
    for leftover in (paths.work, paths.plugin):
        remove_tree(leftover)
    discard_later(path=paths.venv, work_root=work_root)
    record.result.timings["total_s"] = round(time.monotonic() - started, 3)
    record.result.log_tail = record.log[-LOG_TAIL_CHARS:]
    try:
        paths.log.write_text(record.log, errors="replace")
        paths.result.write_text(json.dumps(record.result.to_dict(), indent=2))
        paths.owner.unlink(missing_ok=True)  # a finished job's record is nobody's to sweep
    except OSError:
        pass
