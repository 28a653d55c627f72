"""How the agent names what a project's test run did, as its maintainer would read it: real
projects, real torch 2.13.0+cpu, real bwrap and pytest.

Collection and conftest import errors are the project's failures (by node id, with their
exception line), a run stopped at its wall time keeps what finished, tests that only wanted a
network are set apart, and a torch other than the one asked for makes the run errored.
"""

from __future__ import annotations

import pytest

from ci_runners.agent.contracts import CellState, ErrorCode, Job, TestConfig
from ci_runners.agent.runner import run_job

pytestmark = pytest.mark.agent


def _job(source, **overrides) -> Job:
    values = {
        "source": str(source),
        "torch_version": "2.13.0",
        "torch_variant": "cpu",
        "timeout_s": 180,
    }
    values.update(overrides)
    return Job(**values)


def test_module_that_no_longer_imports_is_a_failure_naming_module_and_cause(
    make_project, work_root, require_sandbox
):
    repo = make_project(
        name="staleimport",
        files={
            "tests/test_ok.py": "def test_ok():\n    pass\n",
            "tests/test_ops.py": "from torch.nn import NoSuchLayer\n\n\ndef test_x():\n    pass\n",
        },
    )

    result = run_job(job=_job(repo), work_root=work_root)

    assert result.state == CellState.FAILED, (result.error, result.log_tail)
    assert result.error_code is None
    assert result.exit_code == 2
    assert result.counts["errors"] == 1
    assert [f["test"] for f in result.failures] == ["tests/test_ops.py"]
    message = result.failures[0]["message"]
    assert message.startswith("ImportError: cannot import name 'NoSuchLayer' from 'torch.nn'")
    assert result.tests_collected == 1


def test_conftest_that_no_longer_imports_is_a_failure_naming_it(
    make_project, work_root, require_sandbox
):
    repo = make_project(
        name="staleconftest",
        files={
            "tests/conftest.py": "from torch.nn import NoSuchLayer\n",
            "tests/test_ok.py": "def test_ok():\n    pass\n",
        },
    )

    result = run_job(
        job=_job(repo, test_config=TestConfig(test_paths=["tests"])), work_root=work_root
    )

    assert result.state == CellState.FAILED, (result.error, result.log_tail)
    assert result.exit_code == 4
    assert result.counts["errors"] == 1
    assert [f["test"] for f in result.failures] == ["tests/conftest.py"]
    assert result.failures[0]["message"].startswith(
        "ImportError: cannot import name 'NoSuchLayer' from 'torch.nn'"
    )


def test_failures_carry_node_ids_and_the_crash_line(make_project, work_root, require_sandbox):
    repo = make_project(
        name="nodeids",
        files={
            "tests/test_x.py": """
                import pytest


                class TestA:
                    @pytest.mark.parametrize("value", [1, 2])
                    def test_b(self, value):
                        assert value == 1, "only one"


                @pytest.fixture
                def broken():
                    raise RuntimeError("fixture broke")


                def test_uses_broken(broken):
                    pass
            """
        },
    )

    result = run_job(job=_job(repo), work_root=work_root)

    assert result.state == CellState.FAILED, (result.error, result.log_tail)
    assert result.tests_collected == 3
    assert result.counts["passed"] == 1
    assert result.counts["failed"] == 1
    assert result.counts["errors"] == 1
    assert result.failures == [
        {
            "test": "tests/test_x.py::TestA::test_b[2]",
            "message": "AssertionError: only one\nassert 2 == 1",
        },
        {"test": "tests/test_x.py::test_uses_broken", "message": "RuntimeError: fixture broke"},
    ]


def test_wall_time_limit_keeps_the_tests_finished_before_it(
    make_project, work_root, require_sandbox
):
    repo = make_project(
        name="slowtail",
        files={
            "tests/test_slow.py": """
                import time

                import pytest


                @pytest.mark.parametrize("n", range(5))
                def test_quick_failure(n):
                    assert n < 0


                def test_sleeps_past_the_limit():
                    time.sleep(3600)
            """
        },
    )

    result = run_job(job=_job(repo, timeout_s=45), work_root=work_root)

    assert result.state == CellState.TIMED_OUT, (result.error, result.log_tail)
    assert "wall time limit of 45 s exceeded" in result.error
    assert "interrupted in tests/test_slow.py::test_sleeps_past_the_limit" in result.error
    assert result.counts["failed"] == 5
    assert result.counts["passed"] == 0
    assert [f["test"] for f in result.failures] == [
        f"tests/test_slow.py::test_quick_failure[{n}]" for n in range(5)
    ]
    assert result.tests_collected == 6


