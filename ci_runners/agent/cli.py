"""Command line: `python -m ci_runners.agent run --source SRC --torch VERSION --json`.

`run` exits with its result state's status (`contracts.CLI_EXIT_CODES`: 0 passed, 1 failed,
3 errored, 4 timed_out, 5 not_installable); argparse's usage errors exit 2.

`bisect --source SRC --good V1 --bad V2 --json` finds the first bad torch release between
two (`bisect.py`), running each release it tries as `run` does, and prints
`{"first_bad", "last_good", "failures", "tried"}`. It exits 0 when it found one; 1 when
`--check-ends` found the good end failing or the bad end passing; 2 for a bad request (usage
errors, an end the wheel sources do not publish, `--good` not older than `--bad`); 3 when it
cannot decide (a release errored, or a wheel source could not be read). On failure the reason
is on stderr and, with `--json`, the object has `error` and what was tried.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import tempfile
from pathlib import Path

from ci_runners.agent import bisect as bisect_module
from ci_runners.agent.checkout import CheckoutError, checkout_source
from ci_runners.agent.contracts import CLI_EXIT_CODES, CellState, Job, Result, TestConfig
from ci_runners.agent.recipe import RecipeError, discover_recipe
from ci_runners.agent.runner import run_job
from ci_runners.agent.workspace import default_work_root

_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?([a-z0-9.]*)?$")


def _torch_version(value: str) -> str:
    if not _VERSION.match(value):
        raise argparse.ArgumentTypeError(f"not a torch version: {value!r} (e.g. 2.13.0)")
    return value


def _python_version(value: str) -> str:
    if not re.fullmatch(r"\d+\.\d+", value):
        raise argparse.ArgumentTypeError(f"not a python version: {value!r} (e.g. 3.11)")
    return value


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {value!r}")
    return seconds


def _env_pair(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key, val


def _pytest_args(value: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"cannot split pytest args: {exc}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ci_runners.agent")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one project's tests against one torch build")
    _add_job_arguments(run)
    run.add_argument("--torch", required=True, type=_torch_version, dest="torch_version")
    run.add_argument("--variant", default=None, help="local version tag, e.g. cpu or cu126")
    run.add_argument(
        "--test-beyond-declared-range",
        action="store_true",
        help="when the project's own torch range excludes this torch, run its tests anyway "
        "with that range overridden (the result stays not_installable, with `beyond_range`)",
    )
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _add_bisect_arguments(
        commands.add_parser(
            "bisect", help="find the first torch release a project fails with, between two"
        )
    )
    recipe = commands.add_parser(
        "recipe", help="print the test recipe discovered from a repository (runs nothing)"
    )
    _add_source_arguments(recipe)
    _add_override_arguments(recipe)
    recipe.add_argument("--json", action="store_true", help="print the recipe as one JSON object")
    return parser


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="git URL or local path")
    parser.add_argument("--ref", default=None, help="branch, tag or commit (default: HEAD)")


def _add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """What `run` and `bisect` both need to run a job, the torch build(s) aside: the source,
    the Python, the timeout, the recipe's overrides, where to work and whether to sandbox."""
    _add_source_arguments(parser)
    parser.add_argument("--python", default="3.11", type=_python_version, dest="python_version")
    parser.add_argument("--timeout", default=900.0, type=_positive_seconds, help="seconds")
    _add_override_arguments(parser)
    parser.add_argument("--work-root", default=None, type=Path)
    parser.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="run tests WITHOUT the sandbox (local debugging only)",
    )


def _add_bisect_arguments(bisect: argparse.ArgumentParser) -> None:
    _add_job_arguments(bisect)
    bisect.add_argument("--good", required=True, help="a torch release the project passes")
    bisect.add_argument("--bad", required=True, help="a later torch release it fails")
    bisect.add_argument(
        "--check-ends",
        action="store_true",
        help="run both ends first; refuse when the good end fails or the bad end passes",
    )
    bisect.add_argument("--json", action="store_true", help="print the outcome as one JSON object")


