"""Signed GitHub webhooks: a push to the default branch or a published release queues a health
sync and a compatibility run of the project; every delivery is logged (`WebhookDelivery`).

The order of the checks matters. The secret is per project, so the project is found first
from the payload's `repository` (id, else owner/name); nothing else is read from the payload,
and nothing is written but the refusal's log row, until the body's HMAC-SHA256 matches
`X-Hub-Signature-256` under that project's secret. Only then does the delivery reserve its
`X-GitHub-Delivery` id (a partial unique constraint: a replay is refused, a forged request
reserves nothing). A run is debounced: while a webhook run of the project has not started,
another push or release adds nothing (the project row is locked, so concurrent deliveries
cannot both see "no run" and both queue one). A queued run tests the default branch's head
when it starts, so the latest push is tested anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from ci_runners import broker
from ci_runners.agent import contracts
from ci_runners.models import CompatCell, CompatRun, WebhookDelivery
from ci_runners.services.runs import CompatRunRefused, compat_run_request
from ci_runners.states import CellState
from registry.models import Project, RepoSnapshot
from registry.tasks import sync_github_project

logger = logging.getLogger(__name__)

Outcome = WebhookDelivery.Outcome
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
RELEASE_ACTIONS = frozenset({"published", "released"})


@dataclass(frozen=True, kw_only=True)
class GitHubDelivery:
    """What the view hands over: the raw body and the headers that matter."""

    body: bytes
    content_type: str
    event: str
    delivery_id: str
    signature: str


@dataclass(frozen=True, kw_only=True)
class WebhookReply:
    status: int
    outcome: str
    detail: str
    delivery: WebhookDelivery


class _Refused(Exception):
    def __init__(self, *, status: int, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.outcome, self.detail = status, outcome, detail


@dataclass(frozen=True, kw_only=True)
class _Verdict:
    """What a signed delivery asks for."""

    outcome: str  # PING, IGNORED, or TRIGGERED (subject to debounce)
    detail: str
    action: str = ""
    ref: str = ""


def github_delivery_receive(*, delivery: GitHubDelivery) -> WebhookReply:
    """Check, log and act on one delivery; the reply says the status to answer."""
    project: Project | None = None
    try:
        payload = _payload_of(delivery)
        project = _project_of(payload.get("repository"))
        _check_signature(project=project, delivery=delivery)
        if not delivery.delivery_id.strip():
            raise _Refused(status=400, outcome=Outcome.BAD_REQUEST, detail="No X-GitHub-Delivery.")
    except _Refused as refused:
        return github_delivery_refuse(
            delivery=delivery,
            project=project,
            status=refused.status,
            outcome=refused.outcome,
            detail=refused.detail,
        )
    verdict = _verdict_of(delivery=delivery, payload=payload, project=project)
    return _accept(delivery=delivery, project=project, verdict=verdict)


def github_delivery_refuse(
    *,
    delivery: GitHubDelivery,
    project: Project | None = None,
    status: int,
    outcome: str,
    detail: str,
) -> WebhookReply:
    """Log a refused delivery (nothing else happens) and say so."""
    row = WebhookDelivery.objects.create(
        delivery_id=delivery.delivery_id[:64],
        project=project,
        event=delivery.event[:64],
        outcome=outcome,
        status_code=status,
        detail=detail[:300],
    )
    return WebhookReply(status=status, outcome=outcome, detail=detail, delivery=row)


def _payload_of(delivery: GitHubDelivery) -> dict[str, Any]:
    media = delivery.content_type.split(";")[0].strip().lower()
    text = _text_of(delivery.body)
    if media == FORM_TYPE:
        try:
            fields = dict(parse_qsl(text, keep_blank_values=True, max_num_fields=10))
        except ValueError as exc:
            raise _bad("The form body is malformed.") from exc
        if "payload" not in fields:
            raise _bad("The form body has no `payload` field.")
        text = fields["payload"]
    elif media != JSON_TYPE:
        raise _Refused(
            status=415,
            outcome=Outcome.UNSUPPORTED_MEDIA,
            detail=f"Send {JSON_TYPE} (or GitHub's {FORM_TYPE} form).",
        )
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _bad("The payload is not valid JSON.") from exc
    if not isinstance(payload, dict):
        raise _bad("The payload is not a JSON object.")
    return payload


def _text_of(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad("The body is not UTF-8.") from exc


def _bad(detail: str) -> _Refused:
    return _Refused(status=400, outcome=Outcome.BAD_REQUEST, detail=detail)


def _project_of(repository: Any) -> Project:
    """The project of the payload's repository: by GitHub id, else by owner/name (any case),
    unless the project is known to have another repository id (a different repository that
    took the name)."""
    unknown = _Refused(status=404, outcome=Outcome.UNKNOWN_PROJECT, detail="Unknown repository.")
    if not isinstance(repository, dict):
        raise unknown
    repo_id = repository.get("id")
    if not isinstance(repo_id, int) or isinstance(repo_id, bool):
        repo_id = None
    if repo_id is not None and (found := Project.objects.filter(github_id=repo_id).first()):
        return found
    full_name = repository.get("full_name")
    if not isinstance(full_name, str) or full_name.count("/") != 1:
        raise unknown
    owner, name = full_name.split("/")
    found = Project.objects.filter(
        repo_owner__iexact=owner.strip(), repo_name__iexact=name.strip()
    ).first()
    if found is None or (found.github_id is not None and repo_id not in (None, found.github_id)):
        raise unknown
    return found


def _check_signature(*, project: Project, delivery: GitHubDelivery) -> None:
    if not project.webhook_secret:
        raise _Refused(
            status=401, outcome=Outcome.NO_SECRET, detail="The project has no webhook secret yet."
        )
    digest = hmac.new(project.webhook_secret.encode(), delivery.body, hashlib.sha256).hexdigest()
    expected = f"sha256={digest}".encode()
    if not hmac.compare_digest(expected, delivery.signature.encode("utf-8", "replace")):
        raise _Refused(
            status=401,
            outcome=Outcome.BAD_SIGNATURE,
            detail="X-Hub-Signature-256 is missing or does not match.",
        )


def _text(mapping: Any, key: str) -> str:
    """`mapping[key]` when the mapping is a dict and the value a string, else ""."""
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, str) else ""


def _verdict_of(*, delivery: GitHubDelivery, payload: dict[str, Any], project: Project) -> _Verdict:
    event, action = delivery.event, _text(payload, "action")
    if event == "ping":
        return _Verdict(outcome=Outcome.PING, detail="pong")
    if event == "push":
        return _push_verdict(payload=payload, project=project)
    if event == "release":
        tag = _text(payload.get("release"), "tag_name")
        if action in RELEASE_ACTIONS:
            return _Verdict(outcome=Outcome.TRIGGERED, detail="", action=action, ref=tag)
        detail = f"Release {action!r}: ignored."
        return _Verdict(outcome=Outcome.IGNORED, detail=detail, action=action, ref=tag)
    return _Verdict(outcome=Outcome.IGNORED, detail=f"Event {event!r}: ignored.", action=action)


def _push_verdict(*, payload: dict[str, Any], project: Project) -> _Verdict:
    ref = _text(payload, "ref")
    branch = _text(payload.get("repository"), "default_branch") or _known_default_branch(project)
    if payload.get("deleted") is True:
        return _Verdict(outcome=Outcome.IGNORED, detail="A deleted ref: ignored.", ref=ref)
    if not branch or ref != f"refs/heads/{branch}":
        detail = f"Not a push to the default branch ({branch or 'unknown'}): ignored."
        return _Verdict(outcome=Outcome.IGNORED, detail=detail, ref=ref)
    return _Verdict(outcome=Outcome.TRIGGERED, detail="", ref=ref)


def _known_default_branch(project: Project) -> str:
    """The default branch the last sync saw (a payload without one)."""
    snapshot = RepoSnapshot.objects.filter(project=project).order_by("-taken_at").first()
    return snapshot.default_branch if snapshot is not None else ""


def _accept(*, delivery: GitHubDelivery, project: Project, verdict: _Verdict) -> WebhookReply:
    """Reserve the delivery id, then act: the reservation and the effects commit together."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                row = WebhookDelivery.objects.create(
                    delivery_id=delivery.delivery_id[:64],
                    project=project,
                    event=delivery.event[:64],
                    action=verdict.action[:64],
                    ref=verdict.ref[:255],
                    outcome=verdict.outcome,
                    status_code=200,
                    detail=verdict.detail[:300],
                )
        except IntegrityError:
            return github_delivery_refuse(
                delivery=delivery,
                project=project,
                status=409,
                outcome=Outcome.DUPLICATE,
                detail="This delivery was already accepted: nothing done.",
            )
        if verdict.outcome == Outcome.TRIGGERED:
            _sync_and_run(row=row, project=project)
    return WebhookReply(
        status=row.status_code, outcome=row.outcome, detail=row.detail, delivery=row
    )


