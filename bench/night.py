"""Night simulation at foundation scale; prints JSON (its last line is one JSON object).

    .venv/bin/python bench/night.py [--projects 10000] [--changed-share 0.05]

10,000 projects x 4 targets against a scratch PostgreSQL database, a private redis-server,
the real results worker (`celery -A config worker -Q results`, as the Procfile starts it) and
a stand-in runner (`bench/standin_runner.py`) that answers each cell at once through the
broker as an agent would. Nothing is faked between the broker and the database.

- Night 1 (every cell runs): plan_s (the night plan alone), enqueue_s and enqueue_cells_per_s
  (plan, cells created and published); the stand-in runner answers every cell, then the
  results worker starts on that backlog: record_results_per_s (results committed per
  second by the results worker, from the first recorded result to the last: end to end,
  through the broker), complete_matrix_s (from the night's start to every cell final);
- Night 2, after `--changed-share` of the projects pushed (their sync data says so, and
  `git ls-remote` finds a new commit): the share of planned cells dispatched
  (`changed_share_dispatched`), the rest carried; here the runner and the results worker
  run while the night is made;
- peak_rss_mb of each process (the bench process plans and enqueues; the results worker's
  main process and its pool processes; the stand-in runner);
- matrix_page_queries of the global matrix page with 100 and with all projects.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from _scratch import ROOT, django_on_scratch_database

SCRATCH_DB = "eco_bench_night"
VERSIONS = (("2.11.0", "cpu"), ("2.12.0", "cpu"), ("2.13.0", "cpu"), ("2.14.1", "cpu"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    """The high-water mark of a process's resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def group_peaks(pid: int) -> dict[str, float]:
    """Peak RSS of a process and of each of its children (a Celery worker and its pool)."""
    peaks = {"main": peak_rss_mb(pid)}
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for index, child in enumerate(children):
        peaks[f"pool_{index}"] = peak_rss_mb(int(child))
    return peaks


class Fleet:
    """The results worker and stand-in runners as real processes."""

    def __init__(self, *, tmp: Path, broker_url: str) -> None:
        self.tmp, self.broker_url = tmp, broker_url
        self.env = {**os.environ, "CELERY_BROKER_URL": broker_url, "PYTHONUNBUFFERED": "1"}
        self.processes: list[subprocess.Popen] = []

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def results_worker(self) -> subprocess.Popen:
        concurrency = os.environ.get("RESULTS_CONCURRENCY", "2")
        return self.start(
            "results",
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "results",
             "--concurrency", concurrency, "--without-mingle", "--without-gossip",
             "-n", "results@%h", "--loglevel=WARNING"],
        )  # fmt: skip

    def standin_runner(self, cells: int) -> subprocess.Popen:
        return self.start(
            "runner",
            [sys.executable, str(ROOT / "bench" / "standin_runner.py"),
             "--broker", self.broker_url, "--cells", str(cells)],
        )  # fmt: skip

    def stop(self) -> None:
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
            except ProcessLookupError:
                continue  # gone already
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)


def seed(*, count: int, start: int = 0):
    """Projects with fresh sync data whose last push predates the first night."""
    from django.utils import timezone

    from registry.models import Project, RepoSnapshot

    now = timezone.now()
    projects = Project.objects.bulk_create(
        [
            Project(slug=f"night-{i}", name=f"Night {i:05d}", repo_owner="bench",
                    repo_name=f"r{i}")
            for i in range(start, start + count)
        ],
        batch_size=5000,
    )  # fmt: skip
    RepoSnapshot.objects.bulk_create(
        [
            RepoSnapshot(project=project, taken_at=now, checked_at=now,
                         pushed_at=now - timedelta(days=2), default_branch="main")
            for project in projects
        ],
        batch_size=5000,
    )  # fmt: skip
    return projects


def log(message: str) -> None:
    print(f"[night {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def push_new_commits(*, changed: list, root: Path) -> None:
    """The changed projects' repositories, each with a commit the last night did not test,
    served from local directories: git is told (through its environment) that the GitHub
    URLs the registry asks `git ls-remote` about live there."""
    template = root / "template"
    subprocess.run(["git", "init", "-q", "-b", "main", str(template)], check=True)
    (template / "README").write_text("changed\n")
    git = ["git", "-C", str(template), "-c", "user.name=b", "-c", "user.email=b@example.org"]
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "push"], check=True)
    for project in changed:
        shutil.copytree(template, root / project.repo_owner / project.repo_name)
    os.environ.update(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"url.{root}/.insteadOf",
            "GIT_CONFIG_VALUE_0": "https://github.com/",
        }
    )


def wait_until_final(*, since_pk: int, expected: int, timeout_s: float = 1800) -> float:
    """Seconds until `expected` cells made after `since_pk` are final."""
    from ci_runners.models import CompatCell
    from ci_runners.states import FINAL_STATES

    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = CompatCell.objects.filter(pk__gt=since_pk, state__in=FINAL_STATES).count()
        if done >= expected:
            return time.perf_counter() - started
        time.sleep(0.5)
    raise SystemExit(f"the matrix was not complete after {timeout_s} s")


