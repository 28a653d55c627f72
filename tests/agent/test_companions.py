"""torchvision, torchaudio, torchtext and torchdata pinned to the torch build under test."""

from __future__ import annotations

import pytest

from ci_runners.agent.companions import companion_constraints, mismatched_companion

pytestmark = pytest.mark.agent


@pytest.mark.parametrize(
    ("torch", "expected"),
    [
        ("2.13.0+cpu", ["torchvision==0.28.*", "torchaudio==2.13.*", "torchtext<0"]),
        ("2.14.1", ["torchvision==0.29.*", "torchaudio==2.14.*", "torchtext<0"]),
        (
            "2.1.2",
            ["torchvision==0.16.*", "torchaudio==2.1.*", "torchtext==0.16.*", "torchdata==0.7.*"],
        ),
        ("2.3.0", ["torchvision==0.18.*", "torchaudio==2.3.*", "torchtext==0.18.*"]),
        (
            "1.13.1",
            ["torchvision==0.14.*", "torchaudio==0.13.*", "torchtext==0.14.*", "torchdata==0.5.*"],
        ),
    ],
)
def test_companions_are_pinned_to_the_paired_release_series(torch, expected):
    assert companion_constraints(torch_version=torch) == expected


def test_a_companion_must_carry_torchs_variant_tag():
    cpu = "2.13.0+cpu"

    assert mismatched_companion(locked={"torchvision": "0.28.0"}, torch_version=cpu) == (
        "torchvision"
    )
    assert mismatched_companion(locked={"torchvision": "0.28.0+cpu"}, torch_version=cpu) is None
    assert mismatched_companion(locked={"torchaudio": "2.13.0+cu126"}, torch_version=cpu) == (
        "torchaudio"
    )
    assert mismatched_companion(locked={"torchvision": "0.29.1"}, torch_version="2.14.1") is None


def test_a_companion_outside_the_paired_series_is_a_mismatch():
    assert mismatched_companion(locked={"torchvision": "0.27.0"}, torch_version="2.13.0") == (
        "torchvision"
    )
    # torchdata after 0.7 is pure Python and declares its own torch range: not pinned here.
    assert mismatched_companion(locked={"torchdata": "0.11.0"}, torch_version="2.13.0") is None
