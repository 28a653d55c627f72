"""The review journeys' detours, in a real browser, with no dead end: a draft with a short
description is saved and submitting it names the word count (a live counter shows it while
typing; the hosted-only answers follow the kind chosen); while GitHub answers 503 the applicant
sees each check retrying, then failed, with the reason, and a reviewer re-runs them; a reviewer
opening the vote sees the unknown criteria and confirms; a reviewer sees "Close the vote now"
only once every eligible member has voted; after acceptance the applicant ticks their own
onboarding tasks. Every page is photographed 1280 and 390 px wide (tests/e2e/artifacts/), and
none breaks the Content-Security-Policy."""

import re

import pytest

from reviews import services
from reviews.checks import ChecksDeferred
from reviews.models import OnboardingTask, Submission
from reviews.states import SubmissionState
from tests.e2e.conftest import REPOSITORY
from tests.e2e.conftest import sign_in as sign_in_as
from tests.e2e.test_content_security_policy import WATCH_VIOLATIONS
from tests.reviews.conftest import github_unavailable, healthy_repository
from tests.reviews.factories import DESCRIPTION, SubmissionFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
OWNER, NAME = REPOSITORY.split("/")


def sign_in(browser, live_server, email: str):
    """A signed-in page that records Content-Security-Policy violations and script errors in
    `page.problems` (read them with `problems(page)`)."""
    return sign_in_as(browser, live_server, email, init_script=WATCH_VIOLATIONS)


def problems(page) -> list[str]:
    return page.problems + page.evaluate("window.__cspViolations || []")


def criterion_row(page, number: int) -> str:
    return " ".join(page.inner_text(f"#criterion-{number}").split())


def test_a_short_draft_is_saved_and_submitting_it_names_the_word_count(
    browser, live_server, applicant, shoot_widths
):
    page = sign_in(browser, live_server, applicant.email)
    page.goto(f"{live_server.url}/reviews/apply/")
    assert "100 to 300 words" in page.inner_text("#id_description_helptext")
    # The hosted-only answers follow the kind as it is chosen.
    assert page.locator("#hosted-answers").is_hidden()
    page.check("input[name=kind][value=hosted]")
    page.wait_for_selector("#hosted-answers [name=governance_model]", state="visible")
    page.check("input[name=kind][value=ecosystem]")
    page.wait_for_selector("#hosted-answers", state="hidden")
    page.fill("[name=project_name]", "TorchBrowse")
    page.fill("[name=repository_url]", f"https://github.com/{REPOSITORY}")
    page.fill("[name=description]", "Browse tensors in the browser.")
    page.wait_for_selector("#id_description-words:has-text('5 words (95 more to submit)')")
    shoot_widths(page, "journey-01-short-draft-form")
    page.click("button:has-text('Save draft')")
    page.wait_for_selector("text=Draft saved")
    submission = Submission.objects.get()
    assert submission.description == "Browse tensors in the browser."
    assert "description must be 100 to 300 words (it has 5)" in page.inner_text("main")
    page.click("text=Submit to the TAC")
    page.wait_for_selector(".messages .error:has-text('Complete the application first')")
    assert "100 to 300 words (it has 5)" in page.inner_text(".messages")
    assert page.inner_text("#state") == "Draft"
    shoot_widths(page, "journey-02-submit-refused-word-count")
    page.click("text=Edit answers")
    page.fill("[name=description]", DESCRIPTION)
    page.wait_for_selector("#id_description-words:has-text('150 words')")
    assert "more to submit" not in page.inner_text("#id_description-words")
    assert problems(page) == []


@pytest.fixture
def checks_waiting_for_github(applicant, fakes, eager_celery) -> Submission:
    """TorchBrowse submitted while GitHub answers 503: the first attempt of the checks was
    deferred, so a retry is due (the task would run it later)."""
    github_unavailable(fakes, owner=OWNER, name=NAME)
    submission = SubmissionFactory(
        applicant=applicant,
        repository=REPOSITORY,
        project_name="TorchBrowse",
        state=SubmissionState.SUBMITTED,
    )
    with pytest.raises(ChecksDeferred):
        services.submission_run_checks(submission_id=submission.pk, final_attempt=False)
    submission.refresh_from_db()
    return submission


