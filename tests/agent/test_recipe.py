"""Test recipe discovery (`ci_runners.agent.recipe`) on the corpus and on hostile input, the
`[tool.pytorch-ecosystem]` table parser, and the override rules. Everything here reads real
files in real git checkouts; nothing of a project is ever run."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from ci_runners.agent import recipe_sources
from ci_runners.agent.contracts import TestConfig
from ci_runners.agent.project_table import (
    ProjectTableError,
    parse_project_table,
    read_project_table,
)
from ci_runners.agent.recipe import (
    GPU_MARKERS,
    NoTestsFound,
    Recipe,
    RecipeError,
    discover_recipe,
    merge_override,
)
from tests.agent.conftest import git_commit
from tests.agent.corpus import corpus_names, corpus_repo, expected

DEFAULTS = Recipe()
FIELDS = (
    "extras", "groups", "requirements", "pytest_args", "testpaths", "cwd", "copy_tests_out",
    "copy_paths", "env", "deselect", "needs_gpu",
)  # fmt: skip


def make_checkout(root: Path, files: dict[str, str], *, git: bool = True) -> Path:
    """A checkout with `files` (dedented), committed to git."""
    root.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    if git:
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
        git_commit(root)
    return root


PYPROJECT = """\
    [build-system]
    requires = ["hatchling"]
    build-backend = "hatchling.build"

    [project]
    name = "demo"
    version = "0.1.0"
    dependencies = ["torch"]
    """
TEST_FILE = {"tests/test_demo.py": "def test_one():\n    assert True\n"}


def notes(recipe: Recipe) -> list[str]:
    return [f"{p['file']}: {p['detail']}" for p in recipe.provenance if p["part"] == "note"]


# --- the corpus --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


@pytest.mark.parametrize("name", corpus_names())
def test_corpus_recipe_matches_expected_facts(name: str, corpus_root: Path):
    checkout = corpus_repo(name, corpus_root)

    recipe = discover_recipe(checkout=checkout)

    facts = expected(name)["recipe"]
    assert {key: getattr(recipe, key) for key in facts} == facts
    parts = {entry["part"] for entry in recipe.provenance}
    changed = [f for f in FIELDS if getattr(recipe, f) != getattr(DEFAULTS, f)]
    assert [f for f in changed if f not in parts] == [], "parts without provenance"
    for entry in recipe.provenance:
        assert set(entry) == {"part", "file", "line", "detail"}
        assert entry["line"] is None or entry["line"] >= 1
        assert (checkout / entry["file"]).exists(), entry


def test_corpus_has_every_shape_the_brief_names():
    assert len(corpus_names()) >= 16
    states = {
        (name, torch): run["state"]
        for name in corpus_names()
        for torch, run in expected(name)["runs"].items()
    }
    assert states[("torchvision-companion", "2.13.0+cpu")] == "not_installable"
    assert states[("metadata-excludes", "2.14.1")] == "not_installable"
    assert states[("import-break", "2.14.1")] == "failed"
    assert expected("network-test")["runs"]["2.14.1"]["needs_network"] == 1


def test_provenance_names_the_lines_of_a_pep735_group(corpus_root: Path):
    checkout = corpus_repo("pep735-groups", corpus_root / "lines")

    recipe = discover_recipe(checkout=checkout)

    lines = (checkout / "pyproject.toml").read_text().splitlines()
    group_entries = [p for p in recipe.provenance if p["part"] == "groups"]
    assert group_entries and all(lines[p["line"] - 1].startswith("test =") for p in group_entries)


def test_flat_layout_tests_are_copied_out_and_self_extra_is_closed(corpus_root: Path):
    flat = discover_recipe(checkout=corpus_repo("flat-shadow", corpus_root / "flat"))
    extra = discover_recipe(checkout=corpus_repo("self-extra", corpus_root / "extra"))

    assert flat.to_dict()["run"]["copy_tests_out"] is True
    assert flat.to_dict()["run"]["copy_paths"] == ["tests"]
    assert extra.to_dict()["install"] == [".[test,full]"]


# --- the recipe object -------------------------------------------------------------------------


def test_command_deselects_markers_and_a_gpu_runner_keeps_gpu_ones():
    recipe = Recipe(pytest_args=["-q"], testpaths=["tests"], deselect=["gpu", "slow", "cuda"])

    assert recipe.command() == [
        "python", "-m", "pytest", "-q", "-m", "not gpu and not slow and not cuda", "tests",
    ]  # fmt: skip
    assert recipe.command(gpu=True) == ["python", "-m", "pytest", "-q", "-m", "not slow", "tests"]
    assert set(GPU_MARKERS) == {"gpu", "cuda"}


def test_command_merges_a_project_marker_expression_with_the_deselected_markers():
    recipe = Recipe(pytest_args=["-m", "unit or smoke"], deselect=["slow"])

    assert recipe.command() == ["python", "-m", "pytest", "-m", "(unit or smoke) and not slow"]
    assert Recipe().command() == ["python", "-m", "pytest"]


def test_to_dict_round_trips_and_hash_ignores_provenance():
    recipe = Recipe(
        extras=["test"],
        requirements=["six"],
        testpaths=["tests"],
        env={"A": "1"},
        provenance=[{"part": "extras", "file": "pyproject.toml", "line": 3, "detail": "x"}],
    )

    data = recipe.to_dict()

    assert data["install"] == [".[test]", "six"]
    assert data["run"]["command"] == recipe.command()
    assert Recipe.from_dict(data) == recipe
    assert data["hash"] == recipe.hash and len(recipe.hash) == 64
    assert dataclasses.replace(recipe, provenance=[]).hash == recipe.hash
    assert dataclasses.replace(recipe, env={"A": "2"}).hash != recipe.hash


# --- discovery rules ---------------------------------------------------------------------------


def test_no_test_files_is_a_clean_refusal(tmp_path: Path):
    checkout = make_checkout(tmp_path / "p", {"pyproject.toml": PYPROJECT, "src/demo.py": ""})

    with pytest.raises(RecipeError, match="no tests found"):
        discover_recipe(checkout=checkout)


def test_defaults_without_any_config(tmp_path: Path):
    with_test_dir = make_checkout(tmp_path / "a", {"test/test_x.py": "def test_x(): pass\n"})
    at_root = make_checkout(tmp_path / "b", {"test_x.py": "def test_x(): pass\n"})

    assert discover_recipe(checkout=with_test_dir).testpaths == ["test"]
    root_recipe = discover_recipe(checkout=at_root)
    assert root_recipe.testpaths == [] and root_recipe.command() == ["python", "-m", "pytest"]


def test_extras_named_by_the_test_command_win_over_dependency_groups(tmp_path: Path):
    workflow = """\
        jobs:
          test:
            runs-on: [self-hosted, gpu]
            steps:
              - run: pip install -e ".[cuda-tests]"
              - run: cd tests && pytest -m "not slow" --cov=demo -n 4 .
    """
    checkout = make_checkout(
        tmp_path / "p",
        {
            "pyproject.toml": PYPROJECT + '\n[dependency-groups]\ntest = ["pytest"]\n',
            ".github/workflows/ci.yml": workflow,
            **TEST_FILE,
        },
    )

    recipe = discover_recipe(checkout=checkout)

    assert recipe.extras == ["cuda-tests"]
    assert recipe.groups == [] and recipe.requirements == []
    assert recipe.cwd == "tests" and recipe.testpaths == ["."]
    assert recipe.deselect == ["slow"] and recipe.pytest_args == []
    assert recipe.needs_gpu is True
    assert any("--cov=demo" in n for n in notes(recipe))
    assert any("-n 4" in n for n in notes(recipe))


def test_uv_run_group_and_working_directory(tmp_path: Path):
    workflow = """\
        env:
          PYTHONPATH: src
        jobs:
          test:
            runs-on: ubuntu-latest
            defaults:
              run:
                working-directory: pkgdir
            steps:
              - run: uv sync --group ci
              - run: FAST=1 uv run --group test --with hypothesis pytest -x tests/unit -p no:rand
    """
    checkout = make_checkout(
        tmp_path / "p",
        {
            "pyproject.toml": PYPROJECT
            + '\n[dependency-groups]\nci = ["coverage"]\ntest = ["pytest", "torch>=2"]\n',
            ".github/workflows/ci.yml": workflow,
            "pkgdir/tests/unit/test_u.py": "def test_u(): pass\n",
        },
    )

    recipe = discover_recipe(checkout=checkout)

    assert recipe.groups == ["ci", "test"]
    assert recipe.requirements == ["hypothesis", "coverage", "pytest"]  # torch: the one under test
    assert recipe.cwd == "pkgdir" and recipe.testpaths == ["tests/unit"]
    assert recipe.pytest_args == ["-x", "-p", "no:rand"]
    assert recipe.env == {"FAST": "1"}  # PYTHONPATH=src would import the source tree
    assert any("dropped env PYTHONPATH" in n for n in notes(recipe))


def test_unittest_module_names_become_paths(tmp_path: Path):
    workflow = "jobs:\n  t:\n    steps:\n      - run: python -m unittest tests.test_demo\n"
    checkout = make_checkout(tmp_path / "p", {".github/workflows/ci.yml": workflow, **TEST_FILE})

    assert discover_recipe(checkout=checkout).testpaths == ["tests/test_demo.py"]


def test_setup_py_extras_and_tests_require_are_read_without_running_it(tmp_path: Path):
    canary = tmp_path / "setup-py-ran"
    setup_py = f"""\
        import pathlib
        from setuptools import setup
        pathlib.Path({str(canary)!r}).write_text("ran")
        EXTRAS = {{"tests": ["demo[plots]", "pytest"], "plots": ["matplotlib"]}}
        setup(name="demo", extras_require=EXTRAS, tests_require=["mock"])
    """
    checkout = make_checkout(tmp_path / "p", {"setup.py": setup_py, **TEST_FILE})

    recipe = discover_recipe(checkout=checkout)

    assert recipe.extras == ["tests", "plots"]
    assert not canary.exists()


def test_tests_require_when_setup_py_has_no_test_extra(tmp_path: Path):
    setup_py = 'from setuptools import setup\nsetup(name="demo", tests_require=["mock", "demo"])\n'
    checkout = make_checkout(tmp_path / "p", {"setup.py": setup_py, **TEST_FILE})

    recipe = discover_recipe(checkout=checkout)

    assert recipe.requirements == ["mock"]
    assert any("dropped demo: the project" in n for n in notes(recipe))


def test_tox_in_pyproject_and_nox_are_read_without_running_them(tmp_path: Path):
    canary = tmp_path / "noxfile-ran"
    noxfile = f"""\
        import pathlib
        import nox
        pathlib.Path({str(canary)!r}).write_text("ran")
        ARGS = ["-q", "tests"]

        @nox.session
        def unit(session):
            session.install("-r", "requirements-ci.txt")
            session.run("python", "-m", "pytest", *ARGS)
    """
    tox = PYPROJECT + (
        '\n[tool.tox]\nlegacy_tox_ini = """\n[testenv]\ndeps = scipy\n'
        'commands = {envpython} -m pytest {posargs} tests\n"""\n'
    )
    with_nox = make_checkout(
        tmp_path / "nox",
        {"noxfile.py": noxfile, "requirements-ci.txt": "numpy\n", **TEST_FILE},
    )
    with_tox = make_checkout(tmp_path / "tox", {"pyproject.toml": tox, **TEST_FILE})

    assert discover_recipe(checkout=with_nox).requirements == ["numpy"]
    assert not canary.exists()
    tox_recipe = discover_recipe(checkout=with_tox)
    assert tox_recipe.requirements == ["scipy"] and tox_recipe.testpaths == ["tests"]


