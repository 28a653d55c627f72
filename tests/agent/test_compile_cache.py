"""The torch.compile/inductor cache: kept per project and torch build between that project's
cells, never shared with another project or with applicant runs, and never deciding a result
(a cold and a warm run give the same counts). Real agent, sandbox and torch 2.13.0+cpu."""

from __future__ import annotations

from pathlib import Path

from ci_runners.agent.contracts import CellState, Job
from ci_runners.agent.pytest_run import compile_cache_dir
from ci_runners.agent.runner import run_job

COMPILED = {
    "tests/test_compiled.py": """
        import torch


        def scale_and_shift(x):
            return torch.sin(x) * 2 + 1


        def test_compiled_matches_eager():
            compiled = torch.compile(scale_and_shift)
            x = torch.linspace(0, 1, 16)
            assert torch.allclose(compiled(x), scale_and_shift(x))


        def test_plain():
            assert torch.ones(2).sum() == 2
    """,
}


def _job(repo: Path, *, scope: str | None) -> Job:
    return Job(
        source=str(repo),
        torch_version="2.13.0",
        torch_variant="cpu",
        timeout_s=600,
        cache_scope=scope,
    )


def _files(directory: Path) -> set[Path]:
    return (
        {path for path in directory.rglob("*") if path.is_file()} if directory.exists() else set()
    )


def test_a_projects_compile_cache_is_kept_between_its_cells_and_never_decides_a_result(
    make_project, work_root, require_sandbox
):
    repo = make_project(name="compiled", files=COMPILED)
    kept = compile_cache_dir(
        job=_job(repo, scope="project-1"), torch_build="2.13.0+cpu", work_root=work_root
    )

    cold = run_job(job=_job(repo, scope="project-1"), work_root=work_root)
    cached = _files(kept)
    warm = run_job(job=_job(repo, scope="project-1"), work_root=work_root)

    assert cold.state == CellState.PASSED, (cold.error, cold.log_tail)
    assert cached, "the first run left nothing in the project's compile cache"
    assert warm.state == CellState.PASSED, (warm.error, warm.log_tail)
    assert warm.counts == cold.counts == {**cold.counts, "passed": 2}
    assert cached <= _files(kept)  # the second run found the first run's cache in place


def test_applicant_runs_and_other_projects_never_see_a_projects_compile_cache(
    make_project, work_root, require_sandbox
):
    repo = make_project(name="compiled-other", files=COMPILED)
    compile_root = work_root / "cache" / "compile"
    first = compile_cache_dir(
        job=_job(repo, scope="project-1"), torch_build="2.13.0+cpu", work_root=work_root
    )
    other = compile_cache_dir(
        job=_job(repo, scope="project-2"), torch_build="2.13.0+cpu", work_root=work_root
    )
    newer_torch = compile_cache_dir(
        job=_job(repo, scope="project-1"), torch_build="2.14.1", work_root=work_root
    )

    kept_before = _files(compile_root)

    applicant = run_job(job=_job(repo, scope=None), work_root=work_root)

    assert applicant.state == CellState.PASSED, (applicant.error, applicant.log_tail)
    assert _files(compile_root) == kept_before  # its cache was a fresh one, gone with its job
    assert len({first, other, newer_torch}) == 3
    assert compile_cache_dir(job=_job(repo, scope=None), torch_build="2.13.0+cpu",
                             work_root=work_root) is None  # fmt: skip
