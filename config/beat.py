"""Beat's scheduler: the database schedule (django-celery-beat), which staff edit in the admin.

`CELERY_BEAT_SCHEDULE` in the settings only seeds it: an entry is written when no periodic
task of that name exists yet, and never again, so edits (times, switching off) survive every
restart of beat. The stock DatabaseScheduler rewrites each entry from the settings at start.
"""

from __future__ import annotations

from typing import Any

from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler


class SeedOnceDatabaseScheduler(DatabaseScheduler):
    def update_from_dict(self, mapping: dict[str, Any]) -> None:
        existing = set(
            PeriodicTask.objects.filter(name__in=list(mapping)).values_list("name", flat=True)
        )
        super().update_from_dict(
            {name: entry for name, entry in mapping.items() if name not in existing}
        )
