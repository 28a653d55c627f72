"""The sandbox's pytest plugin, piece by piece: which failures only wanted a network, the
exception line of a collection error, and which torch counts as the one requested."""

from __future__ import annotations

import socket
import urllib.error

import pytest

from ci_runners.agent import warnings_plugin

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
