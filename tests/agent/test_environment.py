"""Where torch wheels come from: the job, the agent's environment, or pip's own config."""

from __future__ import annotations

import pytest

from ci_runners.agent import environment
from ci_runners.agent.contracts import Job

pytestmark = pytest.mark.agent


def test_pip_config_of_this_host_is_used_when_nothing_else_is_set(monkeypatch):
    monkeypatch.delenv("AGENT_FIND_LINKS", raising=False)
    monkeypatch.delenv("AGENT_INDEX_URLS", raising=False)

    sources = environment.wheel_sources(job=Job(source=".", torch_version="2.13.0"))

    assert "/opt/wheels" in sources.find_links
    assert "file:///opt/pypi-more/simple" in sources.extra_index_urls
    args = sources.uv_args()
    assert args[-2:] == ["--index-strategy", "unsafe-best-match"]


def test_agent_variables_override_pip_config(monkeypatch):
    monkeypatch.setenv("AGENT_FIND_LINKS", "/a, /b")
    monkeypatch.setenv("AGENT_INDEX_URLS", "https://download.pytorch.org/whl/cu126")

    sources = environment.wheel_sources(job=Job(source=".", torch_version="2.13.0"))

    assert sources.find_links == ["/a", "/b"]
    assert sources.extra_index_urls == ["https://download.pytorch.org/whl/cu126"]


def test_job_sources_win(monkeypatch):
    monkeypatch.setenv("AGENT_FIND_LINKS", "/a")
    job = Job(source=".", torch_version="2.13.0", find_links=["/job"], index_urls=[])

    assert environment.wheel_sources(job=job).find_links == ["/job"]


def test_test_extra_is_the_default(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "p"\ndependencies = ["numpy"]\n'
        '[project.optional-dependencies]\ntest = ["pytest-mock", "p[other]"]\n'
    )

    metadata = environment.read_project_metadata(project_dir=tmp_path)

    assert metadata.dependencies == ["numpy"]
    assert environment._extras(job=Job(source=".", torch_version="2"), metadata=metadata) == [
        "test"
    ]
