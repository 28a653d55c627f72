"""Maintainers manage their listing (page and API): every change audited and revertible by staff;
co-maintainers mailed; ownership transferred by the owner only; exemptions claimed; logos
checked; the test recipe overridden; onboarding ticked; the webhook secret shown once. And
everyone else is refused, on every page and every API call."""

import struct
import zlib

import pytest
from django.core import mail
from django.urls import reverse
from rest_framework.test import APIClient

from ci_runners.models import ProjectTestConfig
from registry.models import ListingChange, Project, ProjectExemption
from reviews import criteria
from reviews.models import OnboardingTask, Submission
from reviews.states import SubmissionState
from tests.factories import UserFactory
from tests.registry.factories import (
    MaintainerIdentityFactory,
    ProjectFactory,
    SubcategoryFactory,
)
from tests.reviews.factories import SubmissionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_throttle")]


def png(width: int = 4, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


HOSTILE_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
    b'<script>alert("owned")</script><rect width="10" height="10" fill="red"/></svg>'
)


@pytest.fixture
def people():
    """The owner and a co-maintainer of `project`, staff, and three who may not manage it."""

    def verified(handle: str, **fields):
        return MaintainerIdentityFactory(github_handle=handle, verified=True, **fields).user

    project = ProjectFactory(
        name="TorchGood",
        maintainers=["Owner1", "co-maint", "unverified1"],
        description="Old words.",
        homepage_url="https://old.example.org",
    )
    other_project = ProjectFactory(name="TorchElse", maintainers=["elsewhere"])
    unverified = MaintainerIdentityFactory(github_handle="unverified1", verified=False).user
    return {
        "project": project,
        "other_project": other_project,
        "owner": verified("owner1"),
        "co": verified("co-maint"),
        "staff": UserFactory(is_staff=True),
        "outsider": UserFactory(),
        "unverified": unverified,
        "elsewhere": verified("elsewhere"),
    }


def signed_in(client, user):
    client.force_login(user)
    return client


def page_url(project, name="project_manage", *args):
    return reverse(f"reviews:{name}", args=[project.slug, *args])


def api_url(project, suffix=""):
    return f"/api/v1/maintained-projects/{project.slug}/{suffix}"


