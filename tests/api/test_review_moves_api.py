"""The TAC's moves over the API (transition, assign, category, checks, close the vote), the
discussion on both sides and the vote tally: each allowed to whom the review page allows it,
and refused to everyone else (anonymous 401; outside the TAC 403; a TAC member without the
role 403; a TAC member who maintains the project 404, as the page)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from registry.models import MaintainerIdentity
from reviews.models import Comment, ReviewEvent, Submission, Vote
from reviews.roles import REVIEWERS_GROUP, VOTING_GROUP
from tests.registry.factories import CategoryFactory, SubcategoryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(make_user):
    reviewers = Group.objects.get_or_create(name=REVIEWERS_GROUP)[0]
    voters = Group.objects.get_or_create(name=VOTING_GROUP)[0]
    reviewer = make_user("rita")
    reviewer.groups.add(reviewers)
    second_reviewer = make_user("ray")
    second_reviewer.groups.add(reviewers)
    voter = make_user("victor")
    voter.groups.add(voters)
    # A TAC reviewer who maintains the application's project: the queue hides it from them.
    maintainer = make_user("mia")
    maintainer.groups.add(reviewers)
    MaintainerIdentity.objects.create(user=maintainer, github_handle="mia-gh", verified=True)
    return {
        "anonymous": None,
        "applicant": make_user("alice"),
        "other": make_user("oscar"),
        "reviewer": reviewer,
        "second_reviewer": second_reviewer,
        "voter": voter,
        "maintainer": maintainer,
        "staff": make_user("stella", is_staff=True),
    }


def as_user(api, user):
    api.force_authenticate(user)
    return api


def make_submission(people, state: str, **fields) -> Submission:
    return Submission.objects.create(
        applicant=people["applicant"],
        project_name="TorchThing",
        repo_owner="org",
        repo_name="torchthing",
        maintainer_handles=["alice-gh", "mia-gh"],
        state=state,
        **fields,
    )


@pytest.fixture
def in_review(people):
    return make_submission(people, "in_review")


@pytest.fixture
def voting(people):
    now = timezone.now()
    return make_submission(
        people,
        "voting",
        vote_opened_at=now,
        vote_closes_at=now + timedelta(days=7),
        category=SubcategoryFactory(),
    )


# Who reaches an action meant for TAC reviewers and staff, and what they get.
REVIEWER_ACTION = [
    ("anonymous", 401),
    ("applicant", 403),
    ("other", 403),
    ("voter", 403),
    ("maintainer", 404),
    ("reviewer", 200),
    ("staff", 200),
]
# Who reads what every TAC member reads on the review page.
TAC_READ = [
    ("anonymous", 401),
    ("applicant", 403),
    ("other", 403),
    ("maintainer", 404),
    ("voter", 200),
    ("reviewer", 200),
    ("staff", 200),
]


# -- the workflow and its moves ---------------------------------------------------------------


@pytest.mark.parametrize(("who", "expected"), REVIEWER_ACTION)
def test_request_changes(api, people, in_review, who, expected):
    response = as_user(api, people[who]).post(
        f"/api/v1/review-queue/{in_review.pk}/transition/",
        {"to": "changes_requested", "note": "Add a CONTRIBUTING file."},
        format="json",
    )
    assert response.status_code == expected, response.content
    in_review.refresh_from_db()
    assert in_review.state == ("changes_requested" if expected == 200 else "in_review")
    if expected == 200:
        assert response.json()["state"] == "changes_requested"
        event = in_review.events.get(kind=ReviewEvent.Kind.TRANSITION)
        assert event.actor == people[who] and event.note == "Add a CONTRIBUTING file."


def test_request_changes_needs_a_note(api, people, in_review):
    response = as_user(api, people["reviewer"]).post(
        f"/api/v1/review-queue/{in_review.pk}/transition/",
        {"to": "changes_requested"},
        format="json",
    )
    assert response.status_code == 400
    assert "applicant reads this note" in response.json()["detail"]


def test_a_move_the_table_refuses_is_a_400(api, people, in_review):
    response = as_user(api, people["reviewer"]).post(
        f"/api/v1/review-queue/{in_review.pk}/transition/", {"to": "accepted"}, format="json"
    )
    assert response.status_code == 400
    in_review.refresh_from_db()
    assert in_review.state == "in_review"


def test_open_the_vote_needs_a_category_then_a_confirmation(api, people, in_review):
    client = as_user(api, people["reviewer"])
    url = f"/api/v1/review-queue/{in_review.pk}/"
    refused = client.post(url + "transition/", {"to": "voting"}, format="json")
    assert refused.status_code == 400 and "category" in refused.json()["detail"]

    top = CategoryFactory()
    assert client.post(url + "category/", {"category": top.pk}, format="json").status_code == 400
    sub = SubcategoryFactory(parent=top)
    response = client.post(url + "category/", {"category": sub.pk}, format="json")
    assert response.status_code == 200 and response.json()["category"] == sub.pk

    unconfirmed = client.post(url + "transition/", {"to": "voting"}, format="json")
    assert unconfirmed.status_code == 400
    assert len(unconfirmed.json()["unresolved"]) == 19  # nothing measured yet
    assert unconfirmed.json()["unresolved"][0] == {
        "number": 1,
        "title": "PyTorch support",
        "outcome": "unknown",
    }
    opened = client.post(url + "transition/", {"to": "voting", "confirm": True}, format="json")
    assert opened.status_code == 200
    assert opened.json()["state"] == "voting" and opened.json()["vote_closes_at"]


@pytest.mark.parametrize(("who", "expected"), REVIEWER_ACTION)
def test_set_the_category(api, people, in_review, who, expected):
    sub = SubcategoryFactory()
    response = as_user(api, people[who]).post(
        f"/api/v1/review-queue/{in_review.pk}/category/", {"category": sub.pk}, format="json"
    )
    assert response.status_code == expected, response.content
    in_review.refresh_from_db()
    assert in_review.category_id == (sub.pk if expected == 200 else None)


@pytest.mark.parametrize(
    ("who", "moves"),
    [
        ("reviewer", ["changes_requested", "voting"]),
        ("staff", ["changes_requested", "voting", "withdrawn"]),
        ("voter", []),
    ],
)
def test_workflow_lists_the_moves_the_page_offers(api, people, in_review, who, moves):
    response = as_user(api, people[who]).get(f"/api/v1/review-queue/{in_review.pk}/workflow/")
    assert response.status_code == 200
    assert sorted(response.json()["moves"]) == moves


@pytest.mark.parametrize(("who", "expected"), REVIEWER_ACTION)
def test_assign_and_unassign_a_reviewer(api, people, in_review, who, expected):
    client = as_user(api, people[who])
    url = f"/api/v1/review-queue/{in_review.pk}/assign/"
    response = client.post(url, {"reviewer": "ray"}, format="json")
    assert response.status_code == expected, response.content
    assigned = list(in_review.reviewers.values_list("username", flat=True))
    assert assigned == (["ray"] if expected == 200 else [])
    if expected == 200:
        assert response.json()["reviewers"] == ["ray"]
        response = client.post(url, {"reviewer": "ray", "assign": False}, format="json")
        assert response.status_code == 200 and response.json()["reviewers"] == []


def test_assigning_someone_outside_the_tac_or_unknown_is_a_400(api, people, in_review):
    client = as_user(api, people["reviewer"])
    url = f"/api/v1/review-queue/{in_review.pk}/assign/"
    outsider = client.post(url, {"reviewer": "oscar"}, format="json")
    assert outsider.status_code == 400 and "not a TAC reviewer" in outsider.json()["detail"]
    assert client.post(url, {"reviewer": "nobody"}, format="json").status_code == 400
    assert not in_review.reviewers.exists()


@pytest.mark.parametrize(("who", "expected"), REVIEWER_ACTION)
def test_rerun_the_checks(
    api, people, in_review, who, expected, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = as_user(api, people[who]).post(f"/api/v1/review-queue/{in_review.pk}/checks/")
    assert response.status_code == (202 if expected == 200 else expected), response.content
    assert len(callbacks) == (1 if expected == 200 else 0)  # the checks task, sent on commit


# -- the vote -------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "expected"), REVIEWER_ACTION)
def test_close_the_vote_after_its_window(api, people, voting, who, expected):
    Submission.objects.filter(pk=voting.pk).update(
        vote_closes_at=timezone.now() - timedelta(minutes=1)
    )
    response = as_user(api, people[who]).post(f"/api/v1/review-queue/{voting.pk}/close-vote/")
    assert response.status_code == expected, response.content
    voting.refresh_from_db()
    # One eligible member (victor) who did not vote: not accepted.
    assert voting.state == ("declined" if expected == 200 else "voting")


def test_closing_early_while_members_have_not_voted_is_a_400(api, people, voting):
    response = as_user(api, people["reviewer"]).post(
        f"/api/v1/review-queue/{voting.pk}/close-vote/"
    )
    assert response.status_code == 400
    assert "have not voted yet" in response.json()["detail"]
    voting.refresh_from_db()
    assert voting.state == "voting"


@pytest.mark.parametrize(("who", "expected"), TAC_READ)
def test_tally_is_shown_to_the_tac_as_on_the_page(api, people, voting, who, expected):
    second_voter = people["second_reviewer"]
    second_voter.groups.add(Group.objects.get(name=VOTING_GROUP))
    Vote.objects.create(submission=voting, voter=second_voter, choice="approve")
    response = as_user(api, people[who]).get(f"/api/v1/review-queue/{voting.pk}/tally/")
    assert response.status_code == expected, response.content
    if expected != 200:
        return
    tally = response.json()
    assert (tally["eligible"], tally["approve"], tally["not_voted"]) == (2, 1, 1)
    assert (tally["required"], tally["rule"]) == (2, "more than half")
    assert tally["votes"][0]["voter"] == "ray" and tally["votes"][0]["choice"] == "approve"
    assert tally["can_vote"] == (who == "voter") and tally["my_vote"] is None
    assert tally["can_close"] is False  # victor has not voted


def test_tally_says_whether_the_caller_voted_and_may_close(api, people, voting):
    Vote.objects.create(submission=voting, voter=people["voter"], choice="reject")
    victor = as_user(api, people["voter"]).get(f"/api/v1/review-queue/{voting.pk}/tally/").json()
    assert victor["my_vote"] == "reject" and victor["can_vote"] is True
    assert victor["can_close"] is False  # a voting member, not a reviewer
    rita = as_user(api, people["reviewer"]).get(f"/api/v1/review-queue/{voting.pk}/tally/").json()
    assert rita["can_close"] is True and rita["can_vote"] is False


def test_a_maintainer_with_a_vote_is_told_the_conflict(api, people, voting):
    """The voting member who maintains the project cannot even open it, as on the page."""
    people["maintainer"].groups.add(Group.objects.get(name=VOTING_GROUP))
    response = as_user(api, people["maintainer"]).post(
        f"/api/v1/review-queue/{voting.pk}/vote/", {"choice": "approve"}, format="json"
    )
    assert response.status_code == 404
    assert not Vote.objects.exists()


# -- the discussion -------------------------------------------------------------------------


@pytest.fixture
def thread(people, in_review):
    Comment.objects.create(
        submission=in_review,
        author=people["reviewer"],
        body="Internal.",
        shared_with_applicant=False,
    )
    Comment.objects.create(
        submission=in_review, author=people["reviewer"], body="Shared.", shared_with_applicant=True
    )
    return in_review


@pytest.mark.parametrize(("who", "expected"), TAC_READ)
def test_the_tac_reads_the_whole_discussion(api, people, thread, who, expected):
    response = as_user(api, people[who]).get(f"/api/v1/review-queue/{thread.pk}/comments/")
    assert response.status_code == expected
    if expected == 200:
        assert [c["body"] for c in response.json()] == ["Internal.", "Shared."]
        assert response.json()[0]["author"] == "rita"


@pytest.mark.parametrize(
    ("who", "expected"), [("anonymous", 401), ("applicant", 200), ("other", 404), ("reviewer", 404)]
)
def test_the_applicant_reads_only_the_shared_messages(api, people, thread, who, expected):
    response = as_user(api, people[who]).get(f"/api/v1/applications/{thread.pk}/comments/")
    assert response.status_code == expected
    if expected == 200:
        assert [c["body"] for c in response.json()] == ["Shared."]


@pytest.mark.parametrize(("who", "expected"), TAC_READ)
def test_a_tac_member_posts_an_internal_or_shared_message(api, people, in_review, who, expected):
    response = as_user(api, people[who]).post(
        f"/api/v1/review-queue/{in_review.pk}/comments/",
        {"body": "Needs **docs**.", "shared_with_applicant": False},
        format="json",
    )
    assert response.status_code == (201 if expected == 200 else expected), response.content
    comments = list(Comment.objects.filter(submission=in_review))
    if expected == 200:
        assert [(c.author, c.shared_with_applicant) for c in comments] == [(people[who], False)]
    else:
        assert comments == []


def test_the_applicants_messages_are_always_shared(api, people, in_review):
    response = as_user(api, people["applicant"]).post(
        f"/api/v1/applications/{in_review.pk}/comments/",
        {"body": "Docs added.", "shared_with_applicant": False},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["shared_with_applicant"] is True
    listed = as_user(api, people["applicant"]).get(f"/api/v1/applications/{in_review.pk}/comments/")
    assert [c["body"] for c in listed.json()] == ["Docs added."]


def test_someone_else_cannot_post_on_an_application(api, people, in_review):
    response = as_user(api, people["other"]).post(
        f"/api/v1/applications/{in_review.pk}/comments/", {"body": "Hi"}, format="json"
    )
    assert response.status_code == 404
    assert not Comment.objects.exists()


@pytest.mark.parametrize("body", ["", "   ", "x" * 10001])
def test_an_empty_or_oversized_message_is_a_400(api, people, in_review, body):
    response = as_user(api, people["reviewer"]).post(
        f"/api/v1/review-queue/{in_review.pk}/comments/", {"body": body}, format="json"
    )
    assert response.status_code == 400
    assert not Comment.objects.exists()


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("assign/", {"reviewer": "r\x00ay"}),
        ("transition/", {"to": "changes_requested", "note": "N\x00UL"}),
        ("comments/", {"body": "N\x00UL"}),
    ],
)
def test_a_nul_byte_is_a_400_not_a_database_error(api, people, in_review, action, data):
    response = as_user(api, people["reviewer"]).post(
        f"/api/v1/review-queue/{in_review.pk}/{action}", data, format="json"
    )
    assert response.status_code == 400
    in_review.refresh_from_db()
    assert in_review.state == "in_review" and not in_review.reviewers.exists()
