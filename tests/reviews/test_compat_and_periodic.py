"""Criteria 1 and 8 from real compatibility runs, and the six-monthly periodic review."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from ci_runners.models import CompatCell, CompatRun, TorchTarget
from registry.models import Project
from reviews import services, tasks
from reviews.checks import latest_two_minor_targets
from reviews.models import PeriodicReview, Submission
from tests.reviews.conftest import answers, healthy_repository


@pytest.fixture
def targets(db):
    return {
        version: TorchTarget.objects.create(version=version, active=True)
        for version in ("2.12.0", "2.13.0", "2.14.0", "2.14.1")
    } | {"2.15.0rc1": TorchTarget.objects.create(version="2.15.0", active=True, prerelease=True)}


def test_latest_two_minors_use_their_latest_patch(targets):
    chosen = sorted(t.version for t in latest_two_minor_targets())
    assert chosen == ["2.13.0", "2.14.1"]


@pytest.fixture
def checked(applicant, github, pypi, targets, django_capture_on_commit_callbacks):
    healthy_repository(github)
    pypi.publish("torchgood")
    submission = services.submission_create(applicant=applicant, answers=answers())
    with django_capture_on_commit_callbacks(execute=True):
        services.submission_submit(submission=submission, actor=applicant)
    submission.refresh_from_db()
    return submission


def test_checks_request_a_review_run_on_the_latest_two_minors(checked):
    run = CompatRun.objects.get(pk=checked.compat_run_id)
    assert run.trigger == "review"
    assert run.source_url == "https://github.com/goodorg/torchgood"
    assert run.on_complete_task == "reviews.compat_run_finished"
    assert run.on_complete_kwargs == {"submission_id": checked.pk}
    assert sorted(run.cells.values_list("target__version", flat=True)) == ["2.13.0", "2.14.1"]
    result = checked.results.get(criterion=1)
    assert result.outcome == "unknown" and f"run #{run.pk}" in result.evidence_value


def finish(run_id: int, states: dict[str, str], counts=None) -> None:
    for cell in CompatCell.objects.filter(run_id=run_id).select_related("target"):
        cell.state = states[cell.target.version]
        cell.counts = counts or {"passed": 12, "failed": 0}
        cell.save()


def test_all_cells_passed_meets_criteria_1_and_8(checked):
    finish(checked.compat_run_id, {"2.13.0": "passed", "2.14.1": "passed"})
    tasks.compat_run_finished(run_id=checked.compat_run_id, submission_id=checked.pk)
    one, eight = checked.results.get(criterion=1), checked.results.get(criterion=8)
    assert one.outcome == "met" and eight.outcome == "met"
    assert "2.13.0, 2.14.1" in one.evidence_value
    assert "24 tests passed" in eight.evidence_value
    assert one.evidence_url.startswith("/runs/cells/")


def test_a_failing_cell_names_the_failing_version(checked):
    finish(checked.compat_run_id, {"2.13.0": "passed", "2.14.1": "failed"})
    tasks.compat_run_finished(run_id=checked.compat_run_id, submission_id=checked.pk)
    one = checked.results.get(criterion=1)
    assert one.outcome == "unmet" and "2.14.1" in one.evidence_value
    assert "2.13.0" not in one.evidence_value.split("fails on")[1]


def test_an_errored_cell_leaves_the_criteria_unknown(checked):
    finish(checked.compat_run_id, {"2.13.0": "passed", "2.14.1": "errored"})
    tasks.compat_run_finished(run_id=checked.compat_run_id, submission_id=checked.pk)
    assert checked.results.get(criterion=1).outcome == "unknown"
    assert checked.results.get(criterion=8).outcome == "unknown"


def test_a_cell_not_installable_on_a_current_release_counts_against_pytorch_support(checked):
    """Not installable is a compatibility fact (the project's metadata excludes that torch),
    not infrastructure: criterion 1 is unmet, and the evidence says why."""
    finish(
        checked.compat_run_id,
        {"2.13.0": "passed", "2.14.1": "not_installable"},
        counts={"passed": 0, "failed": 0},
    )
    CompatCell.objects.filter(run_id=checked.compat_run_id, target__version="2.13.0").update(
        counts={"passed": 12, "failed": 0}
    )
    tasks.compat_run_finished(run_id=checked.compat_run_id, submission_id=checked.pk)
    one, eight = checked.results.get(criterion=1), checked.results.get(criterion=8)
    assert one.outcome == "unmet" and eight.outcome == "unmet"
    assert "cannot be installed with PyTorch 2.14.1" in one.evidence_value
    assert one.check_state == "measured"  # a finding, not a check that could not run
    not_installable = CompatCell.objects.get(run_id=checked.compat_run_id, target__version="2.14.1")
    assert one.evidence_url == f"/runs/cells/{not_installable.pk}/"


def test_not_installable_outweighs_an_infrastructure_error(checked):
    """Errored counts neither way; not installable on the other release still counts."""
    finish(checked.compat_run_id, {"2.13.0": "errored", "2.14.1": "not_installable"})
    tasks.compat_run_finished(run_id=checked.compat_run_id, submission_id=checked.pk)
    one = checked.results.get(criterion=1)
    assert one.outcome == "unmet"
    assert "cannot be installed with PyTorch 2.14.1" in one.evidence_value
    assert "2.13.0" not in one.evidence_value


def test_an_errored_cell_beside_passes_is_not_held_against_the_project(checked):
    finish(checked.compat_run_id, {"2.13.0": "errored", "2.14.1": "passed"})
    tasks.compat_run_finished(run_id=checked.compat_run_id, submission_id=checked.pk)
    one = checked.results.get(criterion=1)
    assert one.outcome == "unknown" and "infrastructure error" in one.evidence_value


def test_the_review_page_tells_infrastructure_errors_from_not_installable(
    checked, client, reviewer
):
    finish(checked.compat_run_id, {"2.13.0": "errored", "2.14.1": "not_installable"})
    CompatCell.objects.filter(run_id=checked.compat_run_id, state="errored").update(
        error_code="sandbox_unavailable"
    )
    client.force_login(reviewer)
    page = client.get(f"/reviews/dashboard/{checked.pk}/").content.decode()
    assert 'infrastructure: <span class="error-code">sandbox_unavailable</span>' in page
    assert '<span class="state not_installable">Not installable</span>' in page
    assert "counts against PyTorch support" in page


def test_a_stale_run_is_ignored(checked):
    finish(checked.compat_run_id, {"2.13.0": "failed", "2.14.1": "failed"})
    newer = CompatRun.objects.create(source_url=checked.repository_url, trigger="review")
    Submission.objects.filter(pk=checked.pk).update(compat_run=newer)
    tasks.compat_run_finished(run_id=checked.compat_run_id, submission_id=checked.pk)
    assert checked.results.get(criterion=1).outcome == "unknown"


# --- periodic review -----------------------------------------------------------------------------


@pytest.fixture
def due_project(db):
    return Project.objects.create(
        slug="torchgood", name="TorchGood", repo_owner="goodorg", repo_name="torchgood",
        pypi_name="torchgood", maintainers=["alice", "bob"],
        accepted_on=timezone.now().date() - timedelta(days=200),
        next_review_due=timezone.now().date() - timedelta(days=1),
    )  # fmt: skip


def test_a_passing_project_is_due_again_in_six_months(due_project, github, pypi):
    healthy_repository(github)
    pypi.publish("torchgood")
    outcome = tasks.periodic_review_due()
    review = PeriodicReview.objects.get(project=due_project)
    assert outcome["started"] == [review.pk]
    assert review.state == "passed"
    due_project.refresh_from_db()
    assert due_project.next_review_due == timezone.now().date() + timedelta(days=182)
    assert due_project.review_state == "periodic_passed"
    assert tasks.periodic_review_due() == {"started": [], "rechecked": []}


def test_a_failing_project_gets_30_days_then_a_retirement_proposal(
    due_project, github, pypi, make_user, reviewer, django_capture_on_commit_callbacks
):
    from registry.models import MaintainerIdentity

    alice = make_user("alice")
    MaintainerIdentity.objects.create(user=alice, github_handle="alice", verified=True)
    healthy_repository(github, stars=50)
    pypi.publish("torchgood")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.periodic_review_due()
    review = PeriodicReview.objects.get(project=due_project)
    assert review.state == "failing" and review.failing_criteria == [14]
    assert review.grace_until == timezone.now().date() + timedelta(days=30)
    told = [m for m in mail.outbox if "alice@example.org" in m.to]
    assert told and "50 stars" in told[0].body and f"{review.grace_until:%Y-%m-%d}" in told[0].body
    # Not yet 30 days: nothing happens.
    services.periodic_reviews_due(today=timezone.now().date() + timedelta(days=10))
    review.refresh_from_db()
    assert review.state == "failing"
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.periodic_reviews_due(today=timezone.now().date() + timedelta(days=31))
    review.refresh_from_db()
    assert review.state == "retirement_proposed"
    assert any("reviewer@example.org" in m.to for m in mail.outbox)
    due_project.refresh_from_db()
    assert due_project.status == "active"  # a human confirms first
    with pytest.raises(services.InvalidTransition, match="reason"):
        services.periodic_review_decide(review=review, retire=True, actor=reviewer, note="")
    services.periodic_review_decide(
        review=review, retire=True, actor=reviewer, note="Inactive for a year."
    )
    due_project.refresh_from_db()
    assert due_project.status == "retired"
    assert review.events.filter(to_state="retired", actor=reviewer).exists()


def test_a_project_fixed_within_the_grace_period_passes(due_project, github, pypi):
    repository = healthy_repository(github, stars=50)
    pypi.publish("torchgood")
    tasks.periodic_review_due()
    repository.stars = 500
    services.periodic_reviews_due(today=timezone.now().date() + timedelta(days=31))
    review = PeriodicReview.objects.get(project=due_project)
    assert review.state == "passed"


def test_periodic_review_waits_for_its_compatibility_run(due_project, github, pypi, targets):
    healthy_repository(github)
    pypi.publish("torchgood")
    tasks.periodic_review_due()
    review = PeriodicReview.objects.get(project=due_project)
    assert review.state == "checking" and review.compat_run_id
    finish(review.compat_run_id, {"2.13.0": "passed", "2.14.1": "failed"})
    tasks.compat_run_finished(run_id=review.compat_run_id, periodic_review_id=review.pk)
    review.refresh_from_db()
    assert review.state == "failing" and set(review.failing_criteria) == {1, 8}


def test_only_the_tac_decides_a_retirement(due_project, github, pypi, applicant):
    healthy_repository(github, stars=10)
    pypi.publish("torchgood")
    tasks.periodic_review_due()
    services.periodic_reviews_due(today=timezone.now().date() + timedelta(days=31))
    review = PeriodicReview.objects.get(project=due_project)
    with pytest.raises(services.NotAllowed):
        services.periodic_review_decide(review=review, retire=True, actor=applicant, note="x")


def test_the_30_day_recheck_runs_compatibility_again_before_deciding(
    due_project, github, pypi, targets
):
    healthy_repository(github, stars=500)
    pypi.publish("torchgood")
    tasks.periodic_review_due()
    review = PeriodicReview.objects.get(project=due_project)
    first_run = review.compat_run_id
    finish(first_run, {"2.13.0": "passed", "2.14.1": "failed"})
    CompatRun.objects.filter(pk=first_run).update(finished_at=timezone.now())
    tasks.compat_run_finished(run_id=first_run, periodic_review_id=review.pk)
    review.refresh_from_db()
    assert review.state == "failing" and review.failing_criteria == [1, 8]

    # The maintainers fixed the break; after the 30 days the clock measures again.
    later = timezone.now().date() + timedelta(days=31)
    assert services.periodic_reviews_due(today=later)["rechecked"] == [review.pk]
    review.refresh_from_db()
    assert review.compat_run_id not in (None, first_run)
    assert review.state == "failing"  # waiting for the new run, not deciding on the old one
    # A second day of waiting asks for no further run.
    services.periodic_reviews_due(today=later + timedelta(days=1))
    review.refresh_from_db()
    second_run = review.compat_run_id
    assert CompatRun.objects.filter(project=due_project).count() == 2

    finish(second_run, {"2.13.0": "passed", "2.14.1": "passed"})
    CompatRun.objects.filter(pk=second_run).update(finished_at=timezone.now())
    tasks.compat_run_finished(run_id=second_run, periodic_review_id=review.pk)
    review.refresh_from_db()
    assert review.state == "passed"