NETWORK_TESTS = """
    import socket
    import urllib.request

    import requests


    def test_dns():
        socket.getaddrinfo("pypi.org", 443)


    def test_urllib():
        urllib.request.urlopen("https://download.pytorch.org/whl/", timeout=30)


    def test_unreachable_address():
        socket.create_connection(("1.1.1.1", 443), timeout=30)


    def test_requests():
        requests.get("https://huggingface.co/api/models", timeout=30)
"""


def test_network_only_failures_are_set_apart(make_project, work_root, require_sandbox):
    repo = make_project(
        name="wantsnet",
        files={
            "tests/test_net.py": NETWORK_TESTS,
            "tests/test_real.py": """
                import socket

                import pytest


                def test_real_failure():
                    assert 1 + 1 == 3


                def test_local_server_is_not_the_network():
                    with socket.create_connection(("127.0.0.1", 9), timeout=30):
                        pass
            """,
        },
    )
    # The job's wall time doubles as the check that nothing waits on a DNS server.
    job = _job(repo, timeout_s=120, test_config=TestConfig(extra_requirements=["requests"]))

    result = run_job(job=job, work_root=work_root)

    assert result.state == CellState.FAILED, (result.error, result.log_tail)
    assert result.counts["failed"] == 2
    assert sorted(f["test"] for f in result.failures) == [
        "tests/test_real.py::test_local_server_is_not_the_network",
        "tests/test_real.py::test_real_failure",
    ]
    assert sorted(n["test"] for n in result.needs_network) == [
        "tests/test_net.py::test_dns",
        "tests/test_net.py::test_requests",
        "tests/test_net.py::test_unreachable_address",
        "tests/test_net.py::test_urllib",
    ]
    dns = next(n for n in result.needs_network if n["test"].endswith("::test_dns"))
    assert "Temporary failure in name resolution" in dns["message"]


def test_run_whose_only_failures_want_a_network_passes(make_project, work_root, require_sandbox):
    repo = make_project(
        name="onlynet",
        files={
            "tests/test_net.py": NETWORK_TESTS,
            "tests/test_ok.py": "def test_ok():\n    pass\n",
        },
    )
    job = _job(repo, timeout_s=120, test_config=TestConfig(extra_requirements=["requests"]))

    result = run_job(job=job, work_root=work_root)

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.exit_code == 1
    assert result.counts["failed"] == 0
    assert result.counts["passed"] == 1
    assert result.failures == []
    assert len(result.needs_network) == 4
    assert result.error is None


SHADOW_TORCH_PROJECT = {
    # A stale copy of torch vendored beside the tests, put first on sys.path by the project's
    # conftest: the tests would import it instead of the torch under test.
    "pyproject.toml": """
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "shadowed"
        version = "0.1.0"

        [tool.hatch.build.targets.wheel]
        packages = ["src/shadowed"]
    """,
    "src/shadowed/__init__.py": "",
    "tests/conftest.py": (
        "import os, sys\n\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), 'stale'))\n"
    ),
    "tests/stale/torch/__init__.py": "__version__ = '2.12.0'\n",
    "tests/test_ok.py": "def test_ok():\n    pass\n",
}


def test_another_torch_than_requested_is_errored_without_counts(
    make_project, work_root, require_sandbox
):
    repo = make_project(name="shadowed", files=SHADOW_TORCH_PROJECT)

    result = run_job(job=_job(repo), work_root=work_root)

    assert result.state == CellState.ERRORED, (result.error, result.log_tail)
    assert result.error_code == ErrorCode.TORCH_MISMATCH
    assert "2.12.0" in result.error
    assert "2.13.0+cpu" in result.error
    assert result.counts == dict.fromkeys(result.counts, 0)
    assert result.failures == []
    assert result.environment["torch"] == "2.12.0"


def test_requested_torch_without_variant_accepts_its_local_builds(
    make_project, work_root, require_sandbox
):
    repo = make_project(
        name="novariant",
        files={"tests/test_ok.py": "import torch\n\n\ndef test_ok():\n    assert torch.ones(1)\n"},
    )

    result = run_job(job=_job(repo, torch_variant=None), work_root=work_root)

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    assert result.error_code is None
    assert result.environment["torch"].startswith("2.13.0")


WARNING_TESTS = {
    "src/warner/__init__.py": """
        import warnings


        def old_api():
            warnings.warn("torch.nn.Foo is deprecated, use warner.Foo", DeprecationWarning)
    """,
    "tests/test_warn.py": """
        import torch

        import warner


        def test_resize_from_the_test():
            torch.sum(torch.ones(3), 0, out=torch.empty(1))


        def test_resize_from_inside_torch():
            torch.norm(torch.ones(3), dim=0, out=torch.empty(1))


        def test_projects_own_warning_naming_torch():
            warner.old_api()
    """,
}


