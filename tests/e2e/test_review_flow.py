"""The review in a real browser, one journey per test: an applicant signs up and applies (the
checks run against fake GitHub and PyPI), a reviewer answers the human criteria and opens the
vote (confirming the criteria still unknown), voting members approve and the last vote closes
the vote, and the accepted project shows up active on the landscape. Each journey starts from a
state built by the review services (fixtures in conftest.py), not from another test. Pages are
photographed 1280 and 390 px wide (tests/e2e/artifacts/); test_review_journeys.py walks the
detours (short drafts, GitHub down, onboarding)."""

import pytest

from registry.models import Project
from reviews.models import Submission
from tests.e2e.conftest import HUMAN_CRITERIA, PASSWORD, sign_in
from tests.reviews.factories import DESCRIPTION

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_applicant_signs_up_and_applies(browser, live_server, fakes, eager_celery, shoot_widths):
    applicant = browser.new_context(viewport={"width": 412, "height": 915})  # a phone
    page = applicant.new_page()
    page.goto(f"{live_server.url}/accounts/signup/")
    shoot_widths(page, "01-signup")
    page.fill("input[name=email]", "maintainer@example.org")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url("**/reviews/")
    page.click("text=Apply for a project")
    fields = {
        "project_name": "TorchBrowse",
        "contact_emails": "maintainer@example.org",
        "summary": "Browse tensors in the browser.",
        "description": DESCRIPTION,
        "similar_projects": "none",
        "repository_url": "https://github.com/browserorg/torchbrowse",
        "license": "BSD-3-Clause",
        "maintainer_handles": "alice\nbob",
        "website_url": "https://torchbrowse.example.org",
        "documentation_url": "https://torchbrowse.example.org/docs",
        "documentation": "Quick start in the README; full docs online.",
        "ci_description": "GitHub Actions, CPU and CUDA.",
        "pytorch_versions": "2.13, 2.14",
        "pytorch_components": "torch.nn",
        "pypi_name": "torchbrowse",
    }
    for name, value in fields.items():
        page.fill(f"[name={name}]", value)
    shoot_widths(page, "02-application-form")
    page.click("text=Save draft")
    page.wait_for_selector("text=Draft saved")
    page.click("text=Submit to the TAC")
    page.wait_for_selector("#state:has-text('In review')")
    shoot_widths(page, "03-application-in-review")
    submission = Submission.objects.get()
    assert submission.results.get(criterion=14).outcome == "met"


def test_a_reviewer_answers_the_criteria_sets_the_category_and_opens_the_vote(
    browser, live_server, in_review, reviewer, category, shoot_widths
):
    page = sign_in(browser, live_server, reviewer.email)
    page.goto(f"{live_server.url}/reviews/dashboard/")
    shoot_widths(page, "04-dashboard")
    page.click("text=TorchBrowse")
    page.wait_for_selector("h1:has-text('TorchBrowse')")
    for number in HUMAN_CRITERIA:
        row = page.locator(f"#criterion-{number}")
        row.locator("summary", has_text="Answer").click()
        form = row.locator("form[action$='/answer/']")
        form.locator("select[name=outcome]").select_option("met")
        form.locator("textarea[name=justification]").fill(f"Checked criterion {number} by hand.")
        form.locator("button", has_text="Save answer").click()
        page.wait_for_selector(f"text=Answer to criterion {number} saved.")
    page.select_option("select[name=category]", str(category.pk))
    page.click("button:has-text('Set')")
    page.wait_for_selector("text=Category set.")
    page.select_option("select[name=to]", "voting")
    page.click("button:has-text('Move')")
    # Criteria 1 and 8 are unknown (no compatibility run here): the page asks to confirm.
    page.wait_for_selector("#confirm-vote")
    assert "1. PyTorch support" in page.inner_text("#vote-summary")
    page.click("#confirm-vote button:has-text('Open the vote anyway')")
    page.wait_for_selector("#state:has-text('TAC vote')")
    assert page.locator("text=Close the vote now").count() == 0  # nobody has voted
    shoot_widths(page, "05-review-page-voting")


def test_voting_members_approve_and_the_last_vote_closes_the_vote(
    browser, live_server, voting, voters, category, shoot_widths
):
    for index, voter in enumerate(voters):
        page = sign_in(browser, live_server, voter.email)
        page.goto(f"{live_server.url}/reviews/dashboard/{voting.pk}/")
        page.check("#vote input[value=approve]")
        page.click("#vote button:has-text('Vote')")
        if voter != voters[-1]:  # the panel updates in place
            page.wait_for_selector("#my-vote:has-text('Approve')")
            if index == 0:
                shoot_widths(page, "06-vote-panel")
            continue
        # Every eligible member has voted: the vote closed by itself, the page shows it.
        page.wait_for_selector("#state:has-text('Accepted')")
        assert page.locator("text=3 of 3 eligible voting members approved").first.is_visible()
        assert page.locator("text=Close the vote now").count() == 0
        shoot_widths(page, "07-accepted")
    project = Project.objects.get(repo_owner="browserorg")
    assert project.status == "active" and project.category == category


def test_the_accepted_project_is_listed_active_on_the_landscape(
    browser, live_server, accepted, shoot_widths
):
    page = browser.new_context().new_page()
    page.goto(f"{live_server.url}/")  # the default view lists the active projects
    page.fill("input[name=q]", "TorchBrowse")
    page.wait_for_selector("#project-list a:has-text('TorchBrowse')")
    card = page.locator("#project-list article", has_text="TorchBrowse")
    assert card.locator(".pill.retired").count() == 0
    assert Project.objects.get(repo_owner="browserorg").status == "active"
    shoot_widths(page, "08-landscape")
    card.locator("a", has_text="TorchBrowse").click()
    page.wait_for_selector("#review-history:has-text('TAC vote closed')")
    shoot_widths(page, "09-project-page")
