"""The signed GitHub webhook (`/hooks/github/`), fed the payloads and headers GitHub sends
(push, ping, release; `X-GitHub-Event`, `X-GitHub-Delivery`, `X-Hub-Signature-256`,
`User-Agent: GitHub-Hookshot/...`), against real PostgreSQL and the private Redis broker: a
sync is observed as the `registry.sync_github_project` message on the `default` queue, a run
as a `webhook` CompatRun and its cells' messages on `runner.cpu`."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
import requests
from django.conf import settings
from django.urls import reverse

from ci_runners import services
from ci_runners.models import CompatCell, CompatRun, WebhookDelivery
from ci_runners.states import CellState
from registry.models import Project
from tests.registry.factories import ProjectFactory, RepoSnapshotFactory
from tests.uvicorn_server import session_database_url, uvicorn_serving

URL = "/hooks/github/"
SECRET = "It's a Secret to Everybody"
REPO_ID = 615_512_340
OWNER_ID = 131_524_810
SYNC_TASK = "registry.sync_github_project"
Outcome = WebhookDelivery.Outcome


# --- GitHub's payloads and headers ---------------------------------------------------------


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_our_signing_matches_githubs_documented_example():
    """The test vector of GitHub's "Validating webhook deliveries" page."""
    assert sign(b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def sender(login: str = "alice-gh") -> dict:
    return {
        "login": login,
        "id": 5_830_012,
        "node_id": "MDQ6VXNlcjU4MzAwMTI=",
        "avatar_url": "https://avatars.githubusercontent.com/u/5830012?v=4",
        "gravatar_id": "",
        "url": f"https://api.github.com/users/{login}",
        "html_url": f"https://github.com/{login}",
        "type": "User",
        "user_view_type": "public",
        "site_admin": False,
    }


def repository(
    full_name: str = "thingorg/torchthing", repo_id: int = REPO_ID, default_branch: str = "main"
) -> dict:
    """The `repository` object of a webhook payload (push adds the fields marked below)."""
    owner, name = full_name.split("/")
    return {
        "id": repo_id,
        "node_id": "R_kgDOJK1a9A",
        "name": name,
        "full_name": full_name,
        "private": False,
        "owner": {
            "name": owner,  # push payloads only
            "email": None,
            "login": owner,
            "id": OWNER_ID,
            "node_id": "O_kgDOB9bK6g",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{OWNER_ID}?v=4",
            "html_url": f"https://github.com/{owner}",
            "type": "Organization",
            "site_admin": False,
        },
        "html_url": f"https://github.com/{full_name}",
        "description": "Fast graphs for PyTorch.",
        "fork": False,
        "url": f"https://api.github.com/repos/{full_name}",
        "created_at": "2023-03-17T09:41:02Z",
        "updated_at": "2026-11-28T18:02:11Z",
        "pushed_at": "2026-11-29T09:15:02Z",
        "git_url": f"git://github.com/{full_name}.git",
        "ssh_url": f"git@github.com:{full_name}.git",
        "clone_url": f"https://github.com/{full_name}.git",
        "homepage": "",
        "size": 4_812,
        "stargazers_count": 1_204,
        "watchers_count": 1_204,
        "language": "Python",
        "forks_count": 87,
        "archived": False,
        "disabled": False,
        "open_issues_count": 31,
        "license": {"key": "bsd-3-clause", "name": "BSD 3-Clause", "spdx_id": "BSD-3-Clause"},
        "topics": ["pytorch", "cuda-graphs"],
        "visibility": "public",
        "forks": 87,
        "open_issues": 31,
        "watchers": 1_204,
        "default_branch": default_branch,
        "stargazers": 1_204,  # push payloads only
        "master_branch": default_branch,  # push payloads only
        "organization": owner,  # push payloads only
    }


def commit(sha: str, message: str = "Fix the CUDA graph capture test") -> dict:
    return {
        "id": sha,
        "tree_id": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        "distinct": True,
        "message": message,
        "timestamp": "2026-11-29T10:15:02+01:00",
        "url": f"https://github.com/thingorg/torchthing/commit/{sha}",
        "author": {"name": "Alice", "email": "alice@example.org", "username": "alice-gh"},
        "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
        "added": [],
        "removed": [],
        "modified": ["src/torchthing/graphs.py"],
    }


def push_payload(ref: str = "refs/heads/main", *, commits: int = 1, **repo) -> dict:
    before, after = "9f3c0e1" + "0" * 33, "a1b2c3d" + "e" * 33
    changes = [commit(after, message=f"Change {n}") for n in range(commits)]
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "repository": repository(**repo),
        "pusher": {"name": "alice-gh", "email": "alice@example.org"},
        "organization": {"login": "thingorg", "id": OWNER_ID, "node_id": "O_kgDOB9bK6g"},
        "sender": sender(),
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/thingorg/torchthing/compare/{before[:12]}...{after[:12]}",
        "commits": changes,
        "head_commit": changes[-1] if changes else None,
    }


