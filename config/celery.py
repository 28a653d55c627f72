"""The web-side Celery app (worker on the default and `results` queues, and beat)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("ecosystem_registry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
