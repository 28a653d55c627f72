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
_FULL_SHA = re.compile(r"^[0-9a-fA-F]{40}$")


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


def _fetch_commit(*, url: str, ref: str, destination: Path) -> None:
    """Check out the commit a SHA names: a full SHA is fetched alone; an abbreviated one (which
    no server resolves) is looked up in the history of all branches and tags, fetched without
    file contents where the server allows (`--filter=blob:none`)."""
    destination.mkdir(parents=True, exist_ok=True)
    _git("init", "--quiet", str(destination))
    _git("remote", "add", "origin", url, cwd=destination)
    if _FULL_SHA.match(ref):
        try:
            _git("fetch", "--quiet", "--depth", "1", "origin", ref, cwd=destination)
            _git("checkout", "--quiet", "FETCH_HEAD", cwd=destination)
            return
        except CheckoutError:
            pass  # a server that refuses a bare SHA: look for it in the history
    refspecs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]
    _git("fetch", "--quiet", "--filter=blob:none", "origin", *refspecs, cwd=destination)
    try:
        commit = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=destination)
    except CheckoutError as exc:
        raise CheckoutError(
            f"ref not found: {ref} (no branch, tag or commit of that name)"
        ) from exc
    _git("checkout", "--quiet", commit, cwd=destination)


def checkout_source(*, source: str, ref: str | None, destination: Path) -> Checkout:
    """Clone `source` at `ref` into `destination`: a branch, a tag, or a commit by its full or
    abbreviated (7+ hex digits) SHA; None: the default branch's HEAD."""
    try:
        url = _source_url(source)
        clone = ["clone", "--quiet", "--depth", "1", "--no-tags"]
        try:
            _git(*clone, *(["--branch", ref] if ref else []), "--", url, str(destination))
        except CheckoutError:
            if not ref or not _SHA.match(ref):
                raise
            # A commit SHA is not a branch (git removed what its failed clone made).
            _fetch_commit(url=url, ref=ref, destination=destination)
        commit = _git("rev-parse", "HEAD", cwd=destination)
    except (CheckoutError, OSError) as exc:
        raise CheckoutError(f"clone failed: {exc}") from exc
    return Checkout(path=destination, commit=commit)
