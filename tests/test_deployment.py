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
