"""Celery tasks of the registry: thin wrappers that take ids and call one service."""

import logging
import math

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from registry.models import Project
from registry.services import GitHubSyncResult, project_sync_github

logger = logging.getLogger(__name__)

RATE_LIMIT_MAX_RETRIES = 5


@shared_task(name="registry.sync_github_project", bind=True)
def sync_github_project(self, project_id: int) -> str:
    """Sync one project's repository health; on a rate limit, come back after the reset."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return GitHubSyncResult.SKIPPED.value
    outcome = project_sync_github(project=project)
    if outcome.result == GitHubSyncResult.RATE_LIMITED and outcome.retry_at is not None:
        if self.request.retries >= RATE_LIMIT_MAX_RETRIES:
            logger.warning("GitHub sync of %s gave up: %s", project.slug, outcome.detail)
            return outcome.result.value
        seconds = (outcome.retry_at - timezone.now()).total_seconds()
        # Spread the projects that all hit the same reset over half a minute.
        countdown = max(1, math.ceil(seconds)) + project_id % 30
        raise self.retry(countdown=countdown, max_retries=RATE_LIMIT_MAX_RETRIES)
    return outcome.result.value


@shared_task(name="registry.sync_github_all")
def sync_github_all() -> int:
    """Queue one sync per active project with a repository, a few seconds apart."""
    stagger = getattr(settings, "GITHUB_SYNC_STAGGER_S", 2.0)
    project_ids = list(
        Project.objects.active().exclude(repo_owner="").order_by("pk").values_list("pk", flat=True)
    )
    for index, project_id in enumerate(project_ids):
        sync_github_project.apply_async(args=[project_id], countdown=index * stagger)
    return len(project_ids)
