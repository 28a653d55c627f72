"""Benchmark: the public pages in headless Chromium, as a first-time visitor loads them; prints
one JSON line.

    .venv/bin/python bench/pages.py [--rounds 5]

The real landscape (143 projects and their logos) is imported into a scratch database, with a
year of GitHub history for every active project and compatibility results on two PyTorch
versions for a third of them; static files are collected as a deployment does, and uvicorn
serves `config.asgi` with the Procfile's `web` options. Each page is loaded `--rounds` times in
a fresh browser context (a cold cache) and measured by the browser itself: `*_load_ms` is
Navigation Timing's loadEventEnd (median of the rounds), `*_bytes` the bytes transferred for
the document and every resource (Resource Timing transferSize, headers included) once the
network is idle, `*_requests` their number. Targets: the default landscape under 1.5 s and
2 MB, the "all" view under 2.5 s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scratch import ROOT, django_on_scratch_database  # noqa: E402
from web_burst import free_port, procfile_web_line  # noqa: E402

SCRATCH_DB = "eco_pages_bench"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PAGES = {
    "landscape": "/",
    "landscape_all": "/?status=all",
    "project": "/projects/vllm/",
    "runs": "/runs/",
}
TARGETS = {"landscape_load_ms": 1500, "landscape_bytes": 2_000_000, "landscape_all_load_ms": 2500}
MEASURE = """() => {
  const navigation = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  return {
    load_ms: navigation.loadEventEnd - navigation.startTime,
    bytes: navigation.transferSize + resources.reduce((sum, r) => sum + r.transferSize, 0),
    requests: 1 + resources.length,
    images: document.images.length,
    images_loaded: [...document.images].filter((img) => img.complete && img.naturalWidth).length,
  };
}"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    django_on_scratch_database(SCRATCH_DB)
    fill()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "0",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    port = free_port()
    web = subprocess.Popen(
        ["sh", "-c", f"exec {procfile_web_line()}"],
        cwd=ROOT,
        env={**env, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port), "WEB_CONCURRENCY": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base)
        for path in PAGES.values():  # each worker's first requests load templates and code
            for _ in range(4):
                requests.get(base + path, timeout=30).raise_for_status()
        figures = measure(base=base, rounds=args.rounds)
    finally:
        web.terminate()
        web.wait(timeout=20)
    figures["targets_met"] = all(figures[name] < limit for name, limit in TARGETS.items())
    print(json.dumps(figures))


def fill() -> None:
    """The real landscape; a year of weekly GitHub snapshots per active project; results on two
    PyTorch versions for every third active project (every fifth of them failing the newest)."""
    from django.core.management import call_command
    from django.utils import timezone

    from ci_runners.models import CompatCell, CompatRun, CompatStatus, TorchTarget
    from registry.models import Project, RepoSnapshot
    from registry.services import project_set_compat_summary

    call_command(
        "import_landscape", str(ROOT / "data" / "pytorch-landscape.yml"), stdout=io.StringIO()
    )
    now = timezone.now()
    active = list(Project.objects.filter(status="active").order_by("pk"))
    RepoSnapshot.objects.bulk_create(
        [
            RepoSnapshot(
                project=project,
                taken_at=now - timedelta(weeks=week),
                checked_at=now - timedelta(weeks=week),
                stars=1000 + 37 * project.pk + 20 * (52 - week),
                commits_90d=30 + (project.pk * 7 + week * 3) % 90,
                contributors_90d=5 + (project.pk + week) % 20,
                latest_release=f"v1.{(52 - week) // 8}.0",
                latest_release_at=now - timedelta(weeks=week - week % 8),
                license_spdx="Apache-2.0",
                has_license=True,
                has_readme=True,
            )
            for project in active
            for week in range(52, -1, -1)
        ],
        batch_size=2000,
    )
    targets = [
        TorchTarget.objects.create(version="2.13.0", variant="cpu", active=True),
        TorchTarget.objects.create(version="2.14.1", variant="", active=True),
    ]
    tested = active[::3]
    runs = CompatRun.objects.bulk_create(
        [CompatRun(project=project, trigger="schedule", finished_at=now) for project in tested]
    )
    cells, statuses = [], []
    for index, run in enumerate(runs):
        for target in targets:
            failing = target.version == "2.14.1" and index % 5 == 0
            cells.append(
                CompatCell(
                    run=run,
                    target=target,
                    project_id=run.project_id,
                    state="failed" if failing else "passed",
                    finished_at=now,
                )
            )
    CompatCell.objects.bulk_create(cells)
    for cell in cells:
        statuses.append(
            CompatStatus(
                project_id=cell.project_id,
                target=cell.target,
                latest_cell=cell,
                last_final_cell=cell,
            )
        )
    CompatStatus.objects.bulk_create(statuses)
    for index, project in enumerate(tested):
        failing = index % 5 == 0
        project_set_compat_summary(  # as the runners' results do (it drops cached badges too)
            project=project,
            works_with=["2.13.0"] if failing else ["2.13.0", "2.14.1"],
            breaks_with=["2.14.1"] if failing else [],
        )


def wait_until_up(base: str) -> None:
    for _ in range(600):
        try:
            requests.get(base + "/healthz", timeout=5)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("the web did not start")


def measure(*, base: str, rounds: int) -> dict:
    from playwright.sync_api import sync_playwright

    samples: dict[str, list[dict]] = {name: [] for name in PAGES}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(rounds):
                for name, path in PAGES.items():
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    context.add_init_script("performance.setResourceTimingBufferSize(2000)")
                    page = context.new_page()
                    page.goto(base + path, wait_until="load")
                    page.wait_for_load_state("networkidle")
                    samples[name].append(page.evaluate(MEASURE))
                    context.close()
        finally:
            browser.close()
    figures: dict = {"rounds": rounds}
    for name, runs in samples.items():
        figures[f"{name}_load_ms"] = round(statistics.median(r["load_ms"] for r in runs), 1)
        figures[f"{name}_load_ms_max"] = round(max(r["load_ms"] for r in runs), 1)
        figures[f"{name}_bytes"] = max(r["bytes"] for r in runs)
        figures[f"{name}_requests"] = max(r["requests"] for r in runs)
        figures[f"{name}_images_loaded"] = min(r["images_loaded"] for r in runs)
    return figures


if __name__ == "__main__":
    main()