def _sync_and_run(*, row: WebhookDelivery, project: Project) -> None:
    """Queue a sync and a run, unless a webhook run of the project is still waiting."""
    project = Project.objects.select_for_update().get(pk=project.pk)  # one checker at a time
    if project.status != Project.Status.ACTIVE:
        row.outcome, row.detail = Outcome.IGNORED, "The project is retired: ignored."
    elif (pending := _pending_run(project=project)) is not None:
        row.outcome, row.run = Outcome.DEBOUNCED, pending
        row.detail = f"Run {pending.pk} is still queued: nothing added."
    else:
        try:
            with transaction.atomic():
                row.run = compat_run_request(project=project, trigger=CompatRun.Trigger.WEBHOOK)
            row.status_code, row.detail = 202, f"Sync and run {row.run.pk} queued."
        except CompatRunRefused as refused:
            row.outcome, row.status_code = Outcome.SYNCED, 202
            row.detail = f"Sync queued; no run: {refused}"[:300]
        transaction.on_commit(partial(_send_sync, project_id=project.pk), robust=True)
    row.save(update_fields=["outcome", "status_code", "detail", "run"])


def _pending_run(*, project: Project) -> CompatRun | None:
    """A webhook run of the project none of whose cells has left the queue."""
    cells = CompatCell.objects.filter(run=OuterRef("pk"))
    return (
        CompatRun.objects.filter(
            project=project, trigger=CompatRun.Trigger.WEBHOOK, cancelled_at__isnull=True
        )
        .filter(Exists(cells.filter(state=CellState.QUEUED)))
        .exclude(Exists(cells.exclude(state=CellState.QUEUED)))
        .order_by("-pk")
        .first()
    )


