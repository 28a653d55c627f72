"""Forms of the maintainers' listing page. They parse what a person typed; the rules (URL
schemes, handle syntax, logo size and type, recipe values) are the services' own, and a
refusal of a service comes back as an error of the form."""

from __future__ import annotations

from typing import Any

from django import forms

from ci_runners.forms import env_from_text, text_lines
from ci_runners.models import MAX_CELL_TIMEOUT_S
from ci_runners.services.test_configs import DEFAULT_TIMEOUT_S, MIN_TIMEOUT_S
from registry.listing import LISTING_LOGO_MAX_BYTES, MAX_DESCRIPTION_CHARS, MAX_REASON_CHARS
from registry.models import Category
from reviews import criteria


class ListingForm(forms.Form):
    description = forms.CharField(
        required=False, max_length=MAX_DESCRIPTION_CHARS, widget=forms.Textarea(attrs={"rows": 4})
    )
    homepage_url = forms.CharField(required=False, max_length=500, label="Homepage URL")
    documentation_url = forms.CharField(required=False, max_length=500, label="Documentation URL")


class LogoForm(forms.Form):
    logo = forms.FileField(
        help_text=f"PNG or SVG, at most {LISTING_LOGO_MAX_BYTES // 1024} KB.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/svg+xml"}),
    )

    def clean_logo(self):
        upload = self.cleaned_data["logo"]
        if upload.size > LISTING_LOGO_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size // 1024} KB; a logo may be at most "
                f"{LISTING_LOGO_MAX_BYTES // 1024} KB."
            )
        return upload


class CategoryProposalForm(forms.Form):
    category = forms.ModelChoiceField(
        queryset=Category.objects.filter(parent__isnull=False).select_related("parent"),
        required=False,
        empty_label="(no proposal)",
        label="Propose a category",
        help_text="Staff confirm it.",
    )


class HandleForm(forms.Form):
    handle = forms.CharField(max_length=40, label="GitHub user name")


class TransferForm(forms.Form):
    new_owner = forms.CharField(
        max_length=40, label="New owner", help_text="One of the maintainers (GitHub user name)."
    )


class ExemptionForm(forms.Form):
    criterion = forms.TypedChoiceField(choices=criteria.CHOICES, coerce=int)
    reason = forms.CharField(
        max_length=MAX_REASON_CHARS,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Public: the TAC and visitors read it.",
    )


class RecipeForm(forms.Form):
    """The maintainer-editable test recipe: one item a line (env: NAME=value lines)."""

    extra_requirements = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    extras = forms.CharField(
        required=False,
        max_length=1000,
        help_text="Comma-separated; empty: the project's 'test' extra as discovered.",
    )
    pytest_args = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    test_paths = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    deselect = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="pytest markers whose tests are not run.",
    )
    env = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="NAME=value, one a line; no secrets.",
    )
    timeout_s = forms.IntegerField(
        required=False,
        min_value=MIN_TIMEOUT_S,
        max_value=MAX_CELL_TIMEOUT_S,
        label="Timeout (seconds)",
        help_text=f"How long one run of the tests may take, {MIN_TIMEOUT_S} s to "
        f"{MAX_CELL_TIMEOUT_S // 3600} h. Empty or {DEFAULT_TIMEOUT_S}: the repository file's "
        "timeout_s, else the default.",
    )

    @staticmethod
    def initial_from(recipe: dict[str, Any]) -> dict[str, str]:
        return {
            "extra_requirements": "\n".join(recipe["extra_requirements"]),
            "extras": ", ".join(recipe["extras"] or []),
            "pytest_args": "\n".join(recipe["pytest_args"]),
            "test_paths": "\n".join(recipe["test_paths"]),
            "deselect": "\n".join(recipe["deselect"]),
            "env": "\n".join(f"{name}={value}" for name, value in recipe["env"].items()),
            "timeout_s": recipe["timeout_s"],
        }

    def clean_env(self) -> dict[str, str]:
        return env_from_text(self.cleaned_data["env"])

    def changes(self) -> dict[str, Any]:
        data = self.cleaned_data
        extras = [item.strip() for item in data["extras"].split(",") if item.strip()]
        return {
            "extra_requirements": text_lines(data["extra_requirements"]),
            "extras": extras or None,
            "pytest_args": text_lines(data["pytest_args"]),
            "test_paths": text_lines(data["test_paths"]),
            "deselect": text_lines(data["deselect"]),
            "env": data["env"],
            "timeout_s": data["timeout_s"] or DEFAULT_TIMEOUT_S,
        }
