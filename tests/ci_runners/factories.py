"""Factories of the compatibility runs: torch targets, test configs, runs, cells, runner hosts.

They build rows for tests that read them (pages, the API). A test of how cells move goes
through `ci_runners.services`, the only writer of a cell's state.
"""

import factory
from factory.django import DjangoModelFactory

from ci_runners.models import CompatCell, CompatRun, ProjectTestConfig, RunnerHost, TorchTarget
from tests.registry.factories import ProjectFactory


class TorchTargetFactory(DjangoModelFactory):
    """An active CPU build of torch for Python 3.11 (a detected release starts inactive:
    pass `active=False`)."""

    class Meta:
        model = TorchTarget

    version = factory.Sequence(lambda n: f"2.{n}.0")
    variant = "cpu"
    python_version = "3.11"
    active = True


class ProjectTestConfigFactory(DjangoModelFactory):
    class Meta:
        model = ProjectTestConfig

    project = factory.SubFactory(ProjectFactory)


class CompatRunFactory(DjangoModelFactory):
    """A manual run of a registry project; `project=None, source_url=...` for an applicant's."""

    class Meta:
        model = CompatRun

    project = factory.SubFactory(ProjectFactory)
    trigger = CompatRun.Trigger.MANUAL


class CompatCellFactory(DjangoModelFactory):
    """A cell of a run on a target; its project is the run's, as the services denormalise it."""

    class Meta:
        model = CompatCell

    run = factory.SubFactory(CompatRunFactory)
    target = factory.SubFactory(TorchTargetFactory)
    project = factory.LazyAttribute(lambda cell: cell.run.project)


class RunnerHostFactory(DjangoModelFactory):
    class Meta:
        model = RunnerHost

    name = factory.Sequence(lambda n: f"runner-{n}")
