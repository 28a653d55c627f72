"""The deployment files agree with each other: docker-compose runs the Procfile's commands."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_services_run_the_procfile_commands():
    processes, services = procfile(), compose()["services"]
    assert set(processes) == {"release", "web", "worker", "results", "beat", "runner"}
    # Compose runs each Procfile line through a shell in the container, so that ${VAR:-default}
    # is read from the container's environment ($$ keeps compose from substituting it).
    for service, role in [
        ("web", "web"),
        ("worker", "worker"),
        ("results", "results"),
        ("beat", "beat"),
        ("runner", "runner"),
        ("migrate", "release"),
    ]:
        shell, flag, line = services[service]["command"]
        assert (shell, flag) == ("sh", "-c"), service
        assert line.replace("$$", "$") == processes[role], service


def test_compose_describes_the_real_deployment():
    services = compose()["services"]
    assert {"postgres", "redis", "web", "worker", "results", "beat", "runner"} <= set(services)
    for name in ["postgres", "redis", "web", "worker", "results", "beat", "runner"]:
        assert services[name]["healthcheck"]["test"], name
    assert services["beat"]["deploy"]["replicas"] == 1
    devices = services["runner"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    # The runner host gets the broker only: no database credentials, no GitHub token.
    runner_env = services["runner"]["environment"]
    assert "DATABASE_URL" not in runner_env and "GITHUB_TOKEN" not in runner_env
    assert "ci_runners.agent worker -Q" in services["runner"]["command"][2]


def test_ci_runs_make_test_only():
    script = (ROOT / ".ci" / "run").read_text()
    commands = [
        line
        for line in script.splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert commands == ["exec make test"]


OUR_IMAGE_SERVICES = ["migrate", "web", "worker", "results", "beat", "runner"]
# What each health check may call: our image has Python and what requirements.txt installs
# (celery); the official images bring their own tools.
HEALTH_COMMANDS = {"postgres": {"pg_isready"}, "redis": {"redis-cli"}}


def _health_command(service: dict) -> str:
    test = service["healthcheck"]["test"]
    words = test[1].split() if test[0] == "CMD-SHELL" else test[1:]
    return words[0]


def test_compose_health_checks_use_only_commands_their_image_has():
    services = compose()["services"]
    for name, service in services.items():
        if "healthcheck" not in service:
            continue
        allowed = HEALTH_COMMANDS.get(name, {"python", "celery"})
        assert _health_command(service) in allowed, name


def test_compose_puts_a_tls_proxy_in_front_and_trusts_only_it():
    config = compose()
    services = config["services"]
    proxy = services["proxy"]
    assert proxy["image"].startswith("caddy:")
    assert sorted(proxy["ports"]) == ["443:443", "80:80"]
    caddyfile = next(
        v.split(":")[0] for v in proxy["volumes"] if v.endswith("/etc/caddy/Caddyfile:ro")
    )
    assert "reverse_proxy web:8000" in (ROOT / caddyfile).read_text()
    assert "ports" not in services["web"]  # reachable through the proxy only
    address = proxy["networks"]["default"]["ipv4_address"]
    assert services["web"]["environment"]["FORWARDED_ALLOW_IPS"] == address


def test_compose_starts_the_app_after_its_migrations_with_shared_logs_and_email():
    config = compose()
    services = config["services"]
    for name in ["web", "worker", "results", "beat"]:
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }, name
    # Cell logs are written by the results worker and served by the web.
    for name in ["web", "results"]:
        assert "media:/app/var/media" in services[name]["volumes"], name
    env = services["web"]["environment"]
    for setting in ["EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD"]:
        assert setting in env, setting
    declared = set(config["volumes"])
    used = {
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/"))
    }
    assert used <= declared


def test_compose_gpu_runner_gets_its_gpus_and_a_cgroup_tree_it_can_write():
    runner = compose()["services"]["runner"]
    devices = runner["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} in devices
    # Its own cgroup namespace, remounted read-write (SYS_ADMIN) before the agent starts, so
    # per-job limits can be written; the agent refuses jobs otherwise, it never runs unlimited.
    assert runner["cgroup"] == "private" and "SYS_ADMIN" in runner["cap_add"]
    shell, flag, script, name = runner["entrypoint"]
    assert (shell, flag, name) == ("sh", "-c", "runner")
    assert script.index("mount -o remount,rw /sys/fs/cgroup") < script.index('exec "$$@"')
    assert "AGENT_ALLOW_UNLIMITED" not in runner.get("environment", {})
    assert runner["privileged"] is False