def test_requirement_file_options_and_the_project_itself_are_dropped_with_notes(tmp_path: Path):
    requirements = """\
        -c constraints.txt
        --extra-index-url https://example.org/simple
        -e .
        ./vendored/thing
        demo[extra]
        scipy>=1.10 ; python_version >= "3.10"
        torch==2.1.0
    """
    checkout = make_checkout(
        tmp_path / "p",
        {"pyproject.toml": PYPROJECT, "requirements-dev.txt": requirements, **TEST_FILE},
    )

    recipe = discover_recipe(checkout=checkout)

    assert recipe.requirements == ['scipy>=1.10 ; python_version >= "3.10"']
    assert recipe.extras == ["extra"]
    dropped = " | ".join(notes(recipe))
    for word in ("-c constraints.txt", "--extra-index-url", "dropped .:", "./vendored/thing",
                 "torch==2.1.0"):  # fmt: skip
        assert word in dropped


def test_hatch_test_environment(tmp_path: Path):
    pyproject = PYPROJECT + textwrap.dedent(
        """
        [tool.hatch.envs.hatch-test]
        extra-dependencies = ["pytest-mock"]
        features = ["cli"]
        """
    )
    checkout = make_checkout(tmp_path / "p", {"pyproject.toml": pyproject, **TEST_FILE})

    recipe = discover_recipe(checkout=checkout)

    assert recipe.requirements == ["pytest-mock"] and recipe.extras == ["cli"]


