"""ASGI entry point (production): the lean badge path in front of Django.

Run with `gunicorn config.asgi:application -k uvicorn.workers.UvicornWorker` (or uvicorn).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
# Under ASGI every request's sync code runs in a thread of its own: persistent connections
# would stay open, one per thread, until PostgreSQL refuses clients. A bounded pool instead.
os.environ["DATABASE_POOL"] = "1"
django_application = get_asgi_application()

from registry.badge_asgi import BadgeFastPath  # noqa: E402  (needs the settings loaded above)

application = BadgeFastPath(django_application)
