"""The resolver's answers, read: a lock of exact versions, or why there is none."""

from __future__ import annotations

import pytest

from ci_runners.agent import lock

pytestmark = pytest.mark.agent

UV_UNSATISFIABLE = """\
error: No solution found when resolving dependencies
  cause: Because only pinnedtorch==0.1.0 is available and pinnedtorch==0.1.0 depends on
         torch==2.14.1, we can conclude that all versions of pinnedtorch depend on torch==2.14.1.
         And because you require pinnedtorch and torch===2.13.0+cpu, we can conclude that your
         requirements are unsatisfiable.

hint: Pre-releases are available for `torch` in the requested range
"""

UV_UNREACHABLE = """\
error: Failed to fetch: `http://127.0.0.1:9/simple/pytest/`
  cause: error sending request for url (http://127.0.0.1:9/simple/pytest/)
  cause: client error (Connect)
  cause: Connection refused (os error 111)
"""

UV_NO_WHEEL = """\
error: No solution found when resolving dependencies
  cause: Because sdonly==1.0 has no usable wheels and only sdonly==1.0 is available, we can
         conclude that all versions of sdonly cannot be used.

hint: Wheels are required for `sdonly` because building from source is disabled
"""


def test_unsatisfiable_is_the_resolvers_because_sentence_on_one_line():
    failure = lock.classify_failure(UV_UNSATISFIABLE)

    assert isinstance(failure, lock.Unsatisfiable)
    reason = str(failure)
    assert reason.startswith("Because only pinnedtorch==0.1.0 is available")
    assert reason.endswith("we can conclude that your requirements are unsatisfiable.")
    assert "\n" not in reason and "cause:" not in reason and "hint" not in reason


def test_long_reasons_are_cut():
    reason = lock.unsatisfiable_reason("Because " + "a depends on b and " * 100 + "so.")

    assert len(reason) == lock.REASON_MAX_CHARS and reason.endswith("...")


def test_unreachable_source_and_missing_wheel_are_not_compatibility_facts():
    unreachable = lock.classify_failure(UV_UNREACHABLE)
    no_wheel = lock.classify_failure(UV_NO_WHEEL)

    assert isinstance(unreachable, lock.SourceUnreachable)
    assert "http://127.0.0.1:9/simple/pytest/" in str(unreachable)
    assert "Connection refused" in str(unreachable)
    assert isinstance(no_wheel, lock.NoWheel) and str(no_wheel) == "sdonly"


def test_lock_lines_are_read_and_hashed_in_order():
    lines = ["torch==2.13.0+cpu", "Typing_Extensions==4.16.0", "proj @ file:///w/proj.whl"]

    assert lock.pinned_versions(lines) == {
        "torch": "2.13.0+cpu",
        "typing-extensions": "4.16.0",
    }
    assert lock.lock_name(lines[2]) == "proj"
    assert lock.lock_hash(lines) == lock.lock_hash(list(reversed(lines)))
    assert lock.lock_hash(lines) != lock.lock_hash(lines[:2])


def test_installed_lock_is_read_from_dist_info_dirs(tmp_path):
    for name in ("torch-2.13.0+cpu.dist-info", "typing_extensions-4.16.0.dist-info", "torch"):
        (tmp_path / name).mkdir()
    (tmp_path / "stray-1.0.dist-info").write_text("not a dir")

    assert lock.installed_lock(tmp_path) == ["torch==2.13.0+cpu", "typing-extensions==4.16.0"]