def test_tests_inside_a_src_package_run_from_the_installed_package(tmp_path: Path):
    pyproject = PYPROJECT + '\n[tool.pytest.ini_options]\ntestpaths = ["src/demo/tests"]\n'
    checkout = make_checkout(
        tmp_path / "p",
        {
            "pyproject.toml": pyproject,
            "src/demo/__init__.py": "",
            "src/demo/tests/__init__.py": "",
            "src/demo/tests/test_in.py": "def test_in(): pass\n",
        },
    )

    recipe = discover_recipe(checkout=checkout)

    assert recipe.testpaths == ["demo.tests"] and "--pyargs" in recipe.pytest_args
    assert recipe.copy_tests_out is True and recipe.copy_paths == []


def test_a_repository_root_with_init_is_copied_out(tmp_path: Path):
    checkout = make_checkout(
        tmp_path / "p", {"pyproject.toml": PYPROJECT, "__init__.py": "", **TEST_FILE}
    )

    recipe = discover_recipe(checkout=checkout)

    assert recipe.copy_tests_out is True and recipe.copy_paths == ["tests"]


# --- hostile and bad input ---------------------------------------------------------------------


def test_unparsable_files_are_skipped_with_notes(tmp_path: Path):
    checkout = make_checkout(
        tmp_path / "p",
        {
            "pyproject.toml": "[project\nname = ",
            ".github/workflows/ci.yml": "jobs: [unclosed\n  - run: pytest",
            "tox.ini": "[testenv\ndeps = x",
            "setup.py": "def broken(:\n",
            "noxfile.py": "import nox\n@nox.session\ndef t(s)\n",
            "setup.cfg": "no section header\n",
            **TEST_FILE,
        },
    )

    recipe = discover_recipe(checkout=checkout)

    assert recipe.testpaths == ["tests"]
    skipped = " | ".join(notes(recipe))
    for file in ("pyproject.toml", "ci.yml", "tox.ini", "setup.py", "noxfile.py", "setup.cfg"):
        assert f"{file}: skipped" in skipped or f"/{file}: skipped" in skipped, file


