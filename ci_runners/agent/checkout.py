"""Shallow checkout of a project's source into a job's work dir."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ci_runners.agent.process import run_tool

GIT = "git"
CLONE_TIMEOUT_S = 600
_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")


class CheckoutError(Exception):
    """The source could not be fetched; an infrastructure error."""


@dataclass(frozen=True, kw_only=True)
class Checkout:
    path: Path
    commit: str


def _git(*args: str, cwd: Path | None = None) -> str:
    def explain(output: str) -> str:
        return f"git {args[0]} failed: {' '.join(output.splitlines()[-3:])}"

    completed = run_tool(
        [GIT, *args],
        cwd=cwd,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"},
        timeout_s=CLONE_TIMEOUT_S,
        what=f"git {args[0]}",
        error=CheckoutError,
        explain=explain,
    )
    return completed.stdout.strip()


def _source_url(source: str) -> str:
    """Local paths (operators only) are cloned through file:// so --depth is honoured."""
    if "://" in source or source.startswith("git@"):
        return source
    path = Path(source).expanduser()
    if not path.exists():
        raise CheckoutError(f"source not found: {source}")
    return path.resolve().as_uri()


def checkout_source(*, source: str, ref: str | None, destination: Path) -> Checkout:
    """Clone `source` at `ref` (None: default branch HEAD) into `destination`."""
    try:
        url = _source_url(source)
        clone = ["clone", "--quiet", "--depth", "1", "--no-tags"]
        try:
            _git(*clone, *(["--branch", ref] if ref else []), "--", url, str(destination))
        except CheckoutError:
            if not ref or not _SHA.match(ref):
                raise
            # A commit SHA is not a branch: init and fetch that commit alone.
            destination.mkdir(parents=True, exist_ok=True)
            _git("init", "--quiet", str(destination))
            _git("remote", "add", "origin", url, cwd=destination)
            _git("fetch", "--quiet", "--depth", "1", "origin", ref, cwd=destination)
            _git("checkout", "--quiet", "FETCH_HEAD", cwd=destination)
        commit = _git("rev-parse", "HEAD", cwd=destination)
    except (CheckoutError, OSError) as exc:
        raise CheckoutError(f"clone failed: {exc}") from exc
    return Checkout(path=destination, commit=commit)
