"""Badge throughput: the production ASGI service against nginx serving a static file.

Starts the service as production runs it (config.asgi under uvicorn, production settings, a
scratch database), fills a few projects, and measures with wrk (64 connections, 2 threads):
the compat SVG badge warm, the same with If-None-Match (304), and a private nginx serving a
static SVG of the same size. Prints one JSON object.

    .venv/bin/python bench/badges.py   [env: BENCH_DATABASE_URL, CACHE_URL, BENCH_SECONDS]
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WORKERS = int(os.environ.get("BENCH_WORKERS", str(os.cpu_count() or 2)))
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/eco_bench_badges"
)
SERVICE_ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": "bench-only-" + os.urandom(16).hex(),
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    "DATABASE_URL": DATABASE_URL,
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "CACHE_URL": os.environ.get("CACHE_URL", "redis://127.0.0.1:6379/1"),
    "LOG_LEVEL": "WARNING",
}

# The production command (Procfile / docker-compose `web`), with the port and worker count.
SERVICE_COMMAND = [
    PYTHON, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", "{port}",
    "--workers", "{workers}", "--loop", "uvloop", "--http", "h11",
    "--h11-max-incomplete-event-size", "65536", "--no-access-log",
]  # fmt: skip

NGINX_CONF = """
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ image/svg+xml svg; }}
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/www;
        location / {{ add_header Cache-Control "max-age=300"; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=5).read()  # noqa: S310 (local URL)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def run_django(code: str) -> str:
    return subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=SERVICE_ENV,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def prepare_database() -> None:
    name = DATABASE_URL.rsplit("/", 1)[1]
    admin_url = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=SERVICE_ENV,
        check=True,
    )
    run_django(
        "from registry import services\n"
        "from registry.models import Project\n"
        "for n in range(20):\n"
        "    p = Project.objects.create(slug=f'project-{n}', name=f'Project {n}')\n"
        "    services.project_set_compat_summary(project=p, works_with=['2.13', '2.14'],"
        " breaks_with=[])\n"
        "    services.project_set_review_state(project=p, review_state='accepted')\n"
    )


def wrk(url: str, headers: list[str] | None = None) -> dict:
    command = ["wrk", "-t2", "-c64", f"-d{SECONDS}s", "--latency", url]
    for header in headers or []:
        command[1:1] = ["-H", header]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    return {
        "rps": rps,
        "p99_ms": round(float(p99.group(1)) * scale, 2),
        "non_2xx_3xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
    }


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    prepare_database()
    port = free_port()
    command = [part.format(port=port, workers=WORKERS) for part in SERVICE_COMMAND]
    service = subprocess.Popen(command, cwd=ROOT, env=SERVICE_ENV, stdout=subprocess.DEVNULL)
    prefix = Path(tempfile.mkdtemp(prefix="bench-badges-nginx-"))
    nginx = None
    try:
        badge_url = f"http://127.0.0.1:{port}/badges/project-3/compat.svg"
        wait_for(badge_url)
        with urllib.request.urlopen(badge_url, timeout=5) as response:  # noqa: S310
            body, etag = response.read(), response.headers["ETag"]
        results = {
            "badge": wrk(badge_url),
            "badge_304": wrk(badge_url, [f"If-None-Match: {etag}"]),
        }
        prefix.chmod(0o755)  # nginx workers drop root privileges: let them read the file
        (prefix / "www").mkdir(mode=0o755)
        (prefix / "www" / "compat.svg").write_bytes(body)
        nginx_port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(workers=WORKERS, prefix=prefix, port=nginx_port))
        nginx = subprocess.Popen(
            ["/usr/sbin/nginx", "-p", str(prefix), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        static_url = f"http://127.0.0.1:{nginx_port}/compat.svg"
        wait_for(static_url)
        results["nginx_static"] = wrk(static_url)
    finally:
        stop(service)
        if nginx is not None:
            stop(nginx)
        shutil.rmtree(prefix, ignore_errors=True)
    print(
        json.dumps(
            {
                "badge_rps": results["badge"]["rps"],
                "badge_p99_ms": results["badge"]["p99_ms"],
                "badge_304_rps": results["badge_304"]["rps"],
                "badge_304_p99_ms": results["badge_304"]["p99_ms"],
                "nginx_static_rps": results["nginx_static"]["rps"],
                "nginx_static_p99_ms": results["nginx_static"]["p99_ms"],
                "ratio_to_nginx": round(
                    results["badge"]["rps"] / results["nginx_static"]["rps"], 3
                ),
                "badge_bytes": len(body),
                "workers": WORKERS,
                "connections": 64,
                "seconds_each": SECONDS,
                "errors": {name: r["non_2xx_3xx"] for name, r in results.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