def api_as(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


# --- the listing fields ---------------------------------------------------------------------


def test_maintainer_edits_each_field_each_audited_and_staff_revert_restores(client, people):
    project = people["project"]
    signed_in(client, people["co"])
    response = client.post(
        page_url(project, "project_listing"),
        {
            "description": "New words.",
            "homepage_url": "https://new.example.org",
            "documentation_url": "https://docs.example.org",
        },
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.description, project.homepage_url, project.documentation_url) == (
        "New words.",
        "https://new.example.org",
        "https://docs.example.org",
    )
    changes = {c.field: c for c in ListingChange.objects.filter(project=project)}
    assert set(changes) == {"description", "homepage_url", "documentation_url"}
    assert changes["description"].old_value == "Old words."
    assert changes["description"].actor == people["co"]

    signed_in(client, people["staff"])
    reverted = client.post(
        page_url(project, "project_change_revert", changes["homepage_url"].pk), follow=True
    )
    assert reverted.status_code == 200
    project.refresh_from_db()
    assert project.homepage_url == "https://old.example.org"
    assert project.description == "New words."
    revert = ListingChange.objects.get(reverts=changes["homepage_url"])
    assert revert.new_value == "https://old.example.org" and revert.actor == people["staff"]


def test_a_bad_url_is_a_form_error_and_nothing_changes(client, people):
    project = people["project"]
    signed_in(client, people["owner"])
    response = client.post(
        page_url(project, "project_listing"),
        {"description": "x", "homepage_url": "javascript:alert(1)", "documentation_url": ""},
    )
    assert response.status_code == 400
    assert "http(s) URL" in response.content.decode()
    project.refresh_from_db()
    assert project.description == "Old words."
    assert not ListingChange.objects.exists()


def test_admin_revert_action(client, people):
    project = people["project"]
    api_as(people["owner"]).patch(api_url(project), {"description": "Via API"}, format="json")
    change = ListingChange.objects.get(field="description")
    staff = UserFactory(is_staff=True, is_superuser=True)
    signed_in(client, staff)
    response = client.post(
        reverse("admin:registry_listingchange_changelist"),
        {"action": "revert", "_selected_action": [change.pk]},
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.description == "Old words."


# --- co-maintainers and ownership ------------------------------------------------------------


def test_adding_a_co_maintainer_mails_every_maintainer(
    client, people, django_capture_on_commit_callbacks
):
    project = people["project"]
    MaintainerIdentityFactory(github_handle="newbie", verified=True)
    signed_in(client, people["co"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(page_url(project, "project_maintainer_add"), {"handle": "@newbie"})
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.maintainers == ["Owner1", "co-maint", "unverified1", "newbie"]
    recipients = sorted(r for message in mail.outbox for r in message.to)
    # Verified maintainers with an email: the owner, the co-maintainer, the newcomer.
    assert recipients == sorted(
        [people["owner"].email, people["co"].email, project_user_email("newbie")]
    )
    assert all("@newbie was added" in message.subject for message in mail.outbox)
    assert ListingChange.objects.get(field="maintainers").new_value[-1] == "newbie"


def project_user_email(handle: str) -> str:
    from registry.models import MaintainerIdentity

    return MaintainerIdentity.objects.get(github_handle=handle).user.email


def test_a_handle_of_the_wrong_shape_is_refused(client, people):
    signed_in(client, people["owner"])
    response = client.post(
        page_url(people["project"], "project_maintainer_add"), {"handle": "-bad--name"}
    )
    assert response.status_code == 400
    assert "not a GitHub user name" in response.content.decode()


def test_only_the_owner_removes_another_maintainer(client, people):
    project = people["project"]
    signed_in(client, people["co"])
    refused = client.post(page_url(project, "project_maintainer_remove"), {"handle": "Owner1"})
    assert refused.status_code == 403
    signed_in(client, people["owner"])
    done = client.post(page_url(project, "project_maintainer_remove"), {"handle": "co-maint"})
    assert done.status_code == 302
    project.refresh_from_db()
    assert project.maintainers == ["Owner1", "unverified1"]


def test_transfer_of_ownership(client, people):
    project = people["project"]
    signed_in(client, people["co"])
    assert (
        client.post(page_url(project, "project_transfer"), {"new_owner": "co-maint"}).status_code
        == 403
    )
    signed_in(client, people["owner"])
    not_a_maintainer = client.post(page_url(project, "project_transfer"), {"new_owner": "zed"})
    assert not_a_maintainer.status_code == 400
    assert (
        client.post(page_url(project, "project_transfer"), {"new_owner": "CO-MAINT"}).status_code
        == 302
    )
    project.refresh_from_db()
    assert project.owner_handle == "co-maint"
    # The former owner may no longer transfer it back; the new one may.
    assert (
        client.post(page_url(project, "project_transfer"), {"new_owner": "Owner1"}).status_code
        == 403
    )
    response = api_as(people["co"]).post(
        api_url(project, "transfer/"), {"new_owner": "Owner1"}, format="json"
    )
    assert response.status_code == 200 and response.json()["owner"] == "Owner1"


# --- exemptions, category --------------------------------------------------------------------


def test_claim_and_withdraw_an_exemption(client, people):
    project = people["project"]
    signed_in(client, people["owner"])
    response = client.post(
        page_url(project, "project_exemption"),
        {"criterion": "14", "reason": "A young project; stars are not our measure."},
    )
    assert response.status_code == 302
    exemption = ProjectExemption.objects.get(project=project)
    assert (exemption.criterion, exemption.source) == (14, "listing")
    assert exemption.claimed_by == people["owner"]
    page = client.get(page_url(project)).content.decode()
    assert "stars are not our measure" in page

    api = api_as(people["co"])
    assert (
        api.post(
            api_url(project, "exemptions/"), {"criterion": 99, "reason": "x"}, format="json"
        ).status_code
        == 400
    )
    twice = api.post(
        api_url(project, "exemptions/"), {"criterion": 14, "reason": "again"}, format="json"
    )
    assert twice.status_code == 400
    withdrawn = api.post(api_url(project, f"exemptions/{exemption.pk}/withdraw/"))
    assert withdrawn.status_code == 200 and withdrawn.json()["withdrawn_at"]
    # Staff revert the withdrawal: the exemption stands again.
    change = ListingChange.objects.filter(field="exemption").first()
    assert change.new_value["withdrawn"] is True
    api_as(people["staff"]).post(api_url(project, f"changes/{change.pk}/revert/"))
    exemption.refresh_from_db()
    assert exemption.withdrawn_at is None


def test_category_proposal_and_staff_confirmation(client, people):
    project = people["project"]
    category = SubcategoryFactory()
    api = api_as(people["owner"])
    response = api.patch(api_url(project), {"proposed_category": category.slug}, format="json")
    assert response.status_code == 200 and response.json()["proposed_category"] == category.slug
    assert api.post(api_url(project, "category/confirm/")).status_code == 403
    signed_in(client, people["staff"])
    assert client.post(page_url(project, "project_category_confirm")).status_code == 302
    project.refresh_from_db()
    assert (project.category, project.proposed_category) == (category, None)


# --- the logo ----------------------------------------------------------------------------------


def test_png_logo_accepted(client, people):
    project = people["project"]
    signed_in(client, people["owner"])
    upload = {"logo": _file("logo.png", png())}
    assert client.post(page_url(project, "project_logo"), upload).status_code == 302
    project.refresh_from_db()
    assert project.logo_file.content_type == "image/png"
    assert bytes(project.logo_file.card_png).startswith(b"\x89PNG")
    assert ListingChange.objects.get(field="logo_file").new_value == project.logo_file_id


def test_svg_logo_with_a_script_is_kept_but_never_served_inline(client, people):
    project = people["project"]
    api = api_as(people["owner"])
    response = api.post(
        api_url(project, "logo/"), {"logo": _file("logo.svg", HOSTILE_SVG)}, format="multipart"
    )
    assert response.status_code == 200, response.content
    project.refresh_from_db()
    sha = project.logo_file_id
    signed_in(client, people["owner"])
    page = client.get(page_url(project)).content.decode()
    assert "alert(" not in page and "<svg" not in page
    assert reverse("registry:logo_card", args=[sha]) in page
    card = client.get(reverse("registry:logo_card", args=[sha]))
    assert card["Content-Type"] == "image/png"
    original = client.get(reverse("registry:logo", args=[sha]))
    assert original["Content-Type"] == "image/svg+xml"
    assert "sandbox" in original["Content-Security-Policy"]
    assert "default-src 'none'" in original["Content-Security-Policy"]


def test_a_large_logo_is_refused_with_a_clear_error(client, people):
    project = people["project"]
    signed_in(client, people["owner"])
    response = client.post(
        page_url(project, "project_logo"), {"logo": _file("big.png", png() + b"\0" * 2_000_000)}
    )
    assert response.status_code == 400
    assert "a logo may be at most 512 KB" in response.content.decode()
    api = api_as(people["owner"])
    refused = api.post(
        api_url(project, "logo/"),
        {"logo": _file("big.png", b"\0" * 2_000_000)},
        format="multipart",
    )
    assert refused.status_code == 400
    project.refresh_from_db()
    assert project.logo_file is None


def test_a_file_that_is_not_an_image_is_refused(client, people):
    project = people["project"]
    signed_in(client, people["owner"])
    response = client.post(
        page_url(project, "project_logo"), {"logo": _file("logo.png", b"GIF89a not a png")}
    )
    assert response.status_code == 400
    assert "must be a PNG or an SVG image" in response.content.decode()
    project.refresh_from_db()
    assert project.logo_file is None


def _file(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


# --- the test recipe, onboarding, webhook secret ----------------------------------------------


def test_recipe_override_is_audited_and_source_override_untouchable(client, people):
    project = people["project"]
    ProjectTestConfig.objects.create(project=project, source_override="/srv/staff-checkout")
    signed_in(client, people["owner"])
    response = client.post(
        page_url(project, "project_recipe"),
        {
            "extra_requirements": "scipy>=1.11",
            "pytest_args": "-x",
            "env": "OMP_NUM_THREADS=1",
            "extras": "test, cuda",
        },
    )
    assert response.status_code == 302
    config = ProjectTestConfig.objects.get(project=project)
    assert config.extra_requirements == ["scipy>=1.11"]
    assert config.env == {"OMP_NUM_THREADS": "1"} and config.extras == ["test", "cuda"]
    change = ListingChange.objects.get(field="test_recipe")
    assert change.old_value["extra_requirements"] == []

    api = api_as(people["co"])
    refused = api.patch(
        api_url(project, "test-recipe/"),
        {"source_override": "https://evil.example/x.git", "env": {"PATH": "/evil"}},
        format="json",
    )
    assert refused.status_code == 400
    config.refresh_from_db()
    assert config.source_override == "/srv/staff-checkout" and "PATH" not in config.env

    api_as(people["staff"]).post(api_url(project, f"changes/{change.pk}/revert/"))
    config.refresh_from_db()
    assert config.extra_requirements == [] and config.extras is None


def test_maintainer_ticks_their_onboarding_tasks_not_the_foundations(client, people):
    project = people["project"]
    submission = SubmissionFactory(state=SubmissionState.ACCEPTED, project=project)
    for position, (key, label, suggested, mine) in enumerate(criteria.ONBOARDING_TASKS):
        OnboardingTask.objects.create(
            submission=submission,
            key=key,
            label=label,
            suggested=suggested,
            for_applicant=mine,
            position=position,
        )
    theirs = OnboardingTask.objects.get(submission=submission, key="logo")
    foundation = OnboardingTask.objects.get(submission=submission, key="announcement")
    signed_in(client, people["co"])
    page = client.get(page_url(project)).content.decode()
    assert theirs.label in page and foundation.label in page
    assert (
        client.post(page_url(project, "project_onboarding", theirs.pk), {"done": "1"}).status_code
        == 302
    )
    theirs.refresh_from_db()
    assert theirs.done_by == people["co"]
    api = api_as(people["co"])
    refused = api.post(
        api_url(project, f"onboarding/{foundation.pk}/"), {"done": True}, format="json"
    )
    assert refused.status_code == 403
    foundation.refresh_from_db()
    assert foundation.done_at is None
    assert len(api.get(api_url(project, "onboarding/")).json()) == len(criteria.ONBOARDING_TASKS)


def test_webhook_secret_is_shown_once(client, people):
    project = people["project"]
    signed_in(client, people["owner"])
    response = client.post(page_url(project, "project_webhook_secret"))
    project.refresh_from_db()
    secret = project.webhook_secret
    assert len(secret) == 64 and secret in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert secret not in client.get(page_url(project)).content.decode()
    change = ListingChange.objects.get(field="webhook_secret")
    assert secret not in str(change.old_value) + str(change.new_value)
    rotated = api_as(people["co"]).post(api_url(project, "webhook-secret/")).json()["secret"]
    project.refresh_from_db()
    assert rotated == project.webhook_secret != secret


# --- my projects, and the refusals ------------------------------------------------------------


def test_my_projects_lists_only_what_the_user_maintains(client, people):
    page = signed_in(client, people["co"]).get(reverse("reviews:my_projects")).content.decode()
    assert "TorchGood" in page and "TorchElse" not in page
    listed = api_as(people["co"]).get("/api/v1/maintained-projects/").json()
    assert [p["slug"] for p in listed["results"]] == [people["project"].slug]


PAGE_POSTS = [
    ("project_listing", (), {"description": "x"}),
    ("project_logo", (), {}),
    ("project_category", (), {}),
    ("project_maintainer_add", (), {"handle": "intruder"}),
    ("project_maintainer_remove", (), {"handle": "co-maint"}),
    ("project_transfer", (), {"new_owner": "co-maint"}),
    ("project_recipe", (), {"pytest_args": "-x"}),
    ("project_exemption", (), {"criterion": "14", "reason": "x"}),
    ("project_webhook_secret", (), {}),
    ("project_category_confirm", (), {}),
]


@pytest.mark.parametrize("who", ["outsider", "unverified", "elsewhere"])
def test_everyone_else_is_refused_on_every_page(client, people, who):
    project = people["project"]
    exemption = ProjectExemption.objects.create(
        project=project, criterion=3, reason="r", source="listing"
    )
    change = ListingChange.objects.create(project=project, field="description", old_value="a")
    submission = SubmissionFactory(state=SubmissionState.ACCEPTED, project=project)
    task = OnboardingTask.objects.create(
        submission=submission, key="logo", label="Logo", for_applicant=True
    )
    signed_in(client, people[who])
    assert client.get(page_url(project)).status_code == 404
    posts = [
        *PAGE_POSTS,
        ("project_exemption_withdraw", (exemption.pk,), {}),
        ("project_onboarding", (task.pk,), {"done": "1"}),
        ("project_change_revert", (change.pk,), {}),
    ]
    for name, args, data in posts:
        assert client.post(page_url(project, name, *args), data).status_code == 404, name
    before = Project.objects.values().get(pk=project.pk)
    assert Project.objects.values().get(pk=project.pk) == before
    assert ListingChange.objects.count() == 1
    assert exemption.__class__.objects.get(pk=exemption.pk).withdrawn_at is None
    task.refresh_from_db()
    assert task.done_at is None


API_CALLS = [
    ("get", ""),
    ("patch", ""),
    ("post", "logo/"),
    ("post", "maintainers/add/"),
    ("post", "maintainers/remove/"),
    ("post", "transfer/"),
    ("post", "category/confirm/"),
    ("get", "test-recipe/"),
    ("patch", "test-recipe/"),
    ("get", "exemptions/"),
    ("post", "exemptions/"),
    ("post", "exemptions/1/withdraw/"),
    ("get", "onboarding/"),
    ("post", "onboarding/1/"),
    ("post", "webhook-secret/"),
    ("get", "changes/"),
    ("post", "changes/1/revert/"),
]


@pytest.mark.parametrize("who", ["outsider", "unverified", "elsewhere"])
def test_everyone_else_is_refused_on_every_api_call(people, who):
    project = people["project"]
    api = api_as(people[who])
    for method, suffix in API_CALLS:
        response = getattr(api, method)(api_url(project, suffix), {}, format="json")
        assert response.status_code == 404, (method, suffix, response.status_code)
    listed = [p["slug"] for p in api.get("/api/v1/maintained-projects/").json()["results"]]
    assert listed == ([people["other_project"].slug] if who == "elsewhere" else [])
    project.refresh_from_db()
    assert project.webhook_secret == ""


def test_a_visitor_is_sent_to_sign_in_and_the_api_says_401(client, people):
    response = client.get(page_url(people["project"]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert APIClient().get(api_url(people["project"])).status_code in (401, 403)


def test_submission_state_accepted_is_what_counts(people):
    """A project's checklist comes from its accepted application only."""
    project = people["project"]
    SubmissionFactory(state=SubmissionState.SUBMITTED, project=project)
    from reviews.maintainer_services import project_onboarding_tasks

    assert project_onboarding_tasks(project=project) == []
    assert Submission.objects.filter(project=project).count() == 1
