"""A job's dependency set, resolved to exact versions (its lock) before anything is installed.

Every job resolves its dependencies afresh (`uv pip compile`, wheels only, against the job's
wheel sources) with torch constrained to the exact build under test, so a new release of an
unpinned dependency is picked up by the next job, and recorded. The lock is what the job's
environment is cached under, and what its result reports.

A resolution that fails says why, in the resolver's own words shortened to one line: a fact
about the project (`Unsatisfiable`: it cannot be had with this torch) or about the wheel
sources (`SourceUnreachable`). A dependency with no wheel is neither: `NoWheel`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ci_runners.agent.process import ToolError, run_tool

RESOLVE_TIMEOUT_S = 600
REASON_MAX_CHARS = 300


class ResolutionFailed(Exception):
    """The resolver gave no lock; the message is a one-line reason."""


class Unsatisfiable(ResolutionFailed):
    """No set of versions satisfies the requirements (with this torch)."""


class SourceUnreachable(ResolutionFailed):
    """A wheel source (index, find-links dir) could not be read."""


class NoWheel(ResolutionFailed):
    """A dependency is published without a wheel (source builds are refused outside the
    sandbox); the message is the package's name."""


@dataclass(frozen=True, kw_only=True)
class ResolveRequest:
    """What one resolution needs: uv and its environment, the target interpreter, the wheel
    sources' uv arguments, the requirements, the constraints, and a scratch dir for the files.
    `overrides` replace every requirement on their package, the project's own included (uv's
    `--overrides`): how a declared torch range is set aside to test beyond it."""

    uv: str
    env: dict[str, str]
    python: str
    source_args: list[str]
    requirements: list[str]
    constraints: list[str]
    scratch: Path
    no_deps: bool = False
    overrides: list[str] = field(default_factory=list)


def resolve(request: ResolveRequest) -> list[str]:
    """The resolved requirement lines (`name==version`, or `name @ url` for a URL requirement),
    sorted. Raises a `ResolutionFailed` subclass."""
    request.scratch.mkdir(parents=True, exist_ok=True)
    inputs = request.scratch / "requirements.in"
    constraints = request.scratch / "constraints.txt"
    inputs.write_text("".join(f"{line}\n" for line in request.requirements))
    constraints.write_text("".join(f"{line}\n" for line in request.constraints))
    command = [request.uv, "pip", "compile", "-q", "--no-header", "--no-annotate", "--no-build"]
    command += ["--python", request.python, *request.source_args, "-c", str(constraints)]
    if request.no_deps:
        command.append("--no-deps")
    if request.overrides:
        overrides = request.scratch / "overrides.txt"
        overrides.write_text("".join(f"{line}\n" for line in request.overrides))
        command += ["--overrides", str(overrides)]
    try:
        completed = run_tool(
            [*command, str(inputs)],
            env=request.env,
            timeout_s=RESOLVE_TIMEOUT_S,
            what="resolution",
            check=False,
        )
    except ToolError as exc:
        raise SourceUnreachable(str(exc)) from exc
    if completed.returncode != 0:
        raise classify_failure(completed.stderr.strip() or completed.stdout.strip())
    lines = [line.strip() for line in completed.stdout.splitlines()]
    return sorted(line for line in lines if line and not line.startswith(("#", "-")))


_NO_WHEEL = re.compile(
    r"Wheels are required for `([^`]+)`|([A-Za-z0-9._-]+)(?:==\S+)? has no usable wheels"
)
_UNREACHABLE = re.compile(
    r"Failed to fetch|error sending request|Failed to read `--find-links`|Could not connect|"
    r"dns error|Connection refused|timed out|Failed to download|Network is unreachable",
    re.IGNORECASE,
)
_BECAUSE = re.compile(r"Because\b.*", re.DOTALL)
_CAUSE_PREFIX = re.compile(r"^\s*(?:cause:|[│╰─▶×\s]+)\s*", re.MULTILINE)


def classify_failure(output: str) -> ResolutionFailed:
    """The failure behind uv's `output`: no wheel, an unreachable source, or unsatisfiable."""
    no_wheel = _NO_WHEEL.search(output)
    if no_wheel:
        return NoWheel(no_wheel.group(1) or no_wheel.group(2))
    if "No solution found" in output or _BECAUSE.search(output):
        return Unsatisfiable(unsatisfiable_reason(output))
    if _UNREACHABLE.search(output):
        return SourceUnreachable(_last_cause(output))
    return ResolutionFailed(_last_cause(output))


def unsatisfiable_reason(output: str) -> str:
    """uv's "Because ... we can conclude ..." explanation on one line, hints dropped, cut to
    REASON_MAX_CHARS."""
    match = _BECAUSE.search(output)
    text = match.group(0) if match else output
    text = text.split("\nhint:")[0]
    text = " ".join(_CAUSE_PREFIX.sub("", line) for line in text.splitlines())
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > REASON_MAX_CHARS:
        text = text[: REASON_MAX_CHARS - 3].rstrip() + "..."
    return text


def _last_cause(output: str) -> str:
    lines = [_CAUSE_PREFIX.sub("", line).strip() for line in output.splitlines()]
    lines = [line.removeprefix("error:").strip() for line in lines if line]
    if not lines:
        return "no output"
    # The first line says what failed (which URL), the last why (connection refused).
    return lines[0] if len(lines) == 1 else f"{lines[0]} ({lines[-1]})"


def pinned_versions(lock: list[str]) -> dict[str, str]:
    """Normalized name -> exact version for each `name==version` line of `lock`."""
    versions: dict[str, str] = {}
    for line in lock:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        specifiers = list(requirement.specifier)
        if len(specifiers) == 1 and specifiers[0].operator in ("==", "==="):
            versions[str(canonicalize_name(requirement.name))] = specifiers[0].version
    return versions


def same_version(left: str, right: str) -> bool:
    """PEP 440 equality (`1.0` is `1.0.0`), string equality for what does not parse."""
    try:
        return Version(left) == Version(right)
    except InvalidVersion:
        return left == right


def lock_name(line: str) -> str:
    """The normalized distribution name of a lock line."""
    try:
        return canonicalize_name(Requirement(line).name)
    except InvalidRequirement:
        return canonicalize_name(re.split(r"[\s=@<>!~\[;]", line.strip(), maxsplit=1)[0])


def lock_hash(lock: list[str]) -> str:
    """sha256 of the lock's lines, sorted: equal environments have equal hashes."""
    return hashlib.sha256("\n".join(sorted(lock)).encode()).hexdigest()


_DIST_INFO = re.compile(r"^(?P<name>.+?)-(?P<version>[^-]+)\.dist-info$")


def installed_lock(site_packages: Path) -> list[str]:
    """`name==version` of every distribution installed in `site_packages`, sorted: what is
    there, read from the dist-info dirs, not what was asked for."""
    found = []
    for entry in site_packages.iterdir():
        match = _DIST_INFO.match(entry.name)
        if match and entry.is_dir():
            found.append(f"{canonicalize_name(match['name'])}=={match['version']}")
    return sorted(found)
