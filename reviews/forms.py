"""Forms of the portal and the dashboard: they validate input; services do the writes."""

import re

from django import forms

from registry.models import Category
from reviews import criteria, services
from reviews.models import (
    ANSWER_FIELDS,
    DESCRIPTION_MAX_WORDS,
    DESCRIPTION_MIN_WORDS,
    HOSTED_ANSWERS,
    OPTIONAL_ANSWERS,
    REQUIRED_ANSWERS,
    CriterionResult,
    Submission,
    Vote,
)


def _lines(value: str) -> list[str]:
    return [item.strip() for item in re.split(r"[\n,;]+", value or "") if item.strip()]


class ListField(forms.CharField):
    """A list typed one item a line (or comma separated), stored as a JSON list; the services
    check its entries (`services.submission_answers_clean`)."""

    widget = forms.Textarea(attrs={"rows": 3})

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 4000)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return _lines(super().to_python(value))


class SubmissionForm(forms.ModelForm):
    """The application's answers. What every save needs (safe URLs, sizes, formats) is the
    services' rule, applied in `clean`. Completeness (required answers, the description's word
    count) waits for submit (`services.submission_submit`): a draft keeps whatever is typed."""

    contact_emails = ListField(required=False, help_text="One a line.")
    maintainer_handles = ListField(
        required=False,
        label="GitHub handles of the maintainers",
        help_text="One a line, without @.",
    )
    additional_repos = ListField(
        required=False,
        label="Additional repositories in scope",
        help_text="https://github.com/owner/repo, one a line.",
    )

    class Meta:
        model = Submission
        fields = ANSWER_FIELDS
        widgets = {
            "kind": forms.RadioSelect,
            "description": forms.Textarea(
                attrs={
                    "rows": 8,
                    "data-min-words": DESCRIPTION_MIN_WORDS,
                    "data-max-words": DESCRIPTION_MAX_WORDS,
                    "data-word-counter": "id_description-words",
                }
            ),
            "similar_projects": forms.Textarea(attrs={"rows": 2}),
            "documentation": forms.Textarea(attrs={"rows": 3}),
            "ci_description": forms.Textarea(attrs={"rows": 3}),
            "pytorch_components": forms.Textarea(attrs={"rows": 2}),
            "additional_info": forms.Textarea(attrs={"rows": 3}),
            **{
                name: forms.Textarea(attrs={"rows": 3})
                for name in (
                    "governance_model",
                    "production_adoption",
                    "roadmap",
                    "security_process",
                )
            },
        }
        labels = {
            "project_name": "Project name",
            "similar_projects": "Similar projects already in the ecosystem (or “none”)",
            "repository_url": "Primary repository URL",
            "website_url": "Website (the repository again if none)",
            "documentation_url": "Documentation URL",
            "pytorch_versions": "PyTorch versions it builds and tests with",
            "pytorch_components": "PyTorch components it uses",
            "backing_org_name": "Backing company or institution",
            "backing_org_url": "Its URL",
            "slides_url": "Slide deck (link)",
            "video_url": "Video, at most 15 minutes (link)",
            "tac_sponsor": "TAC sponsor",
            "classification": "Platform or vertical",
        }
        help_texts = {
            "description": f"{DESCRIPTION_MIN_WORDS} to {DESCRIPTION_MAX_WORDS} words. A draft "
            "keeps any length; the count is checked when you submit.",
        }

    def __init__(self, *args, for_submit: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.for_submit = for_submit
        for field in self.fields.values():
            field.required = False
            if isinstance(field, forms.URLField):
                field.assume_scheme = "https"
        if for_submit:
            kind = self.data.get("kind") if self.is_bound else self.instance.kind
            required = REQUIRED_ANSWERS + (HOSTED_ANSWERS if kind == Submission.Kind.HOSTED else ())
            for name in required:
                self.fields[name].required = True
        self.fields["kind"].required = True

    @property
    def is_hosted(self) -> bool:
        """The kind chosen (posted, or saved): the hosted-only answers show only for it."""
        return self["kind"].value() == Submission.Kind.HOSTED

    def description_words(self) -> int:
        return len(str(self["description"].value() or "").split())

    def required_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ("kind", *REQUIRED_ANSWERS)]

    def optional_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in OPTIONAL_ANSWERS]

    def hosted_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in HOSTED_ANSWERS]

    def clean(self):
        data = super().clean()
        try:
            data.update(services.submission_answers_clean(answers=self.answers()))
        except services.InvalidAnswers as refused:
            for name, message in refused.errors.items():
                self.add_error(name, message)
        return data

    def answers(self) -> dict:
        return {
            name: self.cleaned_data[name] for name in ANSWER_FIELDS if name in self.cleaned_data
        }


class TransitionForm(forms.Form):
    to = forms.CharField(max_length=32)
    note = forms.CharField(
        max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    # Opening the vote while criteria are unknown or not met: the reviewer confirmed it.
    confirm = forms.BooleanField(required=False)


class CommentForm(forms.Form):
    body = forms.CharField(
        max_length=10000, widget=forms.Textarea(attrs={"rows": 4}), label="Message (Markdown)"
    )
    shared_with_applicant = forms.BooleanField(required=False, label="Share with the applicant")


class AnswerForm(forms.Form):
    outcome = forms.ChoiceField(choices=CriterionResult.Outcome.choices)
    justification = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class OverrideForm(forms.Form):
    outcome = forms.ChoiceField(choices=CriterionResult.Outcome.choices)
    reason = forms.CharField(
        max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), label="Written reason"
    )


class VoteForm(forms.Form):
    choice = forms.ChoiceField(choices=Vote.Choice.choices, widget=forms.RadioSelect)


class CategoryForm(forms.Form):
    category = forms.ModelChoiceField(
        queryset=Category.objects.filter(parent__isnull=False).select_related("parent")
    )


class PeriodicDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("retire", "Retire the project"), ("keep", "Keep it")])
    note = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))


CRITERION_NUMBERS = {c.number for c in criteria.CRITERIA}
