"""Benchmark: a burst of parallel requests against the web as the Procfile runs it; prints JSON.

    .venv/bin/python bench/web_burst.py [--requests 400] [--workers 2]

The real landscape is imported into a scratch database; uvicorn serves `config.asgi` with the
Procfile's `web` options. Figures: the web's database connections (tagged with their
application_name) at peak during the burst and once it is over, the 5xx count (must be 0),
and the burst's wall time and latency percentiles.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scratch import ROOT, django_on_scratch_database  # noqa: E402

SCRATCH_DB = "eco_web_burst_bench"
APPLICATION = "ecoreg-web-burst-bench"
PATHS = ["/", "/projects/vllm/", "/runs/", "/api/v1/projects/", "/badges/vllm/compat.svg"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def procfile_web_line() -> str:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return next(line.split(": ", 1)[1] for line in lines if line.startswith("web: "))


def connections() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION]
        )
        return cursor.fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    django_on_scratch_database(SCRATCH_DB)
    from django.core.management import call_command

    call_command(
        "import_landscape", str(ROOT / "data" / "pytorch-landscape.yml"), stdout=io.StringIO()
    )
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "0",
        "DATABASE_URL": f"{os.environ['DATABASE_URL']}?application_name={APPLICATION}",
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
        "WEB_CONCURRENCY": str(args.workers),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    # As honcho runs it: the Procfile's line through a shell, options and all.
    web = subprocess.Popen(
        ["sh", "-c", f"exec {procfile_web_line()}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                requests.get(base + "/healthz", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        for path in PATHS:  # warm each worker's caches a little
            requests.get(base + path, timeout=30)
        figures = burst(base=base, total=args.requests)
    finally:
        web.terminate()
        web.wait(timeout=20)
    print(json.dumps({"requests": args.requests, "web_workers": args.workers, **figures}))


def burst(*, base: str, total: int) -> dict:
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, connections())
            time.sleep(0.005)

    def get(index: int) -> tuple[int, float]:
        started = time.perf_counter()
        try:
            status = requests.get(base + PATHS[index % len(PATHS)], timeout=120).status_code
        except requests.RequestException:
            status = 0
        return status, time.perf_counter() - started

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=total) as pool:
        replies = list(pool.map(get, range(total)))
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    time.sleep(1)
    latencies = sorted(latency for _, latency in replies)
    return {
        "status_5xx": sum(1 for status, _ in replies if status >= 500),
        "failed_connections": sum(1 for status, _ in replies if status == 0),
        "status_200": sum(1 for status, _ in replies if status == 200),
        "db_connections_peak": peak,
        "db_connections_after": connections(),
        "burst_s": round(wall, 2),
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 1),
        "latency_ms_p95": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 1),
    }


if __name__ == "__main__":
    main()
