"""Factories of the registry: categories, projects, GitHub snapshots, maintainer identities."""

import factory
from django.utils import timezone
from django.utils.text import slugify
from factory.django import DjangoModelFactory

from registry.models import Category, MaintainerIdentity, Project, RepoSnapshot
from tests.factories import UserFactory


class CategoryFactory(DjangoModelFactory):
    """A landscape category at the top level; pass `parent=` for a subcategory."""

    class Meta:
        model = Category

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.LazyAttribute(lambda category: slugify(category.name))
    parent = None


class SubcategoryFactory(CategoryFactory):
    """A subcategory (where projects sit), under a category of its own unless given one."""

    parent = factory.SubFactory(CategoryFactory)


class ProjectFactory(DjangoModelFactory):
    """An active ecosystem project, named after its slug, with no repository unless
    `repository="owner/name"` is given."""

    class Meta:
        model = Project

    class Params:
        repository = ""

    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.LazyAttribute(lambda project: project.slug.title())
    repo_owner = factory.LazyAttribute(lambda project: project.repository.partition("/")[0])
    repo_name = factory.LazyAttribute(lambda project: project.repository.partition("/")[2])


class RepoSnapshotFactory(DjangoModelFactory):
    """GitHub health of a project, taken and confirmed now."""

    class Meta:
        model = RepoSnapshot

    project = factory.SubFactory(ProjectFactory)
    taken_at = factory.LazyFunction(timezone.now)
    checked_at = factory.LazyAttribute(lambda snapshot: snapshot.taken_at)


class MaintainerIdentityFactory(DjangoModelFactory):
    """A user's GitHub handle (`<username>-gh` unless given); unverified, as the model starts."""

    class Meta:
        model = MaintainerIdentity

    user = factory.SubFactory(UserFactory)
    github_handle = factory.LazyAttribute(lambda identity: f"{identity.user.username}-gh")
