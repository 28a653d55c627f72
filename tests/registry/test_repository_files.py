"""What the registry reads in a repository's own files, and the one PyPI module (against a
local fake PyPI)."""

import pytest

from registry.sources import pypi
from registry.sources.repository_files import (
    codeowners_handles,
    maintainers_file_handles,
    pyproject_name,
    setup_cfg_name,
)
from tests.fakes.http import FakeHTTPServer, Reply


def test_codeowners_users_only():
    text = (
        "# This is a comment @commented\n"
        "*       @alice @acme/core-team dev@acme.org\n"
        "/docs/  @Bob   # docs @not-an-owner\n"
        "\\#odd  @carol\n"
        "/x/     @alice @-bad @toolonghandle-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
        "/empty/\n"
    )
    assert codeowners_handles(text) == ["alice", "Bob", "carol"]


def test_maintainers_file_mentions_and_profile_links():
    text = (
        "# Maintainers\n"
        "- Alice Doe (@alice-d) <alice@acme.org>\n"
        "- [Bob](https://github.com/bob/) and https://www.github.com/Carol\n"
        "- see https://github.com/acme/widgets (a repository, not a person)\n"
        "- team @acme/core, GitHub's page https://github.com/orgs, email me@bob.dev\n"
        "- github.com/dan, and ask @erin.\n"
    )
    assert maintainers_file_handles(text) == ["alice-d", "bob", "Carol", "dan", "erin"]


def test_pyproject_name():
    assert pyproject_name('[project]\nname = "torch-widgets"\n') == "torch-widgets"
    assert pyproject_name('[project]\nversion = "1"\n') == ""
    assert pyproject_name("[project\n") == ""
    assert pyproject_name('[project]\nname = "bad name!"\n') == ""
    assert pyproject_name('[tool.poetry]\nname = "x"\n') == ""


def test_setup_cfg_name():
    assert setup_cfg_name("[metadata]\nname = gears\nversion = 1\n") == "gears"
    assert setup_cfg_name("[options]\nzip_safe = False\n") == ""
    assert setup_cfg_name("not an ini file") == ""
    assert setup_cfg_name("[metadata]\nname = %(weird)s\n") == ""


@pytest.fixture
def fake_pypi(settings):
    with FakeHTTPServer() as server:
        settings.PYPI_JSON_URL = server.url + "/pypi/{name}/json"
        yield server


def test_package_json_and_exists(fake_pypi):
    body = {"info": {"name": "gears"}, "releases": {"1.0": [{"yanked": False}]}}
    fake_pypi.route("GET", "/pypi/gears/json", Reply(200, body))

    assert pypi.package_json(name="gears") == body
    assert pypi.package_exists(name="gears") is True
    assert pypi.package_exists(name="nothing") is False  # 404
    assert fake_pypi.requests[0].headers["Accept"] == "application/json"


def test_an_invalid_name_asks_nothing(fake_pypi):
    assert pypi.package_json(name="../../admin") is None
    assert pypi.package_json(name="") is None
    assert fake_pypi.requests == []


@pytest.mark.parametrize("reply", [Reply(500, "oops"), Reply(200, "<html>"), Reply(200, [1])])
def test_pypi_failures_raise(fake_pypi, reply):
    fake_pypi.route("GET", "/pypi/gears/json", reply)
    with pytest.raises(pypi.PyPIUnavailable):
        pypi.package_json(name="gears")


def test_package_releases_skip_yanked_and_invalid(fake_pypi):
    releases = {
        "2.0": [{"yanked": True}],
        "1.0": [{"yanked": False}],
        "nonsense version": [{}],
        "0.9": [],
    }
    fake_pypi.route("GET", "/pypi/torch/json", Reply(200, {"releases": releases}))
    assert sorted(str(v) for v in pypi.package_releases(name="torch")) == ["0.9", "1.0"]
    with pytest.raises(pypi.PyPIUnavailable, match="release list unavailable"):
        pypi.package_releases(name="nothing")
