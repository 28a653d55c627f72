"""Every corpus project through the real agent, on both torch builds, with no test config:
what the agent finds out by itself (its recipe discovery) must give the expected state, exact
counts and network-only failures of `tests/fixtures/projects/<name>/expected.json`.

Real git, uv, bubblewrap and torch wheels (2.13.0+cpu from /opt/wheels; 2.14.1 and the
torchvision builds from the configured file index); slow: each cell builds an environment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_runners.agent.contracts import CellState, Job
from ci_runners.agent.recipe import Recipe, discover_recipe
from ci_runners.agent.runner import run_job
from tests.agent.corpus import corpus_names, corpus_repo, expected

pytestmark = pytest.mark.slow

# expected.json's torch keys -> the job's torch build
TORCH_BUILDS = {
    "2.13.0+cpu": {"torch_version": "2.13.0", "torch_variant": "cpu"},
    "2.14.1": {"torch_version": "2.14.1"},
}
CELLS = [(name, torch) for name in corpus_names() for torch in TORCH_BUILDS]


@pytest.fixture(scope="module")
def corpus_repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpus-repos")
    return {name: corpus_repo(name, root) for name in corpus_names()}


@pytest.mark.parametrize(("name", "torch"), CELLS, ids=[f"{n}-{t}" for n, t in CELLS])
def test_corpus_project_runs_as_expected(
    name: str, torch: str, corpus_repos: dict[str, Path], work_root: Path, require_sandbox: None
):
    repo = corpus_repos[name]
    want = expected(name)["runs"][torch]
    job = Job(source=str(repo), timeout_s=600.0, **TORCH_BUILDS[torch])

    result = run_job(job=job, work_root=work_root, sandbox=True)

    seen = (str(result.state), result.error, result.log_tail[-1500:])
    assert result.state == CellState(want["state"]), seen
    assert result.counts == want["counts"], seen
    assert len(result.needs_network) == want["needs_network"], seen
    if "failure" in want:  # the break is named: the module and the exception line
        failure = want["failure"]
        assert any(
            f["test"] == failure["test"] and failure["message_contains"] in f["message"]
            for f in result.failures
        ), result.failures
    if "error_contains" in want:  # the one-line reason a cell is not installable
        assert want["error_contains"] in (result.error or ""), result.error
    if result.state in (CellState.PASSED, CellState.FAILED):
        assert result.environment["torch"].startswith(job.torch_version), result.environment
        if job.torch_variant:
            assert result.environment["torch"].endswith(f"+{job.torch_variant}")
    # The job reports the recipe it ran: the one discovery finds in the checkout.
    assert Recipe.from_dict(result.recipe).hash == discover_recipe(checkout=repo).hash
