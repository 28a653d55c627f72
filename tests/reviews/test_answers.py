"""The answers of an application as the services accept them: safety rules (URL schemes, the
repository URL rule, sizes, NUL bytes) hold on every save, draft or not; completeness waits for
submit. The HTML form and the API both go through these rules (tests/reviews/test_views.py,
tests/api/test_reviews_api.py)."""

import pytest

from reviews import services
from reviews.models import Submission
from reviews.states import ReviewError
from tests.reviews.conftest import answers

UNSAFE_ANSWERS = [
    ("additional_repos", ["javascript:alert(document.cookie)"]),
    ("additional_repos", ["data:text/html,<script>alert(1)</script>"]),
    ("additional_repos", ["https://github.com/goodorg/extra", "JavaScript:alert(1)"]),
    ("additional_repos", ["https://gitlab.com/goodorg/extra"]),
    ("repository_url", "javascript:alert(1)"),
    ("website_url", "javascript:alert(1)"),
    ("documentation_url", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="),
    ("backing_org_url", "javascript://example.org/%0aalert(1)"),
    ("slides_url", "ftp://example.org/deck.pdf"),
    ("video_url", "vbscript:msgbox(1)"),
    ("video_url", "https://"),
]


def refused_fields(error: ReviewError) -> set[str]:
    return set(getattr(error, "errors", {}))


@pytest.mark.parametrize(("field", "value"), UNSAFE_ANSWERS)
def test_an_unsafe_url_is_refused_even_in_a_draft(applicant, field, value):
    with pytest.raises(ReviewError) as refused:
        services.submission_create(
            applicant=applicant, answers={"project_name": "Half", field: value}
        )
    assert refused_fields(refused.value) == {field}
    assert not Submission.objects.exists()


@pytest.mark.parametrize(("field", "value"), UNSAFE_ANSWERS)
def test_an_unsafe_url_is_refused_when_a_draft_is_edited(applicant, field, value):
    draft = services.submission_create(applicant=applicant, answers=answers())
    with pytest.raises(ReviewError) as refused:
        services.submission_update(submission=draft, actor=applicant, answers={field: value})
    assert refused_fields(refused.value) == {field}
    draft.refresh_from_db()
    assert getattr(draft, field) == answers().get(field, [] if field.endswith("repos") else "")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("summary", "one\x00line", "NUL"),
        ("additional_repos", ["https://github.com/a/b\x00"], "NUL"),
        ("description", "word " * 1000, "at most 3000 characters"),
        ("additional_info", "x" * 3001, "at most 3000 characters"),
        ("additional_repos", [f"https://github.com/org/r{i}" for i in range(21)], "At most 20"),
        ("contact_emails", ["not-an-email"], "valid email"),
        ("maintainer_handles", ["bad_handle!"], "not a GitHub handle"),
        ("pypi_name", "not a name", "PyPI"),
        ("summary", "two\nlines", "One line only"),
        ("kind", "galactic", "valid choice"),
        ("additional_repos", "https://github.com/a/b", "list"),
        ("website_url", ["https://example.org"], "text"),
    ],
)
def test_sizes_nul_bytes_and_formats_are_refused_even_in_a_draft(applicant, field, value, message):
    with pytest.raises(ReviewError) as refused:
        services.submission_create(applicant=applicant, answers={field: value})
    assert message in refused.value.errors[field]
    assert not Submission.objects.exists()


def test_safe_answers_are_saved_in_their_canonical_form(applicant):
    draft = services.submission_create(
        applicant=applicant,
        answers={
            "additional_repos": ["https://github.com/goodorg/extra.git/"],
            "maintainer_handles": ["@alice", "Alice", "bob"],
            "website_url": "http://torchgood.example.org",
            "summary": "  A good library.  ",
        },
    )
    assert draft.additional_repos == ["https://github.com/goodorg/extra"]
    assert draft.maintainer_handles == ["alice", "bob"]
    assert draft.website_url == "http://torchgood.example.org"
    assert draft.summary == "A good library."


def test_completeness_waits_for_submit(applicant):
    """A draft keeps a short description and missing answers; submit says what is missing."""
    draft = services.submission_create(applicant=applicant, answers={"description": "Short."})
    assert draft.description == "Short."
    assert "description must be 100 to 300 words (it has 1)" in (
        services.submission_missing_answers(submission=draft)
    )


def test_open_drafts_per_applicant_are_capped(applicant, settings):
    settings.REVIEWS_MAX_OPEN_DRAFTS = 3
    drafts = [
        services.submission_create(applicant=applicant, answers={"project_name": f"Draft {i}"})
        for i in range(3)
    ]
    with pytest.raises(ReviewError, match="3 open drafts"):
        services.submission_create(applicant=applicant, answers={"project_name": "One too many"})
    assert Submission.objects.filter(applicant=applicant).count() == 3
    services.submission_withdraw(submission=drafts[0], actor=applicant)
    services.submission_create(applicant=applicant, answers={"project_name": "Room again"})
    assert Submission.objects.filter(applicant=applicant, state="draft").count() == 3


def test_the_draft_cap_is_per_applicant(applicant, other_applicant, settings):
    settings.REVIEWS_MAX_OPEN_DRAFTS = 1
    services.submission_create(applicant=applicant, answers={})
    services.submission_create(applicant=other_applicant, answers={})
    with pytest.raises(ReviewError, match="1 open draft"):
        services.submission_create(applicant=applicant, answers={})


def test_the_default_draft_cap_is_ten(applicant):
    for i in range(10):
        services.submission_create(applicant=applicant, answers={"project_name": f"D{i}"})
    with pytest.raises(ReviewError, match="10 open drafts"):
        services.submission_create(applicant=applicant, answers={})
