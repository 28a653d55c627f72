"""Test overrides: staff's changes to how a project's suite is run, on top of the recipe the
agent discovers (`contracts.TestConfig`). One writer for the override fields of
`ProjectTestConfig`; each change leaves an entry in the admin's history (`LogEntry`). The
values follow the rules of the repository file's recipe (`registry.sources.repo_config`: limits,
names, requirements, paths, environment), so staff and maintainers meet the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.db import transaction

from ci_runners.models import MAX_CELL_TIMEOUT_S, ProjectTestConfig
from registry.models import Project
from registry.sources.repo_config import (
    MARKER_RE,
    MAX_ITEM_CHARS,
    MAX_ITEMS,
    NAME_RE,
    recipe_env_check,
    recipe_path_clean,
    recipe_requirement_clean,
)

# The fields an override may set, in the order forms and the API show them.
OVERRIDE_FIELDS = (
    "extra_requirements",
    "extras",
    "groups",
    "pytest_args",
    "test_paths",
    "env",
    "deselect",
    "copy_tests",
)
# Limits of the run that `project_test_config_update` also sets (not part of the override:
# they have a value, never "nothing overridden").
LIMIT_FIELDS = ("timeout_s",)
UPDATE_FIELDS = (*OVERRIDE_FIELDS, *LIMIT_FIELDS)
# The model's constraint (test_config_timeout_range) and default.
MIN_TIMEOUT_S = 10
DEFAULT_TIMEOUT_S = ProjectTestConfig._meta.get_field("timeout_s").default


class TestConfigInvalid(Exception):
    """The override was refused; `errors` maps each field to what is wrong with it."""

    __test__ = False

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class TestOverride:
    """The override fields of a project's test config (defaults: nothing overridden)."""

    __test__ = False

    extra_requirements: tuple[str, ...] = ()
    extras: tuple[str, ...] | None = None
    groups: tuple[str, ...] | None = None
    pytest_args: tuple[str, ...] = ()
    test_paths: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    deselect: tuple[str, ...] = ()
    copy_tests: str = ""

    @property
    def is_empty(self) -> bool:
        return self == TestOverride()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as the model stores it."""
        return {
            "extra_requirements": list(self.extra_requirements),
            "extras": list(self.extras) if self.extras is not None else None,
            "groups": list(self.groups) if self.groups is not None else None,
            "pytest_args": list(self.pytest_args),
            "test_paths": list(self.test_paths),
            "env": dict(self.env),
            "deselect": list(self.deselect),
            "copy_tests": self.copy_tests,
        }


def test_override_of(config: ProjectTestConfig | None) -> TestOverride:
    """The override a project's config holds now (nothing when it has no config)."""
    if config is None:
        return TestOverride()
    return TestOverride(
        extra_requirements=tuple(config.extra_requirements or ()),
        extras=tuple(config.extras) if config.extras is not None else None,
        groups=tuple(config.groups) if config.groups is not None else None,
        pytest_args=tuple(config.pytest_args or ()),
        test_paths=tuple(config.test_paths or ()),
        env=tuple(sorted((str(k), str(v)) for k, v in (config.env or {}).items())),
        deselect=tuple(config.deselect or ()),
        copy_tests=config.copy_tests or "",
    )


def project_test_config_update(
    *, project: Project, actor: Any, changes: dict[str, Any]
) -> ProjectTestConfig:
    """Set some override fields of the project's test config (creating it when it has none).

    `changes` maps field names of UPDATE_FIELDS to new values (lists, a dict for `env`, None
    for extras/groups = what the recipe discovers, whole seconds from 10 to 4 hours for
    `timeout_s`). Every field is checked before anything is written; TestConfigInvalid says what
    is wrong, field by field. Cells already sent keep the config they were sent with; the next
    run uses the new one.
    """
    cleaned = test_override_clean(changes)
    with transaction.atomic():
        config, _ = ProjectTestConfig.objects.select_for_update().get_or_create(project=project)
        before = test_config_values(config)
        changed = [name for name, value in cleaned.items() if before[name] != value]
        for name in changed:
            setattr(config, name, cleaned[name])
        if changed:
            config.save(update_fields=changed)
            _log_change(config=config, actor=actor, changed=changed, before=before)
    return config