def _send_sync(*, project_id: int) -> None:
    broker.send_by_name(
        name=sync_github_project.name,
        kwargs={"project_id": project_id},
        queue=contracts.DEFAULT_QUEUE,
    )


PRUNE_BATCH = 5000


def webhook_deliveries_prune(
    *, older_than_days: int | None = None, now: datetime | None = None
) -> int:
    """Delete the delivery log's rows older than `older_than_days` (default
    `GITHUB_WEBHOOK_LOG_DAYS`); returns how many.

    Every delivery is logged, forged ones too, so the log grows without bound unless pruned.
    An accepted delivery's row is what refuses its replay: it is kept as long as the others,
    far longer than GitHub redelivers (days), so no real replay window is shortened. Deleted
    in batches, so a flood of forged deliveries never means one long delete."""
    days = settings.GITHUB_WEBHOOK_LOG_DAYS if older_than_days is None else older_than_days
    if days < 1:
        raise ValueError("Keep at least a day of webhook deliveries (replays are refused by them).")
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = WebhookDelivery.objects.filter(received_at__lt=cutoff)
    deleted = 0
    while ids := list(old.order_by("pk").values_list("pk", flat=True)[:PRUNE_BATCH]):
        deleted += WebhookDelivery.objects.filter(pk__in=ids).delete()[0]
    return deleted
