"""Tests (`make test`): real PostgreSQL and Redis, fast hashing, in-memory email."""

import hashlib

from config.settings.base import *  # noqa: F403
from config.settings.base import BASE_DIR, env

# Two checkouts on one machine (or two test runs of one) must not share a test database:
# its name is derived from the checkout's path unless TEST_DATABASE_NAME says otherwise.
CHECKOUT_ID = hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:8]

DATABASES = {
    "default": env.db_url(
        "DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/ecosystem_registry"
    )
}
DATABASES["default"]["TEST"] = {
    "NAME": env("TEST_DATABASE_NAME", default=f"test_ecoreg_{CHECKOUT_ID}")
}
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/5")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": env("CACHE_URL", default="redis://127.0.0.1:6379/6"),
        "KEY_PREFIX": f"ecoreg-test-{env('TEST_DATABASE_NAME', default=CHECKOUT_ID)}",
    }
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
GITHUB_RATE_LIMIT_MAX_WAIT_S = 2
# Static files come from the finders in tests; no collectstatic output is expected.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
