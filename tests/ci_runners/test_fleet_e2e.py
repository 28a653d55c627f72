"""End to end with real processes: a private Redis, the web-side workers (`default` and
`results`), the runner agent.

The agent really builds torch environments (warm from the uv cache) and runs pytest in its
sandbox on the two local torch versions. Fault drills: kill -9 the agent in the middle of a
cell (the whole worker, or its main process only), restart Redis while cells are queued, drop
every broker connection while a cell runs, deliver the same result twice, keep the results
worker down while cells finish, kill the results worker in the middle of recording a result.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import redis
from celery import current_app
from django.conf import settings as django_settings
from django.db import connection, transaction

from ci_runners import services
from ci_runners.agent import contracts
from ci_runners.agent.contracts import Result, claim_key
from ci_runners.management.commands.demo_compat import PROJECTS, make_repo
from ci_runners.models import (
    CellResult,
    CompatCell,
    CompatRun,
    ProjectTestConfig,
    RunnerHost,
    TorchTarget,
)
from ci_runners.selectors import cell_log_bytes
from ci_runners.states import FINAL_STATES, CellState
from config.celery import RESULTS_UNACKED_KEYS
from registry.models import Project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]

SLOW_PROJECT = {
    "name": "Slow Suite",
    "description": "A suite that takes a while, so the agent can be killed in the middle.",
    "files": {
        "src/slow_suite/__init__.py": "import torch\n\n\ndef ones():\n    return torch.ones(2)\n",
        "tests/test_slow.py": (
            "import time\n\nfrom slow_suite import ones\n\n\n"
            "def test_slowly():\n"
            "    for second in range(8):\n"
            "        print('tick', second, flush=True)\n"
            "        time.sleep(1)\n"
            "    assert ones().sum().item() == 2\n"
        ),
    },
}


QUIET_PROJECT = {
    "name": "Quiet Suite",
    "description": "A test that says 'tick' once, then works quietly for QUIET_S seconds.",
    "files": {
        "src/quiet_suite/__init__.py": (
            "import torch\n\n\ndef ones():\n    return torch.ones(2)\n"
        ),
        # Quiet: a job whose output stops is not ended by a broken pipe when its worker dies.
        "tests/test_quiet.py": (
            "import os\nimport time\n\nfrom quiet_suite import ones\n\n\n"
            "def test_quietly():\n"
            "    print('tick', flush=True)\n"
            "    time.sleep(int(os.environ['QUIET_S']))\n"
            "    assert ones().sum().item() == 2\n"
        ),
    },
}


class Processes:
    """The web-side worker and runner agents as real subprocesses, each in its own group."""

    def __init__(self, *, tmp: Path, broker_url: str) -> None:
        self.tmp = tmp
        self.broker_url = broker_url
        self.running: dict[str, subprocess.Popen] = {}
        # The sandbox's unprivileged uid must reach the job dirs: not under pytest's 0700 tmp.
        self.work_root = Path(tempfile.mkdtemp(prefix="ecoreg-e2e-work-"))
        self.work_root.chmod(0o755)
        database = dict(connection.settings_dict)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": (
                f"postgres://{database['USER'] or 'postgres'}@{database['HOST'] or '127.0.0.1'}:"
                f"{database['PORT'] or 5432}/{database['NAME']}"
            ),
            "CELERY_BROKER_URL": broker_url,
            "MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
            "PYTHONUNBUFFERED": "1",
        }

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, name: str, command: list[str], **extra_env: str) -> None:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.running[name] = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_web_worker(self, name: str, queue: str, **extra_env: str) -> None:
        self.start(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                queue,
                "-c",
                "1",
                "--without-mingle",
                "--without-gossip",
                "-n",
                f"{name}@%h",
                "--loglevel=INFO",
            ],
            **extra_env,
        )

    def start_results_worker(self) -> None:
        # A short visibility timeout for the drills (production: 60 s).
        self.start_web_worker("results", "results", CELERY_RESULTS_VISIBILITY_TIMEOUT="10")

    def start_web_workers(self) -> None:
        """The Procfile's `worker` (queue `default`) and `results`."""
        self.start_web_worker("web", "default")
        self.start_results_worker()

    def start_agent(self, name: str, **extra_env: str) -> None:
        self.start(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "ci_runners.agent",
                "worker",
                "-Q",
                "runner.cpu",
                "-c",
                "1",
                "--without-mingle",
                "--without-gossip",
                "-n",
                f"{name}@%h",
                "--loglevel=INFO",
            ],
            AGENT_BROKER_URL=self.broker_url,
            AGENT_NAME=name,
            AGENT_WORK_ROOT=str(self.work_root),
            AGENT_HEARTBEAT_S="2",
            AGENT_PROGRESS_S="1",
            # The claim is refreshed every second: a killed runner's expires within 10 s.
            AGENT_CLAIM_TTL_S="10",
            **extra_env,
        )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.running.pop(name)
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for name in list(self.running):
            process = self.running[name]
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill(name)
                continue
            self.running.pop(name)
        shutil.rmtree(self.work_root, ignore_errors=True)


