"""Applications and the review queue over the API: every write endpoint for anonymous,
applicant, reviewer, voting member and staff; another user's application is a 404."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from reviews import criteria
from reviews.models import CriterionAnswer, Submission, Vote
from reviews.roles import REVIEWERS_GROUP, VOTING_GROUP

pytestmark = pytest.mark.django_db

HUMAN_CRITERION = criteria.REVIEWER_ANSWERED[0]
AUTOMATED_CRITERION = next(c.number for c in criteria.CRITERIA if c.automated)


@pytest.fixture
def people(make_user):
    reviewer = make_user("rita")
    reviewer.groups.add(Group.objects.get_or_create(name=REVIEWERS_GROUP)[0])
    voter = make_user("victor")
    voter.groups.add(Group.objects.get_or_create(name=VOTING_GROUP)[0])
    return {
        "anonymous": None,
        "applicant": make_user("alice"),
        "other": make_user("oscar"),
        "reviewer": reviewer,
        "voter": voter,
        "staff": make_user("stella", is_staff=True),
    }


def as_user(api, user):
    api.force_authenticate(user)
    return api


@pytest.fixture
def draft(people):
    return Submission.objects.create(
        applicant=people["applicant"], project_name="TorchThing", state="draft"
    )


@pytest.fixture
def voting(people):
    return Submission.objects.create(
        applicant=people["applicant"],
        project_name="Voted",
        repo_owner="org",
        repo_name="voted",
        state="voting",
        vote_opened_at=timezone.now(),
        vote_closes_at=timezone.now() + timedelta(days=7),
    )


# -- applications ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("anonymous", 401),
        ("applicant", 201),
        ("reviewer", 201),
        ("voter", 201),
        ("staff", 201),
    ],
)
def test_create_application(api, people, who, expected):
    response = as_user(api, people[who]).post(
        "/api/v1/applications/",
        {"project_name": "TorchNew", "repository_url": "https://github.com/org/torchnew"},
        format="json",
    )
    assert response.status_code == expected, response.content
    if expected == 201:
        submission = Submission.objects.get(pk=response.json()["id"])
        assert submission.applicant == people[who] and submission.state == "draft"
        assert (submission.repo_owner, submission.repo_name) == ("org", "torchnew")
        assert response.json()["missing_answers"]


def test_bad_repository_url_is_a_400_with_the_rule(api, people):
    response = as_user(api, people["applicant"]).post(
        "/api/v1/applications/", {"repository_url": "https://gitlab.com/x"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("additional_repos", ["javascript:alert(document.cookie)"]),
        ("additional_repos", ["data:text/html,<script>alert(1)</script>"]),
        ("website_url", "javascript:alert(1)"),
        ("documentation_url", "data:text/html,<script>alert(1)</script>"),
        ("backing_org_url", "ftp://example.org/"),
        ("slides_url", "javascript://example.org/%0aalert(1)"),
        ("video_url", "vbscript:msgbox(1)"),
        ("summary", "NUL\x00byte"),
    ],
)
def test_unsafe_answers_are_a_400_even_in_a_draft(api, people, draft, field, value):
    client = as_user(api, people["applicant"])
    created = client.post(
        "/api/v1/applications/", {"project_name": "Sneaky", field: value}, format="json"
    )
    assert created.status_code == 400, created.content
    assert field in created.json()
    assert Submission.objects.filter(applicant=people["applicant"]).count() == 1  # the draft
    edited = client.patch(f"/api/v1/applications/{draft.pk}/", {field: value}, format="json")
    assert edited.status_code == 400, edited.content
    assert field in edited.json()
    draft.refresh_from_db()
    assert getattr(draft, field) in ("", [])


def test_open_drafts_are_capped_with_a_400(api, people, settings):
    settings.REVIEWS_MAX_OPEN_DRAFTS = 2
    client = as_user(api, people["applicant"])
    for name in ("One", "Two"):
        response = client.post("/api/v1/applications/", {"project_name": name}, format="json")
        assert response.status_code == 201
    response = client.post("/api/v1/applications/", {"project_name": "Three"}, format="json")
    assert response.status_code == 400
    assert "2 open drafts" in response.json()["detail"]
    assert Submission.objects.filter(applicant=people["applicant"]).count() == 2


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("anonymous", 401),
        ("applicant", 200),
        ("other", 404),
        ("reviewer", 404),
        ("voter", 404),
        ("staff", 404),
    ],
)
def test_update_application(api, people, draft, who, expected):
    response = as_user(api, people[who]).patch(
        f"/api/v1/applications/{draft.pk}/", {"summary": "A one-liner"}, format="json"
    )
    assert response.status_code == expected
    draft.refresh_from_db()
    assert draft.summary == ("A one-liner" if expected == 200 else "")


@pytest.mark.parametrize(
    ("who", "expected"),
    [("anonymous", 401), ("applicant", 400), ("other", 404), ("reviewer", 404), ("staff", 404)],
)
def test_submit_application(api, people, draft, who, expected):
    response = as_user(api, people[who]).post(f"/api/v1/applications/{draft.pk}/submit/")
    assert response.status_code == expected
    if expected == 400:  # the applicant's incomplete draft: the service says what is missing
        assert "Complete the application first" in response.json()["detail"]
    draft.refresh_from_db()
    assert draft.state == "draft"


def test_applicant_sees_only_own_applications(api, people, draft):
    Submission.objects.create(applicant=people["other"], project_name="NotYours")
    names = [
        s["project_name"]
        for s in as_user(api, people["applicant"]).get("/api/v1/applications/").json()["results"]
    ]
    assert names == ["TorchThing"]
    api.force_authenticate(people["other"])
    assert api.get(f"/api/v1/applications/{draft.pk}/").status_code == 404
    assert api.get("/api/v1/applications/999999/").status_code == 404


def test_editing_a_submitted_application_is_refused_with_a_message(api, people, voting):
    response = as_user(api, people["applicant"]).patch(
        f"/api/v1/applications/{voting.pk}/", {"summary": "late"}, format="json"
    )
    assert response.status_code == 400
    assert "cannot be edited" in response.json()["detail"]


# -- review queue ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("anonymous", 401),
        ("applicant", 403),
        ("reviewer", 200),
        ("voter", 200),
        ("staff", 200),
    ],
)
def test_review_queue_visibility(api, people, draft, voting, who, expected):
    response = as_user(api, people[who]).get("/api/v1/review-queue/")
    assert response.status_code == expected
    if expected == 200:
        assert [s["id"] for s in response.json()["results"]] == [voting.pk]  # no drafts
        assert (
            as_user(api, people[who]).get(f"/api/v1/review-queue/{voting.pk}/criteria/").status_code
            == 200
        )


@pytest.mark.parametrize(
    ("who", "expected"),
    [("anonymous", 401), ("applicant", 403), ("reviewer", 200), ("voter", 403), ("staff", 200)],
)
def test_answer_a_criterion(api, people, voting, who, expected):
    response = as_user(api, people[who]).post(
        f"/api/v1/review-queue/{voting.pk}/criteria/answer/",
        {"criterion": HUMAN_CRITERION, "outcome": "met", "justification": "Read the docs."},
        format="json",
    )
    assert response.status_code == expected, response.content
    assert CriterionAnswer.objects.filter(submission=voting).exists() == (expected == 200)


def test_answer_needs_a_justification(api, people, voting):
    response = as_user(api, people["reviewer"]).post(
        f"/api/v1/review-queue/{voting.pk}/criteria/answer/",
        {"criterion": HUMAN_CRITERION, "outcome": "met", "justification": "   "},
        format="json",
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("who", "expected"),
    [("anonymous", 401), ("applicant", 403), ("reviewer", 200), ("voter", 403), ("staff", 200)],
)
def test_override_an_automated_result(api, people, voting, who, expected):
    response = as_user(api, people[who]).post(
        f"/api/v1/review-queue/{voting.pk}/criteria/override/",
        {"criterion": AUTOMATED_CRITERION, "outcome": "met", "reason": "Checked by hand."},
        format="json",
    )
    assert response.status_code == expected, response.content
    if expected == 200:
        assert response.json()["override_reason"] == "Checked by hand."


@pytest.mark.parametrize(
    ("who", "expected"),
    [("anonymous", 401), ("applicant", 403), ("reviewer", 403), ("voter", 200), ("staff", 403)],
)
def test_vote(api, people, voting, who, expected):
    response = as_user(api, people[who]).post(
        f"/api/v1/review-queue/{voting.pk}/vote/", {"choice": "approve"}, format="json"
    )
    assert response.status_code == expected, response.content
    assert Vote.objects.filter(submission=voting).exists() == (expected == 200)


def test_vote_outside_the_window_is_a_400(api, people, draft):
    draft_in_review = draft
    Submission.objects.filter(pk=draft.pk).update(state="in_review")
    response = as_user(api, people["voter"]).post(
        f"/api/v1/review-queue/{draft_in_review.pk}/vote/", {"choice": "approve"}, format="json"
    )
    assert response.status_code == 400
    assert "not open" in response.json()["detail"]
