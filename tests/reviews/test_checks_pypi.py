"""Criterion 9 (a package on PyPI) reads PyPI through the one PyPI module
(`registry.sources.pypi`): its settings apply, and every answer PyPI may give keeps its outcome.
Against a local fake PyPI (real requests, real sockets)."""

import time

import pytest

from reviews.checks import FAILED, MEASURED, MET, UNKNOWN, UNMET, pypi_measurement
from tests.fakes.http import FakeHTTPServer, Reply

PACKAGE = {
    "info": {"name": "torchgood", "version": "1.2.0"},
    "urls": [{"filename": "torchgood-1.2.0-py3-none-any.whl"}],
    "releases": {"1.2.0": [{"filename": "torchgood-1.2.0-py3-none-any.whl"}]},
}


@pytest.fixture
def fake_pypi(settings):
    with FakeHTTPServer() as server:
        settings.PYPI_JSON_URL = server.url + "/pypi/{name}/json"
        yield server


def answer(fake_pypi, reply) -> None:
    fake_pypi.route("GET", "/pypi/torchgood/json", reply)


def test_a_package_with_files_is_met(fake_pypi):
    answer(fake_pypi, Reply(200, PACKAGE))
    measured = pypi_measurement("torchgood")
    assert (measured.outcome, measured.check) == (MET, MEASURED)
    assert measured.value == "torchgood 1.2.0 on PyPI"
    assert measured.url == "https://pypi.org/project/torchgood/"


@pytest.mark.parametrize(
    ("reply", "outcome", "check", "value"),
    [
        (Reply(404, {"message": "Not Found"}), UNMET, MEASURED, "no package 'torchgood' on PyPI"),
        (Reply(200, {**PACKAGE, "urls": [], "releases": {}}), UNMET, MEASURED, "has no files"),
        (Reply(503, "busy"), UNKNOWN, FAILED, "PyPI answered HTTP 503"),
        (Reply(200, "<html>not json</html>"), UNKNOWN, FAILED, "unexpected body"),
        (Reply(200, ["a", "list"]), UNKNOWN, FAILED, "unexpected body"),
        (Reply(200, {"info": "odd"}), UNKNOWN, FAILED, "unexpected body"),
    ],
)
def test_each_answer_keeps_its_outcome(fake_pypi, reply, outcome, check, value):
    answer(fake_pypi, reply)
    measured = pypi_measurement("torchgood")
    assert (measured.outcome, measured.check) == (outcome, check)
    assert value in measured.value


def test_no_name_or_a_bad_one_asks_nothing(fake_pypi):
    for name in ("", "not a name", "../etc"):
        assert pypi_measurement(name).outcome == UNKNOWN
    assert fake_pypi.requests == []


def test_pypi_unreachable_is_a_failed_check(settings):
    settings.PYPI_JSON_URL = "http://127.0.0.1:9/pypi/{name}/json"  # discard port: refused
    measured = pypi_measurement("torchgood")
    assert (measured.outcome, measured.check) == (UNKNOWN, FAILED)
    assert measured.value.startswith("PyPI could not be reached (")


def test_the_pypi_timeout_setting_applies(fake_pypi, settings):
    """The one module's timeout (settings.PYPI_TIMEOUT_S), not a timeout of the checks' own."""
    settings.PYPI_TIMEOUT_S = 0.3

    def slow(request):
        time.sleep(1.5)
        return Reply(200, PACKAGE)

    answer(fake_pypi, slow)
    started = time.monotonic()
    measured = pypi_measurement("torchgood")

    assert time.monotonic() - started < 1.4
    assert (measured.outcome, measured.check) == (UNKNOWN, FAILED)
    assert measured.value == "PyPI could not be reached (ReadTimeout)"
