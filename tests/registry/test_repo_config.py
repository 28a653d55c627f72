"""The one parser of `[tool.pytorch-ecosystem]` (pure: TOML text in, config and problems out)."""

import textwrap

import pytest

from registry.sources.repo_config import TEST_KEYS, Exemption, RepoConfig, repo_config_parse


def parse(text: str):
    return repo_config_parse(textwrap.dedent(text))


def test_a_full_table_is_read():
    config, problems = parse(
        """
        [project]
        name = "x"

        [tool.pytorch-ecosystem]
        maintainers = ["alice", "@Bob", "alice"]
        contact = " maintainers@example.org "
        exemptions = [
          { criterion = 12, reason = "Research code." },
          { criterion = 3, reason = "  Docs in the parent.  " },
        ]

        [tool.pytorch-ecosystem.test]
        extra_requirements = ["scipy>=1.11"]
        extras = ["test"]
        pytest_args = ["-x", "-q"]
        test_paths = ["tests/unit"]
        deselect = ["slow"]
        env = { MY_FLAG = "1" }
        timeout_s = 1800
        """
    )

    assert problems == []
    assert config == RepoConfig(
        found=True,
        maintainers=("alice", "Bob"),
        contact="maintainers@example.org",
        exemptions=(Exemption(3, "Docs in the parent."), Exemption(12, "Research code.")),
        test={
            "extra_requirements": ["scipy>=1.11"],
            "extras": ["test"],
            "pytest_args": ["-x", "-q"],
            "test_paths": ["tests/unit"],
            "deselect": ["slow"],
            "env": {"MY_FLAG": "1"},
            "timeout_s": 1800,
        },
    )
    assert config.as_dict()["exemptions"][0] == {"criterion": 3, "reason": "Docs in the parent."}


def test_no_table_is_an_empty_config_without_problems():
    assert parse('[project]\nname = "x"\n') == (RepoConfig(), [])
    assert parse("") == (RepoConfig(), [])


def test_text_that_is_not_toml_is_none_with_the_problem():
    config, problems = parse("[tool.pytorch-ecosystem\n")
    assert config is None
    assert problems[0].startswith("pyproject.toml is not valid TOML")


def test_unknown_and_forbidden_keys_are_problems_not_crashes():
    config, problems = parse(
        """
        [tool.pytorch-ecosystem]
        maintainer = ["typo"]
        contact = "team@example.org"

        [tool.pytorch-ecosystem.test]
        source_override = "/etc"
        needs_gpu = true
        timeout_s = 600
        """
    )

    assert config.contact == "team@example.org" and config.test == {"timeout_s": 600}
    assert problems == [
        "[tool.pytorch-ecosystem]: unknown key 'maintainer'.",
        "[tool.pytorch-ecosystem.test]: 'needs_gpu' is not a key maintainers may set.",
        "[tool.pytorch-ecosystem.test]: 'source_override' is not a key maintainers may set.",
    ]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('contact = "not-an-email"', "contact: 'not-an-email' is not an email address."),
        ("contact = 3", "contact: '3' is not an email address."),
        ('maintainers = "alice"', "maintainers: expected a list of GitHub handles."),
        ('maintainers = ["-bad-", "a b", 7]', "maintainers: '-bad-' is not a handle."),
        ("exemptions = {criterion = 3}", "exemptions: expected a list"),
        ('exemptions = [{criterion = 0, reason = "x"}]', "criterion must be a number from 1"),
        ('exemptions = [{criterion = 51, reason = "x"}]', "criterion must be a number from 1"),
        ('exemptions = [{criterion = true, reason = "x"}]', "criterion must be a number from 1"),
        ('exemptions = [{criterion = "3", reason = "x"}]', "criterion must be a number from 1"),
        ("exemptions = [{criterion = 3}]", "a reason of 1 to 2000 characters is needed"),
        ('exemptions = [{criterion = 3, reason = "   "}]', "a reason of 1 to 2000 characters"),
        ("exemptions = [3]", "expected {criterion = N"),
        (
            'exemptions = [{criterion = 3, reason = "a"}, {criterion = 3, reason = "b"}]',
            "criterion 3 is exempted twice",
        ),
        ('exemptions = [{criterion = 3, reason = "a", by = "me"}]', "unknown key(s) 'by'"),
        ("test = 3", "test: expected a table."),
    ],
)
def test_bad_values_are_listed_and_left_out(toml, expected):
    config, problems = parse(f"[tool.pytorch-ecosystem]\n{toml}\n")
    assert config is not None and config.found
    assert any(expected in problem for problem in problems), problems


def test_bad_exemption_entries_drop_only_themselves():
    config, problems = parse(
        """
        [tool.pytorch-ecosystem]
        exemptions = [{criterion = 0, reason = "x"}, {criterion = 4, reason = "Fine."}]
        """
    )
    assert config.exemptions == (Exemption(4, "Fine."),)
    assert len(problems) == 1


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('extra_requirements = ["pkg @ https://x.example/p.whl"]', "direct URL references"),
        ('extra_requirements = ["not a requirement!"]', "is not a requirement"),
        ('test_paths = ["../outside"]', "a path inside the repository"),
        ('test_paths = ["/etc"]', "a path inside the repository"),
        ('deselect = ["slow or 1"]', "is not a pytest marker name"),
        ('extras = ["te st"]', "is not an extra name"),
        ('env = { PATH = "/tmp" }', "PATH is set by the runner"),
        ('env = { LD_PRELOAD = "x.so" }', "LD_PRELOAD is set by the runner"),
        ("env = { FLAG = 1 }", "FLAG: a text value"),
        ('env = { "1BAD" = "x" }', "is not a variable name"),
        ("timeout_s = 5", "a whole number of seconds from 10 to 14400"),
        ("timeout_s = 99999", "a whole number of seconds from 10 to 14400"),
        ("timeout_s = 60.5", "a whole number of seconds"),
        ('pytest_args = "-x"', "expected a list of strings"),
        ("pytest_args = [" + ", ".join(['"-x"'] * 51) + "]", "at most 50 entries"),
        ('pytest_args = [""]', "one line of 1 to 300 characters"),
    ],
)
def test_test_recipe_values_are_checked(toml, expected):
    config, problems = parse(f"[tool.pytorch-ecosystem.test]\n{toml}\n")
    assert config.test == {}
    assert len(problems) == 1 and expected in problems[0], problems


def test_too_many_maintainers_keeps_the_first_fifty():
    handles = ", ".join(f'"dev{n}"' for n in range(60))
    config, problems = parse(f"[tool.pytorch-ecosystem]\nmaintainers = [{handles}]\n")
    assert len(config.maintainers) == 50 and config.maintainers[0] == "dev0"
    assert problems == ["[tool.pytorch-ecosystem] maintainers: only the first 50 are kept."]


def test_a_table_that_is_not_a_table():
    config, problems = parse('[tool]\npytorch-ecosystem = "yes"\n')
    assert config == RepoConfig() and problems == ["[tool.pytorch-ecosystem] is not a table."]


def test_the_readme_example_parses_without_problems():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## The repository file: `[tool.pytorch-ecosystem]`", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]

    config, problems = repo_config_parse(example)

    assert problems == []
    assert config.maintainers == ("alice", "bob") and config.exemptions[0].criterion == 3
    assert set(config.test) == set(TEST_KEYS)  # the example shows every key
