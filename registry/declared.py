"""Declared vs measured: the torch range a project's own metadata declares, set against the
PyTorch versions its latest compatibility cells say it works with, breaks with, or cannot be
installed with. Computed from the summaries the runners push into `Project` (the registry
imports no other app), so the project page, the API and the badge JSON say the same."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from registry.badges import version_sort_key
from registry.models import Project


class DisagreementKind(StrEnum):
    # The declared range includes a version whose latest cell failed or timed out.
    BROKEN_CLAIM = "broken_claim"
    # The declared range excludes a version: not installable by the project's own metadata.
    EXCLUDED_BY_METADATA = "excluded_by_metadata"
    # The declared range excludes a version, but the tests pass with it when run beyond the
    # range (the range overridden): a range that could widen.
    WIDENABLE_RANGE = "widenable_range"


@dataclass(frozen=True, kw_only=True)
class Disagreement:
    kind: DisagreementKind
    torch: str
    message: str

    @property
    def label(self) -> str:
        return str(self.kind).replace("_", " ")

    def to_dict(self) -> dict[str, str]:
        return {"kind": str(self.kind), "torch": self.torch, "message": self.message}


@dataclass(frozen=True, kw_only=True)
class Compatibility:
    """`declared`: {torch, requires_python} specifier texts ({} when never built; torch "" when
    the project names no torch range); the measured version lists, oldest first
    (`widenable_with`: those of `not_installable_with` its tests pass with beyond its range)."""

    declared: dict[str, str] = field(default_factory=dict)
    works_with: list[str] = field(default_factory=list)
    breaks_with: list[str] = field(default_factory=list)
    not_installable_with: list[str] = field(default_factory=list)
    widenable_with: list[str] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "declared": dict(self.declared),
            "works_with": list(self.works_with),
            "breaks_with": list(self.breaks_with),
            "not_installable_with": list(self.not_installable_with),
            "widenable_with": list(self.widenable_with),
            "disagreements": [d.to_dict() for d in self.disagreements],
        }


def declared_torch_range(declared: dict[str, str]) -> SpecifierSet | None:
    """The declared torch specifier; None when none is declared or it cannot be read."""
    text = str((declared or {}).get("torch") or "").strip()
    if not text:
        return None
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return None


def _in_range(spec: SpecifierSet, version: str) -> bool | None:
    """Whether `version` (its public part) is in `spec`; None: not a version (unknowable)."""
    try:
        public = Version(version).public
    except InvalidVersion:
        return None
    return spec.contains(public, prereleases=True)


def _sorted(versions: Iterable[object] | None) -> list[str]:
    return sorted({str(v) for v in (versions or ())}, key=version_sort_key)


def project_compatibility(*, project: Project) -> Compatibility:
    """The project's declared range, measured lists and their disagreements: a version in the
    declared range that breaks is a broken claim; a not-installable version outside it is
    excluded by the project's own metadata (not a dependency conflict), or, when its tests
    pass with it run beyond the range, a range that could widen."""
    declared = {str(k): str(v) for k, v in (project.declared or {}).items()}
    breaks = _sorted(project.breaks_with)
    not_installable = _sorted(project.not_installable_with)
    widenable = _sorted(project.widenable_with)
    spec = declared_torch_range(declared)
    disagreements: list[Disagreement] = []
    if spec is not None:
        claim = f"torch{declared['torch']}"
        for version in breaks:
            if _in_range(spec, version):
                disagreements.append(
                    Disagreement(
                        kind=DisagreementKind.BROKEN_CLAIM,
                        torch=version,
                        message=f"declares {claim}, fails on {version}",
                    )
                )
        for version in not_installable:
            if _in_range(spec, version) is False:
                disagreements.append(_exclusion(claim=claim, version=version, widenable=widenable))
    return Compatibility(
        declared=declared,
        works_with=_sorted(project.works_with),
        breaks_with=breaks,
        not_installable_with=not_installable,
        widenable_with=widenable,
        disagreements=disagreements,
    )


def _exclusion(*, claim: str, version: str, widenable: list[str]) -> Disagreement:
    """A version the declared range (`claim`) excludes: a range that could widen when the
    tests pass with it beyond the range, else not installable by its own metadata."""
    if version in widenable:
        return Disagreement(
            kind=DisagreementKind.WIDENABLE_RANGE,
            torch=version,
            message=f"declared range {claim} excludes {version} but its tests pass with it",
        )
    return Disagreement(
        kind=DisagreementKind.EXCLUDED_BY_METADATA,
        torch=version,
        message=f"declared range {claim} excludes {version}: not installable by its own metadata",
    )
