"""The sandbox's pytest plugin, piece by piece: which failures only wanted a network, the
exception line of a collection error, which torch counts as the one requested; and, through a
real agent run, the tests behind each warning group."""

from __future__ import annotations

import socket
import urllib.error

import pytest

from ci_runners.agent import warnings_plugin
from ci_runners.agent.contracts import CellState, Job
from ci_runners.agent.runner import run_job
from tests.standin_wheels import standin_torch

pytestmark = pytest.mark.agent


def _raised(make):
    """An exception as Python raises it, with its __context__ / __cause__ set."""
    try:
        make()
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError("nothing raised")


class PoolError(Exception):
    """Shaped like urllib3's MaxRetryError: the connection pool names its host."""

    def __init__(self, host: str, reason: Exception) -> None:
        super().__init__(f"HTTPConnectionPool(host='{host}', port=80): Max retries exceeded")
        self.reason = reason


def _refused_through_pool(host: str) -> Exception:
    def make():
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as refused:
            raise PoolError(host, refused) from refused

    return _raised(make)


def _dns_inside_assertion():
    try:
        raise socket.gaierror(-3, "Temporary failure in name resolution")
    except OSError:
        raise AssertionError("could not download the weights") from None


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (socket.gaierror(-3, "Temporary failure in name resolution"), True),
        (urllib.error.URLError(socket.gaierror(-2, "Name or service not known")), True),
        (OSError(101, "Network is unreachable"), True),
        (_refused_through_pool("huggingface.co"), True),
        (_refused_through_pool("127.0.0.1"), False),
        (ConnectionRefusedError(111, "Connection refused"), False),
        (AssertionError("assert 1 == 2"), False),
        # Raised while handling the DNS failure: hidden from the traceback (`from None`), still
        # its cause.
        (_raised(_dns_inside_assertion), True),
    ],
)
def test_needs_network(exc, expected):
    assert warnings_plugin.needs_network(exc) is expected


def test_exception_line_of_a_collection_error():
    text = (
        "ImportError while importing test module '/w/tests/test_ops.py'.\n"
        "Traceback:\n"
        "tests/test_ops.py:1: in <module>\n"
        "    from torch.nn import Foo\n"
        "E   ImportError: cannot import name 'Foo' from 'torch.nn' (/v/torch/nn/__init__.py)\n"
    )

    assert warnings_plugin.exception_line(text) == (
        "ImportError: cannot import name 'Foo' from 'torch.nn' (/v/torch/nn/__init__.py)"
    )


@pytest.mark.parametrize(
    ("actual", "expected", "same"),
    [
        ("2.13.0+cpu", "2.13.0+cpu", True),
        ("2.13.0", "2.13.0+cpu", False),
        ("2.13.0+cu126", "2.13.0+cpu", False),
        ("2.13.0+cu126", "2.13.0", True),
        ("2.13.0", "2.13", True),
        ("2.12.0", "2.13.0", False),
        ("not-a-version", "2.13.0", False),
    ],
)
def test_same_torch(actual, expected, same):
    assert warnings_plugin.same_torch(actual=actual, expected=expected) is same


# A stand-in torch whose own module warns about one of its APIs, as torch's deprecations do:
# raised inside torch, reported (stacklevel=2) against the caller's line. Its version is this
# test's own: the agent caches a torch base by version, in a cache other tests share.
STANDIN_VERSION = "9.61.0"

TESTS_CALLING_OLD_API = {
    "tests/test_calls.py": """
        import warnings

        import pytest
        import torch

        warnings.warn("raised while the module is imported", UserWarning)


        def test_first():
            assert torch.old_api() == 1


        @pytest.mark.parametrize("n", range(25))
        def test_many(n):
            assert torch.old_api() == 1


        def test_quiet():
            assert torch.__version__.startswith("9.")
    """,
}


def test_warning_groups_name_their_tests_in_order_first_seen(
    make_project, work_root, require_sandbox
):
    wheels = work_root / "standin-torch-plugin"
    standin_torch(wheels, STANDIN_VERSION)  # its torch.old_api() warns
    repo = make_project(name="oldapi", files=TESTS_CALLING_OLD_API)
    job = Job(
        source=str(repo), torch_version=STANDIN_VERSION, find_links=[str(wheels)], timeout_s=300
    )

    result = run_job(job=job, work_root=work_root)

    assert result.state == CellState.PASSED, (result.error, result.log_tail)
    groups = {group["message"]: group for group in result.warnings}
    old_api = groups["torch.old_api is deprecated, use torch.new_api"]
    # torch's own module raised it: a stand-in torch counts as torch.
    assert (old_api["category"], old_api["torch_api"], old_api["count"]) == (
        "FutureWarning",
        True,
        26,
    )
    expected = ["tests/test_calls.py::test_first"] + [
        f"tests/test_calls.py::test_many[{n}]" for n in range(19)
    ]
    assert old_api["tests"] == expected  # the first 20, in the order they ran
    imported = groups["raised while the module is imported"]
    assert (imported["torch_api"], imported["tests"]) == (False, [warnings_plugin.NO_TEST])
