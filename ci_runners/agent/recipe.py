"""How to install and run a project's own test suite, discovered from its checkout.

`discover_recipe` reads what a project already says about its tests, never runs any of it:
pyproject.toml (dependency groups, optional dependencies, pytest and hatch config), requirement
files, setup.cfg and setup.py (ast), tox.ini, noxfile.py (ast), runner scripts (ast) and the
GitHub Actions workflows that run the tests (YAML without aliases, shlex). Then it applies the
repository's own `[tool.pytorch-ecosystem]` table and the listing's override
(`merge_override`). Every non-default part of the `Recipe` names the file and line it came
from (`provenance`); anything skipped or dropped is a provenance note. The readers live in
`recipe_sources.py`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from ci_runners.agent import recipe_sources as sources
from ci_runners.agent.contracts import TestConfig
from ci_runners.agent.project_table import ProjectTableError, read_project_table
from ci_runners.agent.recipe_sources import (
    CheckoutFiles,
    Command,
    Install,
    Project,
    Step,
    provenance,
)

# Markers a runner deselects when the project's own pytest config declares them.
DESELECTABLE_MARKERS = (
    "gpu", "cuda", "multi_gpu", "multigpu", "distributed", "slow", "network", "internet",
    "online", "benchmark",
)  # fmt: skip
GPU_MARKERS = ("gpu", "cuda")  # a GPU runner keeps these
REQUIREMENT_FILES = (
    "requirements-test*.txt", "requirements_test*.txt", "test-requirements.txt",
    "test_requirements.txt", "requirements/test*.txt", "requirements-dev.txt",
    "tests/requirements.txt",
)  # fmt: skip
ROOT_SCRIPTS = ("run_tests.py", "runtests.py", "run-tests.py", "tests/run_tests.py")
NOT_PACKAGES = {"tests", "test", "testing", "docs", "doc", "examples", "benchmarks", "scripts",
                "tools", "build", "dist", "ci", "bench"}  # fmt: skip
# Env vars the runner sets itself (the venv's PATH; PYTHONPATH would import the source tree).
RUNNER_ENV = {"PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
SKIP_DIRS = {".git", ".tox", ".nox", ".venv", "venv", "node_modules", "__pycache__", "build"}
MAX_WALK_ENTRIES = 20000


class RecipeError(Exception):
    """No recipe can be given for this checkout (a malformed table or override); the message
    says why."""


class NoTestsFound(RecipeError):
    """The checkout holds no test file at all."""


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How to install and run a project's tests (see the module docstring)."""

    extras: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    pytest_args: list[str] = field(default_factory=list)
    testpaths: list[str] = field(default_factory=list)
    cwd: str = "."
    copy_tests_out: bool = False
    copy_paths: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    deselect: list[str] = field(default_factory=list)
    needs_gpu: bool = False
    override: dict[str, Any] = field(default_factory=dict)
    provenance: list[dict[str, Any]] = field(default_factory=list)

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of everything but the provenance."""
        data = self._content()
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def command(self, *, gpu: bool = False) -> list[str]:
        """The pytest argv (`python -m pytest ...`); GPU markers stay selected when `gpu`."""
        args, expression = _without_marker_expression(self.pytest_args)
        deselected = [m for m in self.deselect if not (gpu and m in GPU_MARKERS)]
        terms = [f"({expression})"] if expression else []
        terms += [f"not {marker}" for marker in deselected]
        marker_args = ["-m", " and ".join(terms)] if terms else []
        return ["python", "-m", "pytest", *args, *marker_args, *self.testpaths]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._content(),
            "provenance": [dict(entry) for entry in self.provenance],
            "hash": self.hash,
        }

    def _content(self) -> dict[str, Any]:
        """Everything but provenance and hash (what the hash covers)."""
        project = f".[{','.join(self.extras)}]" if self.extras else "."
        return {
            "install": [project, *self.requirements],
            "extras": list(self.extras),
            "groups": list(self.groups),
            "run": {
                "command": self.command(),
                "cwd": self.cwd,
                "testpaths": list(self.testpaths),
                "copy_tests_out": self.copy_tests_out,
                "copy_paths": list(self.copy_paths),
                "pytest_args": list(self.pytest_args),
            },
            "env": dict(self.env),
            "deselect": list(self.deselect),
            "needs_gpu": self.needs_gpu,
            "override": dict(self.override),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        run = data.get("run") or {}
        return cls(
            extras=list(data.get("extras") or []),
            groups=list(data.get("groups") or []),
            requirements=list((data.get("install") or ["."])[1:]),
            pytest_args=list(run.get("pytest_args") or []),
            testpaths=list(run.get("testpaths") or []),
            cwd=run.get("cwd") or ".",
            copy_tests_out=bool(run.get("copy_tests_out")),
            copy_paths=list(run.get("copy_paths") or []),
            env=dict(data.get("env") or {}),
            deselect=list(data.get("deselect") or []),
            needs_gpu=bool(data.get("needs_gpu")),
            override=dict(data.get("override") or {}),
            provenance=[dict(entry) for entry in data.get("provenance") or []],
        )


def _without_marker_expression(args: list[str]) -> tuple[list[str], str | None]:
    """pytest args without their `-m EXPR` (merged into the deselect expression)."""
    rest, expression, index = [], None, 0
    while index < len(args):
        if args[index] == "-m" and index + 1 < len(args):
            expression, index = args[index + 1], index + 2
        else:
            rest.append(args[index])
            index += 1
    return rest, expression


# --- discovery ---------------------------------------------------------------------------------


def discover_recipe(
    *, checkout: Path, override: TestConfig | None = None, repository_table: bool = True
) -> Recipe:
    """The recipe of the project checked out at `checkout`: discovery, then the repository's
    `[tool.pytorch-ecosystem]` table, then `override` (the listing's). Raises RecipeError."""
    if not checkout.is_dir():
        raise RecipeError(f"no checkout at {checkout}")
    files = CheckoutFiles(checkout)
    if not _has_test_files(files.root):
        raise NoTestsFound("no tests found: no test_*.py or *_test.py file in the checkout")
    project = _with_setuptools_extras(sources.read_pyproject(files), files)
    recipe = _discover(files, project)
    if repository_table and project.pyproject:
        try:
            table = read_project_table(project.pyproject_text)
        except ProjectTableError as exc:
            raise RecipeError(str(exc)) from exc
        if table is not None:
            lines = {
                key: sources.line_of(project.pyproject_text, rf"^\s*\"?{re.escape(key)}\"?\s*=")
                for key in table.keys
            }
            recipe = merge_override(
                recipe, table.override, source="pyproject.toml", checkout=checkout, lines=lines
            )
    if override is not None:
        recipe = merge_override(recipe, override, source="listing", checkout=checkout)
    return recipe


def _has_test_files(root: Path) -> bool:
    """Whether any test_*.py / *_test.py lies in the checkout (hidden and tool dirs skipped)."""
    seen = 0
    for _folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
        seen += len(names) + len(dirs)
        for name in names:
            if name.endswith(".py") and (name.startswith("test") or name.endswith("_test.py")):
                return True
        if seen > MAX_WALK_ENTRIES:
            return True  # too big to be sure: let pytest say
    return False


def _with_setuptools_extras(project: Project, files: CheckoutFiles) -> Project:
    """The project's name and extras from setup.cfg / setup.py when pyproject.toml lacks them."""
    if project.optional and project.name:
        return project
    name, extras = sources.read_setuptools_metadata(files)
    return dataclasses.replace(
        project, name=project.name or name, optional=project.optional or extras
    )


@dataclass(kw_only=True)
class Draft:
    """A recipe being put together, field by field, with provenance."""

    values: dict[str, Any] = field(default_factory=lambda: _defaults())
    provenance: list[dict[str, Any]] = field(default_factory=list)

    def set(self, part: str, value: Any, *, file: str, line: int | None, detail: str) -> None:
        self.values[part] = value
        self.provenance.append(provenance(part, file, line, detail))

    def recipe(self) -> Recipe:
        unique: list[dict[str, Any]] = []
        for entry in self.provenance:  # a file read by two readers is noted once
            if entry not in unique:
                unique.append(entry)
        return Recipe(**self.values, provenance=unique)


def _defaults() -> dict[str, Any]:
    recipe = Recipe()
    return {
        f.name: getattr(recipe, f.name)
        for f in dataclasses.fields(Recipe)
        if f.name not in ("override", "provenance")
    }


def _discover(files: CheckoutFiles, project: Project) -> Recipe:
    """Discovery proper: the test run, the install, pytest config, defaults, layout."""
    draft = Draft()
    run = _find_test_run(files, project)
    if run is not None:
        _apply_run(draft, run, files)
    install = _choose_install(run, files, project)
    _apply_install(draft, install, files, project)
    config = sources.read_pytest_config(files, project)
    _apply_pytest_config(draft, config)
    _apply_default_paths(draft, files)
    _apply_layout(draft, files, project)
    draft.provenance[:0] = files.notes
    return draft.recipe()


# --- the test run ------------------------------------------------------------------------------


@dataclass(kw_only=True)
class TestRun:
    """The command that runs the tests, the step it is in, and what that job installs."""

    __test__ = False

    command: Command
    step: Step
    cwd: str
    install: Install
    kind: str


def _find_test_run(files: CheckoutFiles, project: Project) -> TestRun | None:
    """First a workflow step that runs the tests, then tox, nox, hatch, a runner script."""
    for steps in sources.read_workflows(files):
        run = _workflow_test_run(steps, files, project)
        if run is not None:
            return run
    for reader in (sources.read_tox, sources.read_nox, sources.read_hatch):
        found = reader(files, project)
        if found is None:
            continue
        run = _step_test_run(found.step, files, install=found.install, kind=found.kind)
        if run is not None:
            return run
    for script in ROOT_SCRIPTS:
        if files.is_file(script):
            step = Step(file=script, job="", run=f"python {script}", line=None, env={}, cwd=".",
                        runs_on="")  # fmt: skip
            run = _step_test_run(step, files, install=Install(source="script"), kind="script")
            if run is not None:
                return run
    return None


def _step_test_run(step: Step, files: CheckoutFiles, *, install: Install, kind: str) -> Any:
    cwd = step.cwd
    for offset, words in sources.shell_commands(step.run):
        if words[:1] == ["cd"] and len(words) == 2:
            cwd = os.path.normpath(os.path.join(cwd, words[1]))
            continue
        command = sources.test_command(words, files)
        if command is not None:
            line = step.line + offset if step.line else None
            step = dataclasses.replace(step, line=line)
            return TestRun(command=command, step=step, cwd=cwd, install=install, kind=kind)
    return None


def _workflow_test_run(steps: list[Step], files: CheckoutFiles, project: Project) -> Any:
    """The job's first test-running step, with the installs of its steps up to it."""
    install = Install(source="workflow")
    for step in steps:
        for offset, words in sources.shell_commands(step.run):
            line = (step.line or 0) + offset
            sources.pip_install(install, words, project=project, files=files, file=step.file,
                                line=line)  # fmt: skip
        run = _step_test_run(step, files, install=install, kind="workflow")
        if run is not None:
            return run
    return None


def _apply_run(draft: Draft, run: TestRun, files: CheckoutFiles) -> None:
    """Args, paths, env, cwd and deselected markers of the test command."""
    file, line = run.step.file, run.step.line
    command = run.command
    draft.provenance.append(provenance("command", file, line, f"{command.kind} ({run.kind})"))
    env = {key: value for key, (value, _, _) in run.step.env.items()}
    for key, (_, env_file, env_line) in run.step.env.items():
        draft.provenance.append(provenance("env", env_file, env_line, key))
    for key in command.env:
        draft.provenance.append(provenance("env", file, line, key))
    env.update(command.env)
    parsed, script_env = _command_args(command, files, file=file, line=line, draft=draft)
    env.update(script_env)
    for key in [key for key in env if key in RUNNER_ENV]:
        del env[key]
        draft.provenance.append(provenance("note", file, line, f"dropped env {key}: the runner's"))
    if env:
        draft.values["env"] = env
    if parsed.args:
        draft.set("pytest_args", parsed.args, file=file, line=line, detail=" ".join(parsed.args))
    paths = _contained_paths(parsed, files, cwd=run.cwd)
    if paths:
        draft.set("testpaths", paths, file=file, line=line, detail=" ".join(paths))
    if parsed.deselect:
        draft.set("deselect", parsed.deselect, file=file, line=line, detail="-m")
    for dropped in parsed.dropped:
        draft.provenance.append(provenance("note", file, line, f"dropped pytest option {dropped}"))
    if run.cwd not in (".", "") and files.path(run.cwd) is not None:
        draft.set("cwd", run.cwd, file=file, line=line, detail="working-directory")
    if re.search(r"gpu|cuda", run.step.runs_on, re.IGNORECASE):
        draft.set("needs_gpu", True, file=file, line=line, detail=f"runs-on {run.step.runs_on}")


def _contained_paths(parsed: sources.PytestArgs, files: CheckoutFiles, *, cwd: str) -> list[str]:
    """The command's test paths that stay inside the checkout (module names of `--pyargs`
    are not paths); the others are refused with a note."""
    if "--pyargs" in parsed.args:
        return list(parsed.paths)
    return [
        path
        for path in parsed.paths
        if files.path(os.path.normpath(os.path.join(cwd, path.split("::")[0]))) is not None
    ]


def _command_args(
    command: Command, files: CheckoutFiles, *, file: str, line: int | None, draft: Draft
) -> tuple[sources.PytestArgs, dict[str, str]]:
    """pytest args and paths of each kind of command, and the env a runner script sets."""
    if command.kind == "pytest":
        return sources.split_pytest_args(command.args), {}
    if command.kind == "unittest":
        return _unittest_args(command.args, files), {}
    script = (
        sources.module_file(command.target, files) if command.kind == "module" else command.target
    )
    facts = sources.read_script(files, script) if script else None
    if script is None or facts is None:
        return sources.PytestArgs(), {}
    parsed = sources.split_pytest_args(facts.pytest_args or [])
    if facts.pytest_args is not None:
        draft.provenance.append(provenance("command", script, facts.pytest_line, "pytest.main"))
    for key, env_line in facts.env_lines.items():
        draft.provenance.append(provenance("env", script, env_line, key))
    if command.kind == "module":
        # A runner module inside the package: its tests are its package's.
        parsed.paths = [str(Path(script).parent)]
    elif facts.unittest_start and not parsed.paths:
        parsed.paths = [facts.unittest_start]
    return parsed, dict(facts.env)


def _unittest_args(args: list[str], files: CheckoutFiles) -> sources.PytestArgs:
    """`python -m unittest [discover -s DIR | module names]`, as pytest paths."""
    parsed = sources.PytestArgs()
    if args[:1] == ["discover"]:
        rest = args[1:]
        for index, word in enumerate(rest):
            if word in ("-s", "--start-directory") and index + 1 < len(rest):
                parsed.paths = [rest[index + 1]]
        positional = [w for w in rest if not w.startswith("-")]
        if not parsed.paths and positional and files.is_dir(positional[0]):
            parsed.paths = [positional[0]]
        return parsed
    for word in (w for w in args if not w.startswith("-")):
        base = word.replace(".", "/")
        found = next((c for c in (f"{base}.py", base, word) if files.path(c) and
                      (files.is_file(c) or files.is_dir(c))), None)  # fmt: skip
        if found:
            parsed.paths.append(found)
    return parsed


# --- the install -------------------------------------------------------------------------------


def _choose_install(run: TestRun | None, files: CheckoutFiles, project: Project) -> Install:
    """What the test command's own job names (extras, groups, requirement files, or a tool
    env's deps) wins; else the first source that says anything, in order of evidence."""
    named = None
    if run is not None:
        named = run.install
        _add_command_install(named, run, project)
        from_other_files = any(
            p["part"] == "requirements" and p["file"] != run.step.file for p in named.provenance
        )
        tool_env = run.kind != "workflow" and not named.empty()
        if named.names_extras_or_groups() or from_other_files or tool_env:
            return named
    guesses = [
        lambda: _groups_install(project),
        lambda: _optional_install(project),
        lambda: _requirement_files_install(files, project),
        lambda: sources.read_setuptools(files, project),
        *[
            lambda reader=reader: _tool_install(reader, files, project)
            for reader in (sources.read_tox, sources.read_nox, sources.read_hatch)
        ],
    ]
    for guess in guesses:
        install = guess()
        if not install.empty():
            return install
    return named if named is not None else Install(source="none")


def _add_command_install(install: Install, run: TestRun, project: Project) -> None:
    """`uv run --extra/--group/--with` of the test command itself."""
    command, file, line = run.command, run.step.file, run.step.line
    for extra in command.extras:
        install.add_extra(extra, file=file, line=line, detail="uv run --extra")
    default = ["dev"] if command.uv_default_groups and "dev" in project.groups else []
    for group in [*command.groups, *default]:
        if group not in install.groups:
            install.groups.append(group)
    for requirement in command.requirements:
        install.add_requirement(requirement, file=file, line=line)


def _tool_install(reader: Any, files: CheckoutFiles, project: Project) -> Install:
    found = reader(files, project)
    return found.install if found is not None else Install(source="none")


def _groups_install(project: Project) -> Install:
    install = Install(source="dependency-groups")
    for name in sources.TEST_NAMES:
        if name in project.groups:
            install.groups.append(name)
            line = sources.group_line(project, name)
            install.provenance.append(
                provenance("groups", "pyproject.toml", line, f"dependency-groups.{name}")
            )
            return install
    return install


def _optional_install(project: Project) -> Install:
    install = Install(source="optional-dependencies")
    for name in (*sources.TEST_NAMES, "all"):
        if name in project.optional:
            line = sources.extra_line(project, name)
            detail = f"project.optional-dependencies.{name}"
            install.add_extra(name, file="pyproject.toml", line=line, detail=detail)
            return install
    return install


def _requirement_files_install(files: CheckoutFiles, project: Project) -> Install:
    install = Install(source="requirement files")
    for pattern in REQUIREMENT_FILES:
        for path in sorted(files.root.glob(pattern)):
            relative = path.relative_to(files.root).as_posix()
            if files.path(relative) is not None and path.is_file():
                sources.read_requirement_file(install, relative, project=project, files=files)
                return install
    return install


def _apply_install(draft: Draft, install: Install, files: CheckoutFiles, project: Project) -> None:
    """Extras (closed over the project's self-references) and groups (flattened into
    requirements), with their provenance."""
    draft.provenance += install.provenance
    requirements = list(install.requirements)
    for group in install.groups:
        flat = sources.flatten_group(project.groups, group)
        line = sources.group_line(project, group)
        if flat is None:
            draft.provenance.append(
                provenance("note", "pyproject.toml", line, f"group {group} missing or invalid")
            )
            continue
        group_install = Install(source="group")
        for entry in flat:
            sources.add_entry(group_install, entry, project=project, files=files,
                              file="pyproject.toml", line=line or 0)  # fmt: skip
        draft.provenance += group_install.provenance
        requirements += [r for r in group_install.requirements if r not in requirements]
        install.extras += [e for e in group_install.extras if e not in install.extras]
        draft.provenance.append(provenance("groups", "pyproject.toml", line, group))
    extras = sources.extras_closure(project, install.extras)
    for extra in extras[len(install.extras) :]:
        line = sources.extra_line(project, extra)
        draft.provenance.append(provenance("extras", "pyproject.toml", line, f"{extra} (named by "
                                           "another extra)"))  # fmt: skip
    draft.values.update(extras=extras, groups=list(install.groups), requirements=requirements)


# --- pytest config, defaults and layout ------------------------------------------------------


def _apply_pytest_config(draft: Draft, config: sources.PytestConfig) -> None:
    if config.file is None:
        return
    if config.testpaths and not draft.values["testpaths"]:
        draft.set("testpaths", config.testpaths, file=config.file, line=config.testpaths_line,
                  detail="testpaths")  # fmt: skip
    deselect = list(draft.values["deselect"])
    for marker, line in config.markers.items():
        if marker in DESELECTABLE_MARKERS and marker not in deselect:
            deselect.append(marker)
            draft.provenance.append(provenance("deselect", config.file, line, f"marker {marker}"))
    draft.values["deselect"] = deselect


def _apply_default_paths(draft: Draft, files: CheckoutFiles) -> None:
    if draft.values["testpaths"]:
        return
    for folder in ("tests", "test"):
        if files.is_dir(folder):
            draft.set("testpaths", [folder], file=folder, line=None, detail="default test folder")
            return


def _installed_packages(files: CheckoutFiles, project: Project) -> list[str]:
    """Top-level packages (and the project's own module) of a flat layout the build would
    install: imported from the source tree, they would shadow the installed build."""
    found = []
    for path in sorted(files.root.iterdir()):
        name = path.name
        if name.startswith(".") or name in NOT_PACKAGES or not path.is_dir():
            continue
        if (path / "__init__.py").is_file() and not path.is_symlink():
            found.append(name)
    module = re.sub(r"[-.]+", "_", project.name or "").lower()
    if module and files.is_file(f"{module}.py") and not files.is_dir(module):
        found.append(f"{module}.py")
    return found


def _has_build(files: CheckoutFiles, project: Project) -> bool:
    return "build-system" in project.pyproject or files.is_file("setup.py")


def _wheel_excludes_tests(files: CheckoutFiles) -> bool:
    """Whether the build config excludes test packages from the wheel (`exclude = tests*`)."""
    pattern = re.compile(r"exclude[^\n]*tests", re.IGNORECASE)
    texts = (files.text(name) or "" for name in ("pyproject.toml", "setup.cfg", "setup.py"))
    return any(pattern.search(text) for text in texts)


def _package_module(path: str, packages: list[str], files: CheckoutFiles) -> str | None:
    """The dotted module of a test folder inside an installed package (flat or src layout)."""
    parts = Path(path).parts
    inner = parts[1:] if parts[:1] == ("src",) else parts
    if not inner or not (parts[0] in packages or parts[:1] == ("src",)):
        return None
    if path.endswith(".py") or not files.is_file(f"{path}/__init__.py"):
        return None
    return ".".join(inner)


def _apply_layout(draft: Draft, files: CheckoutFiles, project: Project) -> None:
    """Copy the tests out when the source tree would shadow the installed build; tests inside
    the package run from the installed package (`--pyargs`)."""
    if not _has_build(files, project):
        return
    packages = _installed_packages(files, project)
    cwd = draft.values["cwd"]
    rooted = [os.path.normpath(os.path.join(cwd, p)) for p in draft.values["testpaths"]]
    modules = [_package_module(path, packages, files) for path in rooted]
    if rooted and all(modules) and not _wheel_excludes_tests(files):
        detail = "tests inside the installed package"
        draft.set("pytest_args", [*draft.values["pytest_args"], "--pyargs"], file=rooted[0],
                  line=None, detail=detail)  # fmt: skip
        draft.set("testpaths", modules, file=rooted[0], line=None, detail=detail)
        draft.set("copy_tests_out", True, file=rooted[0], line=None, detail=detail)
        draft.values["copy_paths"] = []
        return
    shadowing = packages or (["__init__.py"] if files.is_file("__init__.py") else [])
    if not shadowing:
        return
    detail = f"flat layout: {', '.join(shadowing)} would shadow the installed build"
    draft.set("copy_tests_out", True, file=shadowing[0], line=None, detail=detail)
    draft.set("copy_paths", _copy_paths(rooted, packages, files), file=shadowing[0], line=None,
              detail=detail)  # fmt: skip


def _copy_paths(rooted: list[str], packages: list[str], files: CheckoutFiles) -> list[str]:
    """What to copy out: each test path's top folder outside the packages (so conftest.py
    files above a test path come along), or the path itself inside a package."""
    if not rooted:
        return [
            p.name
            for p in sorted(files.root.iterdir())
            if p.name.startswith("test") and p.name not in packages
        ]
    copy: list[str] = []
    for path in rooted:
        if path in (".", ""):
            return _copy_paths([], packages, files)  # the whole tree would shadow again
        top = Path(path).parts[0]
        chosen = path if top in packages or top == "src" else top
        if (files.is_dir(chosen) or files.is_file(chosen)) and chosen not in copy:
            copy.append(chosen)
    return copy


# --- overrides ---------------------------------------------------------------------------------


def merge_override(
    recipe: Recipe,
    override: TestConfig,
    *,
    source: str,
    checkout: Path | None = None,
    lines: dict[str, int | None] | None = None,
) -> Recipe:
    """`recipe` with `override` applied: set fields win; extra requirements, pytest args and
    deselected markers are added; env is merged. What changed is recorded in `override` and
    in provenance (file `source`). With `checkout`, changed groups are re-flattened and
    extras closed over the project's self-references."""
    _check_override_paths(override, checkout)
    changes: dict[str, Any] = {}
    notes: list[tuple[str, str]] = []  # (part, the override's key)
    project = _project_of(checkout)
    if override.extras is not None:
        extras = sources.extras_closure(project, list(override.extras)) if project else list(
            override.extras)  # fmt: skip
        changes["extras"] = extras
        notes.append(("extras", "extras"))
    if override.groups is not None:
        changes.update(_regrouped(recipe, list(override.groups), project, checkout))
        notes.append(("groups", "groups"))
    override = _own_extras_requested(override, project, recipe, changes, notes)
    _added(changes, notes, recipe, override)
    if override.test_paths:
        changes["testpaths"] = list(override.test_paths)
        notes.append(("testpaths", "test-paths"))
        if recipe.copy_tests_out and not override.copy_tests:
            changes["copy_paths"] = list(override.test_paths)
    if override.copy_tests:
        changes.update(copy_tests_out=True, copy_paths=[override.copy_tests])
        notes.append(("copy_tests_out", "copy-tests"))
        notes.append(("copy_paths", "copy-tests"))
    if override.needs_gpu:
        changes["needs_gpu"] = True
        notes.append(("needs_gpu", "needs-gpu"))
    entries = [
        provenance(part, source, (lines or {}).get(key), f"override {key}") for part, key in notes
    ]
    return dataclasses.replace(
        recipe,
        **changes,
        override={**recipe.override, **changes},
        provenance=[*recipe.provenance, *entries],
    )


def _check_override_paths(override: TestConfig, checkout: Path | None) -> None:
    """An override's test paths and copy folder must stay inside the checkout."""
    paths = [*override.test_paths, *([override.copy_tests] if override.copy_tests else [])]
    for path in paths:
        inside = not Path(path).is_absolute() and ".." not in Path(path).parts
        if inside and checkout is not None:
            root = checkout.resolve()
            resolved = (root / path).resolve()
            inside = resolved == root or root in resolved.parents
        if not inside:
            raise RecipeError(f"override: path escapes the checkout: {path}")


def _added(
    changes: dict[str, Any], notes: list[tuple[str, str]], recipe: Recipe, override: TestConfig
) -> None:
    """The fields an override adds to (requirements, pytest args, deselect) or merges (env)."""
    base_requirements = changes.get("requirements", recipe.requirements)
    if override.extra_requirements:
        changes["requirements"] = [
            *base_requirements,
            *[r for r in override.extra_requirements if r not in base_requirements],
        ]
        notes.append(("requirements", "extra-requirements"))
    if override.pytest_args:
        changes["pytest_args"] = [*recipe.pytest_args, *override.pytest_args]
        notes.append(("pytest_args", "pytest-args"))
    if override.deselect:
        added = [m for m in override.deselect if m not in recipe.deselect]
        changes["deselect"] = [*recipe.deselect, *added]
        notes.append(("deselect", "deselect"))
    if override.env:
        changes["env"] = {**recipe.env, **override.env}
        notes.append(("env", "env"))


def _own_extras_requested(
    override: TestConfig,
    project: Project | None,
    recipe: Recipe,
    changes: dict[str, Any],
    notes: list[tuple[str, str]],
) -> TestConfig:
    """An extra requirement naming the project itself (`pkg[full]`) asks for its extras: they
    are installed with the project and their dependencies (never a second copy from an index).
    Returns the override without those requirements."""
    if project is None or not project.name:
        return override
    own = sources.normalize(project.name)
    kept: list[str] = []
    extras = list(changes.get("extras", recipe.extras))
    for requirement in override.extra_requirements:
        try:
            parsed = Requirement(requirement)
        except InvalidRequirement:
            kept.append(requirement)
            continue
        if sources.normalize(parsed.name) != own:
            kept.append(requirement)
            continue
        extras += [extra for extra in sorted(parsed.extras) if extra not in extras]
    if len(kept) == len(override.extra_requirements):
        return override
    changes["extras"] = sources.extras_closure(project, extras)
    notes.append(("extras", "extra-requirements"))
    return dataclasses.replace(override, extra_requirements=kept)


def _project_of(checkout: Path | None) -> Project | None:
    if checkout is None or not checkout.is_dir():
        return None
    files = CheckoutFiles(checkout)
    return _with_setuptools_extras(sources.read_pyproject(files), files)


def _regrouped(
    recipe: Recipe, groups: list[str], project: Project | None, checkout: Path | None
) -> dict[str, Any]:
    """New groups, and (with the checkout) requirements: the old groups' contents out, the
    new groups' in."""
    if project is None or checkout is None:
        return {"groups": groups}
    files = CheckoutFiles(checkout)

    def contents(names: list[str]) -> list[str]:
        install = Install(source="override")
        for name in names:
            for entry in sources.flatten_group(project.groups, name) or []:
                sources.add_entry(install, entry, project=project, files=files,
                                  file="pyproject.toml", line=0)  # fmt: skip
        return install.requirements

    old = set(contents(recipe.groups))
    kept = [r for r in recipe.requirements if r not in old]
    return {"groups": groups, "requirements": kept + [r for r in contents(groups) if r not in kept]}
