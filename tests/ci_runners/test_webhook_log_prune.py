"""The webhook's delivery log is pruned: beat runs `ci_runners.prune_webhook_deliveries` daily,
which deletes deliveries (accepted or refused) older than `GITHUB_WEBHOOK_LOG_DAYS`; a recent
accepted delivery keeps refusing its replay."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from celery import current_app
from django.conf import settings
from django.utils import timezone

from ci_runners.models import WebhookDelivery
from ci_runners.services import webhooks
from ci_runners.services.webhooks import GitHubDelivery, webhook_deliveries_prune
from ci_runners.tasks import prune_webhook_deliveries
from registry.models import Project
from tests.ci_runners.test_webhooks import REPO_ID, SECRET, ping_payload, sign

Outcome = WebhookDelivery.Outcome
TASK = "ci_runners.prune_webhook_deliveries"


@pytest.fixture
def hooked(project):
    Project.objects.filter(pk=project.pk).update(github_id=REPO_ID, webhook_secret=SECRET)
    return project


def receive(delivery_id: str, *, secret: str = SECRET) -> WebhookDelivery:
    """A ping as GitHub sends it, through the service the hook's view calls."""
    body = json.dumps(ping_payload()).encode()
    delivery = GitHubDelivery(
        body=body,
        content_type="application/json",
        event="ping",
        delivery_id=delivery_id,
        signature=sign(body, secret),
    )
    return webhooks.github_delivery_receive(delivery=delivery).delivery


def aged(row: WebhookDelivery, days: float) -> WebhookDelivery:
    WebhookDelivery.objects.filter(pk=row.pk).update(
        received_at=timezone.now() - timedelta(days=days)
    )
    return row


def remaining() -> set[str]:
    return set(WebhookDelivery.objects.values_list("delivery_id", flat=True))


def test_deliveries_older_than_the_setting_are_deleted_the_recent_kept(hooked):
    assert settings.GITHUB_WEBHOOK_LOG_DAYS == 30
    aged(receive("old-accepted"), days=31)
    aged(receive("old-forged", secret="guess"), days=31)
    aged(receive("recent-accepted"), days=29)
    aged(receive("recent-forged", secret="guess"), days=29)
    assert receive("new-accepted").outcome == Outcome.PING
    assert set(WebhookDelivery.objects.values_list("outcome", flat=True)) == {
        Outcome.PING,
        Outcome.BAD_SIGNATURE,
    }

    assert webhook_deliveries_prune() == 2

    assert remaining() == {"recent-accepted", "recent-forged", "new-accepted"}
    # The recent accepted delivery still refuses its replay.
    assert receive("recent-accepted").outcome == Outcome.DUPLICATE


def test_the_task_prunes_by_the_setting_in_batches(hooked, settings, monkeypatch):
    settings.GITHUB_WEBHOOK_LOG_DAYS = 7
    monkeypatch.setattr(webhooks, "PRUNE_BATCH", 2)
    for n in range(5):
        aged(receive(f"week-old-{n}", secret="guess" if n % 2 else SECRET), days=8)
    aged(receive("six-days"), days=6)

    assert prune_webhook_deliveries() == 5

    assert remaining() == {"six-days"}
    assert prune_webhook_deliveries() == 0


def test_less_than_a_day_is_refused(hooked):
    receive("just-now")
    with pytest.raises(ValueError, match="at least a day"):
        webhook_deliveries_prune(older_than_days=0)
    assert remaining() == {"just-now"}


def test_beat_prunes_the_log_daily():
    [entry] = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == TASK]
    assert entry["options"]["queue"] == "default"
    assert entry["schedule"].remaining_estimate(timezone.now()) <= timedelta(days=1)
    assert current_app.tasks[TASK].name == prune_webhook_deliveries.name == TASK
