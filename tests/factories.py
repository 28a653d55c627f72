"""Factories of the accounts every app's tests need: users and the groups that hold their roles.

Each app keeps its own factories next to its tests (`tests/registry/factories.py`, ...).
"""

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from factory.django import DjangoModelFactory, Password

PASSWORD = "pw-Secret-123"


class GroupFactory(DjangoModelFactory):
    """A group found by name: the role groups exist once, created by a data migration."""

    class Meta:
        model = Group
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"group-{n}")


class UserFactory(DjangoModelFactory):
    """An active user with a usable password; `groups=[...]` names the groups it joins."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.org")
    password = Password(PASSWORD)

    @factory.post_generation
    def groups(self, create: bool, names, **kwargs) -> None:
        if create and names:
            self.groups.add(*(GroupFactory(name=name) for name in names))
