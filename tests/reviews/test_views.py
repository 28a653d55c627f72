"""Pages: who sees and does what, bad input, CSRF, sanitised Markdown, htmx fragments."""

import html
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from reviews import services
from reviews.models import Comment, Submission
from tests.reviews.conftest import answers, form_data, healthy_repository


@pytest.fixture
def own_draft(applicant):
    return services.submission_create(applicant=applicant, answers=answers())


@pytest.fixture
def under_review(applicant, github, pypi, django_capture_on_commit_callbacks):
    healthy_repository(github)
    pypi.publish("torchgood")
    submission = services.submission_create(applicant=applicant, answers=answers())
    with django_capture_on_commit_callbacks(execute=True):
        services.submission_submit(submission=submission, actor=applicant)
    submission.refresh_from_db()
    return submission


def open_the_vote(submission, reviewer, category) -> None:
    services.submission_set_category(submission=submission, category=category, actor=reviewer)
    services.submission_transition(
        submission=submission, to="voting", actor=reviewer, confirmed=True
    )


def test_signup_and_login_pages_use_the_site_layout(client, db):
    for name in ("account_signup", "account_login"):
        response = client.get(reverse(name))
        assert response.status_code == 200
        assert b"Ecosystem Registry" in response.content and b"site.css" in response.content


def test_signup_creates_a_user_who_can_apply(client, db):
    response = client.post(
        reverse("account_signup"),
        {
            "email": "new@example.org",
            "password1": "a-Long-pass-123",
            "password2": "a-Long-pass-123",
        },
    )
    assert response.status_code == 302
    assert client.get(reverse("reviews:apply")).status_code == 200


def test_apply_saves_a_draft_and_submits(
    client, applicant, github, pypi, django_capture_on_commit_callbacks
):
    healthy_repository(github)
    client.force_login(applicant)
    response = client.post(reverse("reviews:apply"), form_data())
    submission = Submission.objects.get(applicant=applicant)
    assert response.status_code == 302 and response.url == reverse(
        "reviews:application", args=[submission.pk]
    )
    assert submission.contact_emails == ["lead@example.org", "second@example.org"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("reviews:submit", args=[submission.pk]), follow=True)
    assert b"Submitted" in response.content
    submission.refresh_from_db()
    assert submission.state == "in_review"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("repository_url", "https://gitlab.com/a/b", "github.com"),
        ("repository_url", "https://github.com/only-owner", "one repository"),
        ("contact_emails", "not-an-email", "valid email"),
        ("maintainer_handles", "bad_handle!", "not a GitHub handle"),
        ("summary", "x" * 201, "at most 200 characters"),
        ("website_url", "javascript:alert(1)", "valid URL"),
        ("description", "word " * 5000, "at most 3000 characters"),
        ("additional_repos", "javascript:alert(1)", "must start with https://github.com/"),
        ("additional_repos", "data:text/html,<b>x</b>", "must start with https://github.com/"),
        ("website_url", "ftp://example.org/", "valid URL"),
        ("slides_url", "data:text/html,<b>x</b>", "valid URL"),
    ],
)
def test_bad_answers_are_refused_with_a_message(client, applicant, field, value, message):
    client.force_login(applicant)
    response = client.post(reverse("reviews:apply"), form_data(**{field: value}))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Submission.objects.exists()


def test_a_draft_with_an_unsafe_url_is_refused_when_edited(client, applicant, own_draft):
    client.force_login(applicant)
    response = client.post(
        reverse("reviews:edit", args=[own_draft.pk]),
        form_data(additional_repos="https://github.com/goodorg/extra\njavascript:alert(1)"),
    )
    assert response.status_code == 200
    assert "must start with https://github.com/" in response.content.decode()
    own_draft.refresh_from_db()
    assert own_draft.additional_repos == []


def test_open_drafts_are_capped_with_a_message(client, applicant, settings):
    settings.REVIEWS_MAX_OPEN_DRAFTS = 1
    client.force_login(applicant)
    client.post(reverse("reviews:apply"), {"kind": "ecosystem", "project_name": "First"})
    response = client.post(reverse("reviews:apply"), {"kind": "ecosystem", "project_name": "Next"})
    assert response.status_code == 200
    assert "1 open draft" in response.content.decode()
    assert list(Submission.objects.values_list("project_name", flat=True)) == ["First"]


