"""The staff override and the repository file's recipe meet one set of value rules
(`registry.sources.repo_config`): the same value is refused on both sides, for the same reason."""

import textwrap

import pytest

from ci_runners.services import test_configs
from registry.sources.repo_config import repo_config_parse


def file_problems(line: str) -> list[str]:
    _, problems = repo_config_parse(
        textwrap.dedent(f"""
        [tool.pytorch-ecosystem.test]
        {line}
        """)
    )
    return problems


@pytest.mark.parametrize(
    ("field", "value", "toml", "reason"),
    [
        ("env", {"A\n": "x"}, 'env = { "A\\n" = "x" }', "is not a variable name"),
        ("env", {"UV_INDEX": "x"}, 'env = { UV_INDEX = "x" }', "UV_INDEX is set by the runner"),
        ("test_paths", ["a\\b"], 'test_paths = ["a\\\\b"]', "a path inside the repository"),
        (
            "extra_requirements",
            ["x @ file:///y"],
            'extra_requirements = ["x @ file:///y"]',
            "direct URL references",
        ),
    ],
)
def test_a_value_refused_by_one_side_is_refused_by_the_other(field, value, toml, reason):
    with pytest.raises(test_configs.TestConfigInvalid) as refused:
        test_configs.test_override_clean({field: value})

    assert reason in refused.value.errors[field][0]
    assert any(reason in problem for problem in file_problems(toml))
