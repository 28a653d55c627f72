"""Local demo: small torch projects as git repos, two CPU targets, a matrix that fills.

`tinytorch-ops` passes on both targets. `tensorshim` keeps a hard upper bound on the torch
version it supports (a common real-world guard), so its cell on 2.14.1 is red for that reason.
Three real-world shapes from the agent's corpus (`tests/fixtures/projects`) show that no test
configuration is written by hand: a flat layout tested with `python -m unittest` (its tests
must run outside the source tree), a PEP 735 dependency group, and a package that no longer
imports on the newer torch (`failed`, the ImportError as its failure).
"""

import shutil
import subprocess  # noqa: S404 - git with argument lists
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from ci_runners import services
from ci_runners.models import CompatRun, ProjectTestConfig, TorchTarget
from registry.models import Project

DEMO_TARGETS = [
    {"version": "2.13.0", "variant": "cpu", "python_version": "3.11", "capability": "cpu"},
    {"version": "2.14.1", "variant": "", "python_version": "3.11", "capability": "cpu"},
]

PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1.0"
description = "{description}"
requires-python = ">=3.10"
dependencies = ["torch"]

[project.optional-dependencies]
test = ["pytest"]

[tool.setuptools.packages.find]
where = ["src"]
"""

PROJECTS = {
    "tinytorch-ops": {
        "name": "TinyTorch Ops",
        "description": "Small tensor helpers (demo project).",
        "files": {
            "src/tinytorch_ops/__init__.py": '''"""Small tensor helpers."""

import torch


def normalize(tensor: torch.Tensor) -> torch.Tensor:
    """Scale to zero mean and unit variance."""
    return (tensor - tensor.mean()) / tensor.std()


def pairwise_distances(points: torch.Tensor) -> torch.Tensor:
    return torch.cdist(points, points)
''',
            "tests/test_ops.py": """import torch

from tinytorch_ops import normalize, pairwise_distances


def test_normalize_has_zero_mean():
    out = normalize(torch.arange(10, dtype=torch.float32))
    assert abs(out.mean().item()) < 1e-6


def test_pairwise_distances_symmetric():
    points = torch.randn(5, 3)
    distances = pairwise_distances(points)
    assert torch.allclose(distances, distances.T, atol=1e-5)


def test_autograd_through_normalize():
    x = torch.randn(8, requires_grad=True)
    normalize(x).pow(2).sum().backward()
    assert x.grad is not None
""",
        },
    },
    "tensorshim": {
        "name": "TensorShim",
        "description": "A shim that only supports the torch versions it was written for (demo).",
        "files": {
            "src/tensorshim/__init__.py": '''"""Torch shim, bounded."""

import torch

SUPPORTED_BELOW = (2, 14)


def torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split(".")[:2]
    return int(major), int(minor)


def check_supported() -> None:
    if torch_version() >= SUPPORTED_BELOW:
        raise RuntimeError(
            f"tensorshim supports torch < {SUPPORTED_BELOW[0]}.{SUPPORTED_BELOW[1]}, "
            f"found {torch.__version__}"
        )


def double(tensor: torch.Tensor) -> torch.Tensor:
    check_supported()
    return tensor * 2
''',
            "tests/test_shim.py": """import torch

from tensorshim import double


def test_double():
    assert torch.equal(double(torch.ones(3)), torch.full((3,), 2.0))


def test_matmul_still_works():
    a = torch.eye(3)
    assert torch.equal(a @ a, a)
""",
        },
    },
}


# Corpus shapes shown by the demo: slug -> (name, description).
CORPUS_SHAPES = {
    "flat-shadow": (
        "Flat Shadow",
        "Flat layout, unittest suite run by its workflow; its tests must import the build.",
    ),
    "pep735-groups": ("Dependency Groups", "Test requirements in a PEP 735 dependency group."),
    "import-break": ("Import Break", "Imports a torch API that the newer release removed."),
}
CORPUS_DIR = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "projects"


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(  # noqa: S603
        ["git", *args],  # noqa: S607
        cwd=cwd,
        check=True,
        capture_output=True,
        env={
            "GIT_AUTHOR_NAME": "Demo",
            "GIT_AUTHOR_EMAIL": "demo@localhost",
            "GIT_COMMITTER_NAME": "Demo",
            "GIT_COMMITTER_EMAIL": "demo@localhost",
            "PATH": "/usr/bin:/bin",
            "HOME": str(cwd),
        },
    )


def make_repo(*, root: Path, slug: str, spec: dict) -> Path:
    repo = root / slug
    repo.mkdir(parents=True, exist_ok=True)
    files = {
        "pyproject.toml": PYPROJECT.format(
            name=slug, description=spec["description"].replace('"', "'")
        ),
        "README.md": f"# {spec['name']}\n\n{spec['description']}\n",
        **spec["files"],
    }
    for relative, text in files.items():
        path = repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if not (repo / ".git").exists():
        _git("init", "--quiet", "--initial-branch=main", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "--quiet", "--allow-empty", "-m", "demo project", cwd=repo)
    return repo


def copy_corpus_repo(*, root: Path, slug: str) -> Path | None:
    """A git repo of the corpus project `slug` under `root` (None when the corpus is not in
    this checkout, e.g. in a production image)."""
    source = CORPUS_DIR / slug
    if not source.is_dir():
        return None
    repo = root / slug
    shutil.copytree(
        source, repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns("expected.json")
    )
    if not (repo / ".git").exists():
        _git("init", "--quiet", "--initial-branch=main", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "--quiet", "--allow-empty", "-m", "demo project", cwd=repo)
    return repo


def _demo_repos(root: Path) -> list[tuple[str, str, str, Path]]:
    """(slug, name, description, repo) of every demo project."""
    repos = [
        (slug, spec["name"], spec["description"], make_repo(root=root, slug=slug, spec=spec))
        for slug, spec in PROJECTS.items()
    ]
    for slug, (name, description) in CORPUS_SHAPES.items():
        repo = copy_corpus_repo(root=root, slug=slug)
        if repo is not None:
            repos.append((slug, name, description, repo))
    return repos


class Command(BaseCommand):
    help = "Create demo torch projects (local git repos) and run their matrix."

    def add_arguments(self, parser):
        parser.add_argument("--no-run", action="store_true", help="Set up only, start no run.")
        parser.add_argument(
            "--root", default=str(Path(settings.BASE_DIR) / "var" / "demo-repos"), help="Repos."
        )

    def handle(self, *args, **options):
        root = Path(options["root"]).resolve()
        with transaction.atomic():
            targets = []
            for spec in DEMO_TARGETS:
                target, _ = TorchTarget.objects.update_or_create(
                    version=spec["version"],
                    variant=spec["variant"],
                    python_version=spec["python_version"],
                    defaults={"capability": spec["capability"], "active": True},
                )
                targets.append(target)
            projects = []
            for slug, name, description, repo in _demo_repos(root):
                project, _ = Project.objects.update_or_create(
                    slug=slug, defaults={"name": name, "description": description}
                )
                ProjectTestConfig.objects.update_or_create(
                    project=project,
                    defaults={"source_override": str(repo), "timeout_s": 600, "test_paths": []},
                )
                projects.append(project)
        self.stdout.write(f"Demo repositories under {root}")
        if options["no_run"]:
            return
        for project in projects:
            run = services.compat_run_request(
                project=project, targets=targets, trigger=CompatRun.Trigger.MANUAL
            )
            self.stdout.write(f"{project.name}: run {run.pk} queued on {len(targets)} targets")