def test_huge_files_and_too_many_workflows_are_capped(tmp_path: Path):
    workflows = {
        f".github/workflows/w{index:03}.yml": "jobs: {}\n"
        for index in range(recipe_sources.MAX_WORKFLOWS + 5)
    }
    huge = "x = 1\n" * (recipe_sources.MAX_FILE_BYTES // 6 + 10)
    checkout = make_checkout(
        tmp_path / "p",
        {"pyproject.toml": "# " + huge, "setup.py": huge, **workflows, **TEST_FILE},
        git=False,
    )

    recipe = discover_recipe(checkout=checkout)

    found = " | ".join(notes(recipe))
    assert "pyproject.toml: skipped: larger than" in found
    assert "setup.py: skipped: larger than" in found
    assert f"only the first {recipe_sources.MAX_WORKFLOWS} workflow files read" in found


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
jobs:
  t:
    steps:
      - run: pytest tests
"""


def test_a_yaml_bomb_is_refused_at_its_first_alias(tmp_path: Path):
    # Both loaders stop at the first alias: they never build even the second level.
    with pytest.raises(yaml.composer.ComposerError, match="aliases are refused") as refused:
        yaml.load(BILLION_LAUGHS, Loader=recipe_sources.NoAliasLoader)  # noqa: S506
    assert refused.value.problem_mark.line == 1
    with pytest.raises(yaml.composer.ComposerError, match="aliases are refused") as refused:
        recipe_sources.load_workflow_yaml(BILLION_LAUGHS)
    assert refused.value.problem_mark.line == 1

    checkout = make_checkout(
        tmp_path / "p", {".github/workflows/bomb.yml": BILLION_LAUGHS, **TEST_FILE}
    )
    recipe = discover_recipe(checkout=checkout)
    assert any("bomb.yml: skipped: not valid YAML" in n for n in notes(recipe))


def test_shell_metacharacters_are_only_parsed(tmp_path: Path):
    canary = tmp_path / "shell-ran"
    run = (
        f"touch {canary}; echo $(touch {canary}) && pip install six | tee log; "
        f'`touch {canary}` || python -m pytest -q "tests" > out.txt'
    )
    workflow = f"jobs:\n  t:\n    steps:\n      - run: {run!r}\n"
    checkout = make_checkout(tmp_path / "p", {".github/workflows/ci.yml": workflow, **TEST_FILE})

    recipe = discover_recipe(checkout=checkout)

    assert not canary.exists()
    assert recipe.pytest_args == ["-q"] and recipe.testpaths == ["tests"]
    assert recipe.requirements == ["six"]
    assert recipe_sources.shell_commands("pytest 'unbalanced") == []


def test_paths_escaping_the_checkout_are_refused(tmp_path: Path):
    outside = tmp_path / "outside.txt"
    outside.write_text("evil-package\n")
    workflow = textwrap.dedent(
        f"""\
        jobs:
          t:
            steps:
              - run: pip install -r ../outside.txt -r {outside} six
              - working-directory: ../..
                run: pytest ../../etc /etc tests
        """
    )
    checkout = make_checkout(tmp_path / "p", {".github/workflows/ci.yml": workflow, **TEST_FILE})
    (checkout / "requirements-test.txt").symlink_to(outside)

    recipe = discover_recipe(checkout=checkout)

    assert "evil-package" not in recipe.requirements
    assert recipe.requirements == ["six"]
    assert recipe.cwd == "."
    assert recipe.testpaths == ["tests"]  # the default folder: the command's paths are refused
    assert any("escapes the checkout" in n for n in notes(recipe))
    with pytest.raises(RecipeError, match="escapes the checkout"):
        discover_recipe(checkout=checkout, override=TestConfig(copy_tests="../"))
    with pytest.raises(RecipeError, match="escapes the checkout"):
        merge_override(Recipe(), TestConfig(test_paths=["/etc"]), source="listing")


def test_a_symlinked_workflow_folder_out_of_the_checkout_is_not_read(tmp_path: Path):
    elsewhere = make_checkout(
        tmp_path / "elsewhere",
        {"workflows/ci.yml": "jobs:\n  t:\n    steps:\n      - run: pytest -x other\n"},
        git=False,
    )
    checkout = make_checkout(tmp_path / "p", TEST_FILE, git=False)
    (checkout / ".github").mkdir()
    os.symlink(elsewhere / "workflows", checkout / ".github" / "workflows")

    recipe = discover_recipe(checkout=checkout)

    assert recipe.pytest_args == [] and recipe.testpaths == ["tests"]


def test_a_runner_script_is_read_not_run(tmp_path: Path):
    canary = tmp_path / "script-ran"
    script = f"""\
        import os, pathlib, sys
        import pytest
        pathlib.Path({str(canary)!r}).write_text("ran")
        os.environ.update({{"MODE": "ci"}})
        os.environ.setdefault("LEVEL", "2")
        sys.exit(pytest.main(["--strict-markers", "tests", os.getcwd()]))
    """
    checkout = make_checkout(tmp_path / "p", {"runtests.py": script, **TEST_FILE})

    recipe = discover_recipe(checkout=checkout)

    assert not canary.exists()
    assert recipe.env == {"MODE": "ci", "LEVEL": "2"}
    assert recipe.pytest_args == ["--strict-markers"] and recipe.testpaths == ["tests"]


# --- the [tool.pytorch-ecosystem] table ----------------------------------------------------------

TABLE = """\
[tool.pytorch-ecosystem]
extra-requirements = ["scipy"]
extras = ["test"]
groups = ["gpu-tests"]
pytest-args = ["-p", "no:randomly"]
test-paths = ["tests/unit"]
env = { DEMO_BACKEND = "cpu" }
deselect = ["integration"]
copy-tests = "tests"
contacts = ["maintainer@example.org"]
exemptions = [{ criterion = "docs", reason = "API reference lives upstream" }]
"""


def test_project_table_parses_every_key():
    table = read_project_table(TABLE)

    assert table.override == TestConfig(
        extra_requirements=["scipy"],
        extras=["test"],
        groups=["gpu-tests"],
        pytest_args=["-p", "no:randomly"],
        test_paths=["tests/unit"],
        env={"DEMO_BACKEND": "cpu"},
        deselect=["integration"],
        copy_tests="tests",
    )
    assert table.contacts == ["maintainer@example.org"]
    assert table.exemptions == [{"criterion": "docs", "reason": "API reference lives upstream"}]
    assert read_project_table('[project]\nname = "x"\n') is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"extra-requirement": ["x"]}, "unknown key 'extra-requirement'"),
        ({"extras": "test"}, "extras must be an array of strings, not a string"),
        ({"pytest-args": ["-x", 1]}, "pytest-args must be an array of strings"),
        ({"env": {"A": 1}}, "env must be a table of strings"),
        ({"copy-tests": ["tests"]}, "copy-tests must be a non-empty string, not an array"),
        ({"needs-gpu": "yes"}, "needs-gpu must be true or false, not a string"),
        ({"contacts": "me@example.org"}, "contacts must be an array of strings"),
        ({"exemptions": [{"criterion": "docs"}]}, r"exemptions\[0\].reason must be"),
        ({"exemptions": [{"criterion": "a", "reason": "b", "until": "x"}]}, "unknown key 'until'"),
        ("not a table", "must be a table, not a string"),
    ],
)
def test_project_table_errors_name_the_key(table: object, message: str):
    with pytest.raises(ProjectTableError, match=message):
        parse_project_table(table)


def test_project_table_of_invalid_toml_is_an_error():
    with pytest.raises(ProjectTableError, match="not valid TOML"):
        read_project_table("[tool.pytorch-ecosystem\n")


def test_discovery_applies_the_table_then_the_listing(tmp_path: Path):
    pyproject = PYPROJECT + textwrap.dedent(
        """
        [tool.pytorch-ecosystem]
        extra-requirements = ["scipy"]
        env = { DEMO_BACKEND = "cpu", KEEP = "1" }
        """
    )
    checkout = make_checkout(tmp_path / "p", {"pyproject.toml": pyproject, **TEST_FILE})

    recipe = discover_recipe(
        checkout=checkout,
        override=TestConfig(env={"DEMO_BACKEND": "cuda"}, extra_requirements=["numpy"]),
    )
    bare = discover_recipe(checkout=checkout, repository_table=False)

    assert recipe.requirements == ["scipy", "numpy"]
    assert recipe.env == {"DEMO_BACKEND": "cuda", "KEEP": "1"}
    assert recipe.override == {
        "requirements": ["scipy", "numpy"],
        "env": {"DEMO_BACKEND": "cuda", "KEEP": "1"},
    }
    table_lines = [p["line"] for p in recipe.provenance if p["file"] == "pyproject.toml"]
    lines = pyproject.splitlines()
    assert any(lines[n - 1].startswith("extra-requirements") for n in table_lines if n)
    assert {p["file"] for p in recipe.provenance if p["detail"].startswith("override")} == {
        "pyproject.toml",
        "listing",
    }
    assert bare.requirements == [] and bare.env == {}


def test_a_bad_table_refuses_the_recipe(tmp_path: Path):
    pyproject = PYPROJECT + '\n[tool.pytorch-ecosystem]\ntestpaths = ["t"]\n'
    checkout = make_checkout(tmp_path / "p", {"pyproject.toml": pyproject, **TEST_FILE})

    with pytest.raises(RecipeError, match="unknown key 'testpaths'"):
        discover_recipe(checkout=checkout)


# --- merge_override ------------------------------------------------------------------------------


def test_merge_override_set_fields_win_and_lists_are_added():
    recipe = Recipe(
        extras=["test"],
        requirements=["six"],
        pytest_args=["-q"],
        testpaths=["tests"],
        env={"A": "1", "B": "1"},
        deselect=["slow"],
    )
    override = TestConfig(
        extras=["full"],
        extra_requirements=["six", "scipy"],
        pytest_args=["-x"],
        test_paths=["tests/unit"],
        env={"B": "2"},
        deselect=["slow", "network"],
        copy_tests="tests",
        needs_gpu=True,
    )

    merged = merge_override(recipe, override, source="listing")

    assert merged.extras == ["full"]
    assert merged.requirements == ["six", "scipy"]
    assert merged.pytest_args == ["-q", "-x"]
    assert merged.testpaths == ["tests/unit"]
    assert merged.env == {"A": "1", "B": "2"}
    assert merged.deselect == ["slow", "network"]
    assert merged.copy_tests_out is True and merged.copy_paths == ["tests"]
    assert merged.needs_gpu is True
    assert set(merged.override) == {
        "extras", "requirements", "pytest_args", "testpaths", "env", "deselect",
        "copy_tests_out", "copy_paths", "needs_gpu",
    }  # fmt: skip
    assert {p["file"] for p in merged.provenance} == {"listing"}


def test_merge_override_of_nothing_changes_nothing():
    recipe = Recipe(extras=["test"], testpaths=["tests"])

    merged = merge_override(recipe, TestConfig(), source="listing")

    assert merged == recipe and merged.hash == recipe.hash


def test_merge_override_groups_are_reflattened_from_the_checkout(tmp_path: Path):
    pyproject = PYPROJECT + textwrap.dedent(
        """
        [dependency-groups]
        test = ["pytest", "six"]
        gpu = [{include-group = "test"}, "pynvml"]
        """
    )
    checkout = make_checkout(tmp_path / "p", {"pyproject.toml": pyproject, **TEST_FILE})
    recipe = discover_recipe(checkout=checkout)
    assert recipe.groups == ["test"] and recipe.requirements == ["pytest", "six"]

    merged = merge_override(
        recipe, TestConfig(groups=["gpu"], extra_requirements=["x"]), source="listing",
        checkout=checkout,
    )  # fmt: skip

    assert merged.groups == ["gpu"]
    assert merged.requirements == ["pytest", "six", "pynvml", "x"]
    dropped = merge_override(recipe, TestConfig(groups=[]), source="listing", checkout=checkout)
    assert dropped.groups == [] and dropped.requirements == []


def test_native_tox_toml_env_run_base(tmp_path: Path):
    pyproject = PYPROJECT + textwrap.dedent(
        """
        [tool.tox.env_run_base]
        deps = ["pytest", "scipy"]
        set_env = { TOX_MODE = "toml" }
        commands = [["pytest", "-q", "{posargs:tests}"]]
        """
    )
    checkout = make_checkout(tmp_path / "p", {"pyproject.toml": pyproject, **TEST_FILE})

    recipe = discover_recipe(checkout=checkout)

    assert recipe.requirements == ["pytest", "scipy"]
    assert recipe.env == {"TOX_MODE": "toml"}
    assert recipe.pytest_args == ["-q"] and recipe.testpaths == ["tests"]
    lines = pyproject.splitlines()
    commands = [p for p in recipe.provenance if p["part"] == "command"]
    assert lines[commands[0]["line"] - 1].startswith("commands =")


def test_a_flat_single_module_shadows_and_a_nested_test_path_copies_its_top_folder(
    tmp_path: Path,
):
    checkout = make_checkout(
        tmp_path / "p",
        {
            "pyproject.toml": PYPROJECT,
            "demo.py": "VALUE = 1\n",
            "tests/conftest.py": "",
            "tests/unit/test_u.py": "def test_u(): pass\n",
            ".github/workflows/ci.yml": "jobs:\n  t:\n    steps:\n      - run: pytest tests/unit\n",
        },
    )

    recipe = discover_recipe(checkout=checkout)

    assert recipe.copy_tests_out is True
    assert recipe.copy_paths == ["tests"] and recipe.testpaths == ["tests/unit"]


def test_tests_the_wheel_excludes_are_copied_not_imported_from_the_package(tmp_path: Path):
    setup_cfg = "[options]\npackages = find:\n[options.packages.find]\nexclude = demo.tests*\n"
    checkout = make_checkout(
        tmp_path / "p",
        {
            "pyproject.toml": PYPROJECT
            + '\n[tool.pytest.ini_options]\ntestpaths = ["demo/tests"]\n',
            "setup.cfg": setup_cfg,
            "demo/__init__.py": "",
            "demo/tests/__init__.py": "",
            "demo/tests/test_in.py": "def test_in(): pass\n",
        },
    )

    recipe = discover_recipe(checkout=checkout)

    assert "--pyargs" not in recipe.pytest_args and recipe.testpaths == ["demo/tests"]
    assert recipe.copy_tests_out is True and recipe.copy_paths == ["demo/tests"]


def test_no_tests_is_its_own_error_type(tmp_path: Path):
    checkout = make_checkout(tmp_path / "p", {"README.md": "nothing here\n"})

    with pytest.raises(NoTestsFound):
        discover_recipe(checkout=checkout)


def test_deeply_nested_files_are_skipped_not_a_traceback(tmp_path: Path):
    depth = 100_000
    checkout = make_checkout(
        tmp_path / "p",
        {
            "pyproject.toml": "x = " + "[" * depth + "]" * depth + "\n",
            ".github/workflows/deep.yml": "a: " + "[" * depth + "]" * depth + "\n",
            "setup.py": "x = " + "(" * depth + ")" * depth + "\n",
            **TEST_FILE,
        },
        git=False,
    )

    recipe = discover_recipe(checkout=checkout)

    skipped = " | ".join(notes(recipe))
    assert "pyproject.toml: skipped" in skipped
    assert "deep.yml: skipped" in skipped
    assert "setup.py: skipped" in skipped
    assert recipe.testpaths == ["tests"]


def test_workflow_reads_are_capped_each_and_in_total(tmp_path: Path):
    big_step = "      - run: echo " + "x" * 200 + "\n"
    each = recipe_sources.MAX_WORKFLOW_BYTES // len(big_step)
    fits = "jobs:\n  t:\n    steps:\n" + big_step * (each - 1)
    count = recipe_sources.MAX_WORKFLOW_BYTES_TOTAL // len(fits) + 2
    workflows = {f".github/workflows/w{i:02}.yml": fits for i in range(count)}
    workflows[".github/workflows/huge.yml"] = fits + big_step * 10
    checkout = make_checkout(tmp_path / "p", {**workflows, **TEST_FILE}, git=False)

    recipe = discover_recipe(checkout=checkout)

    skipped = [n for n in notes(recipe) if "workflow too large" in n]
    assert ".github/workflows/huge.yml: skipped: workflow too large to read" in skipped
    assert any(f"w{count - 1:02}.yml" in n for n in skipped)  # past the total budget
    assert not any("w00.yml" in n for n in skipped)


def test_provenance_lines_point_at_the_workflow_lines_they_name(tmp_path: Path):
    checkout = corpus_repo("workflow-only", tmp_path)

    recipe = discover_recipe(checkout=checkout)

    lines = (checkout / ".github/workflows/ci.yml").read_text().splitlines()
    by_part = {(p["part"], p["detail"]): p["line"] for p in recipe.provenance}
    assert "python -m pytest -v tests/unit" in lines[by_part[("command", "pytest (workflow)")] - 1]
    assert "pip install -e . pytest six" in lines[by_part[("requirements", "six")] - 1]
    assert "WFONLY_SEED" in lines[by_part[("env", "WFONLY_SEED")] - 1]


def test_pip_install_lines_of_many_shapes(tmp_path: Path):
    project = recipe_sources.Project(
        name="demo",
        optional={"test": ["pytest"], "plots": ["matplotlib"]},
        groups={},
        pyproject={},
        pyproject_text="",
    )
    files = recipe_sources.CheckoutFiles(
        make_checkout(tmp_path / "p", {"ci/reqs.txt": "numpy\n"}, git=False)
    )
    install = recipe_sources.Install(source="test")
    lines = [
        "python -m pip install -U --progress-bar off -rci/reqs.txt 'scipy>=1'",
        "uv pip install --group pyproject.toml:docs --cache-dir /tmp/c -e '.[plots]'",
        "uv sync --all-extras --no-dev",
        "echo pip install not-this",
    ]

    for line in lines:
        for _, words in recipe_sources.shell_commands(line):
            recipe_sources.pip_install(
                install, words, project=project, files=files, file="ci.yml", line=1
            )

    assert install.requirements == ["numpy", "scipy>=1"]
    assert install.groups == ["docs"]
    assert install.extras == ["plots", "test"]


def test_names_the_filesystem_refuses_are_not_a_traceback(tmp_path: Path):
    long = "a" * 5000
    run = f"pip install -r {long}.txt && python -m unittest {long}.b && pytest {long}/x"
    workflow = f"jobs:\n  t:\n    steps:\n      - run: {run}\n      - run: python {long}.py\n"
    checkout = make_checkout(
        tmp_path / "p", {".github/workflows/ci.yml": workflow, **TEST_FILE}, git=False
    )

    recipe = discover_recipe(checkout=checkout)

    assert recipe.testpaths == ["tests"] and recipe.requirements == []


def test_uv_run_installs_the_default_dev_group_as_uv_does(tmp_path: Path):
    groups = '\n[dependency-groups]\ntest = ["pytest"]\ndev = ["pytest", "hypothesis"]\n'
    workflow = "jobs:\n  t:\n    steps:\n      - run: uv run pytest\n"
    checkout = make_checkout(
        tmp_path / "p",
        {"pyproject.toml": PYPROJECT + groups, ".github/workflows/ci.yml": workflow, **TEST_FILE},
    )
    without_dev = make_checkout(
        tmp_path / "q",
        {
            "pyproject.toml": PYPROJECT + groups,
            ".github/workflows/ci.yml": workflow.replace("uv run", "uv run --no-dev"),
            **TEST_FILE,
        },
    )

    assert discover_recipe(checkout=checkout).groups == ["dev"]
    assert discover_recipe(checkout=checkout).requirements == ["pytest", "hypothesis"]
    assert discover_recipe(checkout=without_dev).groups == ["test"]  # the guess
