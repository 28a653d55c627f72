"""Admin pages, the beat schedule, onboarding ticks, role groups."""

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.urls import reverse

from reviews import services
from reviews.models import (
    Comment,
    CriterionAnswer,
    CriterionResult,
    OnboardingTask,
    PeriodicReview,
    ReviewEvent,
    Submission,
    Vote,
)
from reviews.roles import GROUPS
from tests.reviews.conftest import answers


def test_the_data_migration_created_the_role_groups(db):
    assert set(GROUPS) <= set(Group.objects.values_list("name", flat=True))


def test_beat_runs_the_vote_clock_and_the_periodic_review():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"reviews.close_due_votes", "reviews.periodic_review_due"} <= tasks
    assert "reviews:project_history" in settings.PROJECT_PAGE_FRAGMENTS


@pytest.mark.parametrize(
    "model",
    [Submission, CriterionResult, CriterionAnswer, Vote, Comment, ReviewEvent, OnboardingTask,
     PeriodicReview],
)  # fmt: skip
def test_every_model_has_an_admin_page(admin_client, applicant, model):
    services.submission_create(applicant=applicant, answers=answers())
    meta = model._meta
    response = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert response.status_code == 200


def test_onboarding_rows_are_ticked_by_reviewers_only(
    client, reviewer, voters, category, applicant, github, pypi, django_capture_on_commit_callbacks
):
    from tests.reviews.conftest import healthy_repository

    healthy_repository(github)
    submission = services.submission_create(applicant=applicant, answers=answers())
    with django_capture_on_commit_callbacks(execute=True):
        services.submission_submit(submission=submission, actor=applicant)
    services.submission_set_category(submission=submission, category=category, actor=reviewer)
    services.submission_transition(
        submission=submission, to="voting", actor=reviewer, confirmed=True
    )
    for voter in voters:  # the last vote closes the vote: accepted
        services.vote_cast(submission=submission, voter=voter, choice="approve")
    task = OnboardingTask.objects.get(submission=submission, key="logo")
    client.force_login(voters[0])
    client.post(reverse("reviews:onboarding", args=[submission.pk, task.pk]), {"done": "1"})
    task.refresh_from_db()
    assert not task.done
    client.force_login(reviewer)
    client.post(reverse("reviews:onboarding", args=[submission.pk, task.pk]), {"done": "1"})
    task.refresh_from_db()
    assert task.done and task.done_by == reviewer
    assert submission.events.filter(kind="onboarding", actor=reviewer).exists()