def ping_payload(**repo) -> dict:
    return {
        "zen": "Keep it logically awesome.",
        "hook_id": 512_345_678,
        "hook": {
            "type": "Repository",
            "id": 512_345_678,
            "name": "web",
            "active": True,
            "events": ["push", "release"],
            "config": {
                "content_type": "json",
                "insecure_ssl": "0",
                "url": "https://registry.example.org/hooks/github/",
            },
            "updated_at": "2026-11-29T09:00:00Z",
            "created_at": "2026-11-29T09:00:00Z",
            "url": f"https://api.github.com/repos/thingorg/torchthing/hooks/{512_345_678}",
            "last_response": {"code": None, "status": "unused", "message": None},
        },
        "repository": repository(**repo),
        "sender": sender(),
    }


def release_payload(action: str = "published", tag: str = "v1.4.0", **repo) -> dict:
    return {
        "action": action,
        "release": {
            "url": "https://api.github.com/repos/thingorg/torchthing/releases/187654321",
            "html_url": f"https://github.com/thingorg/torchthing/releases/tag/{tag}",
            "id": 187_654_321,
            "author": sender(),
            "node_id": "RE_kwDOJK1a9M4LLqax",
            "tag_name": tag,
            "target_commitish": "main",
            "name": tag,
            "draft": False,
            "prerelease": False,
            "created_at": "2026-11-29T10:00:00Z",
            "published_at": "2026-11-29T10:05:00Z",
            "assets": [],
            "tarball_url": f"https://api.github.com/repos/thingorg/torchthing/tarball/{tag}",
            "zipball_url": f"https://api.github.com/repos/thingorg/torchthing/zipball/{tag}",
            "body": "Supports PyTorch 2.14.",
        },
        "repository": repository(**repo),
        "organization": {"login": "thingorg", "id": OWNER_ID, "node_id": "O_kgDOB9bK6g"},
        "sender": sender(),
    }


def hook_headers(event: str, body: bytes, *, delivery: str = "", secret: str = SECRET) -> dict:
    """The headers GitHub sends with a delivery (`X-Hub-Signature` is the legacy SHA-1)."""
    return {
        "User-Agent": "GitHub-Hookshot/8e7a1c2",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "512345678",
        "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-GitHub-Hook-Installation-Target-ID": str(REPO_ID),
        "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
        "X-Hub-Signature-256": sign(body, secret),
    }


def encode(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def hooked(project, targets):
    """`project` (thingorg/torchthing) with its GitHub id and a webhook secret."""
    Project.objects.filter(pk=project.pk).update(github_id=REPO_ID, webhook_secret=SECRET)
    project.refresh_from_db()
    return project


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """POST a delivery as GitHub does; the on-commit work (messages) runs as on a commit."""

    def post(event, payload=None, *, body=None, headers=None, content_type="application/json"):
        raw = body if body is not None else encode(payload)
        sent = {**hook_headers(event, raw), **(headers or {})}
        sent = {name: value for name, value in sent.items() if value is not None}
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(URL, data=raw, content_type=content_type, headers=sent)

    return post


def webhook_runs(project) -> list[CompatRun]:
    return list(CompatRun.objects.filter(project=project, trigger=CompatRun.Trigger.WEBHOOK))


def syncs(broker) -> list[dict]:
    return [m for m in broker.messages("default") if m["task"] == SYNC_TASK]


def outcomes() -> list[str]:
    return list(WebhookDelivery.objects.order_by("pk").values_list("outcome", flat=True))


def assert_nothing_happened(project, broker):
    assert webhook_runs(project) == []
    assert syncs(broker) == []
    assert broker.client().llen("runner.cpu") == 0


# --- the effects of a signed delivery ------------------------------------------------------


def test_a_push_to_the_default_branch_sends_one_sync_and_queues_one_run(hooked, broker, deliver):
    response = deliver("push", push_payload())

    assert response.status_code == 202
    assert response.json()["outcome"] == Outcome.TRIGGERED
    [run] = webhook_runs(hooked)
    assert run.ref == "" and run.cells.count() == 2  # the default branch's head, every target
    assert len(broker.messages("runner.cpu")) == 2
    assert syncs(broker) == [
        {
            "task": SYNC_TASK,
            "id": syncs(broker)[0]["id"],
            "args": [],
            "kwargs": {"project_id": hooked.pk},
        }
    ]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.project, delivery.event, delivery.ref) == (hooked, "push", "refs/heads/main")
    assert (delivery.outcome, delivery.status_code, delivery.run) == (Outcome.TRIGGERED, 202, run)


