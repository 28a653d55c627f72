"""PyTorch releases: nightly runs, detecting new releases on PyPI, telling staff, approving.

A new release found on PyPI becomes one inactive target per runner setup in use (CPU, each
CUDA variant); staff hear of it once (an email on commit, and the fleet page's banner) and
approve the version, which activates its targets and starts the release readiness run over
every active project. The readiness report reads the results (`ci_runners.release_reports`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from packaging.version import InvalidVersion, Version

from ci_runners.models import CompatRun, ScheduledSlot, TorchTarget
from ci_runners.services.night_plan import NightPlan, night_plan
from ci_runners.services.runs import compat_runs_request_for_projects
from registry.models import Project

logger = logging.getLogger(__name__)


def projects_to_run() -> list[Project]:
    """Active projects that have something to test: a repository or a source override."""
    return list(
        Project.objects.filter(status=Project.Status.ACTIVE)
        .filter(~Q(repo_owner="") | Q(test_config__source_override__gt=""))
        .distinct()
    )


NIGHTLY_JOB = "nightly_runs"


def nightly_runs(*, slot: date | None = None, force: bool = False) -> int:
    """Every active project on every active target, once per night (`slot`, default today).

    Incremental (`services.night_plan`): a cell whose project, job and resolved environment
    did not change is carried (final at once, a copy of its evidence's result) instead of
    run; `force` runs every cell. Idempotent per slot: a second beat, or a retry, finds the
    night claimed and makes nothing. Returns the cells made (run and carried).
    """
    slot = slot or timezone.localdate()
    outcome = night_start(slot=slot.isoformat(), force=force)
    return outcome.planned if outcome is not None else 0


MANUAL_SLOT_PREFIX = "manual-"


def manual_night_slot(now: datetime | None = None) -> str:
    """The slot of a night started by hand: one per minute, so a double click starts one."""
    return f"{MANUAL_SLOT_PREFIX}{(now or timezone.now()):%Y-%m-%dT%H:%M}"


def night_start(
    *, slot: str, force: bool = False, trigger: str = CompatRun.Trigger.SCHEDULE
) -> NightPlan | None:
    """Plan the night of `slot` (`night_plan`: the `git ls-remote`s happen before any
    transaction), then claim the slot and make one run per project: the cells to run are
    queued and dispatched, the others carried. None when the slot was taken already (or no
    target is active); else the plan, whose counts say what was made."""
    targets = list(TorchTarget.objects.filter(active=True))
    if not targets or ScheduledSlot.objects.filter(job=NIGHTLY_JOB, slot=slot).exists():
        return None
    plan = night_plan(projects=projects_to_run(), targets=targets, force=force)
    with transaction.atomic():
        if not scheduled_slot_claim(job=NIGHTLY_JOB, slot=slot):
            return None
        compat_runs_request_for_projects(
            projects=plan.projects,
            targets=plan.targets,
            trigger=trigger,
            carry=plan.carry,
            job_hashes=plan.hashes,
        )
    logger.info(
        "night %s: %d cells planned, %d dispatched, %d carried%s",
        slot, plan.planned, plan.dispatched, plan.carried, " (forced)" if force else "",
    )  # fmt: skip
    return plan


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
        return _targets_activate_and_run([target])


def torch_release_approve(*, version: str, actor: Any = None) -> int:
    """Approve a detected release: activate every target of `version` and start the release
    readiness run (every active project on those targets, trigger NEW_RELEASE).

    Idempotent: targets already active are not run again, so a second approval (a double
    click, two staff at once) queues nothing. Returns the cells queued.
    """
    with transaction.atomic():
        targets = list(
            TorchTarget.objects.select_for_update().filter(version=version).order_by("pk")
        )
        return _targets_activate_and_run(targets)


def _targets_activate_and_run(targets: list[TorchTarget]) -> int:
    """Inside the caller's transaction, with the targets locked: activate the inactive ones
    and queue every active project on them."""
    waiting = [target for target in targets if not target.active]
    if not waiting:
        return 0
    now = timezone.now()
    for target in waiting:
        target.active = True
        target.approved_at = now
        target.save(update_fields=["active", "approved_at"])
    return compat_runs_request_for_projects(
        projects=projects_to_run(), targets=waiting, trigger=CompatRun.Trigger.NEW_RELEASE
    )


@dataclass(frozen=True)
class RunnerSetup:
    """How a target is built and where it runs; a new release gets one target per setup."""

    variant: str
    python_version: str
    capability: str
    find_links: tuple[str, ...] = ()
    index_urls: tuple[str, ...] = ()


DEFAULT_SETUP = RunnerSetup(variant="cpu", python_version="3.11", capability="cpu")


def runner_setups() -> list[RunnerSetup]:
    """The distinct setups among the active targets (e.g. a CPU one and a cu126 one); with
    none active, the newest target's, or CPU on Python 3.11 for an empty catalog."""
    active = TorchTarget.objects.filter(active=True).order_by("variant", "python_version", "pk")
    if not active.exists():
        newest = TorchTarget.objects.order_by("-created_at", "-pk")[:1]
        return [_setup_of(target) for target in newest] or [DEFAULT_SETUP]
    setups: list[RunnerSetup] = []
    for target in active:
        setup = _setup_of(target)
        if setup not in setups:
            setups.append(setup)
    return setups


def _setup_of(target: TorchTarget) -> RunnerSetup:
    return RunnerSetup(
        variant=target.variant,
        python_version=target.python_version,
        capability=target.capability,
        find_links=tuple(str(link) for link in target.find_links or []),
        index_urls=tuple(str(url) for url in target.index_urls or []),
    )


def torch_releases_check() -> list[TorchTarget]:
    """Add inactive targets, one per runner setup, for each PyTorch release newer than every
    known target, and tell staff once per release (on commit). Returns the targets made."""
    from registry.sources import pypi

    releases = pypi.package_releases(name="torch")
    setups = runner_setups()
    created: list[TorchTarget] = []
    with transaction.atomic():
        for release in _new_releases(releases):
            made = _release_targets_create(version=str(release), setups=setups)
            created.extend(made)
            if made and scheduled_slot_claim(job=RELEASE_NOTICE_JOB, slot=str(release)):
                transaction.on_commit(partial(torch_release_notice_send, version=str(release)))
    return created


def _new_releases(releases: list[Version]) -> list[Version]:
    """Final releases newer than the newest known target (only the newest, for an empty
    catalog)."""
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
    return candidates if newest_known is not None else candidates[-1:]


def _release_targets_create(*, version: str, setups: list[RunnerSetup]) -> list[TorchTarget]:
    """One inactive target of `version` per setup; a setup whose (variant, python) is taken
    already is skipped (the catalog's unique key)."""
    created = []
    for setup in setups:
        target, made = TorchTarget.objects.get_or_create(
            version=version,
            variant=setup.variant,
            python_version=setup.python_version,
            defaults={
                "capability": setup.capability,
                "find_links": list(setup.find_links),
                "index_urls": list(setup.index_urls),
                "active": False,
                "prerelease": Version(version).is_prerelease,
            },
        )
        if made:
            created.append(target)
    return created


RELEASE_NOTICE_JOB = "torch_release_notice"
SUBJECT_PREFIX = "[Ecosystem Registry]"


def staff_emails() -> list[str]:
    """Addresses of the active staff accounts that have one."""
    users = get_user_model().objects.filter(is_active=True, is_staff=True).exclude(email="")
    return sorted({email for email in users.values_list("email", flat=True) if email})


def torch_release_notice_send(*, version: str) -> int:
    """Email each staff member (a message each) about a detected release: its targets and
    where to approve it. Returns the messages sent; a mail failure is logged, not raised (the
    release stays on the fleet page's banner until approved)."""
    targets = list(TorchTarget.objects.filter(version=version).order_by("variant", "pk"))
    if not targets:
        return 0
    site = getattr(settings, "SITE_URL", "").rstrip("/")
    body = "\n".join(
        [
            f"PyTorch {version} is out on PyPI. The registry made these targets for it "
            "(inactive until approved):",
            *[f"- {target.label} on runner.{target.capability}" for target in targets],
            "",
            "Approving it activates them and runs every active project on them (the release "
            "readiness run). Approve it on the fleet page:",
            site + reverse("ci_runners:fleet"),
            "",
            "The readiness report: "
            + site
            + reverse("ci_runners:release_report", kwargs={"version": version}),
        ]
    )
    subject = f"{SUBJECT_PREFIX} PyTorch {version} detected: approve its readiness run"
    messages = [
        EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [email])
        for email in staff_emails()
    ]
    if not messages:
        return 0
    try:
        get_connection().send_messages(messages)
    except OSError:
        logger.exception("the notice of PyTorch %s could not be mailed", version)
        return 0
    return len(messages)
