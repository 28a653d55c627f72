"""The whole review in a real browser: an applicant signs up and applies, the checks run
against fake GitHub and PyPI, a reviewer answers the human criteria and opens the vote,
three voting members approve, and the project shows up active on the landscape."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from registry.models import Category, Project
from reviews.models import Submission
from reviews.roles import REVIEWERS_GROUP, VOTING_GROUP
from tests.fakes.http import FakeHTTPServer, Reply
from tests.registry.fake_github import FakeGitHub
from tests.reviews.conftest import DESCRIPTION, healthy_repository

PASSWORD = "a-Long-pass-123"

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def eager_celery():
    from config.celery import app

    before = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def fakes(settings):
    with FakeGitHub() as github, FakeHTTPServer() as pypi:
        settings.GITHUB_API_URL = github.url
        settings.GITHUB_TOKEN = ""
        settings.PYPI_JSON_URL = pypi.url + "/pypi/{name}/json"
        healthy_repository(github, owner="browserorg", name="torchbrowse")
        pypi.route(
            "GET",
            "/pypi/torchbrowse/json",
            Reply(200, {"info": {"version": "0.4.0"}, "urls": [{"filename": "t.whl"}]}),
        )
        yield github


def member(username: str, group: str):
    user = get_user_model().objects.create_user(
        username=username, email=f"{username}@example.org", password=PASSWORD
    )
    user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def sign_in(browser, live_server, email: str):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url("**/reviews/")
    return page


def test_apply_review_vote_and_list(browser, live_server, fakes, eager_celery, shoot):
    parent = Category.objects.create(name="Training", slug="training")
    category = Category.objects.create(name="Tooling", slug="tooling", parent=parent)
    member("reviewer", REVIEWERS_GROUP)
    voters = [member(f"voter{i}", VOTING_GROUP) for i in range(3)]

    # The applicant signs up and fills in the application.
    applicant = browser.new_context(viewport={"width": 412, "height": 915})  # a phone
    page = applicant.new_page()
    page.goto(f"{live_server.url}/accounts/signup/")
    shoot(page, "01-signup")
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
    shoot(page, "02-application-form")
    page.click("text=Save draft")
    page.wait_for_selector("text=Draft saved")
    page.click("text=Submit to the TAC")
    page.wait_for_selector("#state:has-text('In review')")
    shoot(page, "03-application-in-review")
    submission = Submission.objects.get()
    assert submission.results.get(criterion=14).outcome == "met"

    # A reviewer answers the human criteria, sets the category and opens the vote.
    page = sign_in(browser, live_server, "reviewer@example.org")
    page.goto(f"{live_server.url}/reviews/dashboard/")
    shoot(page, "04-dashboard")
    page.click("text=TorchBrowse")
    page.wait_for_selector("h1:has-text('TorchBrowse')")
    for number in (2, 3, 4, 5, 6, 10):
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
    page.wait_for_selector("#state:has-text('TAC vote')")
    shoot(page, "05-review-page-voting")
    reviewer_page = page

    # Three voting members approve (the vote panel updates in place with htmx).
    for index, voter in enumerate(voters):
        page = sign_in(browser, live_server, voter.email)
        page.goto(f"{live_server.url}/reviews/dashboard/{submission.pk}/")
        page.check("#vote input[value=approve]")
        page.click("#vote button:has-text('Vote')")
        page.wait_for_selector("#my-vote:has-text('Approve')")
        if index == 0:
            shoot(page, "06-vote-panel")

    # Everyone voted: the reviewer closes the vote; 3 of 3 approved.
    reviewer_page.reload()
    reviewer_page.click("button:has-text('Close the vote now')")
    reviewer_page.wait_for_selector("#state:has-text('Accepted')")
    assert reviewer_page.locator("text=3 of 3 eligible voting members approved").first.is_visible()
    shoot(reviewer_page, "07-accepted")

    # The project is listed, active, on the landscape page.
    project = Project.objects.get(repo_owner="browserorg")
    assert project.status == "active" and project.category == category
    page = browser.new_context().new_page()
    page.goto(f"{live_server.url}/")
    page.fill("input[name=q]", "TorchBrowse")
    page.wait_for_selector("#project-list a:has-text('TorchBrowse')")
    card = page.locator("#project-list article", has_text="TorchBrowse")
    assert card.locator(".pill.active").inner_text() == "Active"
    shoot(page, "08-landscape")
    card.locator("a", has_text="TorchBrowse").click()
    page.wait_for_selector("#review-history:has-text('TAC vote closed')")
    shoot(page, "09-project-page")
