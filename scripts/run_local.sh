#!/usr/bin/env bash
# `make run`: migrate, load the real landscape and the demo, then web + worker + results + beat +
# runner.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.local}"
mkdir -p var
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"

redis_answers() { python - "$1" <<'PY'
import sys, redis
try:
    redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
except Exception:
    sys.exit(1)
PY
}

if ! redis_answers "$REDIS_URL"; then
  # On a bare Debian/Ubuntu machine (as root) install it the way `make test` installs its
  # system packages; elsewhere system_deps.sh says what to install.
  command -v redis-server >/dev/null 2>&1 || bash scripts/system_deps.sh redis-server || true
  if command -v redis-server >/dev/null 2>&1; then
    port=6399
    echo "No Redis answers at $REDIS_URL: starting a private redis-server on 127.0.0.1:$port (var/redis)."
    mkdir -p var/redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
      --dir "$PWD/var/redis" --pidfile "$PWD/var/redis/redis.pid" --logfile "$PWD/var/redis/redis.log"
    trap 'kill "$(cat var/redis/redis.pid)" 2>/dev/null || true' EXIT
    export REDIS_URL="redis://127.0.0.1:$port/0"
    for _ in $(seq 1 20); do redis_answers "$REDIS_URL" && break; sleep 0.25; done
  else
    echo "No Redis answers at $REDIS_URL and redis-server is not installed." >&2
    echo "Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)" >&2
    echo "or point REDIS_URL at a running Redis." >&2
    exit 1
  fi
fi

export AGENT_BROKER_URL="$REDIS_URL"
export AGENT_WORK_ROOT="${AGENT_WORK_ROOT:-/tmp/ecosystem-registry-agent}"
bash scripts/system_deps.sh bubblewrap || echo "Without bubblewrap the runner refuses to run test suites (cells end 'errored')." >&2

# Per-job process and memory limits: cgroup v1 as root, or a delegated cgroup v2 subtree. On a
# cgroup v2 laptop, a systemd user scope with Delegate=yes gives one; failing that, the local
# demo runs without limits, and says so (production never sets AGENT_ALLOW_UNLIMITED silently).
run_prefix=()
why_no_limits="$(python -c 'from ci_runners.agent import sandbox; print(sandbox.cgroups_usable() or "")')"
if [ -n "$why_no_limits" ]; then
  if command -v systemd-run >/dev/null 2>&1 \
      && systemd-run --user --scope -p Delegate=yes --quiet true >/dev/null 2>&1; then
    echo "Per-job limits: the processes run in a delegated systemd user scope (cgroup v2)."
    run_prefix=(systemd-run --user --scope -p Delegate=yes --quiet --)
  else
    echo "WARNING: no per-job limits here ($why_no_limits)." >&2
    echo "WARNING: local runs are NOT isolated by process and memory limits (AGENT_ALLOW_UNLIMITED=1, this demo only)." >&2
    export AGENT_ALLOW_UNLIMITED=1
  fi
fi

python manage.py migrate --noinput
python manage.py import_landscape data/pytorch-landscape.yml
python manage.py setup_demo
echo
echo "Ecosystem Registry: http://127.0.0.1:${WEB_PORT:-8000}  (Ctrl-C stops web, worker, results, beat and runner)"
# honcho gives every process a PORT of its own; the web port is WEB_PORT (default 8000).
"${run_prefix[@]}" honcho start -f Procfile web worker results beat runner
