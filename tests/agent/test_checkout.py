"""`--ref` as a maintainer writes it: a branch, a tag, a full or abbreviated commit SHA, against
a real git repository with some history."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ci_runners.agent.checkout import CheckoutError, checkout_source
from tests.agent.conftest import git_commit

pytestmark = pytest.mark.agent


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> dict[str, str]:
    """main: one -> two -> three (tag v1 on two); branch feature off one."""
    repo = tmp_path_factory.mktemp("history")
    _git(repo, "init", "-q", "-b", "main")
    commits = {"repo": str(repo)}
    for name in ("one", "two", "three"):
        (repo / "MARKER").write_text(name)
        commits[name] = git_commit(repo, name)
        if name == "two":
            _git(repo, "tag", "v1")
    _git(repo, "checkout", "-q", "-b", "feature", commits["one"])
    (repo / "MARKER").write_text("feature")
    commits["feature"] = git_commit(repo, "feature")
    _git(repo, "checkout", "-q", "main")
    return commits


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (None, "three"),
        ("main", "three"),
        ("feature", "feature"),
        ("v1", "two"),
        ("sha:one", "one"),
        ("sha7:one", "one"),
        ("sha12:two", "two"),
        ("sha7:feature", "feature"),
    ],
)
def test_ref_forms(history, tmp_path, ref, expected):
    if ref and ref.startswith("sha"):
        kind, name = ref.split(":")
        full = history[name]
        ref = full if kind == "sha" else full[: int(kind[3:])]

    checkout = checkout_source(source=history["repo"], ref=ref, destination=tmp_path / "src")

    assert checkout.commit == history[expected]
    assert (checkout.path / "MARKER").read_text() == expected


@pytest.mark.parametrize("ref", ["no-such-branch", "deadbee", "0" * 40])
def test_unknown_ref_is_a_clear_checkout_error(history, tmp_path, ref):
    with pytest.raises(CheckoutError, match=r"^clone failed: ") as raised:
        checkout_source(source=history["repo"], ref=ref, destination=tmp_path / "src")

    assert ref in str(raised.value)
