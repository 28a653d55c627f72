"""The 19 criteria of the ecosystem process, as data, and how each one is measured."""

from dataclasses import dataclass

AUTOMATED, HUMAN, PARTLY = "automated", "human", "partly"


@dataclass(frozen=True)
class Criterion:
    number: int
    group: str
    title: str
    description: str
    how: str  # AUTOMATED, HUMAN or PARTLY (automated evidence, a reviewer confirms)
    source: str  # where the automated evidence comes from ("" for human criteria)

    @property
    def answered_by_reviewers(self) -> bool:
        return self.how in (HUMAN, PARTLY)

    @property
    def automated(self) -> bool:
        return self.how in (AUTOMATED, PARTLY)


CRITERIA: tuple[Criterion, ...] = (
    Criterion(1, "Functional", "PyTorch support",
              "Validated with the latest PyTorch versions.", AUTOMATED, "compatibility run"),
    Criterion(2, "Functional", "Working CI",
              "Working CI for every declared architecture (CPU, CUDA, ROCm, ...).", PARTLY,
              "GitHub (workflow files)"),
    Criterion(3, "Functional", "Governance",
              "Governance documented in the repository.", HUMAN, ""),
    Criterion(4, "Functional", "User experience",
              "Value proposition clear in the README.", HUMAN, ""),
    Criterion(5, "Functional", "Quick start", "A working quick start.", HUMAN, ""),
    Criterion(6, "Functional", "Documentation",
              "Clear and comprehensive documentation.", HUMAN, ""),
    Criterion(7, "Functional", "Permissive license",
              "Permissive license (e.g. BSD-3-Clause, Apache-2.0, MIT).", AUTOMATED, "GitHub"),
    Criterion(8, "Functional", "Functional tests",
              "Functional tests giving confidence it works with the latest PyTorch.", AUTOMATED,
              "compatibility run"),
    Criterion(9, "Functional", "Binary packages", "Binary packages (pip or conda).", AUTOMATED,
              "PyPI"),
    Criterion(10, "Functional", "Maintenance commitment",
              "Maintained for at least 12 months and updated to the latest two PyTorch releases.",
              HUMAN, ""),
    Criterion(11, "Measurable", "Core maintainers", "At least 2 core maintainers.", AUTOMATED,
              "application"),
    Criterion(12, "Measurable", "Active contributors",
              "At least 5 contributors active in the last 90 days.", AUTOMATED, "GitHub"),
    Criterion(13, "Measurable", "Commit activity", "At least 30 commits in the last 90 days.",
              AUTOMATED, "GitHub"),
    Criterion(14, "Measurable", "Stars", "At least 200 GitHub stars.", AUTOMATED, "GitHub"),
    Criterion(15, "Repository layout", "LICENSE", "LICENSE file at the root.", AUTOMATED,
              "GitHub"),
    Criterion(16, "Repository layout", "README", "README file.", AUTOMATED, "GitHub"),
    Criterion(17, "Repository layout", "CONTRIBUTING", "CONTRIBUTING file.", AUTOMATED, "GitHub"),
    Criterion(18, "Repository layout", "CODEOWNERS", "CODEOWNERS file.", AUTOMATED, "GitHub"),
    Criterion(19, "Repository layout", "CODE_OF_CONDUCT", "CODE_OF_CONDUCT file.", AUTOMATED,
              "GitHub"),
)  # fmt: skip

BY_NUMBER: dict[int, Criterion] = {criterion.number: criterion for criterion in CRITERIA}
CHOICES = [(c.number, f"{c.number}. {c.title}") for c in CRITERIA]
REVIEWER_ANSWERED = tuple(c.number for c in CRITERIA if c.answered_by_reviewers)
GITHUB_CRITERIA = (2, 7, 12, 13, 14, 15, 16, 17, 18, 19)
COMPAT_CRITERIA = (1, 8)

# Thresholds of the measurable criteria.
MIN_MAINTAINERS = 2
MIN_ACTIVE_CONTRIBUTORS = 5
MIN_COMMITS_90D = 30
MIN_STARS = 200
PERMISSIVE_LICENSES = frozenset(
    {
        "MIT",
        "MIT-0",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "BSD-3-Clause-Clear",
        "Apache-2.0",
        "ISC",
        "Zlib",
        "PSF-2.0",
        "BSL-1.0",
        "0BSD",
        "UPL-1.0",
        "Unlicense",
    }
)
# Repository files: criterion -> (RepositoryHealth attribute, file name).
LAYOUT_FILES = {
    15: ("has_license", "LICENSE"),
    16: ("has_readme", "README"),
    17: ("has_contributing", "CONTRIBUTING"),
    18: ("has_codeowners", "CODEOWNERS"),
    19: ("has_code_of_conduct", "CODE_OF_CONDUCT"),
}

ONBOARDING_TASKS: tuple[tuple[str, str, bool, bool], ...] = (
    # key, label, suggested only (not required), done by the applicant (else the foundation)
    ("logo", "Logo received (SVG) for the landscape", False, True),
    ("landscape_entry", "Entry added to the landscape data file (category and subcategory)", False,
     False),
    ("github_2fa", "Two-factor authentication required for the GitHub organisation", False, True),
    ("announcement", "Announcement / blog post published", False, False),
    ("cla_dco", "CLA or DCO in place (suggested)", True, True),
)  # fmt: skip
APPLICANT_ONBOARDING_TASKS = frozenset(key for key, _, _, mine in ONBOARDING_TASKS if mine)