def test_the_same_delivery_again_is_refused_with_409_and_does_nothing(hooked, broker, deliver):
    body = encode(push_payload())
    delivery_id = str(uuid.uuid4())

    first = deliver("push", body=body, headers={"X-GitHub-Delivery": delivery_id})
    again = deliver("push", body=body, headers={"X-GitHub-Delivery": delivery_id})

    assert first.status_code == 202
    assert again.status_code == 409 and again.json()["outcome"] == Outcome.DUPLICATE
    assert len(webhook_runs(hooked)) == 1 and len(syncs(broker)) == 1
    assert broker.client().llen("runner.cpu") == 2
    assert outcomes() == [Outcome.TRIGGERED, Outcome.DUPLICATE]


def test_a_release_published_sends_a_sync_and_queues_a_run(hooked, broker, deliver):
    response = deliver("release", release_payload("published"))

    assert response.status_code == 202
    assert len(webhook_runs(hooked)) == 1 and len(syncs(broker)) == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.event, delivery.action, delivery.ref) == ("release", "published", "v1.4.0")


def test_a_release_that_is_not_published_is_acknowledged_and_ignored(hooked, broker, deliver):
    for action in ("created", "edited", "prereleased", "deleted"):
        assert deliver("release", release_payload(action)).status_code == 200

    assert_nothing_happened(hooked, broker)
    assert outcomes() == [Outcome.IGNORED] * 4


def test_ping_is_answered(hooked, broker, deliver):
    response = deliver("ping", ping_payload())

    assert response.status_code == 200
    assert response.json() == {"outcome": "ping", "detail": "pong"}
    assert_nothing_happened(hooked, broker)
    assert outcomes() == [Outcome.PING]


@pytest.mark.parametrize(
    "ref", ["refs/heads/feature/graphs", "refs/heads/main-backup", "refs/tags/v1.4.0"]
)
def test_a_push_elsewhere_than_the_default_branch_is_ignored(hooked, broker, deliver, ref):
    response = deliver("push", push_payload(ref))

    assert response.status_code == 200 and response.json()["outcome"] == Outcome.IGNORED
    assert_nothing_happened(hooked, broker)
    assert WebhookDelivery.objects.get().ref == ref


def test_the_default_branch_is_the_repositorys_not_main(hooked, broker, deliver):
    assert deliver("push", push_payload("refs/heads/main", default_branch="trunk")).json()[
        "outcome"
    ] == (Outcome.IGNORED)
    response = deliver("push", push_payload("refs/heads/trunk", default_branch="trunk"))

    assert response.status_code == 202 and len(webhook_runs(hooked)) == 1


def test_a_payload_without_a_default_branch_uses_the_one_last_synced(hooked, broker, deliver):
    RepoSnapshotFactory(project=hooked, default_branch="develop")
    payload = push_payload("refs/heads/develop")
    del payload["repository"]["default_branch"], payload["repository"]["master_branch"]

    assert deliver("push", payload).status_code == 202
    assert len(webhook_runs(hooked)) == 1


def test_a_deleted_default_branch_is_ignored(hooked, broker, deliver):
    payload = {**push_payload(commits=0), "deleted": True, "after": "0" * 40}

    assert deliver("push", payload).json()["outcome"] == Outcome.IGNORED
    assert_nothing_happened(hooked, broker)


@pytest.mark.parametrize("event", ["issues", "star", "pull_request", "workflow_run", ""])
def test_other_events_are_acknowledged_and_ignored(hooked, broker, deliver, event):
    payload = {"action": "created", "repository": repository(), "sender": sender()}

    response = deliver(event, payload)

    assert response.status_code == 200 and response.json()["outcome"] == Outcome.IGNORED
    assert_nothing_happened(hooked, broker)