@pytest.fixture
def processes(transactional_db, broker, tmp_path):
    fleet = Processes(tmp=tmp_path, broker_url=broker.url)
    yield fleet
    fleet.stop_all()


@pytest.fixture
def torch_targets(transactional_db):
    return [
        TorchTarget.objects.create(version="2.13.0", variant="cpu", active=True),
        TorchTarget.objects.create(version="2.14.1", variant="", active=True),
    ]


def demo_project(tmp_path: Path, slug: str, spec: dict, **config) -> Project:
    repo = make_repo(root=tmp_path / "repos", slug=slug, spec=spec)
    project = Project.objects.create(slug=slug, name=spec["name"])
    ProjectTestConfig.objects.create(
        project=project, source_override=str(repo), timeout_s=300, **config
    )
    return project


def wait_for(what: str, check, processes: Processes, timeout: float = 180.0, every=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    names = sorted(path.stem for path in processes.tmp.glob("*.log"))
    logs = "\n".join(f"--- {n}\n{processes.log(n)[-3000:]}" for n in names)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def run_finished(run: CompatRun):
    run.refresh_from_db()
    return run.finished_at is not None


def send_result_again(cell: CompatCell, processes: Processes) -> None:
    """Deliver the stored result of the cell's attempt twice more through the broker."""
    stored = CellResult.objects.get(cell=cell, attempt=cell.attempt)
    with current_app.connection_for_write(processes.broker_url) as conn:
        for _ in range(2):
            current_app.send_task(
                "ci_runners.record_cell_result",
                kwargs={
                    "cell_id": cell.pk,
                    "attempt": cell.attempt,
                    "runner": "again",
                    "result": stored.payload,
                    "log": "again",
                },
                queue=contracts.CELL_RESULTS_QUEUE,
                connection=conn,
            )
    client = redis.Redis.from_url(processes.broker_url)

    def handled() -> bool:  # taken from the queue and acknowledged (after their commit)
        return not client.llen(contracts.CELL_RESULTS_QUEUE) and not client.hlen(
            RESULTS_UNACKED_KEYS["unacked_key"]
        )

    wait_for("both to be handled", handled, processes)


def test_a_real_run_on_two_torch_versions_records_each_result_once(
    processes, torch_targets, tmp_path
):
    # The listing's override (staff's) merges over what the agent discovers.
    project = demo_project(
        tmp_path, "tensorshim", PROJECTS["tensorshim"], env={"TENSORSHIM_QUIET": "1"}
    )
    processes.start_web_workers()
    processes.start_agent("agent-1")
    run = services.compat_run_request(project=project, trigger=CompatRun.Trigger.MANUAL)
    wait_for("the run to finish", lambda: run_finished(run), processes)

    ok = run.cells.get(target=torch_targets[0])
    broken = run.cells.get(target=torch_targets[1])
    assert ok.state == CellState.PASSED, (ok.error, ok.log_tail)
    assert ok.counts["passed"] == 2
    assert ok.environment["torch"].startswith("2.13.0")
    assert broken.state == CellState.FAILED and broken.counts["failed"] == 1
    assert broken.failures[0]["test"].endswith("test_double")
    assert "tensorshim supports torch < 2.14" in cell_log_bytes(cell=broken).decode()
    assert broken.environment["torch"].startswith("2.14.1")
    assert {ok.runner_name, broken.runner_name} == {"agent-1"}
    assert CellResult.objects.filter(cell__run=run).count() == 2
    # What the agent counted reaches the cell and its per-attempt copy; equal suites: no shrink.
    assert ok.tests_collected == broken.tests_collected == 2
    assert CellResult.objects.get(cell=ok).tests_collected == 2
    assert not ok.suite_shrunk and not broken.suite_shrunk
    # The recipe the agent discovered and ran is stored with the cell, reproducible by its hash.
    assert ok.recipe["run"]["testpaths"] == ["tests"] and ok.recipe_hash == ok.recipe["hash"]
    assert ok.recipe["override"] == {"env": {"TENSORSHIM_QUIET": "1"}}
    assert ok.recipe["env"] == {"TENSORSHIM_QUIET": "1"}
    assert CellResult.objects.get(cell=ok).lock_hash == ok.lock_hash != ""
    assert ok.timings["env_s"] is not None and ok.commit
    project.refresh_from_db()
    assert project.works_with == ["2.13.0"] and project.breaks_with == ["2.14.1"]
    host = RunnerHost.objects.get(name="agent-1")
    assert host.queues == ["runner.cpu"]
    # Its heartbeats carry its cache's size (torch bases and all) and its isolation.
    assert host.cache_bytes and host.cache_bytes > 100 * 1024**2
    assert host.isolation == "bwrap + cgroup v1 pids,memory"

    # Drill: the same result delivered twice more is still one result.
    send_result_again(ok, processes)
    assert CellResult.objects.filter(cell=ok).count() == 1
    ok.refresh_from_db()
    assert ok.runner_name == "agent-1"


def test_killing_the_agent_mid_cell_loses_nothing_and_doubles_nothing(
    processes, torch_targets, tmp_path
):
    # -s: the test's own prints reach the live log while it runs.
    project = demo_project(tmp_path, "slow-suite", SLOW_PROJECT, pytest_args=["-s"])
    processes.start_web_workers()
    # A short visibility timeout: the dead agent's message comes back to the broker quickly.
    quick_redelivery = {
        "AGENT_VISIBILITY_TIMEOUT_S": "10",
        "AGENT_RESTORE_INTERVAL_S": "2",
        "AGENT_RESTORE_THROTTLE": "1",
    }
    processes.start_agent("agent-1", **quick_redelivery)
    run = services.compat_run_request(
        project=project, targets=torch_targets[:1], trigger=CompatRun.Trigger.MANUAL
    )
    cell = run.cells.get()

    def ticking():
        cell.refresh_from_db()
        return cell.state == CellState.RUNNING and "tick" in cell.log_tail

    wait_for("the tests to be running", ticking, processes)
    processes.kill("agent-1")  # kill -9 of the whole worker: main, pool child, cell child
    processes.start_agent("agent-2", **quick_redelivery)

    # Recovery: the reaper sees the runner silent and re-queues the cell as attempt 2.
    def reaped():
        services.reap_stale_cells(silent_s=8)
        cell.refresh_from_db()
        return cell.attempt == 2

    wait_for("the reaper to re-queue the cell", reaped, processes, every=1)
    wait_for("the run to finish", lambda: run_finished(run), processes)
    cell.refresh_from_db()
    assert cell.state == CellState.PASSED and cell.attempt == 2
    assert cell.runner_name == "agent-2"
    # The abandoned attempt-1 message is redelivered by the broker and dropped by the agent.
    wait_for(
        "the redelivered attempt 1 to be dropped",
        lambda: f"cell {cell.pk} attempt 1" in processes.log("agent-2"),
        processes,
        timeout=60,
    )
    results = list(CellResult.objects.filter(cell=cell).values_list("attempt", "state"))
    assert results == [(2, "passed")]


def test_restarting_redis_while_cells_are_queued_still_finishes_every_cell(
    processes, torch_targets, tmp_path, broker
):
    project = demo_project(tmp_path, "tinytorch-ops", PROJECTS["tinytorch-ops"])
    other = demo_project(tmp_path, "tensorshim", PROJECTS["tensorshim"])
    processes.start_web_workers()
    processes.start_agent("agent-1")
    runs = [
        services.compat_run_request(project=p, trigger=CompatRun.Trigger.MANUAL)
        for p in (project, other)
    ]
    cells = CompatCell.objects.filter(run__in=runs)

    def one_running_others_queued():
        return cells.filter(state__in=[CellState.PREPARING, CellState.RUNNING]).exists()

    wait_for("a cell to start", one_running_others_queued, processes)
    assert broker.client().llen("runner.cpu") >= 1
    broker.stop()  # no persistence: the queued messages are gone with it
    time.sleep(1)
    broker.start()

    def all_final():
        services.reap_stale_cells(silent_s=10)
        return not cells.exclude(state__in=FINAL_STATES).exists()

    wait_for("every cell to finish", all_final, processes, timeout=240, every=1)
    states = dict(cells.values_list("target__version", "state").filter(run__project=project))
    assert states == {"2.13.0": CellState.PASSED, "2.14.1": CellState.PASSED}
    other_states = dict(cells.filter(run__project=other).values_list("target__version", "state"))
    assert other_states == {"2.13.0": CellState.PASSED, "2.14.1": CellState.FAILED}
    # One applied result per cell, whatever attempt finished it.
    assert CellResult.objects.filter(cell__in=cells, applied=True).count() == 4
    # Messages the broker lost were sent again as the same attempt: none was used up.
    assert set(cells.values_list("attempt", flat=True)) == {1}
    for cell in cells:
        assert CellResult.objects.filter(cell=cell, attempt=cell.attempt).count() == 1


# --- drills of issue 11: orphans, the reaper against a results backlog, results re-delivery,
# prefetch after a broker reconnect ------------------------------------------------------------


def process_table() -> dict[int, tuple[int, int | None, str]]:
    """pid -> (parent pid, start time, command line) of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fields[0] not in ("Z", "X"):
            table[int(entry.name)] = (int(fields[1]), int(fields[19]), command)
    return table


def descendants(pid: int) -> dict[int, tuple[int | None, str]]:
    """The live processes below `pid`: pid -> (start time, command line)."""
    table = process_table()
    found: dict[int, tuple[int | None, str]] = {}
    parents = [pid]
    while parents:
        parent = parents.pop()
        for child, (ppid, start, command) in table.items():
            if ppid == parent and child not in found:
                found[child] = (start, command)
                parents.append(child)
    return found


def still_running(processes: dict[int, tuple[int | None, str]]) -> dict[int, str]:
    table = process_table()
    return {
        pid: command
        for pid, (start, command) in processes.items()
        if pid in table and table[pid][1] == start
    }


def cell_ticking(cell: CompatCell):
    def check():
        cell.refresh_from_db()
        return cell.state == CellState.RUNNING and "tick" in cell.log_tail

    return check


def test_killing_only_the_agents_main_process_leaves_no_orphan_and_loses_nothing(
    processes, torch_targets, tmp_path
):
    project = demo_project(
        tmp_path, "quiet-suite", QUIET_PROJECT, pytest_args=["-s"], env={"QUIET_S": "300"}
    )
    processes.start_web_workers()
    name = f"orphans-{uuid.uuid4().hex[:6]}"  # its own scratch dirs, whoever else runs here
    processes.start_agent(name)
    run = services.compat_run_request(
        project=project, targets=torch_targets[:1], trigger=CompatRun.Trigger.MANUAL
    )
    cell = run.cells.get()
    wait_for("the tests to be running", cell_ticking(cell), processes)
    main = processes.running[name]
    job = descendants(main.pid)  # the pool process, the job's child, bwrap, pytest
    assert any("pytest" in command for _, command in job.values()), job
    assert any("bwrap" in command for _, command in job.values()), job

    os.kill(main.pid, signal.SIGKILL)  # the main process only, not its group
    main.wait(timeout=30)
    processes.running.pop(name)

    wait_for(
        "the job's processes to end with their agent",
        lambda: not still_running(job),
        processes,
        timeout=20,
    )
    in_work_root = [
        command for _, _, command in process_table().values() if str(processes.work_root) in command
    ]
    assert in_work_root == []
    scratch = list(Path(tempfile.gettempdir()).glob(f"ecoreg-cell-{name}-*"))
    assert scratch, "the killed pool process left its scratch dir"

    # The same agent started again sweeps what the killed one left; the cell, its runner
    # lost, runs again as attempt 2 (a short one) and finishes once.
    ProjectTestConfig.objects.filter(project=project).update(env={"QUIET_S": "1"})
    processes.start_agent(name)

    def reaped():
        services.reap_stale_cells(silent_s=5)
        cell.refresh_from_db()
        return cell.attempt == 2

    wait_for("the reaper to re-queue the cell", reaped, processes, every=1)
    wait_for("the run to finish", lambda: run_finished(run), processes)
    cell.refresh_from_db()
    assert (cell.state, cell.attempt, cell.runner_name) == (CellState.PASSED, 2, name)
    assert not any(path.exists() for path in scratch)
    assert list(CellResult.objects.filter(cell=cell).values_list("attempt", "state")) == [
        (2, "passed")
    ]


def test_results_worker_down_longer_than_the_silence_limit_reruns_no_cell(
    processes, torch_targets, tmp_path, broker
):
    project = demo_project(tmp_path, "tinytorch-ops", PROJECTS["tinytorch-ops"])
    processes.start_web_workers()
    processes.start_agent("agent-1")
    run = services.compat_run_request(project=project, trigger=CompatRun.Trigger.MANUAL)
    cells = list(run.cells.order_by("pk"))
    wait_for(
        "a cell to be under way",
        lambda: run.cells.filter(state__in=[CellState.PREPARING, CellState.RUNNING]).exists(),
        processes,
    )
    processes.kill("results")
    silent_s = 3
    outage_started = time.monotonic()
    claims = [claim_key(cell_id=c.pk, token=str(c.token), attempt=1) for c in cells]

    def finished_on_the_runner():
        services.reap_stale_cells(silent_s=silent_s)
        done = all(broker.client().get(key) == b"done" for key in claims)
        return done and time.monotonic() - outage_started > 3 * silent_s

    wait_for("both cells to finish on the runner", finished_on_the_runner, processes, every=1)
    assert set(run.cells.values_list("attempt", flat=True)) == {1}

    processes.start_results_worker()
    wait_for("the run to finish", lambda: run_finished(run), processes)
    for cell in run.cells.all():
        assert (cell.state, cell.attempt) == (CellState.PASSED, 1), cell.error
        assert f"compat-cell-{cell.pk}-{cell.token.hex}-2" not in processes.log("agent-1")
    assert sorted(CellResult.objects.filter(cell__run=run).values_list("attempt", flat=True)) == [
        1,
        1,
    ]


def test_a_result_whose_worker_was_killed_mid_commit_is_recorded_seconds_after_restart(
    processes, torch_targets, tmp_path
):
    project = demo_project(tmp_path, "tensorshim", PROJECTS["tensorshim"])
    processes.start_results_worker()
    run = services.compat_run_request(
        project=project, targets=torch_targets[:1], trigger=CompatRun.Trigger.MANUAL
    )
    cell = run.cells.get()
    result = Result(state=CellState.PASSED, exit_code=0, counts={"passed": 2}).to_dict()

    def result_task_waits_on_the_cell():
        with connection.cursor() as cursor:
            # Statistics are a snapshot per transaction: take a fresh one each time.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0] > 0

    with transaction.atomic():
        # The result's transaction locks this row first: it waits, half done, until we let go.
        CompatCell.objects.select_for_update().get(pk=cell.pk)
        with current_app.connection_for_write(processes.broker_url) as conn:
            current_app.send_task(
                "ci_runners.record_cell_result",
                kwargs={"cell_id": cell.pk, "attempt": 1, "runner": "r", "result": result},
                queue=contracts.CELL_RESULTS_QUEUE,
                connection=conn,
            )
        wait_for("the result task to be mid-commit", result_task_waits_on_the_cell, processes)
        processes.kill("results")  # kill -9 of the whole worker, its transaction never commits
    assert not CellResult.objects.filter(cell=cell).exists()

    restarted = time.monotonic()
    processes.start_results_worker()
    wait_for(
        "the result to be recorded",
        lambda: CellResult.objects.filter(cell=cell).exists(),
        processes,
        timeout=120,
    )
    redelivered_s = time.monotonic() - restarted
    print(f"result re-delivered and recorded {redelivered_s:.1f} s after the restart")
    # Visibility timeout (10 s in this drill, 60 s by default) plus a restore sweep (5 s).
    assert redelivered_s < 40
    cell.refresh_from_db()
    assert cell.state == CellState.PASSED
    assert CellResult.objects.filter(cell=cell).count() == 1


def test_a_runner_with_one_slot_reserves_no_second_cell_after_a_broker_reconnect(
    processes, torch_targets, tmp_path, broker
):
    project = demo_project(
        tmp_path, "quiet-suite", QUIET_PROJECT, pytest_args=["-s"], env={"QUIET_S": "40"}
    )
    processes.start_web_workers()
    processes.start_agent("agent-1")
    run = services.compat_run_request(project=project, trigger=CompatRun.Trigger.MANUAL)
    first, second = run.cells.order_by("pk")
    ticking = [cell_ticking(first), cell_ticking(second)]
    wait_for("a cell to be running", lambda: any(check() for check in ticking), processes)
    assert broker.client().llen("runner.cpu") == 1  # the other cell waits for a free runner

    def count(text: str) -> int:
        return processes.log("agent-1").count(text)

    received, connected = count("received"), count("Connected to redis")
    for kind in ("normal", "pubsub"):  # every connection drops, as when the broker restarts
        broker.client().client_kill_filter(_type=kind, skipme=True)
    wait_for("the agent to reconnect", lambda: count("Connected to redis") > connected, processes)
    time.sleep(5)

    running = run.cells.filter(state=CellState.RUNNING)
    assert running.count() == 1, "the running cell should still run"
    assert count("received") == received, processes.log("agent-1")[-3000:]
    services.compat_run_cancel(run=run, actor=None)
    wait_for("the run to end", lambda: run_finished(run), processes)


def test_two_beats_sending_one_nightly_slot_make_one_run_per_project(processes, torch_targets):
    """What two beats (or a retried one) do: the nightly task arrives twice at once, taken by
    two web-side workers in parallel."""
    projects = [
        Project.objects.create(
            slug=f"nightly-{n}", name=f"Nightly {n}", repo_owner="o", repo_name=f"r{n}"
        )
        for n in range(3)
    ]
    processes.start_web_worker("web-a", "default")
    processes.start_web_worker("web-b", "default")
    wait_for(
        "both workers ready",
        lambda: all("ready" in processes.log(name) for name in ("web-a", "web-b")),
        processes,
        timeout=60,
    )

    app = current_app._get_current_object()
    with app.connection_for_write(processes.broker_url) as connection:
        for _ in range(2):
            app.send_task("ci_runners.nightly_runs", queue="default", connection=connection)

    def both_done() -> bool:
        logs = processes.log("web-a") + processes.log("web-b")
        return len(re.findall(r"nightly_runs\[[^\]]+\] succeeded", logs)) == 2

    wait_for("both nightly tasks to finish", both_done, processes, timeout=60)
    runs = CompatRun.objects.filter(trigger=CompatRun.Trigger.SCHEDULE)
    assert sorted(runs.values_list("project__slug", flat=True)) == [p.slug for p in projects]
