"""The agent's cache: measured with hard links counted once, and kept under its cap by evicting
what was least recently used, never what a job or a build holds."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ci_runners.agent import cache, environment
from ci_runners.agent.contracts import Job
from tests.agent.conftest import TEST_CACHE_DIR, make_wheel

MIB = 1024**2


def _file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def _entry(root: Path, area: str, key: str, *, size: int, used: float) -> Path:
    """A built entry `<area>/<key>` holding `size` bytes, last used at `used` (epoch s)."""
    entry = root / area / key
    _file(entry / "data.bin", size)
    (root / area / f"{key}.lock").touch()
    cache.touch_used(entry)
    os.utime(root / area / f"{key}.used", (used, used))
    os.utime(root / area / f"{key}.lock", (used, used))
    os.utime(entry, (used, used))
    return entry


@pytest.fixture
def held_lock():
    """Hold a lock file from another process (util-linux `flock`), as a builder does."""
    holders: list[subprocess.Popen[str]] = []

    def hold(lock_path: Path) -> None:
        holder = subprocess.Popen(
            ["flock", "-n", str(lock_path), "-c", "echo held; exec sleep 3600"],
            stdout=subprocess.PIPE,
            text=True,
        )
        holders.append(holder)
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()


# --- size -------------------------------------------------------------------------------------


def test_size_counts_a_hard_linked_file_once(tmp_path):
    root = tmp_path / "cache"
    original = _file(root / "uv" / "archive" / "torch.so", 4 * MIB)
    (root / "bases" / "b1").mkdir(parents=True)
    (root / "envs" / "e1").mkdir(parents=True)
    before = cache.cache_size_bytes(root)

    os.link(original, root / "bases" / "b1" / "torch.so")
    os.link(original, root / "envs" / "e1" / "torch.so")
    linked = cache.cache_size_bytes(root)
    shutil.copyfile(original, root / "envs" / "e1" / "copy.so")

    assert before >= 4 * MIB
    assert linked == before
    after_copy = cache.cache_size_bytes(root)
    assert after_copy >= before + 4 * MIB
    du = subprocess.run(["du", "-sB1", str(root)], capture_output=True, text=True, check=True)
    assert after_copy == int(du.stdout.split()[0])  # as du counts: each inode once


# --- eviction order ---------------------------------------------------------------------------


def test_least_recently_used_entries_go_first_and_bases_last(tmp_path):
    root = tmp_path / "cache"
    now = time.time()
    base = _entry(root, "bases", "base1", size=4 * MIB, used=now - 5000)  # oldest of all
    old_env = _entry(root, "envs", "env-old", size=2 * MIB, used=now - 3000)
    old_wheel = _entry(root, "wheels", "wheel-old", size=2 * MIB, used=now - 2000)
    new_env = _entry(root, "envs", "env-new", size=2 * MIB, used=now - 100)
    cap = cache.cache_size_bytes(root) - 3 * MIB  # two old entries must go, no more

    report = cache.evict(root, max_bytes=cap)

    assert report.removed == ["envs/env-old", "wheels/wheel-old"]
    assert not old_env.exists() and not old_wheel.exists()
    assert base.exists() and new_env.exists()
    assert cache.cache_size_bytes(root) <= cap and not report.over_cap
    assert (root / "envs" / "env-old.lock").exists()  # a lock file is never deleted


def test_the_base_goes_when_nothing_else_can(tmp_path):
    root = tmp_path / "cache"
    now = time.time()
    base = _entry(root, "bases", "base1", size=4 * MIB, used=now - 10)
    env = _entry(root, "envs", "env1", size=1 * MIB, used=now - 5000)

    report = cache.evict(root, max_bytes=2 * MIB)

    assert report.removed == ["envs/env1", "bases/base1"]
    assert not base.exists() and not env.exists()


def test_touch_used_makes_an_entry_the_most_recent(tmp_path):
    root = tmp_path / "cache"
    now = time.time()
    first = _entry(root, "envs", "first", size=2 * MIB, used=now - 3000)
    second = _entry(root, "envs", "second", size=2 * MIB, used=now - 2000)
    cache.touch_used(first)  # a job used it just now

    cache.evict(root, max_bytes=cache.cache_size_bytes(root) - MIB)

    assert first.exists() and not second.exists()


def test_an_entry_used_within_min_idle_is_kept(tmp_path):
    root = tmp_path / "cache"
    recent = _entry(root, "envs", "recent", size=2 * MIB, used=time.time() - 30)

    report = cache.evict(root, max_bytes=0, min_idle_s=600)

    assert recent.exists()
    assert report.recent == ["envs/recent"] and report.over_cap


def test_entries_are_removed_whole_or_not_at_all_and_leave_no_staging(tmp_path):
    root = tmp_path / "cache"
    entry = _entry(root, "envs", "env1", size=MIB, used=time.time() - 5000)
    (entry / "lib" / "deep").mkdir(parents=True)
    _file(entry / "lib" / "deep" / "x.py", 10)

    cache.evict(root, max_bytes=0)

    assert sorted(p.name for p in (root / "envs").iterdir()) == ["env1.lock"]


# --- what is in use is never removed ----------------------------------------------------------


def test_an_entry_whose_lock_is_held_is_never_removed(tmp_path, held_lock):
    root = tmp_path / "cache"
    now = time.time()
    busy = _entry(root, "envs", "busy", size=2 * MIB, used=now - 9000)
    idle = _entry(root, "envs", "idle", size=2 * MIB, used=now - 100)
    held_lock(root / "envs" / "busy.lock")

    report = cache.evict(root, max_bytes=0)

    assert busy.exists() and (busy / "data.bin").stat().st_size == 2 * MIB
    assert not idle.exists()
    assert report.busy == ["envs/busy"] and report.over_cap


def test_an_entry_a_running_job_holds_is_kept_and_goes_once_released(tmp_path):
    root = tmp_path / "cache"
    compiled = _entry(root, "compile", "proj1", size=2 * MIB, used=time.time() - 9000)

    with cache.entry_in_use(compiled):  # e.g. bound into a job's sandbox while its tests run
        during = cache.evict(root, max_bytes=0)
        assert compiled.exists() and during.busy == ["compile/proj1"]
    os.utime(root / "compile" / "proj1.used", (0, 0))  # long unused since
    after = cache.evict(root, max_bytes=0)

    assert not compiled.exists() and after.removed == ["compile/proj1"]


def test_a_staging_dir_is_removed_only_when_its_builder_is_gone(tmp_path, held_lock):
    root = tmp_path / "cache"
    dead_pid = _dead_pid()
    stale = _file(root / "envs" / f"k1.tmp{dead_pid}" / "half.bin", MIB).parent
    live = _file(root / "envs" / f"k2.tmp{os.getpid()}" / "half.bin", MIB).parent
    building = _file(root / "bases" / f"k3.tmp{dead_pid}" / "half.bin", MIB).parent
    held_lock(root / "bases" / "k3.lock")  # its key's builder holds the lock: in use

    report = cache.evict(root, max_bytes=10 * 1024**3)  # far under the cap: garbage only

    assert not stale.exists()
    assert live.exists() and building.exists()
    assert report.removed == [f"envs/k1.tmp{dead_pid}"]


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1048576", MIB), ("50G", 50 * 1024**3), ("50GiB", 50 * 1024**3), ("1.5m", int(1.5 * MIB))],
)
def test_sizes_are_read_in_bytes_or_binary_units(text, expected):
    assert cache.parse_size(text) == expected


def test_a_bad_cap_is_a_one_line_message(monkeypatch):
    monkeypatch.setenv("AGENT_CACHE_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match=r"^AGENT_CACHE_MAX_BYTES: not a size: 'lots'"):
        cache.configured_max_bytes()
    monkeypatch.delenv("AGENT_CACHE_MAX_BYTES")
    assert cache.configured_max_bytes() == 50 * 1024**3


# --- the worker: eviction after each job, figures in its heartbeat ----------------------------


def test_worker_evicts_after_a_job_to_the_configured_cap(tmp_path, monkeypatch):
    from ci_runners.agent import supervision

    root = tmp_path / "cache"
    monkeypatch.setenv("AGENT_CACHE_DIR", str(root))
    monkeypatch.setenv("AGENT_CACHE_MAX_BYTES", "3M")
    monkeypatch.setenv("AGENT_CACHE_MIN_IDLE_S", "60")
    now = time.time()
    old = _entry(root, "envs", "old", size=2 * MIB, used=now - 5000)
    recent = _entry(root, "envs", "recent", size=2 * MIB, used=now - 10)

    report = supervision.evict_cache_after_job()

    assert report is not None and report.removed == ["envs/old"]
    assert not old.exists() and recent.exists()
    assert supervision.cache_gauge.read(root) == report.after_bytes


def test_worker_with_a_bad_cap_says_so_and_evicts_nothing(tmp_path, monkeypatch, caplog):
    from ci_runners.agent import supervision

    root = tmp_path / "cache"
    monkeypatch.setenv("AGENT_CACHE_DIR", str(root))
    monkeypatch.setenv("AGENT_CACHE_MAX_BYTES", "-3")
    old = _entry(root, "envs", "old", size=MIB, used=time.time() - 5000)

    assert supervision.evict_cache_after_job() is None
    assert old.exists()
    assert "AGENT_CACHE_MAX_BYTES: not a size: '-3'" in caplog.text


def test_heartbeat_carries_the_cache_size_and_the_isolation(tmp_path, monkeypatch, require_sandbox):
    from ci_runners.agent import supervision

    root = tmp_path / "cache"
    monkeypatch.setenv("AGENT_CACHE_DIR", str(root))
    _entry(root, "envs", "e1", size=2 * MIB, used=time.time())
    monkeypatch.setattr(supervision, "cache_gauge", cache.CacheSizeGauge(max_age_s=3600))
    supervision.isolation_summary.cache_clear()

    beat = supervision.heartbeat_message(queues=["runner.cpu"])
    _file(root / "envs" / "e1" / "more.bin", MIB)
    again = supervision.heartbeat_message(queues=["runner.cpu"])

    assert beat.cache_bytes == cache.cache_size_bytes(root) - MIB
    assert again.cache_bytes == beat.cache_bytes  # measured at most every max_age_s
    assert beat.isolation == "bwrap + cgroup v1 pids,memory"
    monkeypatch.setenv("AGENT_SANDBOX", "0")
    supervision.isolation_summary.cache_clear()
    assert supervision.heartbeat_message(queues=[]).isolation == "none (AGENT_SANDBOX=0)"
    supervision.isolation_summary.cache_clear()


# --- the "done when": 20 jobs, different environments, under the cap ------------------


def _job(links: Path) -> Job:
    sources = environment.pip_configured_sources()
    return Job(
        source=".",
        torch_version="2.13.0",
        torch_variant="cpu",
        find_links=[str(links), *sources.find_links],
        index_urls=[u for u in [sources.index_url] if u] + sources.extra_index_urls,
    )


def _seed_torch_base(root: Path) -> None:
    """Hard-link the shared test cache's current torch 2.13.0+cpu base (if built) into this
    test's own cache, so only a cold machine pays for compiling torch. Only a base whose
    recorded key material gives its own name, in the current layout, is taken."""
    for material_file in sorted((TEST_CACHE_DIR / "bases").glob("*/ecoreg-base-key.json")):
        material = json.loads(material_file.read_text())
        material.pop("requirements", None)
        key = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:24]
        current = set(material) == {"layout", "python", "torch", "pytest", "uv"}
        if (
            key == material_file.parent.name
            and current
            and material["layout"] == environment.BASE_LAYOUT_VERSION
            and material["torch"] == "2.13.0+cpu"
        ):
            (root / "bases").mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["cp", "-al", str(material_file.parent), str(root / "bases" / key)], check=True
            )


def _envs_holding(root: Path, package: str) -> list[Path]:
    return [
        lock.parent
        for lock in (root / "envs").glob("*/ecoreg-lock.txt")
        if f"{package}==" in lock.read_text()
    ]


def test_cache_stays_under_its_cap_across_20_jobs_with_different_environments(
    tmp_path, work_root, monkeypatch, held_lock
):
    root = tmp_path / "agent-cache"
    monkeypatch.setenv("AGENT_CACHE_DIR", str(root))
    _seed_torch_base(root)
    links = tmp_path / "links"
    tag = uuid.uuid4().hex[:6]
    names = [f"cachedep{tag}n{i}" for i in range(21)]
    for name in names:
        make_wheel(links, name=name, version="1.0")
    job = _job(links)
    project = work_root / f"plain-{tag}"
    project.mkdir()

    def build(name: str) -> environment.BuiltEnvironment:
        venv = work_root / f"venv-{uuid.uuid4().hex[:8]}"
        return environment.build_environment(
            job=job, project_dir=project, venv=venv, extras=[], requirements=[name]
        )

    build(names[0])  # the torch base, and the first job's environment
    (base,) = [path for path in (root / "bases").iterdir() if path.is_dir()]
    one_env = cache.cache_size_bytes(root) - cache.cache_size_bytes(base)
    cap = cache.cache_size_bytes(base) + 3 * one_env  # one base and about three environments
    (held,) = _envs_holding(root, names[0])
    held_lock(held.with_name(held.name + ".lock"))  # a job copying it right now
    kept_venv = None
    reported_busy = 0

    for i, name in enumerate(names[1:], start=1):
        built = build(name)
        report = cache.evict(root, max_bytes=cap)

        assert cache.cache_size_bytes(root) <= cap, (i, report)
        assert base.is_dir() and (base / "bin" / "python").exists(), i
        assert held.is_dir(), i  # its lock is held: never removed
        assert _envs_holding(root, name), i  # the environment just used stays
        reported_busy += f"envs/{held.name}" in report.busy
        if kept_venv is None:
            kept_venv = built
        else:
            shutil.rmtree(built.venv)

    assert reported_busy > 0  # eviction did reach it, and left it
    assert not _envs_holding(root, names[1])  # the least recently used went
    version = subprocess.run(
        [str(kept_venv.python), "-c", f"import {names[1]}; print({names[1]}.VERSION)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == "1.0"  # a job's venv outlives its cache entry