def test_a_retired_project_is_acknowledged_and_ignored(hooked, broker, deliver):
    Project.objects.filter(pk=hooked.pk).update(status=Project.Status.RETIRED)

    response = deliver("push", push_payload())

    assert response.status_code == 200 and response.json()["outcome"] == Outcome.IGNORED
    assert_nothing_happened(hooked, broker)


def test_without_an_active_target_the_sync_still_goes(hooked, broker, deliver, targets):
    for target in targets:
        target.active = False
        target.save(update_fields=["active"])

    response = deliver("push", push_payload())

    assert response.status_code == 202 and response.json()["outcome"] == Outcome.SYNCED
    assert webhook_runs(hooked) == [] and len(syncs(broker)) == 1


# --- debounce: at most one queued webhook run per project ----------------------------------


def test_a_burst_of_100_pushes_queues_one_run(hooked, broker, deliver):
    statuses = [deliver("push", push_payload()).status_code for _ in range(100)]

    assert statuses == [202] + [200] * 99
    [run] = webhook_runs(hooked)
    assert len(syncs(broker)) == 1 and broker.client().llen("runner.cpu") == 2
    assert outcomes() == [Outcome.TRIGGERED] + [Outcome.DEBOUNCED] * 99
    assert set(WebhookDelivery.objects.exclude(run=None).values_list("run", flat=True)) == {run.pk}


def test_a_push_after_the_queued_run_started_queues_another(hooked, broker, deliver):
    deliver("push", push_payload())
    [first] = webhook_runs(hooked)
    cell = first.cells.order_by("pk").first()
    services.cell_transition(cell=cell, to=CellState.PREPARING)

    assert deliver("push", push_payload()).status_code == 202
    assert len(webhook_runs(hooked)) == 2 and len(syncs(broker)) == 2


def test_other_triggers_do_not_debounce_a_webhook_run(hooked, broker, deliver):
    services.compat_run_request(project=hooked, trigger=CompatRun.Trigger.SCHEDULE)

    assert deliver("push", push_payload()).status_code == 202
    assert len(webhook_runs(hooked)) == 1


def test_debounce_is_per_project(hooked, broker, deliver):
    other = ProjectFactory(slug="otherthing", repository="thingorg/otherthing")
    Project.objects.filter(pk=other.pk).update(github_id=REPO_ID + 1, webhook_secret="other")
    deliver("push", push_payload())
    body = encode(push_payload(full_name="thingorg/otherthing", repo_id=REPO_ID + 1))
    headers = {"X-Hub-Signature-256": sign(body, "other")}

    assert deliver("push", body=body, headers=headers).status_code == 202
    assert len(webhook_runs(hooked)) == 1 and len(webhook_runs(other)) == 1


# --- refusals: nothing happens, each is logged ---------------------------------------------


def test_a_wrong_signature_is_401_and_has_no_effect(hooked, broker, deliver):
    body = encode(push_payload())
    delivery_id = str(uuid.uuid4())
    forged = {"X-GitHub-Delivery": delivery_id, "X-Hub-Signature-256": sign(body, "guessed")}

    response = deliver("push", body=body, headers=forged)

    assert response.status_code == 401 and response.json()["outcome"] == Outcome.BAD_SIGNATURE
    assert_nothing_happened(hooked, broker)
    refused = WebhookDelivery.objects.get()
    assert (refused.outcome, refused.status_code, refused.project) == (
        Outcome.BAD_SIGNATURE,
        401,
        hooked,
    )
    # A forged request reserves nothing: the real delivery with that id still goes through.
    real = deliver("push", body=body, headers={"X-GitHub-Delivery": delivery_id})
    assert real.status_code == 202 and len(webhook_runs(hooked)) == 1


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        "sha256=" + "0" * 64,
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=ünicode",
    ],
)
def test_a_missing_or_malformed_signature_is_401(hooked, broker, deliver, signature):
    response = deliver("push", push_payload(), headers={"X-Hub-Signature-256": signature})

    assert response.status_code == 401
    assert_nothing_happened(hooked, broker)
    assert outcomes() == [Outcome.BAD_SIGNATURE]


