"""Web logs (LOGGING in config/settings/base.py, config/request_log.py): one line per request
(method, path, status, duration), a 4xx without a traceback, a 5xx with one, and no line printed
twice by two handlers."""

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ACCESS_LINE = r"{method} {path} {status} \d+(\.\d+)? ms"

pytestmark = pytest.mark.urls("tests.failing_urls")


def lines_about(records, path: str) -> list[logging.LogRecord]:
    return [record for record in records if path in record.getMessage()]


@pytest.mark.django_db
def test_a_403_is_one_line_without_a_traceback(client, caplog):
    with caplog.at_level(logging.INFO):
        assert client.get("/failing/forbidden/").status_code == 403
    [line] = lines_about(caplog.records, "/failing/forbidden/")
    assert re.fullmatch(ACCESS_LINE.format(method="GET", path="/failing/forbidden/", status=403),
                        line.getMessage())  # fmt: skip
    assert not any(record.exc_info for record in caplog.records)


@pytest.mark.django_db
def test_a_404_and_a_200_are_one_line_each(client, caplog):
    with caplog.at_level(logging.INFO):
        client.get("/failing/not-found/")
        client.get("/")
    assert len(lines_about(caplog.records, "/failing/not-found/")) == 1
    assert [r.getMessage() for r in caplog.records if re.match(r"GET / \d", r.getMessage())]
    assert not any(record.exc_info for record in caplog.records)


@pytest.mark.django_db
def test_a_500_keeps_its_traceback(client, caplog):
    client.raise_request_exception = False
    with caplog.at_level(logging.INFO):
        assert client.get("/failing/broken/").status_code == 500
    [error] = [record for record in caplog.records if record.exc_info]
    assert error.levelno == logging.ERROR and "/failing/broken/" in error.getMessage()
    access = lines_about(caplog.records, "/failing/broken/")
    assert [record.getMessage() for record in access if record is not error] and len(access) == 2


# The handlers as the settings configure them (a test run's caplog would hide a duplicate
# handler): a fresh process, its stderr counted line by line.
REQUESTS = """
import django
django.setup()
from django.conf import settings
from django.test import Client
settings.ROOT_URLCONF = "tests.failing_urls"
client = Client(HTTP_HOST="localhost", raise_request_exception=False)
for path in ("/failing/forbidden/", "/failing/not-found/", "/failing/broken/"):
    client.get(path)
Client(HTTP_HOST="evil.example", raise_request_exception=False).get("/")
"""


@pytest.mark.parametrize(
    ("settings_module", "debug"),
    [("config.settings.local", "true"), ("config.settings.local", "false")],
)
def test_each_line_is_printed_once(settings_module, debug):
    environment = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DJANGO_DEBUG": debug,
        "SQLITE_PATH": ":memory:",
        "LOG_LEVEL": "INFO",
    }
    finished = subprocess.run(
        [sys.executable, "-c", REQUESTS],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    output = finished.stderr.splitlines()
    for path, status in (("/failing/forbidden/", 403), ("/failing/not-found/", 404)):
        about = [line for line in output if path in line]
        assert len(about) == 1, (path, about)
        assert re.search(ACCESS_LINE.format(method="GET", path=path, status=status), about[0])
    broken = [line for line in output if "/failing/broken/" in line]
    assert len(broken) == 2, broken  # the error (with its traceback) and the access line
    refused_host = [line for line in output if "evil.example" in line]
    assert len(refused_host) == 1, refused_host  # a 400: its reason, no traceback
    assert [line for line in output if re.search(r"GET / 400 ", line)]
    assert sum("Traceback" in line for line in output) == 1, finished.stderr
