"""The recipe corpus (`tests/fixtures/projects/<name>/`): small real-world-shaped projects,
each with an `expected.json` of the recipe discovery must find and of the results the agent
must report for each torch build. `corpus_repo` turns one into a git repository to check out."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.agent.conftest import git_commit

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "projects"
EXPECTED = "expected.json"


def corpus_names() -> list[str]:
    return sorted(path.name for path in CORPUS.iterdir() if (path / EXPECTED).is_file())


def expected(name: str) -> dict[str, Any]:
    return json.loads((CORPUS / name / EXPECTED).read_text())


def corpus_repo(name: str, destination: Path) -> Path:
    """Copy corpus project `name` (without its expected.json) to `destination`/<name>, make it
    a git repository with one commit, and return its path."""
    repo = destination / name
    shutil.copytree(
        CORPUS / name,
        repo,
        ignore=shutil.ignore_patterns(EXPECTED, "__pycache__", ".pytest_cache"),
    )
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git_commit(repo, f"corpus project {name}")
    return repo