def test_a_body_changed_after_signing_is_401(hooked, broker, deliver):
    signed = encode(push_payload())
    tampered = encode(push_payload("refs/heads/main", default_branch="main") | {"forced": True})
    response = deliver("push", body=tampered, headers={"X-Hub-Signature-256": sign(signed)})

    assert response.status_code == 401
    assert_nothing_happened(hooked, broker)


def test_the_signature_uses_the_projects_own_secret(hooked, broker, deliver):
    other = ProjectFactory(slug="otherthing", repository="thingorg/otherthing")
    Project.objects.filter(pk=other.pk).update(webhook_secret="other-secret")
    body = encode(push_payload(full_name="thingorg/otherthing", repo_id=REPO_ID + 1))

    assert deliver("push", body=body).status_code == 401  # signed with torchthing's secret
    assert webhook_runs(other) == []


def test_a_known_project_without_a_secret_is_401(project, targets, broker, deliver):
    Project.objects.filter(pk=project.pk).update(github_id=REPO_ID)

    response = deliver("push", push_payload())

    assert response.status_code == 401 and response.json()["outcome"] == Outcome.NO_SECRET
    assert_nothing_happened(project, broker)
    assert WebhookDelivery.objects.get().project == project


def test_an_unknown_project_is_404(hooked, broker, deliver):
    response = deliver("push", push_payload(full_name="someone/else", repo_id=1))

    assert response.status_code == 404 and response.json()["outcome"] == Outcome.UNKNOWN_PROJECT
    assert_nothing_happened(hooked, broker)
    assert WebhookDelivery.objects.get().project is None


def test_the_project_is_found_by_name_in_any_case_before_its_first_sync(
    project, targets, broker, deliver
):
    Project.objects.filter(pk=project.pk).update(webhook_secret=SECRET)  # github_id unknown

    response = deliver("push", push_payload(full_name="ThingOrg/TorchThing"))

    assert response.status_code == 202 and len(webhook_runs(project)) == 1


def test_the_project_is_found_by_id_after_a_rename(hooked, broker, deliver):
    assert deliver("push", push_payload(full_name="neworg/torchthing-ng")).status_code == 202


def test_another_repository_that_took_the_name_is_404(hooked, broker, deliver):
    response = deliver("push", push_payload(repo_id=REPO_ID + 99))

    assert response.status_code == 404
    assert_nothing_happened(hooked, broker)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 415),  # no body: no content type either
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b"\xff\xfe", 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (b'{"repository": "thingorg/torchthing"}', 404),
        (b'{"repository": {"full_name": 5}}', 404),
        (b'{"repository": {"id": true, "full_name": "thingorg"}}', 404),
    ],
)
def test_a_malformed_payload_is_refused_and_logged(hooked, broker, deliver, body, status):
    response = deliver("push", body=body)

    assert response.status_code == status
    assert_nothing_happened(hooked, broker)
    assert WebhookDelivery.objects.get().status_code == status


def test_a_signed_delivery_without_a_delivery_id_is_400(hooked, broker, deliver):
    response = deliver("push", push_payload(), headers={"X-GitHub-Delivery": None})

    assert response.status_code == 400
    assert_nothing_happened(hooked, broker)


