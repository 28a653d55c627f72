"""Benchmark of the compatibility fleet; prints JSON.

    .venv/bin/python bench/compat_fleet.py [--projects 10000] [--skip-warm-cell]

Uses a scratch PostgreSQL database (dropped and re-created) and a private redis-server with no
consumer, so nothing else is disturbed:
- enqueue_cells_per_s: cells created and dispatched (bulk insert + batched publish) for
  N projects x 4 targets;
- record_results_per_s: results recorded through the recording service;
- cell_overhead_warm_s: a warm cell's wall time from request to recorded result, minus the
  tests' own time, through a real web-side worker, a real agent, Celery and Redis;
- matrix_page_queries: queries of the global matrix page at 100 and N projects.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRATCH_DB = "eco_compat_bench"
PG = "postgres://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=10000)
    parser.add_argument("--skip-warm-cell", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ecoreg-bench-"))
    tmp.chmod(0o755)
    port = free_port()
    redis_proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
    )
    broker_url = f"redis://127.0.0.1:{port}/0"
    subprocess.run(
        ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", SCRATCH_DB], check=True
    )
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", SCRATCH_DB], check=True)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": f"{PG}/{SCRATCH_DB}",
            "CELERY_BROKER_URL": broker_url,
            "MEDIA_ROOT": str(tmp / "media"),
        }
    )
    sys.path.insert(0, str(ROOT))
    workers: list[subprocess.Popen] = []
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        figures = run(args=args, broker_url=broker_url, tmp=tmp, workers=workers)
        print(json.dumps(figures))
    finally:
        for worker in workers:
            try:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(worker.pid, signal.SIGKILL)
        redis_proc.terminate()
        redis_proc.wait()
        from django.db import connections

        connections.close_all()
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", SCRATCH_DB])
        shutil.rmtree(tmp, ignore_errors=True)


def run(*, args, broker_url: str, tmp: Path, workers: list) -> dict:
    import redis
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    from ci_runners import services
    from ci_runners.agent.contracts import CellState, Result
    from ci_runners.models import CompatCell, TorchTarget
    from registry.models import Project

    setup_test_environment()
    client = Client()
    targets = [
        TorchTarget.objects.create(version=v, variant=var, active=True)
        for v, var in (("2.11.0", "cpu"), ("2.12.0", "cpu"), ("2.13.0", "cpu"), ("2.14.1", ""))
    ]

    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/runs/").status_code == 200
            assert (
                client.get("/runs/", {"target": targets[3].pk, "state": "queued"}).status_code
                == 200
            )
        return len(queries)

    first = Project.objects.bulk_create(
        [
            Project(slug=f"bench-{i}", name=f"Bench {i:05d}", repo_owner="bench", repo_name=f"r{i}")
            for i in range(100)
        ]
    )
    services.compat_runs_request_for_projects(projects=first, targets=targets, trigger="schedule")
    queries_100 = page_queries()

    rest = Project.objects.bulk_create(
        [
            Project(slug=f"bench-{i}", name=f"Bench {i:05d}", repo_owner="bench", repo_name=f"r{i}")
            for i in range(100, args.projects)
        ],
        batch_size=5000,
    )
    client_redis = redis.Redis.from_url(broker_url)
    client_redis.flushall()
    projects = first + rest
    started = time.perf_counter()
    cells = services.compat_runs_request_for_projects(
        projects=projects, targets=targets, trigger="schedule"
    )
    enqueue_s = time.perf_counter() - started
    queued = client_redis.llen("runner.cpu")
    queries_n = page_queries()

    sample = list(
        CompatCell.objects.filter(state="queued").order_by("pk").values_list("pk", "attempt")[:2000]
    )
    payload = Result(state=CellState.PASSED, counts={"passed": 10, "failed": 0}).to_dict()
    started = time.perf_counter()
    for cell_id, attempt in sample:
        services.cell_record_result(
            cell_id=cell_id, attempt=attempt, runner="bench", result=payload, log="log\n"
        )
    record_s = time.perf_counter() - started

    figures = {
        "enqueue_cells_per_s": round(cells / enqueue_s, 1),
        "enqueue_cells": cells,
        "enqueue_s": round(enqueue_s, 2),
        "messages_in_broker": queued,
        "record_results_per_s": round(len(sample) / record_s, 1),
        "cell_overhead_warm_s": None,
        "matrix_page_queries": {"100": queries_100, str(args.projects): queries_n},
    }
    if not args.skip_warm_cell:
        figures.update(warm_cell(broker_url=broker_url, tmp=tmp, workers=workers))
    return figures


def warm_cell(*, broker_url: str, tmp: Path, workers: list) -> dict:
    """Request -> recorded result of a warm cell through real workers, minus the tests' time."""
    import redis

    from ci_runners import services
    from ci_runners.management.commands.demo_compat import PROJECTS, make_repo
    from ci_runners.models import ProjectTestConfig, TorchTarget
    from registry.models import Project

    redis.Redis.from_url(broker_url).flushall()
    work = tmp / "work"
    work.mkdir(mode=0o755)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for command, extra in (
        (["-A", "config", "worker", "-Q", "default", "-c", "1", "-n", "web@%h"], {}),
        (["-A", "config", "worker", "-Q", "results", "-c", "1", "-n", "results@%h"], {}),
        (
            ["-A", "ci_runners.agent", "worker", "-Q", "runner.cpu", "-c", "1", "-n", "agent@%h"],
            {
                "AGENT_BROKER_URL": broker_url,
                "AGENT_NAME": "bench-agent",
                "AGENT_WORK_ROOT": str(work),
                "AGENT_PROGRESS_S": "1",
            },
        ),
    ):
        log = open(tmp / f"{command[1]}.log", "ab")  # noqa: SIM115
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", *command, "--without-mingle", "--without-gossip"],
                cwd=ROOT,
                env={**env, **extra},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    repo = make_repo(root=tmp / "repos", slug="tinytorch-ops", spec=PROJECTS["tinytorch-ops"])
    project = Project.objects.create(slug="warm-demo", name="Warm demo")
    ProjectTestConfig.objects.create(project=project, source_override=str(repo), timeout_s=300)
    target = TorchTarget.objects.get(version="2.13.0")
    overheads, walls = [], []
    for _ in range(3):  # the first one may still warm caches; report the best of the rest
        started = time.perf_counter()
        run = services.compat_run_request(project=project, targets=[target], trigger="manual")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.finished_at:
                break
            time.sleep(0.05)
        wall = time.perf_counter() - started
        cell = run.cells.get()
        assert cell.state == "passed", cell.error
        walls.append(round(wall, 2))
        overheads.append(round(wall - cell.timings["tests_s"], 2))
    return {
        "cell_overhead_warm_s": min(overheads[1:]),
        "cell_wall_warm_s": walls,
        "cell_overheads_s": overheads,
    }


if __name__ == "__main__":
    main()
