"""The review process through its services: states, checks, criteria, votes, onboarding."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry.models import MaintainerIdentity, Project
from reviews import criteria, services
from reviews.models import CriterionResult, ReviewEvent, Submission, Vote
from reviews.states import (
    InvalidTransition,
    NotAllowed,
    ResubmissionTooSoon,
    ReviewError,
    SubmissionIncomplete,
)
from tests.reviews.conftest import answers, github_unavailable, healthy_repository

S = Submission


def submitted(applicant, django_capture_on_commit_callbacks, **overrides) -> Submission:
    submission = services.submission_create(applicant=applicant, answers=answers(**overrides))
    with django_capture_on_commit_callbacks(execute=True):
        services.submission_submit(submission=submission, actor=applicant)
    submission.refresh_from_db()
    return submission


def outcomes(submission) -> dict[int, str]:
    return dict(submission.results.values_list("criterion", "outcome"))


@pytest.fixture
def in_review(applicant, github, pypi, django_capture_on_commit_callbacks):
    healthy_repository(github)
    pypi.publish("torchgood")
    return submitted(applicant, django_capture_on_commit_callbacks)


def test_a_draft_keeps_partial_answers_and_refuses_to_submit_incomplete(applicant):
    draft = services.submission_create(applicant=applicant, answers={"project_name": "Half"})
    assert draft.state == "draft"
    with pytest.raises(SubmissionIncomplete) as refused:
        services.submission_submit(submission=draft, actor=applicant)
    assert "Contact emails" in str(refused.value) or "contact emails" in str(refused.value)
    draft.refresh_from_db()
    assert draft.state == "draft"


def test_description_word_count_is_enforced_on_submit(applicant):
    draft = services.submission_create(
        applicant=applicant, answers=answers(description="too short")
    )
    with pytest.raises(SubmissionIncomplete, match="100 to 300 words"):
        services.submission_submit(submission=draft, actor=applicant)


def test_submit_runs_the_automated_checks_and_records_evidence(in_review):
    assert in_review.state == "in_review"
    results = {r.criterion: r for r in in_review.results.all()}
    assert len(results) == 19
    for number in (7, 11, 12, 13, 14, 15, 16, 17, 18, 19, 9):
        assert results[number].outcome == "met", (number, results[number].evidence_value)
        assert results[number].automated
        assert results[number].measured_at is not None
    assert results[7].evidence_value.startswith("BSD-3-Clause")
    assert "1200 stars" in results[14].evidence_value
    assert results[9].evidence_url == "https://pypi.org/project/torchgood/"
    # CI workflow files exist: evidence, but a reviewer confirms every architecture.
    assert results[2].outcome == "unknown" and "workflow" in results[2].evidence_value
    for human in (3, 4, 5, 6, 10):
        assert results[human].outcome == "unknown" and not results[human].automated
    assert in_review.github_health["stars"] == 1200
    states = list(in_review.events.filter(kind="transition").values_list("from_state", "to_state"))
    assert states == [("draft", "submitted"), ("submitted", "checking"), ("checking", "in_review")]


def test_failing_measurements_are_unmet_with_their_values(
    applicant, github, pypi, django_capture_on_commit_callbacks
):
    healthy_repository(github, stars=12, license_spdx="GPL-3.0", files=["README.md"], commits=[])
    submission = submitted(
        applicant, django_capture_on_commit_callbacks, maintainer_handles=["alice"]
    )
    result = outcomes(submission)
    for number in (2, 7, 11, 12, 13, 14, 17, 18, 19, 9):
        assert result[number] == "unmet", number
    assert result[15] == "met"  # GitHub detected a (GPL) license file
    assert result[16] == "met"
    license_result = submission.results.get(criterion=7)
    assert "GPL-3.0 is not in the permissive allow-list" in license_result.evidence_value


def test_a_missing_repository_is_recorded_not_crashed(
    applicant, github, pypi, django_capture_on_commit_callbacks
):
    submission = submitted(applicant, django_capture_on_commit_callbacks)
    assert submission.state == "in_review"
    assert submission.results.get(criterion=14).outcome == "unmet"
    assert "404" in submission.results.get(criterion=14).evidence_value


def test_github_rate_limit_defers_then_records_unknown(
    applicant, github, pypi, django_capture_on_commit_callbacks
):
    from reviews.checks import ChecksDeferred

    healthy_repository(github)
    submission = services.submission_create(applicant=applicant, answers=answers())
    with django_capture_on_commit_callbacks(execute=False):
        services.submission_submit(submission=submission, actor=applicant)
    github.rate_limit(times=2, retry_after=3600)
    with pytest.raises(ChecksDeferred):
        services.submission_run_checks(submission_id=submission.pk, final_attempt=False)
    submission.refresh_from_db()
    assert submission.state == "checking"  # the attempt rolled back; the retry is recorded
    assert submission.results.get(criterion=14).check_state == "retrying"
    services.submission_run_checks(submission_id=submission.pk, final_attempt=True)
    submission.refresh_from_db()
    assert submission.state == "in_review"
    assert submission.results.get(criterion=14).outcome == "unknown"


def test_illegal_moves_raise_invalid_transition(in_review, applicant, reviewer):
    with pytest.raises(InvalidTransition, match="cannot move"):
        services.submission_transition(submission=in_review, to="accepted", actor=reviewer, note="")
    with pytest.raises(NotAllowed, match="may not"):
        services.submission_transition(submission=in_review, to="voting", actor=applicant)
    with pytest.raises(InvalidTransition, match="category"):
        services.submission_transition(submission=in_review, to="voting", actor=reviewer)
    with pytest.raises(InvalidTransition, match="Say why"):
        services.submission_transition(submission=in_review, to="changes_requested", actor=reviewer)
    in_review.refresh_from_db()
    assert in_review.state == "in_review"


def test_a_reviewer_never_reviews_their_own_application(
    reviewer, github, pypi, django_capture_on_commit_callbacks
):
    healthy_repository(github)
    own = submitted(reviewer, django_capture_on_commit_callbacks)
    with pytest.raises(NotAllowed):
        services.submission_transition(
            submission=own, to="changes_requested", actor=reviewer, note="x"
        )


def test_changes_requested_then_edit_then_back_to_review(in_review, applicant, reviewer):
    with pytest.raises(ReviewError, match="cannot be edited"):
        services.submission_update(
            submission=in_review, actor=applicant, answers={"summary": "New"}
        )
    services.submission_transition(
        submission=in_review, to="changes_requested", actor=reviewer, note="Add a quick start."
    )
    services.submission_update(submission=in_review, actor=applicant, answers={"summary": "New"})
    services.submission_transition(submission=in_review, to="in_review", actor=applicant)
    in_review.refresh_from_db()
    assert in_review.summary == "New" and in_review.state == "in_review"
    note = in_review.events.get(to_state="changes_requested").note
    assert note == "Add a quick start."


def test_withdraw_until_a_decision(in_review, applicant):
    services.submission_withdraw(submission=in_review, actor=applicant)
    in_review.refresh_from_db()
    assert in_review.state == "withdrawn" and in_review.decided_at
    with pytest.raises(InvalidTransition):
        services.submission_withdraw(submission=in_review, actor=applicant)


def test_one_open_application_per_repository(in_review, other_applicant):
    second = services.submission_create(
        applicant=other_applicant,
        answers=answers(repository_url="https://github.com/GoodOrg/TorchGood"),
    )
    with pytest.raises(ReviewError, match="already under review"):
        services.submission_submit(submission=second, actor=other_applicant)
    # The database holds the rule too (a race past the service check).
    with pytest.raises(IntegrityError), transaction.atomic():
        Submission.objects.filter(pk=second.pk).update(state="submitted")


def test_resubmission_waits_three_months_after_a_decline(
    in_review, applicant, django_capture_on_commit_callbacks
):
    Submission.objects.filter(pk=in_review.pk).update(
        state="declined", decided_at=timezone.now() - timedelta(days=30)
    )
    again = services.submission_create(applicant=applicant, answers=answers())
    with pytest.raises(ResubmissionTooSoon) as refused:
        services.submission_submit(submission=again, actor=applicant)
    opens_on = services.add_months(
        (timezone.now() - timedelta(days=30)).date(), services.RESUBMIT_AFTER_MONTHS
    )
    assert refused.value.opens_on == opens_on
    assert f"{opens_on:%Y-%m-%d}" in str(refused.value)
    Submission.objects.filter(pk=in_review.pk).update(
        decided_at=timezone.now() - timedelta(days=95)
    )
    with django_capture_on_commit_callbacks(execute=False):
        services.submission_submit(submission=again, actor=applicant)
    again.refresh_from_db()
    assert again.state == "submitted"


def test_add_months_clamps_to_the_end_of_a_month():
    from datetime import date

    assert services.add_months(date(2025, 11, 30), 3) == date(2026, 2, 28)
    assert services.add_months(date(2025, 1, 15), 3) == date(2025, 4, 15)


def test_hosted_applications_need_their_extra_answers(applicant):
    draft = services.submission_create(applicant=applicant, answers=answers(kind="hosted"))
    with pytest.raises(SubmissionIncomplete, match="governance model"):
        services.submission_submit(submission=draft, actor=applicant)


def test_override_needs_a_reason_and_is_logged(in_review, reviewer, applicant):
    with pytest.raises(ReviewError, match="written reason"):
        services.criterion_override(
            submission=in_review, criterion=9, outcome="met", reason=" ", actor=reviewer
        )
    with pytest.raises(NotAllowed):
        services.criterion_override(
            submission=in_review, criterion=9, outcome="unmet", reason="x", actor=applicant
        )
    services.criterion_override(
        submission=in_review, criterion=14, outcome="unmet", reason="Stars were bought.",
        actor=reviewer,
    )  # fmt: skip
    result = in_review.results.get(criterion=14)
    assert result.outcome == "unmet" and result.automated_outcome == "met"
    assert result.overridden_by == reviewer and result.override_reason == "Stars were bought."
    event = in_review.events.get(kind="override")
    assert "Stars were bought." in event.note and event.actor == reviewer
    # A new measurement refreshes the evidence but keeps the reviewer's outcome.
    services.submission_run_checks(submission_id=in_review.pk)
    assert in_review.results.get(criterion=14).outcome == "unmet"


def test_human_criteria_are_answered_per_reviewer_with_justification(
    in_review, reviewer, make_user
):
    from reviews.roles import REVIEWERS_GROUP

    second = make_user("reviewer2", REVIEWERS_GROUP)
    with pytest.raises(ReviewError, match="justification"):
        services.criterion_answer(
            submission=in_review, criterion=4, reviewer=reviewer, outcome="met", justification=""
        )
    with pytest.raises(ReviewError, match="automatically"):
        services.criterion_answer(
            submission=in_review, criterion=14, reviewer=reviewer, outcome="met", justification="x"
        )
    services.criterion_answer(
        submission=in_review, criterion=4, reviewer=reviewer, outcome="met", justification="Clear."
    )
    assert in_review.results.get(criterion=4).outcome == "met"
    services.criterion_answer(
        submission=in_review, criterion=4, reviewer=second, outcome="unmet", justification="Vague."
    )
    assert in_review.results.get(criterion=4).outcome == "unmet"
    assert in_review.answers.filter(criterion=4).count() == 2


def open_vote(submission, reviewer, category):
    services.submission_set_category(submission=submission, category=category, actor=reviewer)
    services.submission_transition(
        submission=submission, to="voting", actor=reviewer, confirmed=True
    )
    submission.refresh_from_db()


def test_vote_accepts_with_more_than_half_and_onboards(
    in_review, reviewer, voters, category, applicant, django_capture_on_commit_callbacks
):
    open_vote(in_review, reviewer, category)
    assert in_review.vote_closes_at - in_review.vote_opened_at == timedelta(days=14)
    services.vote_cast(submission=in_review, voter=voters[0], choice="approve")
    services.vote_cast(submission=in_review, voter=voters[1], choice="reject")
    services.vote_cast(submission=in_review, voter=voters[1], choice="approve")  # changed
    assert Vote.objects.filter(submission=in_review).count() == 2  # voters[2] does not vote
    with pytest.raises(ReviewError, match="still open"):
        services.vote_close(submission=in_review, actor=None)
    Submission.objects.filter(pk=in_review.pk).update(
        vote_closes_at=timezone.now() - timedelta(minutes=1)
    )
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        closed = services.votes_close_due()
    assert closed == [in_review.pk]
    in_review.refresh_from_db()
    assert in_review.state == "accepted"
    decision = in_review.events.get(kind="decision")
    assert decision.data == {
        "eligible": 3, "approve": 2, "reject": 0, "abstain": 0, "required": 2,
        "rule": "more than half",
    }  # fmt: skip
    assert "2 of 3 eligible" in decision.note and "voting window ended" in decision.note
    project = in_review.project
    assert project.status == "active" and project.category == category
    assert project.repo_owner == "goodorg" and project.maintainers == ["alice", "bob"]
    assert project.accepted_on == timezone.now().date()
    assert project.next_review_due == project.accepted_on + timedelta(days=182)
    assert project.review_state == "accepted"
    assert in_review.onboarding_tasks.count() == 5
    assert {"logo", "landscape_entry", "github_2fa", "announcement", "cla_dco"} == set(
        in_review.onboarding_tasks.values_list("key", flat=True)
    )
    accepted_mail = [m for m in mail.outbox if "Accepted" in m.subject]
    assert "lead@example.org" in {address for m in accepted_mail for address in m.to}
    assert all("2 of 3 eligible" in m.body for m in accepted_mail)


def test_half_is_not_a_majority(in_review, reviewer, voters, category, make_user):
    from reviews.roles import VOTING_GROUP

    fourth = make_user("voter4", VOTING_GROUP)
    open_vote(in_review, reviewer, category)
    for voter, choice in zip(
        [*voters, fourth], ["approve", "approve", "reject", "abstain"], strict=True
    ):
        services.vote_cast(submission=in_review, voter=voter, choice=choice)
    in_review.refresh_from_db()  # everyone voted: the vote closed itself
    assert in_review.state == "declined"
    assert in_review.events.get(kind="decision").data["required"] == 3


def test_members_who_have_not_voted_keep_the_vote_open(in_review, reviewer, voters, category):
    open_vote(in_review, reviewer, category)
    services.vote_cast(submission=in_review, voter=voters[0], choice="approve")
    with pytest.raises(ReviewError, match="2 eligible member"):
        services.vote_close(submission=in_review, actor=reviewer)


def test_a_maintainer_does_not_vote_on_their_project(in_review, reviewer, voters, category):
    MaintainerIdentity.objects.create(user=voters[0], github_handle="Alice", verified=True)
    open_vote(in_review, reviewer, category)
    with pytest.raises(NotAllowed, match="maintain"):
        services.vote_cast(submission=in_review, voter=voters[0], choice="approve")
    assert services.vote_tally(submission=in_review).eligible == 2


def test_only_voting_members_vote(in_review, reviewer, category, voters):
    open_vote(in_review, reviewer, category)
    with pytest.raises(NotAllowed, match="voting members"):
        services.vote_cast(submission=in_review, voter=reviewer, choice="approve")


def test_hosted_projects_need_two_thirds(
    applicant, github, pypi, reviewer, voters, category, django_capture_on_commit_callbacks
):
    healthy_repository(github)
    hosted = submitted(
        applicant, django_capture_on_commit_callbacks, kind="hosted",
        governance_model="Open governance", production_adoption="Many", tac_sponsor="Jane",
        roadmap="2026", security_process="SECURITY.md", classification="platform",
    )  # fmt: skip
    assert hosted.state == "in_review"
    open_vote(hosted, reviewer, category)
    tally = services.vote_tally(submission=hosted)
    assert tally.required == 2 and tally.rule == "at least two thirds"
    services.vote_cast(submission=hosted, voter=voters[0], choice="approve")
    services.vote_cast(submission=hosted, voter=voters[1], choice="approve")
    services.vote_cast(submission=hosted, voter=voters[2], choice="reject")
    hosted.refresh_from_db()  # everyone voted: the vote closed itself
    assert hosted.state == "accepted" and hosted.project.kind == "hosted"


def test_two_thirds_rule_rounds_up():
    assert services.VoteTally(eligible=4, approve=0, reject=0, abstain=0, hosted=True).required == 3
    assert services.VoteTally(eligible=6, approve=0, reject=0, abstain=0, hosted=True).required == 4
    assert (
        services.VoteTally(eligible=5, approve=0, reject=0, abstain=0, hosted=False).required == 3
    )
    assert not services.VoteTally(eligible=0, approve=0, reject=0, abstain=0, hosted=False).passes


def test_transitions_push_the_review_state_to_an_existing_project(
    applicant, github, pypi, django_capture_on_commit_callbacks
):
    healthy_repository(github)
    project = Project.objects.create(
        slug="torchgood", name="TorchGood", repo_owner="goodorg", repo_name="torchgood",
        status="retired",
    )  # fmt: skip
    submission = submitted(applicant, django_capture_on_commit_callbacks)
    assert submission.project == project
    project.refresh_from_db()
    assert project.review_state == "in_review"


def test_each_change_notifies_the_applicant_and_assigned_reviewers(
    in_review, reviewer, applicant, django_capture_on_commit_callbacks
):
    services.submission_assign_reviewer(submission=in_review, reviewer=reviewer, actor=reviewer)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.submission_transition(
            submission=in_review, to="changes_requested", actor=reviewer,
            note="Please add a CONTRIBUTING guide.",
        )  # fmt: skip
    # One message per recipient (tests/reviews/test_notifications.py has the SMTP view).
    assert [len(message.to) for message in mail.outbox] == [1, 1, 1, 1]
    for message in mail.outbox:
        assert "Changes requested" in message.subject
        assert "Please add a CONTRIBUTING guide." in message.body
    assert {message.to[0] for message in mail.outbox} == {
        "lead@example.org", "second@example.org", "applicant@example.org", "reviewer@example.org"
    }  # fmt: skip


def test_every_transition_writes_an_audit_event(in_review, reviewer):
    before = ReviewEvent.objects.filter(submission=in_review, kind="transition").count()
    services.submission_transition(
        submission=in_review, to="changes_requested", actor=reviewer, note="Docs"
    )
    event = ReviewEvent.objects.filter(submission=in_review, kind="transition").last()
    assert ReviewEvent.objects.filter(submission=in_review, kind="transition").count() == before + 1
    assert (event.from_state, event.to_state, event.actor) == (
        "in_review",
        "changes_requested",
        reviewer,
    )


def test_assignment_only_of_reviewers(in_review, reviewer, applicant, voters):
    with pytest.raises(ReviewError, match="not a TAC reviewer"):
        services.submission_assign_reviewer(
            submission=in_review, reviewer=voters[0], actor=reviewer
        )
    services.submission_assign_reviewer(submission=in_review, reviewer=reviewer, actor=reviewer)
    assert list(in_review.reviewers.all()) == [reviewer]
    assert CriterionResult.objects.filter(submission=in_review).count() == 19


# --- journeys without dead ends (issue 14) ---------------------------------------------------


def submitted_while_github_is_down(applicant, github, django_capture_on_commit_callbacks):
    """Submitted; the checks task is left for the test to run (GitHub answers 503)."""
    github_unavailable(github)
    submission = services.submission_create(applicant=applicant, answers=answers())
    with django_capture_on_commit_callbacks(execute=False):
        services.submission_submit(submission=submission, actor=applicant)
    return submission


def test_github_unavailable_records_when_the_checks_retry_and_why_then_the_failure(
    applicant, github, pypi, django_capture_on_commit_callbacks
):
    from reviews.checks import ChecksDeferred

    submission = submitted_while_github_is_down(
        applicant, github, django_capture_on_commit_callbacks
    )
    before = timezone.now()
    with pytest.raises(ChecksDeferred) as deferred:
        services.submission_run_checks(submission_id=submission.pk, final_attempt=False)
    submission.refresh_from_db()
    assert submission.state == "checking"  # the checks started; they wait for GitHub
    retrying = {r.criterion: r for r in submission.results.filter(check_state="retrying")}
    assert set(retrying) == set(criteria.GITHUB_CRITERIA)
    wait = timedelta(seconds=deferred.value.retry_in)
    for result in retrying.values():
        assert "HTTP 503" in result.check_note
        assert before + wait <= result.check_retry_at <= timezone.now() + wait
    event = submission.events.filter(kind="checks").last()
    assert "HTTP 503" in event.note and event.data["retry_at"]

    services.submission_run_checks(submission_id=submission.pk, final_attempt=True)
    submission.refresh_from_db()
    assert submission.state == "in_review"
    for number in criteria.GITHUB_CRITERIA:
        result = submission.results.get(criterion=number)
        assert result.check_state == "failed" and result.check_retry_at is None
        assert "HTTP 503" in result.check_note and result.outcome == "unknown"
    assert submission.results.get(criterion=11).check_state == "measured"


def test_the_checks_task_retries_then_fails_with_the_reason(
    applicant, github, pypi, django_capture_on_commit_callbacks
):
    """An eager task runs its retries at once: each deferral is recorded, then the failure."""
    from config.celery import app
    from reviews.tasks import run_automated_checks

    app.conf.task_eager_propagates = False  # a retry is no error; `eager_celery` restores it
    submission = submitted_while_github_is_down(
        applicant, github, django_capture_on_commit_callbacks
    )
    run_automated_checks.apply(kwargs={"submission_id": submission.pk}, throw=False)
    submission.refresh_from_db()
    assert submission.state == "in_review"
    deferrals = submission.events.filter(kind="checks", data__has_key="retry_at")
    assert deferrals.count() == 5  # max_retries: five retries, then the final attempt
    assert submission.results.get(criterion=14).check_state == "failed"


def test_a_rerun_shows_the_criteria_running_until_measured(
    in_review, reviewer, github, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        services.submission_request_checks(submission=in_review, actor=reviewer)
    assert len(queued) == 1
    running = set(
        in_review.results.filter(check_state="running").values_list("criterion", flat=True)
    )
    assert running == {c.number for c in criteria.CRITERIA if c.automated}
    queued[0]()
    assert not in_review.results.filter(criterion=14).exclude(check_state="measured").exists()


def test_opening_the_vote_with_unknown_or_unmet_criteria_needs_a_confirmation(
    in_review, reviewer, category
):
    services.submission_set_category(submission=in_review, category=category, actor=reviewer)
    with pytest.raises(services.UnresolvedCriteria, match="confirm") as refused:
        services.submission_transition(submission=in_review, to="voting", actor=reviewer)
    assert [(c.number, c.outcome) for c in refused.value.criteria] == [
        (n, "unknown") for n in (1, 2, 3, 4, 5, 6, 8, 10)
    ]
    in_review.refresh_from_db()
    assert in_review.state == "in_review"
    services.submission_transition(
        submission=in_review, to="voting", actor=reviewer, confirmed=True
    )
    in_review.refresh_from_db()
    assert in_review.state == "voting"
    opened = in_review.events.filter(kind="transition", to_state="voting").get()
    assert opened.data["unresolved"] == {"unknown": [1, 2, 3, 4, 5, 6, 8, 10], "unmet": []}


def test_a_vote_with_every_criterion_resolved_opens_without_a_confirmation(
    in_review, reviewer, category
):
    for number in (2, 3, 4, 5, 6, 10):
        services.criterion_answer(
            submission=in_review, criterion=number, reviewer=reviewer, outcome="met",
            justification="Checked.",
        )  # fmt: skip
    for number in (1, 8):
        services.criterion_override(
            submission=in_review, criterion=number, outcome="na", reason="Pure docs project.",
            actor=reviewer,
        )  # fmt: skip
    services.submission_set_category(submission=in_review, category=category, actor=reviewer)
    services.submission_transition(submission=in_review, to="voting", actor=reviewer)
    in_review.refresh_from_db()
    assert in_review.state == "voting"


def test_the_last_eligible_vote_closes_the_vote_with_the_decision(
    in_review, reviewer, voters, category, django_capture_on_commit_callbacks
):
    open_vote(in_review, reviewer, category)
    services.vote_cast(submission=in_review, voter=voters[0], choice="approve")
    services.vote_cast(submission=in_review, voter=voters[1], choice="reject")
    in_review.refresh_from_db()
    assert in_review.state == "voting"
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.vote_cast(submission=in_review, voter=voters[2], choice="approve")
    in_review.refresh_from_db()
    assert in_review.state == "accepted"
    decision = in_review.events.get(kind="decision")
    assert decision.actor is None
    assert "2 of 3 eligible voting members approved" in decision.note
    assert "every eligible member voted" in decision.note
    assert in_review.onboarding_tasks.count() == 5
    assert any("Accepted" in message.subject for message in mail.outbox)
    with pytest.raises(ReviewError, match="not open"):
        services.vote_cast(submission=in_review, voter=voters[2], choice="reject")


def accept(submission, reviewer, voters, category) -> Submission:
    open_vote(submission, reviewer, category)
    for voter in voters:
        services.vote_cast(submission=submission, voter=voter, choice="approve")
    submission.refresh_from_db()
    assert submission.state == "accepted"
    return submission


def test_the_applicant_ticks_only_the_onboarding_tasks_meant_for_them(
    in_review, applicant, other_applicant, reviewer, staff_user, voters, category
):
    accepted = accept(in_review, reviewer, voters, category)
    tasks = {task.key: task for task in accepted.onboarding_tasks.all()}
    assert {key for key, task in tasks.items() if task.for_applicant} == {
        "logo", "github_2fa", "cla_dco"
    }  # fmt: skip
    services.onboarding_task_set(task=tasks["logo"], done=True, actor=applicant)
    tasks["logo"].refresh_from_db()
    assert tasks["logo"].done and tasks["logo"].done_by == applicant
    with pytest.raises(NotAllowed, match="foundation"):
        services.onboarding_task_set(task=tasks["landscape_entry"], done=True, actor=applicant)
    with pytest.raises(NotAllowed):
        services.onboarding_task_set(task=tasks["github_2fa"], done=True, actor=other_applicant)
    with pytest.raises(NotAllowed):
        services.onboarding_task_set(task=tasks["github_2fa"], done=True, actor=voters[0])
    services.onboarding_task_set(task=tasks["github_2fa"], done=True, actor=staff_user)
    services.onboarding_task_set(task=tasks["landscape_entry"], done=True, actor=reviewer)
    assert accepted.onboarding_tasks.filter(done_at__isnull=False).count() == 3