def _log_change(
    *, config: ProjectTestConfig, actor: Any, changed: list[str], before: dict[str, Any]
) -> None:
    """An entry in the admin's history of this config: who changed which fields, from what."""
    if not getattr(actor, "pk", None):
        return
    after = test_config_values(config)
    message = [
        {"changed": {"fields": changed}},
        {"override": {name: {"from": before[name], "to": after[name]} for name in changed}},
    ]
    LogEntry.objects.log_actions(
        user_id=actor.pk,
        queryset=[config],
        action_flag=CHANGE,
        change_message=message,
        single_object=True,
    )


def test_config_values(config: ProjectTestConfig | None) -> dict[str, Any]:
    """The fields `project_test_config_update` sets, as the config holds them now."""
    timeout_s = config.timeout_s if config is not None else DEFAULT_TIMEOUT_S
    return {**test_override_of(config).as_dict(), "timeout_s": timeout_s}


def test_override_clean(changes: dict[str, Any]) -> dict[str, Any]:
    """The changes, checked and normalised; raises TestConfigInvalid listing every problem."""
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(changes) - set(UPDATE_FIELDS))
    if unknown:
        errors["non_field_errors"] = [f"Unknown fields: {', '.join(unknown)}."]
    cleaned: dict[str, Any] = {}
    for name in UPDATE_FIELDS:
        if name not in changes:
            continue
        try:
            cleaned[name] = _CLEANERS[name](changes[name])
        except ValueError as problem:
            errors[name] = [str(problem)]
    if errors:
        raise TestConfigInvalid(errors)
    return cleaned


def _string_list(value: Any) -> list[str]:
    if not isinstance(value, list | tuple):
        raise ValueError("Expected a list of strings.")
    if len(value) > MAX_ITEMS:
        raise ValueError(f"At most {MAX_ITEMS} entries.")
    items = []
    for item in value:
        if not isinstance(item, str):
            raise ValueError("Expected a list of strings.")
        item = item.strip()
        if not item:
            raise ValueError("Entries cannot be empty.")
        if len(item) > MAX_ITEM_CHARS or "\x00" in item or "\n" in item:
            raise ValueError(f"{item[:40]!r}: one line of at most {MAX_ITEM_CHARS} characters.")
        items.append(item)
    return items


def _requirements(value: Any) -> list[str]:
    return [recipe_requirement_clean(item) for item in _string_list(value)]


def _names(value: Any) -> list[str] | None:
    if value is None:
        return None
    items = _string_list(value)
    for item in items:
        if not NAME_RE.fullmatch(item):
            raise ValueError(f"{item!r} is not an extra or group name.")
    return items


def _markers(value: Any) -> list[str]:
    items = _string_list(value)
    for item in items:
        if not MARKER_RE.fullmatch(item):
            raise ValueError(f"{item!r} is not a pytest marker name (letters, digits, _).")
    return items


def _pytest_args(value: Any) -> list[str]:
    return _string_list(value)


def _paths(value: Any) -> list[str]:
    return [recipe_path_clean(item) for item in _string_list(value)]


def _copy_tests(value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise ValueError("Expected a folder of the repository, or nothing.")
    [item] = _string_list([value])
    return recipe_path_clean(item)


def _env(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError("Expected an object of NAME: value.")
    if len(value) > MAX_ITEMS:
        raise ValueError(f"At most {MAX_ITEMS} variables.")
    env = {}
    for name, text in value.items():
        recipe_env_check(name, text)
        env[name] = text
    return env


def _timeout(value: Any) -> int:
    if type(value) is not int or not MIN_TIMEOUT_S <= value <= MAX_CELL_TIMEOUT_S:
        raise ValueError(
            f"A whole number of seconds from {MIN_TIMEOUT_S} to {MAX_CELL_TIMEOUT_S} "
            f"({MAX_CELL_TIMEOUT_S // 3600} hours)."
        )
    return value


_CLEANERS = {
    "extra_requirements": _requirements,
    "extras": _names,
    "groups": _names,
    "pytest_args": _pytest_args,
    "test_paths": _paths,
    "env": _env,
    "deselect": _markers,
    "copy_tests": _copy_tests,
    "timeout_s": _timeout,
}
