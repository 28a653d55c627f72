"""A TAC member who applied for a project, or maintains it, is kept out of the TAC's views of
that application: dashboard, review page, API queue (not only out of its vote)."""

import pytest
from rest_framework.test import APIClient

from reviews.roles import REVIEWERS_GROUP, VOTING_GROUP
from reviews.states import SubmissionState
from tests.factories import UserFactory
from tests.registry.factories import MaintainerIdentityFactory
from tests.reviews.factories import SubmissionFactory


@pytest.fixture
def member(db):
    """A TAC reviewer and voting member whose GitHub handle is TomDev."""
    user = UserFactory(username="tom", groups=[REVIEWERS_GROUP, VOTING_GROUP])
    MaintainerIdentityFactory(user=user, github_handle="TomDev", verified=True)
    return user


@pytest.fixture
def applications(member):
    submitted = SubmissionState.SUBMITTED
    return {
        "maintained": SubmissionFactory(
            project_name="Tomslib", maintainer_handles=["alice", "tomdev"], state=submitted
        ),
        "applied": SubmissionFactory(project_name="Tomsown", applicant=member, state=submitted),
        "other": SubmissionFactory(project_name="Otherlib", state=submitted),
    }


def test_the_dashboard_lists_only_applications_without_a_conflict(client, member, applications):
    client.force_login(member)

    page = client.get("/reviews/dashboard/").content.decode()

    assert "Otherlib" in page
    assert "Tomslib" not in page and "Tomsown" not in page


@pytest.mark.parametrize("which", ["maintained", "applied"])
def test_the_review_page_of_a_conflicted_application_is_not_found(
    client, member, applications, which
):
    client.force_login(member)

    assert client.get(f"/reviews/dashboard/{applications[which].pk}/").status_code == 404
    assert client.get(f"/reviews/dashboard/{applications['other'].pk}/").status_code == 200


def test_the_api_review_queue_leaves_conflicted_applications_out(member, applications):
    api = APIClient()
    api.force_authenticate(member)

    listed = {row["id"] for row in api.get("/api/v1/review-queue/").json()["results"]}

    assert listed == {applications["other"].pk}
    for which in ("maintained", "applied"):
        assert api.get(f"/api/v1/review-queue/{applications[which].pk}/").status_code == 404