def test_githubs_form_encoded_payload_is_accepted(hooked, broker, deliver):
    """GitHub's form content type posts `payload=<JSON>`; the signature covers the form body."""
    body = urlencode({"payload": json.dumps(push_payload())}).encode()

    response = deliver("push", body=body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 202 and len(webhook_runs(hooked)) == 1


def test_a_form_without_a_payload_field_is_400(hooked, broker, deliver):
    response = deliver(
        "push", body=b"data=%7B%7D", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    assert_nothing_happened(hooked, broker)


def test_another_content_type_is_415(hooked, broker, deliver):
    response = deliver("push", push_payload(), content_type="text/plain")

    assert response.status_code == 415
    assert_nothing_happened(hooked, broker)
    assert outcomes() == [Outcome.UNSUPPORTED_MEDIA]


def test_only_post_is_allowed(hooked, client):
    assert client.get(URL).status_code == 405
    assert client.put(URL, data=b"{}", content_type="application/json").status_code == 405


# --- sizes: the hook alone takes GitHub's 25 MB ---------------------------------------------


def test_the_hook_limit_is_githubs_and_the_rest_keeps_djangos_default():
    assert settings.GITHUB_WEBHOOK_MAX_BYTES == 25 * 1024 * 1024
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2_621_440


def three_mb_push() -> dict:
    payload = push_payload(commits=1)
    payload["commits"] = [commit("a1b2c3d" + "e" * 33, message="x" * 1000) for _ in range(2150)]
    return payload


def test_a_3_mb_signed_push_is_accepted(hooked, broker, deliver):
    body = encode(three_mb_push())
    assert 3_000_000 < len(body) < 4_000_000

    response = deliver("push", body=body)

    assert response.status_code == 202 and len(webhook_runs(hooked)) == 1


def test_a_body_over_the_limit_is_413_and_has_no_effect(hooked, broker, deliver, settings):
    body = encode(push_payload())
    settings.GITHUB_WEBHOOK_MAX_BYTES = len(body) - 1

    response = deliver("push", body=body)

    assert response.status_code == 413 and response.json()["outcome"] == Outcome.TOO_LARGE
    assert_nothing_happened(hooked, broker)
    settings.GITHUB_WEBHOOK_MAX_BYTES = len(body)
    assert deliver("push", body=body).status_code == 202  # at the limit: accepted


def test_other_views_keep_djangos_body_limit(client, db):
    too_big = b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = client.post(
        reverse("account_login"), data=too_big, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400  # Django's RequestDataTooBig


# --- the admin -----------------------------------------------------------------------------


def test_deliveries_are_read_only_in_the_admin(hooked, deliver, admin_client):
    deliver("push", push_payload())
    delivery = WebhookDelivery.objects.get()

    changelist = admin_client.get(reverse("admin:ci_runners_webhookdelivery_changelist"))
    assert changelist.status_code == 200 and delivery.delivery_id in changelist.content.decode()
    assert admin_client.get(reverse("admin:ci_runners_webhookdelivery_add")).status_code == 403
    change = reverse("admin:ci_runners_webhookdelivery_change", args=[delivery.pk])
    assert admin_client.post(change, {"outcome": "ignored"}).status_code == 403
    delivery.refresh_from_db()
    assert delivery.outcome == Outcome.TRIGGERED


# --- the deployed web process (uvicorn, two workers, real commits) --------------------------


@pytest.fixture
def live_web(transactional_db, broker):
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": session_database_url(),
        "CELERY_BROKER_URL": broker.url,
        "GITHUB_WEBHOOK_MAX_BYTES": "4000000",
    }
    with uvicorn_serving(env=env, warmup_path="/healthz", options=["--workers", "2"]) as base:
        yield base


def post_live(base: str, event: str, payload: dict) -> requests.Response:
    body = encode(payload)
    headers = {**hook_headers(event, body), "Content-Type": "application/json"}
    return requests.post(base + URL, data=body, headers=headers, timeout=60)


@pytest.mark.slow
def test_100_concurrent_pushes_through_the_web_queue_one_run(hooked, broker, live_web):
    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(lambda _: post_live(live_web, "push", push_payload()), range(100)))

    assert sorted(reply.status_code for reply in replies) == [200] * 99 + [202]
    assert len(webhook_runs(hooked)) == 1
    assert len(syncs(broker)) == 1 and broker.client().llen("runner.cpu") == 2
    assert sorted(outcomes()) == sorted([Outcome.TRIGGERED] + [Outcome.DEBOUNCED] * 99)
    assert CompatCell.objects.filter(run__trigger=CompatRun.Trigger.WEBHOOK).count() == 2


@pytest.mark.slow
def test_the_web_takes_large_hook_bodies_up_to_its_own_limit(hooked, broker, live_web):
    """Through ASGI: 3 MB (past Django's 2.5 MB default) is accepted; past the hook's limit
    (4 MB here) is 413, whether declared by Content-Length or streamed chunked."""
    assert post_live(live_web, "push", three_mb_push()).status_code == 202

    over = encode(push_payload()) + b" " * 4_000_000
    headers = {**hook_headers("push", over), "Content-Type": "application/json"}
    declared = requests.post(live_web + URL, data=over, headers=headers, timeout=60)
    chunks = (over[i : i + 65536] for i in range(0, len(over), 65536))
    streamed = requests.post(live_web + URL, data=chunks, headers=headers, timeout=60)

    assert declared.status_code == 413 and streamed.status_code == 413
    assert len(webhook_runs(hooked)) == 1
    assert outcomes() == [Outcome.TRIGGERED, Outcome.TOO_LARGE, Outcome.TOO_LARGE]
