"""The commit a project's source points at now, asked of its git server cheaply: one
`git ls-remote` per project (no clone), a pool of them at once for a night of many projects.

Only sources the registry itself chose are contacted: a project's repository URL (built from
its GitHub owner and name) or staff's `source_override`. Git runs without a terminal prompt,
credential helpers or the user's and system's git config, and with the command-running
`ext::` transport disallowed. Any failure (unreachable, unknown ref, timeout) answers None:
"unknown", and the nightly plan then runs the cell rather than carry it on a doubt.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger(__name__)

LS_REMOTE_TIMEOUT_S = 20
WORKERS = 16
_FULL_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "true",
    "SSH_ASKPASS": "true",
    "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",
}


def remote_head(
    source: str, *, ref: str = "", timeout_s: float = LS_REMOTE_TIMEOUT_S
) -> str | None:
    """The commit `ref` (empty: the default branch's HEAD) of the git `source` names now, or
    None when it cannot be told. A full commit SHA as `ref` is its own answer."""
    if ref and _FULL_SHA.match(ref.lower()):
        return ref.lower()
    if not source or source.startswith("-"):
        return None
    command = ["git", "-c", "credential.helper=", "ls-remote", source, *_patterns(ref)]
    try:
        completed = subprocess.run(  # noqa: S603 - a source the registry chose, no shell
            command,
            env={**os.environ, **_GIT_ENV},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.info("git ls-remote of %s failed: %s", source, exc)
        return None
    if completed.returncode != 0:
        logger.info("git ls-remote of %s failed: %s", source, completed.stderr.strip()[-300:])
        return None
    return _pick(completed.stdout, ref=ref)


def _patterns(ref: str) -> list[str]:
    return [ref, f"{ref}^{{}}"] if ref else ["HEAD"]


def _pick(output: str, *, ref: str) -> str | None:
    """The commit among `ls-remote`'s lines: HEAD's; for a ref, its branch's, else its tag's
    (an annotated tag's peeled `^{}` line names the commit)."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, name = line.partition("\t")
        if _FULL_SHA.match(sha):
            found[name] = sha
    wanted = (
        [f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", ref] if ref else ["HEAD"]
    )
    return next((found[name] for name in wanted if name in found), None)


def remote_heads(
    sources: Mapping[int, str], *, workers: int = WORKERS, timeout_s: float = LS_REMOTE_TIMEOUT_S
) -> dict[int, str | None]:
    """`remote_head` of each source (keyed by e.g. a project id), `workers` at once."""
    if not sources:
        return {}
    keys = list(sources)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(keys)))) as pool:
        heads = pool.map(lambda key: remote_head(sources[key], timeout_s=timeout_s), keys)
        return dict(zip(keys, heads, strict=True))
