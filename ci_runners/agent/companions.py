"""torch's companion packages, matched to the torch build under test.

torchvision, torchaudio and torchtext link against libtorch's C++ ABI, which is not stable
between torch releases: a companion built for another torch (or for another variant: a CUDA
torchvision beside a `+cpu` torch) imports, then fails at its first operator ("operator
torchvision::nms does not exist"). A resolver does not prevent it: torchvision 0.28.0 declares
`torch==2.13.0`, which PEP 440 lets `2.13.0+cpu` satisfy. So the agent pins each companion to
the release series paired with the torch under test (a constraint: it only applies when the
companion is wanted), and after resolution compares the companion's local version tag with
torch's.

The pairings come from the projects' own compatibility tables (pytorch/pytorch wiki "PyTorch
Versions", pytorch/vision and pytorch/audio READMEs, pytorch/data README):

- torchvision: torch 1.x -> 0.(x+1), torch 2.x -> 0.(x+15)   (2.13 -> 0.28, 2.14 -> 0.29)
- torchaudio: torch 1.x -> 0.x, torch 2.x -> 2.x            (2.13 -> 2.13)
- torchtext: torch 1.8-1.13 -> 0.(x+1), 2.0-2.3 -> 0.15-0.18; none after 2.3 (development
  stopped), so torchtext with a later torch has no matching release
- torchdata: torch 1.11-1.13 -> 0.3-0.5, 2.0 -> 0.6, 2.1 -> 0.7; later torchdata releases are
  pure Python and declare their torch range themselves, so they are left to the resolver.

Only torchvision and torchaudio are built per torch variant (`+cpu`, `+cu126`): their local tag
must equal torch's. torchtext and torchdata wheels carry no variant tag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from packaging.specifiers import Specifier
from packaging.version import InvalidVersion, Version


def _torchvision(major: int, minor: int) -> str | None:
    if major == 2:
        return f"==0.{minor + 15}.*"
    return f"==0.{minor + 1}.*" if major == 1 and minor >= 1 else None


def _torchaudio(major: int, minor: int) -> str | None:
    if major == 2:
        return f"==2.{minor}.*"
    return f"==0.{minor}.*" if major == 1 and minor >= 1 else None


_TORCHTEXT = {(2, 0): "==0.15.*", (2, 1): "==0.16.*", (2, 2): "==0.17.*", (2, 3): "==0.18.*"}
_TORCHDATA = {(1, 11): "==0.3.*", (1, 12): "==0.4.*", (1, 13): "==0.5.*", (2, 0): "==0.6.*"}
_TORCHDATA[(2, 1)] = "==0.7.*"
_LAST_TORCHTEXT = (2, 3)
_FIRST_PURE_TORCHDATA = (2, 2)


def _torchtext(major: int, minor: int) -> str | None:
    if major == 1 and 8 <= minor <= 13:
        return f"==0.{minor + 1}.*"
    if (major, minor) > _LAST_TORCHTEXT:
        return "<0"  # no release was ever paired with this torch
    return _TORCHTEXT.get((major, minor))


def _torchdata(major: int, minor: int) -> str | None:
    if (major, minor) >= _FIRST_PURE_TORCHDATA:
        return None  # pure Python: its own Requires-Dist says which torch it takes
    return _TORCHDATA.get((major, minor))


@dataclass(frozen=True)
class Companion:
    """A companion package: its release series for a torch (major, minor), as a specifier
    (`==0.28.*`), or None where the table pairs none (left to the resolver); and whether its
    builds carry torch's variant as their local version tag."""

    name: str
    series: Callable[[int, int], str | None]
    variant_builds: bool


COMPANIONS = (
    Companion("torchvision", _torchvision, variant_builds=True),
    Companion("torchaudio", _torchaudio, variant_builds=True),
    Companion("torchtext", _torchtext, variant_builds=False),
    Companion("torchdata", _torchdata, variant_builds=False),
)


def _release(torch_version: str) -> tuple[int, int] | None:
    try:
        release = Version(torch_version).release
    except InvalidVersion:
        return None
    return (release[0], release[1]) if len(release) >= 2 else None


def companion_constraints(*, torch_version: str) -> list[str]:
    """Constraints pinning each companion to the release series paired with `torch_version`
    (an exact build such as `2.13.0+cpu`): `torchvision==0.28.*`, or `torchtext<0` where no
    release was paired with it."""
    release = _release(torch_version)
    if release is None:
        return []
    constraints = []
    for companion in COMPANIONS:
        series = companion.series(*release)
        if series is not None:
            constraints.append(f"{companion.name}{series}")
    return constraints


def is_companion(name: str) -> bool:
    return any(companion.name == name for companion in COMPANIONS)


def mismatched_companion(*, locked: dict[str, str], torch_version: str) -> str | None:
    """The first companion in `locked` (normalized name -> exact version) whose build does not
    match `torch_version`: another local tag than torch's (a CUDA torchvision beside a `+cpu`
    torch), or a release outside the paired series. None when all match."""
    torch_local = Version(torch_version).local
    release = _release(torch_version)
    for companion in COMPANIONS:
        version = locked.get(companion.name)
        if version is None:
            continue
        if companion.variant_builds and Version(version).local != torch_local:
            return companion.name
        series = companion.series(*release) if release else None
        if series is not None and not _in_series(version, series):
            return companion.name
    return None


def _in_series(version: str, series: str) -> bool:
    return Specifier(series).contains(Version(version).public, prereleases=True)


def no_matching_build(*, companion: str, torch_version: str) -> str:
    """The one-line reason a job with `companion` cannot be installed with this torch."""
    return f"no {companion} build matching torch {torch_version} on the configured wheel sources"
