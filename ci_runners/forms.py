"""The staff form that edits a project's test override: text in, the service's values out.

Lists are one entry a line; extras and groups may also be separated by commas, and left blank
mean "what the recipe discovers" (write `none` for none); env is `NAME=value` a line. The form
only reshapes the text: `services.project_test_config_update` checks every value.
"""

from __future__ import annotations

from typing import Any

from django import forms

from ci_runners.services import TestOverride

NONE_WORD = "none"


def text_lines(text: str) -> list[str]:
    """The lines of a text box, stripped, blank ones left out."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def env_from_text(text: str) -> dict[str, str]:
    """`NAME=value` a line (the maintainers' recipe form reads its box the same way)."""
    env: dict[str, str] = {}
    for line in text_lines(text):
        name, equals, value = line.partition("=")
        if not equals:
            raise forms.ValidationError(f"{line[:40]!r}: write NAME=value.")
        env[name.strip()] = value.strip()
    return env


def _names_or_discovered(text: str) -> list[str] | None:
    items = [item.strip() for line in text_lines(text) for item in line.split(",") if item.strip()]
    if not items:
        return None
    if [item.lower() for item in items] == [NONE_WORD]:
        return []
    return items


def _names_text(names: tuple[str, ...] | None) -> str:
    if names is None:
        return ""
    return ", ".join(names) if names else NONE_WORD


class TestOverrideForm(forms.Form):
    __test__ = False

    extra_requirements = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Extra requirements",
        help_text="One requirement a line, e.g. scipy>=1.11. Installed with the recipe's.",
    )
    extras = forms.CharField(
        required=False,
        label="Extras",
        help_text="Comma-separated. Blank: what the recipe discovers; 'none': no extras.",
    )
    groups = forms.CharField(
        required=False,
        label="Dependency groups",
        help_text="PEP 735 groups, comma-separated. Blank: what the recipe discovers; 'none'.",
    )
    pytest_args = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="pytest arguments",
        help_text="One argument a line, added to the recipe's.",
    )
    test_paths = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Test paths",
        help_text="Folders or files of the repository, one a line.",
    )
    env = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Environment",
        help_text="NAME=value, one a line; merged with the recipe's. No secrets.",
    )
    deselect = forms.CharField(
        required=False,
        label="Deselected markers",
        help_text="pytest markers whose tests are skipped, comma-separated (e.g. slow, gpu).",
    )
    copy_tests = forms.CharField(
        required=False,
        max_length=200,
        label="Copy tests out",
        help_text="A folder run from a copy, so that the installed package is imported.",
    )

    @classmethod
    def for_override(cls, override: TestOverride) -> TestOverrideForm:
        return cls(
            initial={
                "extra_requirements": "\n".join(override.extra_requirements),
                "extras": _names_text(override.extras),
                "groups": _names_text(override.groups),
                "pytest_args": "\n".join(override.pytest_args),
                "test_paths": "\n".join(override.test_paths),
                "env": "\n".join(f"{name}={value}" for name, value in override.env),
                "deselect": ", ".join(override.deselect),
                "copy_tests": override.copy_tests,
            }
        )

    def clean_env(self) -> dict[str, str]:
        return env_from_text(self.cleaned_data.get("env", ""))

    def changes(self) -> dict[str, Any]:
        """The service's `changes` (call after is_valid)."""
        data = self.cleaned_data
        markers = [m.strip() for line in text_lines(data["deselect"]) for m in line.split(",")]
        return {
            "extra_requirements": text_lines(data["extra_requirements"]),
            "extras": _names_or_discovered(data["extras"]),
            "groups": _names_or_discovered(data["groups"]),
            "pytest_args": text_lines(data["pytest_args"]),
            "test_paths": text_lines(data["test_paths"]),
            "env": data["env"],
            "deselect": [marker for marker in markers if marker],
            "copy_tests": data["copy_tests"].strip(),
        }

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        for name, messages in errors.items():
            self.add_error(name if name in self.fields else None, messages)
