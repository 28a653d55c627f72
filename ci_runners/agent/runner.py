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
import functools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_runners.agent import cache, flaky, gpu
from ci_runners.agent import sandbox as sandbox_module
from ci_runners.agent.build import BuildStopped
from ci_runners.agent.checkout import Checkout, CheckoutError, checkout_source
from ci_runners.agent.contracts import LOG_TAIL_CHARS, CellState, ErrorCode, Job, Result
from ci_runners.agent.environment import (
    BuiltEnvironment,
    EnvBuildError,
    NotInstallable,
    TorchExcluded,
    build_environment,
)
from ci_runners.agent.pytest_run import (
    PytestRun,
    TestConfigError,
    prepare_pytest_run,
    prepare_rerun,
)
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
    # The project's declared torch range excluded the torch under test and the job tests
    # beyond it (`Job.test_beyond_declared_range`): the exclusion, its final word.
    excluded: NotInstallable | None = None


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
        if record.excluded is not None:
            _record_beyond_range(record=record, excluded=record.excluded)
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
    """The job's environment. When the project's declared torch range excludes the torch
    under test and the job asks to test beyond it, built again with that range overridden:
    the exclusion is kept in `record.excluded` (the result's final word, see
    `_record_beyond_range`) and the tests run as in any job."""
    build = functools.partial(
        build_environment,
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
    try:
        built = build()
    except TorchExcluded as exc:
        if not job.test_beyond_declared_range:
            raise
        record.excluded = exc
        hooks.stop_if_asked()
        built = build(beyond_declared_range=True)
    record.result.timings["env_s"] = built.env_s
    record.result.timings["env_cache_hit"] = built.cache_hit
    record.result.lock = list(built.lock)
    record.result.lock_hash = built.lock_hash
    record.result.declared = dict(built.declared)
    return built


def _run_tests(
    *, pytest_run: PytestRun, sandbox: bool, hooks: JobHooks, record: JobRecord
) -> SandboxRun:
    """The sandboxed pytest run; its output (with the sandbox's notes) becomes the job's log.
    A few failed tests are re-run once right after it (`_rerun_failed_tests`)."""
    energy_before = gpu.energy_millijoules()
    kept = pytest_run.kept_compile_cache
    with cache.entry_in_use(kept) if kept is not None else contextlib.nullcontext():
        run = run_sandboxed(
            spec=pytest_run.spec,
            sandbox=sandbox,
            on_output=hooks.on_output,
            should_stop=hooks.should_stop,
        )
        record.log = _run_log(run)
        rerun_s = 0.0
        if not run.stopped:
            rerun_s = _rerun_failed_tests(
                run=run, pytest_run=pytest_run, sandbox=sandbox, hooks=hooks, record=record
            )
    record.result.energy_j = gpu.energy_joules(
        before_mj=energy_before, after_mj=gpu.energy_millijoules()
    )
    record.result.timings["tests_s"] = round(run.duration_s + rerun_s, 3)
    if run.stopped:
        raise JobStopped
    return run


def _run_log(run: SandboxRun) -> str:
    """A sandboxed run's output followed by the sandbox's notes."""
    return run.output + "".join(f"\n[agent] {note}" for note in run.notes)


def _run_end(
    *, run: SandboxRun, pytest_run: PytestRun, plugin_report: dict[str, Any], timeout_s: float
) -> RunEnd:
    """How a sandboxed pytest run ended (under `timeout_s`), for `judge_run`."""
    return RunEnd(
        exit_code=run.exit_code,
        timed_out=run.timed_out,
        timeout_s=timeout_s,
        junit_path=pytest_run.junit_path,
        plugin_report=plugin_report,
        output_tail=run.output[-2000:],
    )


def _rerun_failed_tests(
    *, run: SandboxRun, pytest_run: PytestRun, sandbox: bool, hooks: JobHooks, record: JobRecord
) -> float:
    """Re-run once, in the same environment and sandbox and within the job's remaining time,
    the few tests a run that ended on its own failed (`flaky.plan_rerun`); those that pass
    go to `Result.flaky` (`_collect_results` counts them as passed). Returns its seconds."""
    if run.exit_code != 1 or run.timed_out or run.disk_quota_exceeded:
        return 0.0
    plugin_report = read_plugin_report(path=pytest_run.plugin_report_path)
    limit_s = pytest_run.spec.timeout_s
    end = _run_end(run=run, pytest_run=pytest_run, plugin_report=plugin_report, timeout_s=limit_s)
    verdict = judge_run(end)
    plan = flaky.plan_rerun(verdict=verdict, plugin_report=plugin_report)
    remaining_s = limit_s - run.duration_s
    if plan.tests and remaining_s < flaky.MIN_RERUN_S:
        plan = flaky.RerunPlan(tests=[], note="no re-run of failed tests: no time left")
    if plan.note:
        record.log += f"\n[agent] {plan.note}"
    if not plan.tests:
        return 0.0
    count = f"{len(plan.tests)} failed test{'s' if len(plan.tests) > 1 else ''}"
    record.log += f"\n[agent] re-ran {count} once, same environment: {', '.join(plan.tests)}\n"
    rerun_run = prepare_rerun(pytest_run=pytest_run, tests=plan.tests, timeout_s=remaining_s)
    rerun = run_sandboxed(
        spec=rerun_run.spec,
        sandbox=sandbox,
        on_output=hooks.on_output,
        should_stop=hooks.should_stop,
    )
    record.log += _run_log(rerun)
    if rerun.stopped:
        raise JobStopped
    rerun_report = read_plugin_report(path=rerun_run.plugin_report_path)
    rerun_end = _run_end(
        run=rerun, pytest_run=rerun_run, plugin_report=rerun_report, timeout_s=remaining_s
    )
    rerun_verdict = judge_run(rerun_end)
    passed = flaky.passed_on_rerun(
        tests=plan.tests, rerun=rerun_verdict, collected=rerun_report.get("tests_collected")
    )
    record.result.flaky = flaky.flaky_entries(failures=verdict.failures, passed=passed)
    record.log += f"\n[agent] {flaky.rerun_summary(tests=plan.tests, passed=passed)}"
    return rerun.duration_s


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
    end = _run_end(
        run=run, pytest_run=pytest_run, plugin_report=plugin_report, timeout_s=job.timeout_s
    )
    verdict = judge_run(end)
    # Tests that passed on their re-run count once, as passed (their cell passes if no
    # failure is left), and are kept apart in `result.flaky`.
    verdict = flaky.without_flaky(verdict=verdict, flaky=result.flaky)
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
        record.result.error = _reason(exc)
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


def _reason(exc: NotInstallable) -> str | None:
    """Why the project cannot be installed, on one line (None: no reason given)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else None


def _record_beyond_range(*, record: JobRecord, excluded: NotInstallable) -> None:
    """The Result of a job that tested beyond the project's declared torch range: still
    `not_installable` with the exclusion's reason and what the project declares (as published
    it cannot be installed with this torch: that stays the truth), no counts, and what the
    tests did in `beyond_range`: {state, counts, failures, tests_collected}, or {state, error}
    when they could not run (an environment that failed even with the range overridden). A
    stop request stays a cancelled job."""
    ran = record.result
    if ran.error_code == str(ErrorCode.CANCELLED):
        return
    state = CellState(ran.state)
    beyond: dict[str, object]
    if state in (CellState.ERRORED, CellState.NOT_INSTALLABLE):
        beyond = {"state": str(state), "error": ran.error}
    else:
        beyond = {
            "state": str(state),
            "counts": dict(ran.counts),
            "failures": list(ran.failures),
            "tests_collected": ran.tests_collected,
        }
    reason = _reason(excluded)
    record.result = Result(
        state=CellState.NOT_INSTALLABLE,
        commit=ran.commit,
        timings=ran.timings,
        recipe=ran.recipe,
        energy_j=ran.energy_j,
        error=reason,
        declared=dict(excluded.declared),
        beyond_range=beyond,
    )
    record.log = (
        f"not installable: {reason}\n[agent] tests run beyond the declared torch range: "
        f"{state}\n{record.log}"
    )


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
