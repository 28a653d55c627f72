"""Factories of the review process: applications, votes and comments.

`SubmissionFactory` builds a complete draft; a test moves it on with `reviews.services`
(`submission_submit`, `submission_transition`, ...), the only writers of its state. Building a
row directly in a later state (`state=...`) suits tests that only read it.
"""

import factory
from factory.django import DjangoModelFactory

from reviews.models import Comment, Submission, Vote
from reviews.states import SubmissionState
from tests.factories import UserFactory

# The description must be 100 to 300 words.
DESCRIPTION = " ".join(["word"] * 150)


class SubmissionFactory(DjangoModelFactory):
    """A draft with every required answer, for the repository `repository="owner/name"`."""

    class Meta:
        model = Submission

    class Params:
        repository = factory.Sequence(lambda n: f"org{n}/torchlib{n}")

    applicant = factory.SubFactory(UserFactory)
    kind = Submission.Kind.ECOSYSTEM
    project_name = factory.LazyAttribute(lambda s: s.repository.partition("/")[2].title())
    contact_emails = factory.LazyAttribute(lambda s: [s.applicant.email])
    summary = "A PyTorch library."
    description = DESCRIPTION
    similar_projects = "none"
    repository_url = factory.LazyAttribute(lambda s: f"https://github.com/{s.repository}")
    repo_owner = factory.LazyAttribute(lambda s: s.repository.partition("/")[0])
    repo_name = factory.LazyAttribute(lambda s: s.repository.partition("/")[2])
    license = "BSD-3-Clause"
    maintainer_handles = factory.LazyFunction(lambda: ["alice", "bob"])
    website_url = factory.LazyAttribute(lambda s: f"https://{s.repo_name}.example.org")
    documentation_url = factory.LazyAttribute(lambda s: f"https://{s.repo_name}.example.org/docs")
    documentation = "Quick start in the README; full docs online."
    ci_description = "GitHub Actions on CPU and CUDA."
    pytorch_versions = "2.13, 2.14"
    pytorch_components = "torch.nn"
    pypi_name = factory.LazyAttribute(lambda s: s.repo_name)


class VoteFactory(DjangoModelFactory):
    """An approval, on an application built already in the vote."""

    class Meta:
        model = Vote

    submission = factory.SubFactory(SubmissionFactory, state=SubmissionState.VOTING)
    voter = factory.SubFactory(UserFactory)
    choice = Vote.Choice.APPROVE


class CommentFactory(DjangoModelFactory):
    class Meta:
        model = Comment

    submission = factory.SubFactory(SubmissionFactory)
    author = factory.SubFactory(UserFactory)
    body = "Looks good."
