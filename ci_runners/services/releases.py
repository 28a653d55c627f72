"""PyTorch releases: nightly runs, detecting new releases on PyPI, approving targets."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ci_runners.models import CompatRun, ScheduledSlot, TorchTarget
from ci_runners.services.runs import compat_runs_request_for_projects
from registry.models import Project


def projects_to_run() -> list[Project]:
    """Active projects that have something to test: a repository or a source override."""
    return list(
        Project.objects.filter(status=Project.Status.ACTIVE)
        .filter(~Q(repo_owner="") | Q(test_config__source_override__gt=""))
        .distinct()
    )


NIGHTLY_JOB = "nightly_runs"


def nightly_runs(*, slot: date | None = None) -> int:
    """Every active project on every active target, once per night (`slot`, default today).

    Idempotent per slot: a second beat, or a retry, finds the night claimed and queues
    nothing. Returns the cells queued.
    """
    slot = slot or timezone.localdate()
    if not TorchTarget.objects.filter(active=True).exists():
        return 0
    with transaction.atomic():
        if not scheduled_slot_claim(job=NIGHTLY_JOB, slot=slot.isoformat()):
            return 0
        return compat_runs_request_for_projects(
            projects=projects_to_run(), targets=None, trigger=CompatRun.Trigger.SCHEDULE
        )


def scheduled_slot_claim(*, job: str, slot: str) -> bool:
    """Claim a scheduled job's slot inside the caller's transaction; False if already taken.

    A concurrent claimer waits on the unique index until the first one commits (then gets
    False) or rolls back (then gets the slot).
    """
    with transaction.atomic():
        try:
            ScheduledSlot.objects.create(job=job, slot=slot)
        except IntegrityError:
            return False
    return True


def torch_target_approve(*, target: TorchTarget, actor: Any = None) -> int:
    """Activate a (detected) target and run every active project on it. Returns cells."""
    with transaction.atomic():
        target = TorchTarget.objects.select_for_update().get(pk=target.pk)
        if target.active:
            return 0
        target.active = True
        target.approved_at = timezone.now()
        target.save(update_fields=["active", "approved_at"])
        return compat_runs_request_for_projects(
            projects=projects_to_run(), targets=[target], trigger=CompatRun.Trigger.NEW_RELEASE
        )


def torch_releases_check() -> list[TorchTarget]:
    """Add an inactive target for each PyTorch release newer than every known target."""
    from packaging.version import InvalidVersion, Version

    from ci_runners import pypi

    releases = pypi.package_releases(name="torch")
    known = []
    for version in TorchTarget.objects.values_list("version", flat=True):
        try:
            known.append(Version(version))
        except InvalidVersion:
            continue
    newest_known = max(known) if known else None
    candidates = sorted(
        release
        for release in releases
        if not release.is_prerelease and (newest_known is None or release > newest_known)
    )
    if newest_known is None:
        candidates = candidates[-1:]
    template = TorchTarget.objects.order_by("-created_at").first()
    created = []
    for release in candidates:
        target, made = TorchTarget.objects.get_or_create(
            version=str(release),
            variant=template.variant if template else "cpu",
            python_version=template.python_version if template else "3.11",
            defaults={
                "capability": template.capability if template else "cpu",
                "active": False,
                "prerelease": release.is_prerelease,
            },
        )
        if made:
            created.append(target)
    return created
