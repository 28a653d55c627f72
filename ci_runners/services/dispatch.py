"""Dispatch: the job a cell sends, the messages to runner hosts, and each project's
concurrency limit (how many of its cells may be out at once).

Messages go out with `transaction.on_commit`, by task name (see `ci_runners.broker`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import CharField, Count, F, Value
from django.db.models.functions import Cast, Concat, Replace
from django.utils import timezone

from ci_runners import broker
from ci_runners.agent import contracts
from ci_runners.agent.contracts import Job, TestConfig
from ci_runners.models import (
    MAX_CELL_TIMEOUT_S,
    CompatCell,
    CompatRun,
    ProjectTestConfig,
    TorchTarget,
)
from ci_runners.states import ACTIVE_STATES, CellState
from registry.models import Project
from registry.sources import repo_config

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 900  # ProjectTestConfig.timeout_s's default
UNLIMITED = 10**6
CHUNK = 5000


def source_of(
    *, project: Project | None, config: ProjectTestConfig | None, source_url: str = ""
) -> str:
    """Where a job's code comes from: staff's source override, else the project's repository,
    else (an applicant, no project) `source_url`."""
    if config is not None and config.source_override:
        return config.source_override
    if project is not None and project.repository_url:
        return project.repository_url
    return source_url


def _job_for(*, cell: CompatCell) -> Job:
    run = cell.run
    project = run.project
    config = getattr(project, "test_config", None) if project is not None else None
    job = _job_of(
        project=project, config=config, target=cell.target, source_url=run.source_url, ref=run.ref
    )
    return dataclasses.replace(
        job, cell_id=cell.pk, cell_token=str(cell.token), attempt=cell.attempt
    )


def _job_of(
    *,
    project: Project | None,
    config: ProjectTestConfig | None,
    target: TorchTarget,
    source_url: str = "",
    ref: str = "",
) -> Job:
    """The job of a project (or an applicant's `source_url`) on a target, without the fields
    of one cell (id, token, attempt): what `job_hash_of` hashes."""
    test_config, timeout_s = test_config_merged(
        config=config, repository_file=_repository_file_test(project)
    )
    return Job(
        source=source_of(project=project, config=config, source_url=source_url),
        torch_version=target.version,
        ref=ref or None,
        torch_variant=target.variant or None,
        python_version=target.python_version,
        test_config=test_config,
        timeout_s=timeout_s,
        find_links=list(target.find_links),
        index_urls=list(target.index_urls),
        cache_scope=cache_scope_of(project),
        # A registry project's declared range is measured too: a range that could widen.
        test_beyond_declared_range=project is not None,
    )


def test_config_merged(
    *, config: ProjectTestConfig | None, repository_file: dict[str, Any]
) -> tuple[TestConfig, float]:
    """The override of the recipe a job carries, and the job's timeout: the one place where
    the three sources of a project's recipe meet. Field by field, the first that sets it wins:

    1. staff's or a maintainer's `ProjectTestConfig`, where the field is set: a non-empty list
       or dict, extras/groups not None, a timeout other than the model's default (900 s);
    2. the repository file, `[tool.pytorch-ecosystem.test]` as the sync validated and stored it
       (`Project.repo_config["test"]`: extra_requirements, extras, pytest_args, test_paths,
       deselect, env, timeout_s); `env` merges, the config's variables winning;
    3. what the agent discovers from the repository (the `TestConfig` defaults: nothing
       overridden; `DEFAULT_TIMEOUT_S`).

    The source, `copy_tests`, `groups` and `needs_gpu` come from the config alone: the file
    cannot set them (a `source_override` in it is refused on sync, and never read here)."""
    own = _config_values(config)
    chosen: dict[str, Any] = {}
    for name in repo_config.TEST_KEYS:
        value = own.get(name)
        # extras=[] is set ("no extras"); an empty list of anything else is not.
        if value is None or (value == [] and name != "extras"):
            value = repository_file.get(name)
        if value is not None:
            chosen[name] = value
    chosen["env"] = {**repository_file.get("env", {}), **own.get("env", {})}
    timeout_s = float(chosen.pop("timeout_s", DEFAULT_TIMEOUT_S))
    if config is None:
        return TestConfig(**chosen), timeout_s
    test_config = TestConfig(
        **chosen,
        copy_tests=config.copy_tests or None,
        needs_gpu=config.needs_gpu,
        groups=list(config.groups) if config.groups is not None else None,
    )
    return test_config, timeout_s


def _config_values(config: ProjectTestConfig | None) -> dict[str, Any]:
    """The recipe fields the config sets (None: not set)."""
    if config is None:
        return {}
    return {
        "extra_requirements": list(config.extra_requirements or ()),
        "extras": list(config.extras) if config.extras is not None else None,
        "pytest_args": list(config.pytest_args or ()),
        "test_paths": list(config.test_paths or ()),
        "deselect": [str(marker) for marker in config.deselect or ()],
        "env": {str(k): str(v) for k, v in (config.env or {}).items()},
        "timeout_s": config.timeout_s if config.timeout_s != DEFAULT_TIMEOUT_S else None,
    }


def _repository_file_test(project: Project | None) -> dict[str, Any]:
    """The repository file's test table as the sync stored it, each value of the type the sync
    let through (anything else is left out: the row is JSON)."""
    stored = (project.repo_config or {}).get("test") if project is not None else None
    if not isinstance(stored, dict):
        return {}
    found: dict[str, Any] = {}
    for name in set(repo_config.TEST_KEYS) - {"env", "timeout_s"}:  # the lists of text
        value = stored.get(name)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            found[name] = list(value)
    env = stored.get("env")
    if isinstance(env, dict) and all(isinstance(v, str) for v in env.values()):
        found["env"] = {str(k): v for k, v in env.items()}
    timeout = stored.get("timeout_s")
    if type(timeout) is int and repo_config.MIN_TIMEOUT_S <= timeout <= MAX_CELL_TIMEOUT_S:
        found["timeout_s"] = timeout
    return found


def job_hash_of(
    *,
    project: Project | None,
    config: ProjectTestConfig | None,
    target: TorchTarget,
    source_url: str = "",
    ref: str = "",
) -> str:
    """SHA-256 of what the web side asks a runner for, less the cell's own fields: the source,
    the ref, the test config override and timeout, the target's version, variant, Python and
    wheel sources. Recorded on every cell (`CompatCell.job_hash`): the recipe itself is
    discovered from the repository at the commit, so an unchanged commit and job hash mean an
    unchanged recipe, and a changed override or target forces a re-run (`night_plan`).
    `config` is the project's test config (None: none), passed in so that bulk callers read
    the configs once."""
    job = _job_of(project=project, config=config, target=target, source_url=source_url, ref=ref)
    fields = job.to_dict()
    for per_cell in ("cell_id", "cell_token", "attempt"):
        fields.pop(per_cell, None)
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def cache_scope_of(project: Project | None) -> str | None:
    """Who shares a torch.compile cache: a registry project's cells (one key per project, stable
    across runs); an applicant's repository (no project) gets a fresh cache every time."""
    return f"project-{project.pk}" if project is not None else None