def _add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that override the discovered recipe (as a listing's override does)."""
    parser.add_argument("--pytest-args", default=[], type=_pytest_args)
    parser.add_argument("--test-path", action="append", default=[], dest="test_paths")
    parser.add_argument("--copy-tests", default=None, metavar="DIR")
    parser.add_argument("--env", action="append", default=[], type=_env_pair, metavar="K=V")
    parser.add_argument(
        "--extra", action="append", default=[], metavar="REQ", help="an extra requirement"
    )
    parser.add_argument(
        "--with-extra",
        action="append",
        default=None,
        dest="extras",
        metavar="NAME",
        help="one of the project's own extras to install (instead of the discovered ones)",
    )
    parser.add_argument(
        "--group",
        action="append",
        default=None,
        dest="groups",
        metavar="NAME",
        help="a PEP 735 dependency group to install (instead of the discovered ones)",
    )
    parser.add_argument(
        "--deselect", action="append", default=[], metavar="MARKER", help="deselect a marker"
    )


def _override_of(args: argparse.Namespace) -> TestConfig:
    return TestConfig(
        extra_requirements=list(args.extra),
        extras=args.extras,
        groups=args.groups,
        pytest_args=list(args.pytest_args),
        test_paths=list(args.test_paths),
        env=dict(args.env),
        copy_tests=args.copy_tests,
        deselect=list(args.deselect),
    )


def _run_command(args: argparse.Namespace) -> int:
    """`run`: one job, its result printed; the exit status says its state."""
    job = Job(
        source=args.source,
        ref=args.ref,
        torch_version=args.torch_version,
        torch_variant=args.variant,
        python_version=args.python_version,
        timeout_s=args.timeout,
        test_config=_override_of(args),
        test_beyond_declared_range=args.test_beyond_declared_range,
    )
    work_root = args.work_root or default_work_root()
    result = run_job(job=job, work_root=work_root, sandbox=not args.unsafe_no_sandbox)
    data = result.to_dict()
    if args.json:
        print(json.dumps(data))
    else:
        counts = " ".join(f"{key}={value}" for key, value in data["counts"].items())
        print(f"{data['state']} ({counts})")
        if data["error"]:
            print(f"error: {data['error']}", file=sys.stderr)
    return CLI_EXIT_CODES.get(CellState(result.state), CLI_EXIT_CODES[CellState.ERRORED])


def _bisect_command(args: argparse.Namespace) -> int:
    """`bisect`: each release tried runs as `run` runs it; progress goes to stderr."""
    base = Job(
        source=args.source,
        ref=args.ref,
        torch_version=args.good,
        python_version=args.python_version,
        timeout_s=args.timeout,
        test_config=_override_of(args),
    )
    work_root = args.work_root or default_work_root()

    def run_one(version: str) -> Result:
        print(f"bisect: running torch {version}", file=sys.stderr, flush=True)
        job = bisect_module.job_for(base, version)
        result = run_job(job=job, work_root=work_root, sandbox=not args.unsafe_no_sandbox)
        print(f"bisect: torch {version} {result.state}", file=sys.stderr, flush=True)
        return result

    try:
        plan = bisect_module.plan_for_job(job=base, good=args.good, bad=args.bad)
        print(f"bisect: {plan.describe()}", file=sys.stderr, flush=True)
        found = bisect_module.bisect(plan=plan, run_one=run_one, check_ends=args.check_ends)
    except bisect_module.BisectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.json:
            failed = {"first_bad": None, "last_good": None, "failures": [], "tried": exc.tried}
            print(json.dumps({**failed, "error": str(exc)}))
        return exc.exit_code
    if args.json:
        print(json.dumps(found.to_dict()))
    else:
        print(f"first bad: {found.first_bad} (last good: {found.last_good})")
        for failure in found.failures:
            print(f"  {failure.get('test') or '-'}: {failure.get('message', '')}")
    return bisect_module.EXIT_FOUND


def _recipe_command(args: argparse.Namespace) -> int:
    """`recipe`: check the source out into a scratch dir and print its recipe (0), or why there
    is none (3)."""
    with tempfile.TemporaryDirectory(prefix="ecoreg-recipe-") as scratch:
        try:
            checkout = checkout_source(
                source=args.source, ref=args.ref, destination=Path(scratch) / "src"
            )
            recipe = discover_recipe(checkout=checkout.path, override=_override_of(args))
        except (CheckoutError, RecipeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return CLI_EXIT_CODES[CellState.ERRORED]
    data = {"commit": checkout.commit, **recipe.to_dict()}
    if args.json:
        print(json.dumps(data))
    else:
        print(json.dumps(data, indent=2))
    return 0


COMMANDS = {"run": _run_command, "bisect": _bisect_command, "recipe": _recipe_command}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 with a message on bad input
    return COMMANDS[args.command](args)
