"""Browser tests: real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright,
and the starting points of the review journeys."""

import gc
from pathlib import Path

import pytest

from reviews import services
from reviews.models import Submission, Vote
from reviews.roles import REVIEWERS_GROUP, VOTING_GROUP
from reviews.states import SubmissionState
from tests.factories import UserFactory
from tests.fakes.http import FakeHTTPServer, Reply
from tests.registry.factories import CategoryFactory
from tests.registry.fake_github import FakeGitHub
from tests.reviews.conftest import healthy_repository
from tests.reviews.factories import SubmissionFactory

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="session", autouse=True)
def close_orphaned_connections(django_db_setup):
    """Before the test database is dropped, close the connections no context owns any more.
    Django keeps a connection per context (asgiref Local), and Playwright's sync API runs the
    test in greenlets, each with a context of its own: a connection opened in one is left
    open when it ends, out of pytest-django's reach (measured: one per session, owned by the
    main thread, not in its `connections`), and PostgreSQL refuses to drop a database that a
    session still holds ("is being accessed by other users")."""
    yield
    from django.db.backends.base.base import BaseDatabaseWrapper

    gc.collect()
    for wrapper in gc.get_objects():
        # type(), not isinstance(): a dead weakref proxy raises ReferenceError on isinstance.
        if issubclass(type(wrapper), BaseDatabaseWrapper) and wrapper.connection is not None:
            wrapper.inc_thread_sharing()  # closing another thread's wrapper is allowed then
            wrapper.close()


@pytest.fixture
def browser(monkeypatch):
    """A browser for one test. Playwright's sync API keeps an event loop running in this thread
    while it is open: Django's ORM refuses to run under one unless told it is safe (it is here:
    the test drives the browser, the live server runs in its own thread), and the loop must be
    gone before the next test, so the browser never outlives its test."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def shoot():
    """`shoot(page, "name")` saves a full-page screenshot under tests/e2e/artifacts/."""

    def save(page, name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    return save


SCREEN_WIDTHS = {1280: 900, 390: 844}  # a laptop, a phone


@pytest.fixture
def shoot_widths():
    """`shoot_widths(page, "name")` saves full-page screenshots of the page as it is, 1280 and
    390 px wide (`name-1280.png`, `name-390.png`), then gives the page its size back."""

    def save(page, name: str) -> None:
        before = page.viewport_size
        for width, height in SCREEN_WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
        if before:
            page.set_viewport_size(before)

    return save


# --- the review journeys: the people, the fakes, and each starting point built by services -----

PASSWORD = "a-Long-pass-123"


def sign_in(browser, live_server, email: str, *, init_script: str = "", width: int = 1280):
    """A page in a fresh browser context, signed in through the login form as `email`
    (password PASSWORD); `init_script` runs in every document before its own scripts; script
    errors are collected in `page.problems`."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"script error: {error}"))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url("**/reviews/")
    return page


REPOSITORY = "browserorg/torchbrowse"
HUMAN_CRITERIA = (2, 3, 4, 5, 6, 10)


@pytest.fixture
def eager_celery():
    from config.celery import app

    before = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def fakes(settings):
    """Fake GitHub and PyPI that know TorchBrowse: the automated checks run against them."""
    with FakeGitHub() as github, FakeHTTPServer() as pypi:
        settings.GITHUB_API_URL = github.url
        settings.GITHUB_TOKEN = ""
        settings.PYPI_JSON_URL = pypi.url + "/pypi/{name}/json"
        owner, name = REPOSITORY.split("/")
        healthy_repository(github, owner=owner, name=name)
        pypi.route(
            "GET",
            "/pypi/torchbrowse/json",
            Reply(200, {"info": {"version": "0.4.0"}, "urls": [{"filename": "t.whl"}]}),
        )
        yield github


@pytest.fixture
def category(transactional_db):
    return CategoryFactory(
        name="Tooling", slug="tooling", parent=CategoryFactory(name="Training", slug="training")
    )


@pytest.fixture
def applicant(transactional_db):
    return UserFactory(username="maintainer", password=PASSWORD)


@pytest.fixture
def reviewer(transactional_db):
    return UserFactory(username="reviewer", password=PASSWORD, groups=[REVIEWERS_GROUP])


@pytest.fixture
def voters(transactional_db):
    return [
        UserFactory(username=f"voter{i}", password=PASSWORD, groups=[VOTING_GROUP])
        for i in range(3)
    ]


@pytest.fixture
def in_review(applicant, fakes, eager_celery) -> Submission:
    """TorchBrowse submitted by its applicant; the automated checks ran on commit."""
    submission = SubmissionFactory(
        applicant=applicant, repository=REPOSITORY, project_name="TorchBrowse"
    )
    services.submission_submit(submission=submission, actor=applicant)
    submission.refresh_from_db()
    assert submission.state == SubmissionState.IN_REVIEW
    return submission


@pytest.fixture
def voting(in_review, reviewer, category, voters) -> Submission:
    """The reviewer answered the human criteria, set the category and opened the vote, knowing
    that criteria 1 and 8 are still unknown (no compatibility run here)."""
    for number in HUMAN_CRITERIA:
        services.criterion_answer(
            submission=in_review,
            criterion=number,
            reviewer=reviewer,
            outcome="met",
            justification=f"Checked criterion {number} by hand.",
        )
    services.submission_set_category(submission=in_review, category=category, actor=reviewer)
    services.submission_transition(
        submission=in_review, to=SubmissionState.VOTING, actor=reviewer, confirmed=True
    )
    in_review.refresh_from_db()
    return in_review


@pytest.fixture
def all_but_one_approved(voting, voters) -> Submission:
    """Every voting member but the last approved: the vote is still open."""
    for voter in voters[:-1]:
        services.vote_cast(submission=voting, voter=voter, choice=Vote.Choice.APPROVE)
    voting.refresh_from_db()
    assert voting.state == SubmissionState.VOTING
    return voting


@pytest.fixture
def accepted(all_but_one_approved, voters) -> Submission:
    """The last voting member approved, which closed the vote: TorchBrowse is accepted."""
    services.vote_cast(
        submission=all_but_one_approved, voter=voters[-1], choice=Vote.Choice.APPROVE
    )
    all_but_one_approved.refresh_from_db()
    assert all_but_one_approved.state == SubmissionState.ACCEPTED
    return all_but_one_approved
