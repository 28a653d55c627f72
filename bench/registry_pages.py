"""Benchmark: landscape and project pages at 200 and 10,000 projects (query counts, latency).

Prints one JSON object. Query counts must not grow with the number of projects.
Run: .venv/bin/python bench/registry_pages.py
"""

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scratch import django_on_scratch_database  # noqa: E402

SIZES = [200, 10_000]
ROUNDS = 30


def fill(total: int) -> None:
    from django.utils import timezone

    from registry.models import Category, Project, RepoSnapshot

    root, _ = Category.objects.get_or_create(name="Bench", parent=None, defaults={"slug": "bench"})
    subs = [
        Category.objects.get_or_create(
            name=f"Sub {i}", parent=root, defaults={"slug": f"bench-sub-{i}"}
        )[0]
        for i in range(10)
    ]
    start = Project.objects.count()
    now = timezone.now()
    projects = [
        Project(
            slug=f"project-{i}",
            name=f"Project {i:05d}",
            category=subs[i % 10],
            description="A benchmark project. " * 5,
            repo_owner=f"owner{i}",
            repo_name="repo",
            status="retired" if i % 7 == 0 else "active",
        )
        for i in range(start, total)
    ]
    Project.objects.bulk_create(projects, batch_size=2000)
    snapshots = [
        RepoSnapshot(
            project=p,
            taken_at=now - timezone.timedelta(days=d),
            checked_at=now,
            stars=100 + d,
            commits_90d=d,
        )
        for p in Project.objects.filter(slug__in=[p.slug for p in projects])
        for d in (0, 1)
    ]
    RepoSnapshot.objects.bulk_create(snapshots, batch_size=5000)


def measure(path: str) -> tuple[int, float]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    query_count = len(queries)  # read now: the next requests reset the connection's log
    timings = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
    return query_count, statistics.median(timings)


def main() -> None:
    django_on_scratch_database("eco_bench_registry")
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    results = {"landscape_queries": {}, "project_queries": {}}
    for size in SIZES:
        fill(size)
        landscape_q, landscape_ms = measure("/?q=Project&category=bench")
        project_q, project_ms = measure(f"/projects/project-{size // 2 + 1}/")
        results["landscape_queries"][str(size)] = landscape_q
        results["project_queries"][str(size)] = project_q
        results[f"landscape_ms_p50_{size}"] = round(landscape_ms, 2)
        results[f"project_ms_p50_{size}"] = round(project_ms, 2)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