def cells_publish_on_commit(*, cell_ids: list[int]) -> None:
    """Publish the cells' jobs to their runner queues once the transaction commits."""
    if not cell_ids:
        return

    def publish() -> None:
        messages = _messages_for(cell_ids)
        try:
            broker.publish_cells(messages)
        except Exception:  # the reaper re-sends cells that never reached a runner
            logger.exception("publishing %d cells failed; the reaper will retry", len(cell_ids))

    transaction.on_commit(publish)


def _messages_for(cell_ids: list[int]) -> Iterable[broker.CellMessage]:
    for start in range(0, len(cell_ids), CHUNK):
        cells = (
            CompatCell.objects.filter(pk__in=cell_ids[start : start + CHUNK])
            .select_related("target", "run__project__test_config")
            .order_by("pk")
        )
        for cell in cells:
            if cell.state != CellState.QUEUED:
                continue
            job = _job_for(cell=cell)
            yield broker.CellMessage(
                cell_id=cell.pk,
                token=str(cell.token),
                attempt=cell.attempt,
                task_id=cell.task_id,
                queue=cell.queue,
                job=job.to_dict(),
                timeout_s=job.timeout_s,
            )


def cells_dispatch_waiting(*, project_ids: Sequence[int] = (), run: CompatRun | None = None) -> int:
    """Send the waiting cells of these projects as far as each one's concurrency limit allows.

    Runs inside the caller's transaction; the project rows are locked so that two workers
    finishing cells of one project at once cannot both fill the same slot.
    """
    chosen: list[int] = []
    ids = sorted(set(project_ids))
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        list(Project.objects.select_for_update().filter(pk__in=part).values_list("pk"))
        limits = dict(
            ProjectTestConfig.objects.filter(project_id__in=part).values_list(
                "project_id", "max_concurrent"
            )
        )
        active = dict(
            CompatCell.objects.filter(
                project_id__in=part, state__in=ACTIVE_STATES, dispatched_at__isnull=False
            )
            .values("project_id")
            .annotate(n=Count("id"))
            .values_list("project_id", "n")
        )
        free = {
            pid: limits.get(pid, settings.COMPAT_DEFAULT_MAX_CONCURRENT) - active.get(pid, 0)
            for pid in part
        }
        waiting = CompatCell.objects.filter(
            project_id__in=part, state=CellState.QUEUED, dispatched_at__isnull=True
        ).order_by("project_id", "pk")
        for cell_id, project_id in waiting.values_list("pk", "project_id"):
            if free[project_id] > 0:
                free[project_id] -= 1
                chosen.append(cell_id)
    if run is not None and run.project_id is None:
        chosen += list(
            run.cells.filter(state=CellState.QUEUED, dispatched_at__isnull=True).values_list(
                "pk", flat=True
            )
        )
    _mark_dispatched(chosen)
    return len(chosen)


def _mark_dispatched(cell_ids: list[int]) -> None:
    if not cell_ids:
        return
    now = timezone.now()
    for start in range(0, len(cell_ids), CHUNK):
        part = cell_ids[start : start + CHUNK]
        # task_id is `contracts.cell_task_id`, built in SQL: one UPDATE per chunk keeps 40k
        # cells fast.
        CompatCell.objects.filter(pk__in=part).update(
            dispatched_at=now,
            task_id=Concat(
                Value(contracts.CELL_TASK_ID_PREFIX),
                Cast(F("id"), CharField()),
                Value("-"),
                Replace(Cast(F("token"), CharField()), Value("-"), Value("")),
                Value("-"),
                Cast(F("attempt"), CharField()),
                output_field=CharField(),
            ),
        )
    cells_publish_on_commit(cell_ids=cell_ids)