def test_incomplete_draft_cannot_be_submitted_and_says_why(client, applicant):
    client.force_login(applicant)
    client.post(reverse("reviews:apply"), {"kind": "ecosystem", "project_name": "Half"})
    submission = Submission.objects.get()
    response = client.post(reverse("reviews:submit", args=[submission.pk]), follow=True)
    assert response.status_code == 200
    assert "Complete the application first" in response.content.decode()


def test_an_applicant_never_reaches_another_applicants_application(
    client, own_draft, other_applicant
):
    client.force_login(other_applicant)
    pk = own_draft.pk
    assert client.get(reverse("reviews:application", args=[pk])).status_code == 404
    assert client.get(reverse("reviews:edit", args=[pk])).status_code == 404
    assert (
        client.post(reverse("reviews:edit", args=[pk]), form_data(summary="hijack")).status_code
        == 404
    )
    for name in ("submit", "withdraw", "resume", "comment"):
        assert client.post(reverse(f"reviews:{name}", args=[pk]), {"body": "x"}).status_code == 404
    own_draft.refresh_from_db()
    assert own_draft.summary != "hijack" and own_draft.state == "draft"
    assert str(own_draft) not in client.get(reverse("reviews:mine")).content.decode()


def test_anonymous_users_are_sent_to_login(client, own_draft):
    response = client.get(reverse("reviews:application", args=[own_draft.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response.url


def test_only_the_tac_sees_the_dashboard(client, applicant, reviewer, voters, under_review):
    client.force_login(applicant)
    assert client.get(reverse("reviews:dashboard")).status_code == 403
    assert client.get(reverse("reviews:review", args=[under_review.pk])).status_code == 403
    for user in (reviewer, voters[0]):
        client.force_login(user)
        assert client.get(reverse("reviews:dashboard")).status_code == 200
        page = client.get(reverse("reviews:review", args=[under_review.pk]))
        assert page.status_code == 200 and "TorchGood" in page.content.decode()


def test_drafts_stay_private_even_to_the_tac(client, reviewer, own_draft):
    client.force_login(reviewer)
    assert client.get(reverse("reviews:review", args=[own_draft.pk])).status_code == 404


def test_dashboard_filters_answer_htmx_with_the_queue_only(client, reviewer, under_review):
    client.force_login(reviewer)
    response = client.get(
        reverse("reviews:dashboard"), {"state": "in_review", "q": "torch"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body and "TorchGood" in body
    empty = client.get(reverse("reviews:dashboard"), {"mine": "1"}, HTTP_HX_REQUEST="true")
    assert "No application matches" in empty.content.decode()


def test_dashboard_queue_shows_link_waiting_days_and_stale_flag(client, reviewer, under_review):
    client.force_login(reviewer)
    Submission.objects.filter(pk=under_review.pk).update(
        state_changed_at=under_review.state_changed_at - timedelta(days=40)
    )
    body = client.get(reverse("reviews:dashboard"), HTTP_HX_REQUEST="true").content.decode()
    assert f'href="{reverse("reviews:review", args=[under_review.pk])}"' in body
    assert "TorchGood" in body and under_review.repository in body
    assert "40 days" in body and 'class="stale"' in body and "waiting too long" in body


def test_voting_member_cannot_review_and_reviewer_cannot_vote(
    client, reviewer, voters, under_review, category
):
    client.force_login(voters[0])
    response = client.post(
        reverse("reviews:transition", args=[under_review.pk]),
        {"to": "changes_requested", "note": "x"},
        follow=True,
    )
    assert response.status_code == 200 and "may not move" in response.content.decode()
    response = client.post(
        reverse("reviews:answer", args=[under_review.pk, 4]),
        {"outcome": "met", "justification": "x"},
        follow=True,
    )
    assert "Only TAC reviewers" in response.content.decode()
    open_the_vote(under_review, reviewer, category)
    client.force_login(reviewer)
    response = client.post(
        reverse("reviews:vote", args=[under_review.pk]), {"choice": "approve"}, follow=True
    )
    assert "Only TAC voting members vote" in response.content.decode()
    assert not under_review.votes.exists()


def test_vote_through_htmx_returns_the_panel(client, reviewer, voters, under_review, category):
    open_the_vote(under_review, reviewer, category)
    client.force_login(voters[0])
    response = client.post(
        reverse("reviews:vote", args=[under_review.pk]),
        {"choice": "approve"},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert "Your vote: <strong>Approve</strong>" in body
    assert under_review.votes.get().choice == "approve"


def test_an_illegal_move_is_a_message_not_an_error(client, reviewer, under_review):
    client.force_login(reviewer)
    response = client.post(
        reverse("reviews:transition", args=[under_review.pk]), {"to": "accepted"}, follow=True
    )
    assert response.status_code == 200
    assert "cannot move from" in response.content.decode()
    response = client.post(
        reverse("reviews:transition", args=[under_review.pk]), {"to": "nonsense"}, follow=True
    )
    assert "not a state" in response.content.decode()


def test_csrf_is_enforced(applicant, own_draft, reviewer, under_review):
    client = Client(enforce_csrf_checks=True)
    client.force_login(applicant)
    assert client.post(reverse("reviews:submit", args=[own_draft.pk])).status_code == 403
    assert client.post(reverse("reviews:apply"), form_data()).status_code == 403
    client.force_login(reviewer)
    response = client.post(
        reverse("reviews:transition", args=[under_review.pk]),
        {"to": "changes_requested", "note": "x"},
    )
    assert response.status_code == 403
    under_review.refresh_from_db()
    assert under_review.state == "in_review"


def test_markdown_in_the_discussion_renders_inert(client, reviewer, applicant, under_review):
    client.force_login(reviewer)
    evil = (
        "<script>alert('x')</script> [click](javascript:alert(1)) "
        '<img src=x onerror="alert(2)"> '
        '<a href="https://ok.example" onclick="steal()">ok</a> **bold**'
    )
    client.post(
        reverse("reviews:review_comment", args=[under_review.pk]),
        {"body": evil, "shared_with_applicant": "on"},
    )
    assert Comment.objects.get().body == evil
    for user, url in ((reviewer, "reviews:review"), (applicant, "reviews:application")):
        client.force_login(user)
        body = client.get(reverse(url, args=[under_review.pk])).content.decode()
        assert "<strong>bold</strong>" in body
        assert "<script>alert" not in body and "javascript:" not in body
        assert "onerror" not in body and "onclick" not in body
        assert 'href="https://ok.example"' in body


def test_tac_internal_comments_stay_internal(client, reviewer, applicant, under_review):
    services.comment_post(
        submission=under_review,
        author=reviewer,
        body="Internal doubts",
        shared_with_applicant=False,
    )
    client.force_login(applicant)
    assert (
        "Internal doubts"
        not in client.get(reverse("reviews:application", args=[under_review.pk])).content.decode()
    )


def test_oversized_comment_is_refused_with_a_message(client, reviewer, under_review):
    client.force_login(reviewer)
    response = client.post(
        reverse("reviews:review_comment", args=[under_review.pk]),
        {"body": "x" * 10001},
        follow=True,
    )
    assert response.status_code == 200 and "at most 10000 characters" in response.content.decode()
    assert not Comment.objects.exists()


def test_override_without_reason_is_refused(client, reviewer, under_review):
    client.force_login(reviewer)
    response = client.post(
        reverse("reviews:override", args=[under_review.pk, 14]),
        {"outcome": "unmet", "reason": ""},
        follow=True,
    )
    assert "written reason" in response.content.decode()
    assert under_review.results.get(criterion=14).outcome == "met"


def test_unknown_criterion_is_404(client, reviewer, under_review):
    client.force_login(reviewer)
    response = client.post(
        reverse("reviews:answer", args=[under_review.pk, 42]),
        {"outcome": "met", "justification": "x"},
    )
    assert response.status_code == 404


def test_review_page_shows_evidence_health_and_history(client, reviewer, under_review):
    client.force_login(reviewer)
    body = client.get(reverse("reviews:review", args=[under_review.pk])).content.decode()
    assert "1200 stars (at least 200)" in body
    assert "BSD-3-Clause (permissive)" in body
    assert "Automated checks finished" in body


def test_project_history_fragment_shows_public_parts_only(
    client, reviewer, voters, category, under_review
):
    services.comment_post(
        submission=under_review, author=reviewer, body="secret remark", shared_with_applicant=False
    )
    open_the_vote(under_review, reviewer, category)
    for voter in voters:  # the last vote closes the vote
        services.vote_cast(submission=under_review, voter=voter, choice="approve")
    under_review.refresh_from_db()
    slug = under_review.project.slug
    body = client.get(reverse("reviews:project_history", kwargs={"slug": slug})).content.decode()
    assert "TAC vote closed" in body and "3 of 3 eligible" in body
    assert "Application: Accepted" in body
    assert "secret remark" not in body and "voter1" not in body
    page = client.get(reverse("registry:project", kwargs={"slug": slug})).content.decode()
    assert reverse("reviews:project_history", kwargs={"slug": slug}) in page


LINK = re.compile(r"""\b(?:href|src|action)\s*=\s*["']?([^"'\s>]*)""", re.IGNORECASE)


def link_targets(body: str) -> list[str]:
    return [html.unescape(target) for target in LINK.findall(body)]


def test_a_stored_unsafe_url_is_shown_as_text_never_as_a_link(
    client, reviewer, applicant, under_review
):
    """Rows written before the answers were validated (or by hand) still render inert."""
    Submission.objects.filter(pk=under_review.pk).update(
        additional_repos=["javascript:alert(document.cookie)", "https://github.com/goodorg/extra"],
        website_url="javascript:alert(1)",
        documentation_url="data:text/html,<script>alert(2)</script>",
        backing_org_name="Evil Corp",
        backing_org_url=" JaVaScRiPt:alert(3)",
        slides_url="vbscript:msgbox(4)",
        video_url="https://video.example.org/talk",
    )
    for user, name in ((reviewer, "reviews:review"), (applicant, "reviews:application")):
        client.force_login(user)
        body = client.get(reverse(name, args=[under_review.pk])).content.decode()
        targets = link_targets(body)
        assert all(
            target.startswith(("/", "?", "#", "https://", "http://")) or not target
            for target in targets
        ), [t for t in targets if not t.startswith(("/", "?", "#", "http"))]
        assert "https://github.com/goodorg/extra" in targets
        assert "https://video.example.org/talk" in targets
        assert "javascript:alert(document.cookie)" in body  # shown, as text
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in body


# --- journeys without dead ends (issue 14) ---------------------------------------------------


def criterion_row(body: str, number: int) -> str:
    match = re.search(rf'<tr id="criterion-{number}">(.*?)</tr>', body, re.DOTALL)
    assert match, f"no row for criterion {number}"
    return " ".join(match.group(1).split())


def test_a_draft_saves_a_short_description_and_submit_says_the_word_count(client, applicant):
    """Completeness waits for submit: a draft keeps a five-word description (the form refused
    it before, with "Write 100 to 300 words"); submitting names the rule and the count."""
    client.force_login(applicant)
    response = client.post(reverse("reviews:apply"), form_data(description="Only five words here."))
    submission = Submission.objects.get()
    assert response.status_code == 302
    assert submission.description == "Only five words here."
    page = client.get(reverse("reviews:application", args=[submission.pk])).content.decode()
    assert "description must be 100 to 300 words (it has 4)" in page
    response = client.post(reverse("reviews:submit", args=[submission.pk]), follow=True)
    body = response.content.decode()
    assert "Complete the application first" in body and "100 to 300 words (it has 4)" in body
    submission.refresh_from_db()
    assert submission.state == "draft"
    response = client.post(
        reverse("reviews:edit", args=[submission.pk]), form_data(description="Still short.")
    )
    assert response.status_code == 302
    submission.refresh_from_db()
    assert submission.description == "Still short."


def test_the_form_shows_the_word_rule_up_front_with_a_live_counter(client, applicant):
    client.force_login(applicant)
    body = client.get(reverse("reviews:apply")).content.decode()
    assert "100 to 300 words" in body
    description = re.search(r"<textarea[^>]*name=\"description\"[^>]*>", body).group(0)
    assert 'data-min-words="100"' in description and 'data-max-words="300"' in description
    assert 'id="id_description-words"' in body and 'aria-live="polite"' in body
    assert "js/application_form.js" in body
    draft = services.submission_create(applicant=applicant, answers=answers(description="a b c"))
    body = client.get(reverse("reviews:edit", args=[draft.pk])).content.decode()
    assert "3 words" in body  # counted on the server too: no script needed to see it


def hosted_section(body: str) -> str:
    match = re.search(r'<fieldset[^>]*id="hosted-answers"[^>]*>', body)
    assert match, "no hosted-answers section"
    return match.group(0)


def test_hosted_only_answers_show_only_for_hosted_applications(client, applicant):
    client.force_login(applicant)
    body = client.get(reverse("reviews:apply")).content.decode()
    assert " hidden" in hosted_section(body)
    assert re.search(r'<input type="radio" name="kind" value="hosted"', body)
    ecosystem = services.submission_create(applicant=applicant, answers=answers())
    hosted = services.submission_create(
        applicant=applicant,
        answers=answers(
            kind="hosted",
            repository_url="https://github.com/goodorg/flagship",
            governance_model="Open governance.",
        ),
    )
    body = client.get(reverse("reviews:edit", args=[ecosystem.pk])).content.decode()
    assert " hidden" in hosted_section(body)
    body = client.get(reverse("reviews:edit", args=[hosted.pk])).content.decode()
    assert " hidden" not in hosted_section(body)
    # A refused save re-renders with the kind that was posted.
    body = client.post(
        reverse("reviews:edit", args=[ecosystem.pk]),
        form_data(kind="hosted", website_url="javascript:alert(1)"),
    ).content.decode()
    assert " hidden" not in hosted_section(body)
    detail = client.get(reverse("reviews:application", args=[ecosystem.pk])).content.decode()
    assert "Governance model" not in detail and "TAC sponsor" not in detail
    detail = client.get(reverse("reviews:application", args=[hosted.pk])).content.decode()
    assert "Governance model" in detail and "Open governance." in detail


@pytest.fixture
def checks_deferred(applicant, github, pypi, django_capture_on_commit_callbacks):
    """Submitted while GitHub answers 503: the first attempt deferred (a retry is due)."""
    from reviews.checks import ChecksDeferred
    from tests.reviews.conftest import github_unavailable

    github_unavailable(github)
    submission = services.submission_create(applicant=applicant, answers=answers())
    with django_capture_on_commit_callbacks(execute=False):
        services.submission_submit(submission=submission, actor=applicant)
    with pytest.raises(ChecksDeferred):
        services.submission_run_checks(submission_id=submission.pk, final_attempt=False)
    submission.refresh_from_db()
    return submission


def test_check_states_show_per_criterion_and_reviewers_rerun_them(
    client, applicant, reviewer, github, checks_deferred, django_capture_on_commit_callbacks
):
    submission = checks_deferred
    retry_at = submission.results.get(criterion=14).check_retry_at
    review_page = reverse("reviews:review", args=[submission.pk])
    client.force_login(applicant)
    body = client.get(reverse("reviews:application", args=[submission.pk])).content.decode()
    row = criterion_row(body, 14)
    assert f"retrying at {retry_at:%H:%M} UTC because GitHub answered" in row and "503" in row
    assert "running" in criterion_row(body, 9)  # measured after GitHub answers
    assert "Re-run checks" not in body
    client.force_login(reviewer)
    body = client.get(review_page).content.decode()
    assert f"retrying at {retry_at:%H:%M} UTC" in criterion_row(body, 14)
    assert "Re-run checks" in body

    services.submission_run_checks(submission_id=submission.pk, final_attempt=True)
    row = criterion_row(client.get(review_page).content.decode(), 14)
    assert "failed: GitHub unavailable" in row and "503" in row and "retrying" not in row

    healthy_repository(github)
    with django_capture_on_commit_callbacks(execute=True):  # the task runs once this ends
        response = client.post(reverse("reviews:checks", args=[submission.pk]), follow=True)
    body = response.content.decode()
    assert "Automated checks queued" in body and "running" in criterion_row(body, 14)
    row = criterion_row(client.get(review_page).content.decode(), 14)
    assert "1200 stars" in row and "failed" not in row and "running" not in row


def test_only_reviewers_rerun_the_checks(client, applicant, voters, checks_deferred):
    client.force_login(voters[0])
    response = client.post(reverse("reviews:checks", args=[checks_deferred.pk]), follow=True)
    assert "Only TAC reviewers and staff" in response.content.decode()
    client.force_login(applicant)
    assert client.post(reverse("reviews:checks", args=[checks_deferred.pk])).status_code == 403


def test_opening_the_vote_with_unresolved_criteria_shows_them_and_asks_to_confirm(
    client, reviewer, category, under_review
):
    services.submission_set_category(submission=under_review, category=category, actor=reviewer)
    client.force_login(reviewer)
    page = reverse("reviews:review", args=[under_review.pk])
    body = client.get(page).content.decode()
    summary = re.search(r'<div id="vote-summary".*?</div>', body, re.DOTALL).group(0)
    assert "8 unknown, 0 not met" in summary and 'href="#criterion-3"' in summary
    response = client.post(
        reverse("reviews:transition", args=[under_review.pk]), {"to": "voting", "note": "Ready."}
    )
    body = response.content.decode()
    assert response.status_code == 200
    confirm = re.search(r'<form[^>]*id="confirm-vote".*?</form>', body, re.DOTALL).group(0)
    assert 'name="confirm" value="1"' in confirm and "Ready." in confirm
    assert "Open the vote anyway" in confirm
    under_review.refresh_from_db()
    assert under_review.state == "in_review"
    response = client.post(
        reverse("reviews:transition", args=[under_review.pk]),
        {"to": "voting", "note": "Ready.", "confirm": "1"},
        follow=True,
    )
    under_review.refresh_from_db()
    assert under_review.state == "voting"
    assert "8 unknown, 0 not met" in response.content.decode()  # voters see them too


def test_close_the_vote_now_shows_only_once_every_eligible_member_has_voted(
    client, reviewer, voters, category, under_review
):
    open_the_vote(under_review, reviewer, category)
    client.force_login(reviewer)
    page = reverse("reviews:review", args=[under_review.pk])
    assert "Close the vote now" not in client.get(page).content.decode()
    for voter in voters[:2]:
        services.vote_cast(submission=under_review, voter=voter, choice="approve")
    assert "Close the vote now" not in client.get(page).content.decode()
    voters[2].groups.clear()  # no longer a voting member: everyone still eligible has voted
    assert "Close the vote now (all have voted)" in client.get(page).content.decode()
    client.post(reverse("reviews:close_vote", args=[under_review.pk]))
    under_review.refresh_from_db()
    assert under_review.state == "accepted"


def test_the_last_vote_closes_the_vote_and_the_page_shows_the_decision(
    client, reviewer, voters, category, under_review
):
    open_the_vote(under_review, reviewer, category)
    for voter in voters[:2]:
        services.vote_cast(submission=under_review, voter=voter, choice="approve")
    client.force_login(voters[2])
    page = reverse("reviews:review", args=[under_review.pk])
    response = client.post(
        reverse("reviews:vote", args=[under_review.pk]),
        {"choice": "approve"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and response["HX-Redirect"] == page
    body = client.get(page).content.decode()
    assert re.search(r'id="state">Accepted<', body)
    assert "3 of 3 eligible voting members approved" in body
    assert "every eligible member voted" in body


@pytest.fixture
def accepted(under_review, reviewer, voters, category):
    open_the_vote(under_review, reviewer, category)
    for voter in voters:
        services.vote_cast(submission=under_review, voter=voter, choice="approve")
    under_review.refresh_from_db()
    assert under_review.state == "accepted"
    return under_review


def test_the_applicant_sees_and_ticks_their_onboarding_tasks(
    client, applicant, other_applicant, staff_user, accepted
):
    from reviews.models import OnboardingTask

    tasks = {task.key: task for task in OnboardingTask.objects.filter(submission=accepted)}
    application = reverse("reviews:application", args=[accepted.pk])
    client.force_login(applicant)
    body = client.get(application).content.decode()
    section = re.search(r'<section[^>]*id="onboarding".*?</section>', body, re.DOTALL).group(0)
    for key in ("logo", "github_2fa", "cla_dco"):
        assert tasks[key].label in section
    for key in ("landscape_entry", "announcement"):
        assert tasks[key].label not in section
    tick = reverse("reviews:application_onboarding", args=[accepted.pk, tasks["logo"].pk])
    assert f'action="{tick}"' in section
    response = client.post(tick, {"done": "1"}, follow=True)
    assert response.redirect_chain[-1][0] == application + "#onboarding"
    tasks["logo"].refresh_from_db()
    assert tasks["logo"].done and tasks["logo"].done_by == applicant
    assert "done" in response.content.decode()
    foundation = reverse(
        "reviews:application_onboarding", args=[accepted.pk, tasks["landscape_entry"].pk]
    )
    response = client.post(foundation, {"done": "1"}, follow=True)
    assert "foundation" in response.content.decode()
    tasks["landscape_entry"].refresh_from_db()
    assert not tasks["landscape_entry"].done
    client.force_login(other_applicant)
    assert client.post(tick, {"done": "0"}).status_code == 404
    client.force_login(staff_user)  # staff still tick every task, the applicant's too
    client.post(
        reverse("reviews:onboarding", args=[accepted.pk, tasks["cla_dco"].pk]), {"done": "1"}
    )
    tasks["cla_dco"].refresh_from_db()
    assert tasks["cla_dco"].done and tasks["cla_dco"].done_by == staff_user