def record_rate(*, since_pk: int) -> float:
    """Results committed per second, from the first result recorded to the last."""
    from django.db.models import Count, Max, Min

    from ci_runners.models import CellResult

    figures = CellResult.objects.filter(cell_id__gt=since_pk).aggregate(
        first=Min("received_at"), last=Max("received_at"), count=Count("pk")
    )
    span = (figures["last"] - figures["first"]).total_seconds()
    return round((figures["count"] - 1) / span, 1) if span > 0 else 0.0


def night(*, fleet: Fleet, slot: str, expected_cells: int, backlog: bool = False) -> dict:
    """One night: plan, enqueue, the stand-in runner answering the dispatched cells, and the
    results worker recording them until the matrix is complete. `backlog`: the results worker
    starts only once every result is in the broker, so it records at full speed (the runner
    and the enqueue do not share the two cores with it)."""
    from ci_runners.models import CompatCell, TorchTarget
    from ci_runners.services import projects_to_run
    from ci_runners.services.night_plan import night_plan
    from ci_runners.services.releases import night_start

    since = CompatCell.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    log(f"{slot}: planning")
    started = time.perf_counter()
    plan = night_plan(
        projects=projects_to_run(), targets=list(TorchTarget.objects.filter(active=True))
    )
    plan_s = time.perf_counter() - started
    runner = fleet.standin_runner(plan.dispatched)
    log(f"{slot}: planned in {plan_s:.1f} s; starting")
    started = time.perf_counter()
    made = night_start(slot=slot)
    enqueue_s = time.perf_counter() - started
    assert made is not None and made.planned == expected_cells, made
    log(f"{slot}: {made.dispatched} cells dispatched, {made.carried} carried in {enqueue_s:.1f} s")
    if backlog:
        runner.wait(timeout=1800)
        log(f"{slot}: every result is in the broker; the results worker starts")
        fleet.results_worker()
    complete_s = time.perf_counter() - started
    complete_s += wait_until_final(since_pk=since, expected=made.planned)
    runner.wait(timeout=600)
    return {
        "plan_s": round(plan_s, 2),
        "enqueue_s": round(enqueue_s, 2),
        "enqueue_cells_per_s": round(made.planned / enqueue_s, 1),
        "planned": made.planned,
        "dispatched": made.dispatched,
        "carried": made.carried,
        "record_results_per_s": record_rate(since_pk=since) if made.dispatched > 1 else None,
        "complete_matrix_s": round(complete_s, 2),
    }


def matrix_page_queries() -> int:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert Client().get("/runs/").status_code == 200
    return len(queries)


def run(*, args, fleet: Fleet) -> dict:
    from django.test.utils import setup_test_environment
    from django.utils import timezone

    from ci_runners.models import TorchTarget
    from registry.models import RepoSnapshot

    setup_test_environment()
    for version, variant in VERSIONS:
        TorchTarget.objects.create(version=version, variant=variant, active=True)
    first = seed(count=100)
    queries_100 = matrix_page_queries()
    projects = first + seed(count=args.projects - 100, start=100)
    cells = len(projects) * len(VERSIONS)
    night_1 = night(fleet=fleet, slot="bench-night-1", expected_cells=cells, backlog=True)
    worker = fleet.processes[-1]
    log(f"night 1: {json.dumps(night_1)}")
    changed = projects[:: max(1, round(1 / args.changed_share))]
    RepoSnapshot.objects.filter(project__in=changed).update(pushed_at=timezone.now())
    push_new_commits(changed=changed, root=fleet.tmp / "repos")
    night_2 = night(fleet=fleet, slot="bench-night-2", expected_cells=cells)
    queries_n = matrix_page_queries()
    return {
        "projects": len(projects),
        "cells_per_night": cells,
        "plan_s": night_1["plan_s"],
        "enqueue_s": night_1["enqueue_s"],
        "enqueue_cells_per_s": night_1["enqueue_cells_per_s"],
        "record_results_per_s": night_1["record_results_per_s"],
        "complete_matrix_s": night_1["complete_matrix_s"],
        "changed_projects": len(changed),
        "changed_share_dispatched": round(night_2["dispatched"] / night_2["planned"], 4),
        "night_2": night_2,
        "peak_rss_mb": {
            "bench_plan_and_enqueue": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
            ),
            "results_worker": group_peaks(worker.pid),
            # The runners have exited and been waited for; the results worker has not.
            "standin_runner": round(
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
            ),
        },
        "matrix_page_queries": {"100": queries_100, str(len(projects)): queries_n},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=10000)
    parser.add_argument("--changed-share", type=float, default=0.05)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ecoreg-night-"))
    port = free_port()
    redis_proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(tmp)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    broker_url = f"redis://127.0.0.1:{port}/0"
    os.environ.update({"CELERY_BROKER_URL": broker_url, "MEDIA_ROOT": str(tmp / "media")})
    fleet = Fleet(tmp=tmp, broker_url=broker_url)
    try:
        django_on_scratch_database(SCRATCH_DB)
        fleet.env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        fleet.env["DJANGO_SETTINGS_MODULE"] = os.environ["DJANGO_SETTINGS_MODULE"]
        figures = run(args=args, fleet=fleet)
        print(json.dumps(figures))
    finally:
        fleet.stop()
        redis_proc.terminate()
        redis_proc.wait()
        from django.db import connections

        connections.close_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