def test_torch_api_warnings_by_origin(make_project, work_root, require_sandbox):
    repo = make_project(name="warner", files=WARNING_TESTS)

    result = run_job(job=_job(repo), work_root=work_root)

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    resized = [w for w in result.warnings if w["message"].startswith("An output with one")]
    # torch's C++ (ATen) raised it; once surfaced in the test's frame, once in torch's own.
    assert len(resized) == 1, result.warnings
    assert resized[0]["count"] == 2
    assert resized[0]["torch_api"] is True
    assert "Triggered internally at" in resized[0]["message"]
    own = [w for w in result.warnings if w["message"].startswith("torch.nn.Foo is deprecated")]
    assert [(w["category"], w["torch_api"]) for w in own] == [("DeprecationWarning", False)]


def test_no_tests_collected_is_errored_no_tests(make_project, work_root, require_sandbox):
    repo = make_project(name="notests2", files={"tests/test_none.py": "X = 1\n"})

    result = run_job(job=_job(repo), work_root=work_root)

    assert (result.state, result.error_code) == (CellState.ERRORED, ErrorCode.NO_TESTS)
    assert result.exit_code == 5


def test_pytest_refusing_its_arguments_is_a_bad_recipe(make_project, work_root, require_sandbox):
    repo = make_project(name="badargs", files={"tests/test_a.py": "def test_a():\n    pass\n"})
    job = _job(repo, test_config=TestConfig(test_paths=["no_such_dir"]))

    result = run_job(job=job, work_root=work_root)

    assert (result.state, result.error_code) == (CellState.ERRORED, ErrorCode.BAD_RECIPE)
    assert result.exit_code == 4
    assert "no_such_dir" in result.error


def test_test_config_that_does_not_fit_is_a_bad_recipe(make_project, work_root, require_sandbox):
    repo = make_project(name="badcopy", files={"tests/test_a.py": "def test_a():\n    pass\n"})

    result = run_job(
        job=_job(repo, test_config=TestConfig(copy_tests="nowhere")), work_root=work_root
    )

    assert (result.state, result.error_code) == (CellState.ERRORED, ErrorCode.BAD_RECIPE)
    assert "path to copy out not found: nowhere" in result.error


def test_checkout_failure_has_its_code(work_root, tmp_path):
    result = run_job(job=_job(tmp_path / "nothing-here"), work_root=work_root)

    assert (result.state, result.error_code) == (CellState.ERRORED, ErrorCode.CHECKOUT_FAILED)


def test_env_build_failure_has_its_code(make_project, work_root, require_sandbox):
    repo = make_project(name="envfail2", files={"tests/test_a.py": "def test_a():\n    pass\n"})
    job = _job(repo, python_version="3.99")  # no such interpreter on this runner

    result = run_job(job=job, work_root=work_root)

    assert (result.state, result.error_code) == (CellState.ERRORED, ErrorCode.ENV_BUILD_FAILED)


def test_unreadable_wheel_source_is_told_apart(make_project, work_root, tmp_path, require_sandbox):
    repo = make_project(name="nosource", files={"tests/test_a.py": "def test_a():\n    pass\n"})
    job = _job(
        repo,
        find_links=[str(tmp_path / "no-such-wheel-dir")],
        index_urls=["file:///opt/pypi/simple"],
    )

    result = run_job(job=job, work_root=work_root)

    assert result.state == CellState.ERRORED, (result.error, result.log_tail)
    assert result.error_code == ErrorCode.WHEEL_SOURCE_UNREACHABLE, result.error


def test_stop_request_and_agent_error_have_their_codes(make_project, work_root):
    repo = make_project(name="stopped", files={"tests/test_a.py": "def test_a():\n    pass\n"})

    stopped = run_job(job=_job(repo), work_root=work_root, should_stop=lambda: True)

    def broken_hook(_phase: str) -> None:
        raise RuntimeError("hook broke")

    broken = run_job(job=_job(repo), work_root=work_root, on_phase=broken_hook)

    assert (stopped.state, stopped.error_code) == (CellState.ERRORED, ErrorCode.CANCELLED)
    assert (broken.state, broken.error_code) == (CellState.ERRORED, ErrorCode.AGENT_ERROR)


def test_project_excluding_this_torch_is_not_installable(make_project, work_root, require_sandbox):
    repo = make_project(
        name="oldtorch",
        files={
            "pyproject.toml": """
                [build-system]
                requires = ["hatchling"]
                build-backend = "hatchling.build"

                [project]
                name = "oldtorch"
                version = "0.1.0"
                dependencies = ["torch<2.0"]

                [tool.hatch.build.targets.wheel]
                packages = ["src/oldtorch"]
            """,
            "tests/test_a.py": "def test_a():\n    pass\n",
        },
    )

    result = run_job(job=_job(repo), work_root=work_root)

    assert result.state == CellState.NOT_INSTALLABLE, (result.error, result.log_tail)
    assert result.error_code is None
    assert "torch" in result.error and "\n" not in result.error
    assert result.counts == dict.fromkeys(result.counts, 0)