def test_while_github_is_down_the_checks_say_retrying_then_failed_and_a_reviewer_reruns_them(
    browser, live_server, checks_waiting_for_github, applicant, reviewer, fakes, shoot_widths
):
    submission = checks_waiting_for_github
    retry_at = submission.results.get(criterion=14).check_retry_at
    page = sign_in(browser, live_server, applicant.email)
    page.goto(f"{live_server.url}/reviews/applications/{submission.pk}/")
    row = criterion_row(page, 14)
    assert f"retrying at {retry_at:%H:%M} UTC because GitHub answered" in row and "503" in row
    assert "running" in criterion_row(page, 9)
    assert page.locator("text=Re-run checks").count() == 0  # reviewers re-run them
    shoot_widths(page, "journey-03-checks-retrying")

    services.submission_run_checks(submission_id=submission.pk, final_attempt=True)  # the last
    page.reload()
    assert "failed: GitHub unavailable" in criterion_row(page, 14)
    shoot_widths(page, "journey-04-checks-failed")
    assert problems(page) == []

    healthy_repository(fakes, owner=OWNER, name=NAME)  # GitHub is back
    page = sign_in(browser, live_server, reviewer.email)
    page.goto(f"{live_server.url}/reviews/dashboard/{submission.pk}/")
    assert "failed: GitHub unavailable" in criterion_row(page, 14)
    page.click("#criteria button:has-text('Re-run checks')")
    page.wait_for_selector("text=Automated checks queued.")
    row = criterion_row(page, 14)
    assert "1200 stars (at least 200)" in row and "failed" not in row
    shoot_widths(page, "journey-05-checks-rerun")
    assert problems(page) == []


def test_a_reviewer_sees_the_open_criteria_and_confirms_before_the_vote_opens(
    browser, live_server, in_review, reviewer, category, shoot_widths
):
    services.submission_set_category(submission=in_review, category=category, actor=reviewer)
    page = sign_in(browser, live_server, reviewer.email)
    page.goto(f"{live_server.url}/reviews/dashboard/{in_review.pk}/")
    summary = page.inner_text("#vote-summary")
    assert re.search(r"Criteria still open: \d+ unknown, \d+ not met", summary)
    assert "3. Governance" in summary
    page.select_option("select[name=to]", "voting")
    page.fill("#workflow textarea[name=note]", "Ready for the TAC.")
    page.click("#workflow button:has-text('Move')")
    page.wait_for_selector("#confirm-vote")
    assert "confirm to open the vote anyway" in page.inner_text(".messages")
    assert page.input_value("#confirm-vote textarea[name=note]") == "Ready for the TAC."
    assert page.inner_text("#state") == "In review"
    shoot_widths(page, "journey-06-confirm-the-vote")
    page.click("#confirm-vote button:has-text('Open the vote anyway')")
    page.wait_for_selector("#state:has-text('TAC vote')")
    assert "Criteria still open" in page.inner_text("#vote-summary")  # voters see them too
    assert page.locator("text=Close the vote now").count() == 0  # nobody has voted yet
    shoot_widths(page, "journey-07-vote-open-with-summary")
    assert problems(page) == []
    assert Submission.objects.get(pk=in_review.pk).state == SubmissionState.VOTING


def test_close_the_vote_now_shows_only_once_every_eligible_member_has_voted(
    browser, live_server, all_but_one_approved, voters, reviewer, shoot_widths
):
    submission = all_but_one_approved
    page = sign_in(browser, live_server, reviewer.email)
    page.goto(f"{live_server.url}/reviews/dashboard/{submission.pk}/")
    assert page.locator("text=Close the vote now").count() == 0
    assert "closes by itself once every eligible member has voted" in page.inner_text("#vote")
    voters[-1].groups.clear()  # left the voting members: everyone still eligible has voted
    page.reload()
    page.click("button:has-text('Close the vote now (all have voted)')")
    page.wait_for_selector("#state:has-text('Accepted')")
    assert page.locator("text=2 of 2 eligible voting members approved").first.is_visible()
    shoot_widths(page, "journey-08-closed-once-all-voted")
    assert problems(page) == []


def test_after_acceptance_the_applicant_sees_and_ticks_their_onboarding_checklist(
    browser, live_server, accepted, applicant, shoot_widths
):
    page = sign_in(browser, live_server, applicant.email)
    page.click(f"a[href='/reviews/applications/{accepted.pk}/']")
    page.wait_for_selector("#onboarding")
    checklist = page.inner_text("#onboarding")
    mine = OnboardingTask.objects.filter(submission=accepted, for_applicant=True)
    theirs = OnboardingTask.objects.filter(submission=accepted, for_applicant=False)
    assert all(task.label in checklist for task in mine)
    assert not any(task.label in checklist for task in theirs)
    shoot_widths(page, "journey-09-onboarding-checklist")
    logo = mine.get(key="logo")
    page.locator("#onboarding li", has_text=logo.label).locator("button").click()
    page.wait_for_selector(f".messages :text('{logo.label}: done.')")
    assert "✔ done" in page.locator("#onboarding li", has_text=logo.label).inner_text()
    logo.refresh_from_db()
    assert logo.done and logo.done_by == applicant
    shoot_widths(page, "journey-10-onboarding-ticked")
    assert problems(page) == []
