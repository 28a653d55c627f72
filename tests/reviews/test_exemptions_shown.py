"""A project's exemptions from criteria, shown to the TAC beside the criterion: on the review
page of an application for the project, in the API's criteria results, and on the periodic
review page. Withdrawn exemptions, and claims on a number that is no criterion, are not."""

import re
from datetime import date

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from registry.models import ProjectExemption
from reviews import services
from reviews.models import PeriodicReview, Submission
from tests.registry.factories import ProjectFactory

pytestmark = pytest.mark.django_db

STANDING = "We keep our owners in MAINTAINERS.md <script>alert(1)</script>"


@pytest.fixture
def project(db):
    project = ProjectFactory(slug="torchthing", repository="org/torchthing")
    ProjectExemption.objects.create(
        project=project, criterion=18, reason=STANDING, source="repository_file"
    )
    ProjectExemption.objects.create(
        project=project,
        criterion=17,
        reason="A withdrawn claim",
        source="listing",
        withdrawn_at=timezone.now(),
    )
    ProjectExemption.objects.create(
        project=project, criterion=99, reason="No such criterion", source="listing"
    )
    return project


@pytest.fixture
def submission(applicant, project):
    return Submission.objects.create(
        applicant=applicant,
        project=project,
        project_name="TorchThing",
        repo_owner="org",
        repo_name="torchthing",
        state="in_review",
    )


def row_of(page: str, number: int) -> str:
    match = re.search(rf'<tr id="criterion-{number}">(.*?)</tr>', page, re.S)
    assert match, f"no row for criterion {number}"
    return match.group(1)


def test_reviewer_sees_the_exemption_beside_its_criterion(client, reviewer, submission):
    client.force_login(reviewer)
    page = client.get(reverse("reviews:review", args=[submission.pk])).content.decode()
    row = row_of(page, 18)
    assert "Exemption claimed" in row
    assert "We keep our owners in MAINTAINERS.md &lt;script&gt;" in row  # escaped
    assert "[tool.pytorch-ecosystem] in pyproject.toml" in row
    assert "<script>alert(1)" not in page
    assert "Exemption claimed" not in row_of(page, 17)
    assert "A withdrawn claim" not in page and "No such criterion" not in page
    assert page.count("Exemption claimed") == 1


def test_withdrawing_hides_it(client, reviewer, submission, project):
    ProjectExemption.objects.filter(criterion=18).update(withdrawn_at=timezone.now())
    client.force_login(reviewer)
    page = client.get(reverse("reviews:review", args=[submission.pk])).content.decode()
    assert "Exemption claimed" not in page and "MAINTAINERS.md" not in page


def test_criteria_results_of_the_api_carry_the_exemption(reviewer, submission):
    api = APIClient()
    api.force_authenticate(reviewer)
    response = api.get(f"/api/v1/review-queue/{submission.pk}/criteria/")
    assert response.status_code == 200
    rows = {row["criterion"]: row for row in response.json()}
    assert rows[18]["exemption"]["reason"] == STANDING
    assert rows[18]["exemption"]["source"] == "repository_file"
    assert rows[18]["exemption"]["claimed_at"]
    assert rows[17]["exemption"] is None
    assert [n for n, row in rows.items() if row["exemption"]] == [18]
    # The answer and override responses say it too.
    override = api.post(
        f"/api/v1/review-queue/{submission.pk}/criteria/override/",
        {"criterion": 18, "outcome": "met", "reason": "Exempt: owners listed elsewhere."},
        format="json",
    )
    assert override.status_code == 200 and override.json()["exemption"]["reason"] == STANDING


def test_an_application_without_a_project_has_no_exemption(reviewer, applicant, project):
    other = Submission.objects.create(
        applicant=applicant, project_name="New", repo_owner="n", repo_name="new", state="in_review"
    )
    services.criteria_ensure_rows(submission=other)
    api = APIClient()
    api.force_authenticate(reviewer)
    rows = api.get(f"/api/v1/review-queue/{other.pk}/criteria/").json()
    assert {row["exemption"] is None for row in rows} == {True}


def test_periodic_review_page_shows_the_exemption(client, reviewer, project):
    ProjectExemption.objects.create(
        project=project, criterion=3, reason="Governance is the foundation's", source="listing"
    )
    review = PeriodicReview.objects.create(
        project=project,
        due_on=date(2026, 1, 1),
        state="failing",
        results=[
            {"criterion": 17, "outcome": "unmet", "value": "no CONTRIBUTING"},
            {"criterion": 18, "outcome": "unmet", "value": "no CODEOWNERS"},
        ],
    )
    client.force_login(reviewer)
    page = client.get(reverse("reviews:periodic_review", args=[review.pk])).content.decode()
    assert "We keep our owners in MAINTAINERS.md" in row_of(page, 18)
    assert "no CODEOWNERS" in row_of(page, 18)
    assert "Exemption claimed" not in row_of(page, 17)
    # An exempted criterion not measured still shows, with its exemption.
    assert "Governance is the foundation&#x27;s" in row_of(page, 3)
    assert "A withdrawn claim" not in page and "No such criterion" not in page
