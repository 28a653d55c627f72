"""Schedules edited in the admin survive a restart of beat: the settings seed each periodic
task once, when it is absent, and never overwrite it again."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from tests.test_deployment import procfile
from tests.uvicorn_server import session_database_url

ROOT = Path(__file__).resolve().parents[1]
NIGHTLY = "ci_runners.nightly_runs"


def _scheduler() -> str:
    words = shlex.split(procfile()["beat"])
    return words[words.index("--scheduler") + 1]


def _run_beat_until_it_ticks(*, broker_url: str, tmp: Path) -> None:
    """Start beat as the Procfile does; stop it once its schedule is set up (it ticks)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": session_database_url(),
        "CELERY_BROKER_URL": broker_url,
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "DEBUG"]
    command += ["--scheduler", _scheduler(), "--pidfile", str(tmp / "beat.pid")]
    beat = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 60
    try:
        for line in beat.stdout:
            if "beat: Ticking" in line or time.monotonic() > deadline:
                break
    finally:
        beat.terminate()
        beat.wait(timeout=20)


@pytest.mark.django_db(transaction=True)
def test_an_admin_edit_of_a_schedule_survives_a_beat_restart(private_redis, tmp_path):
    _run_beat_until_it_ticks(broker_url=private_redis.url, tmp=tmp_path)
    nightly = PeriodicTask.objects.get(name=NIGHTLY)
    assert (nightly.crontab.hour, nightly.crontab.minute) == ("1", "7")  # the seeded default
    # What staff do in the admin: another time, and the task switched off.
    nightly.crontab = CrontabSchedule.objects.create(hour="3", minute="33", timezone="UTC")
    nightly.enabled = False
    nightly.save()

    _run_beat_until_it_ticks(broker_url=private_redis.url, tmp=tmp_path)

    nightly.refresh_from_db()
    assert (nightly.crontab.hour, nightly.crontab.minute, nightly.enabled) == ("3", "33", False)
