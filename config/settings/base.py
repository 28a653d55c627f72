"""Settings shared by every environment; each secret and URL comes from the environment."""

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab

from ci_runners.agent import contracts as wire

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

SECRET_KEY = env("DJANGO_SECRET_KEY", default="local-only-insecure-key-change-me")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.sites",
    "django_celery_beat",
    "django_htmx",
    "rest_framework",
    "django_filters",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "registry",
    "ci_runners",
    "reviews",
]

MIDDLEWARE = [
    "config.request_log.RequestLogMiddleware",  # outermost: one line per request, timed
    "django.middleware.security.SecurityMiddleware",
    "config.content_security_policy.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

# Every HTML page (config/content_security_policy.py): no inline script or style, no plugins,
# no framing. Templates load scripts and styles from static/ files.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data: https:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.navigation.nav_links",
            ],
        },
    }
]


def _database_from_env() -> dict:
    """PostgreSQL (or any URL) from DATABASE_URL; else embedded SQLite in WAL mode."""
    url = env("DATABASE_URL", default="")
    if url:
        database = env.db_url_config(url)
        database["CONN_HEALTH_CHECKS"] = True
        if env.bool("DATABASE_POOL", default=False) and "postgresql" in database["ENGINE"]:
            # A bounded pool per process (the web under ASGI, see config/asgi.py): requests
            # wait for one of its connections instead of each opening and keeping its own.
            database["CONN_MAX_AGE"] = 0
            database.setdefault("OPTIONS", {})["pool"] = {
                "min_size": 1,
                "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
                "timeout": env.float("DATABASE_POOL_TIMEOUT_S", default=30.0),
            }
        else:
            database.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
        return database
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env("SQLITE_PATH", default=str(BASE_DIR / "var" / "db.sqlite3")),
        "OPTIONS": {
            # WAL lets the web process read while a worker writes; IMMEDIATE takes the write
            # lock at BEGIN so concurrent writers queue instead of failing mid-transaction.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


DATABASES = {"default": _database_from_env()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
FORMS_URLFIELD_ASSUME_HTTPS = True  # Django 6 default, opted into now

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT: Path | None = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = env("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media"))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

SITE_ID = 1
LOGIN_URL = "account_login"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="registry@localhost")

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHE_URL = env("CACHE_URL", default=REDIS_URL.rsplit("/", 1)[0] + "/1")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": CACHE_URL,
        "KEY_PREFIX": "ecoreg",
        "OPTIONS": {"IGNORE_EXCEPTIONS": True},
    }
}

# Celery: the web-side workers consume the `default` queue and, in a worker of their own,
# `results`; runner agents consume `runner.<capability>` queues with their own app
# (ci_runners/agent), never these settings.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
# kombu's Redis transport with one client per channel (config/redis_transport.py); still redis://.
CELERY_BROKER_TRANSPORT = "config.redis_transport:Transport"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = wire.DEFAULT_QUEUE
# Queues by task name (Celery 5.7 deprecates the task decorator's `queue=`). Everything else
# goes to "default"; cells go to "runner.<capability>", chosen per cell when dispatched.
CELERY_TASK_ROUTES = {
    name: {"queue": wire.reply_queue(name)}
    for name in (wire.RESULT_TASK, wire.PROGRESS_TASK, wire.HEARTBEAT_TASK)
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Longer than the longest cell, so an unacked message is not redelivered while it runs.
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=4 * 3600),
}
# The `results` worker's own (config/celery.py): a result left unacknowledged by a killed
# worker comes back after this many seconds, not after the cells' hours.
CELERY_RESULTS_VISIBILITY_TIMEOUT = env.int("CELERY_RESULTS_VISIBILITY_TIMEOUT", default=60)
# The results worker records results in batches (ci_runners/result_batches.py): at most this
# many in one transaction, gathered for at most this long; a batch that failed in its pool
# process goes back to the queue this much later.
RESULTS_BATCH_SIZE = env.int("RESULTS_BATCH_SIZE", default=250)
RESULTS_BATCH_WAIT_S = env.float("RESULTS_BATCH_WAIT_S", default=0.2)
RESULTS_RETRY_AFTER_S = env.float("RESULTS_RETRY_AFTER_S", default=10.0)
# Channels (Redis connections) the results worker takes results on at once.
RESULTS_CHANNELS = env.int("RESULTS_CHANNELS", default=4)
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "config.beat:SeedOnceDatabaseScheduler"

# External sources (each behind one module in registry/sources/).
GITHUB_API_URL = env("GITHUB_API_URL", default="https://api.github.com")
GITHUB_TOKEN = env("GITHUB_TOKEN", default="")
GITHUB_TIMEOUT_S = env.int("GITHUB_TIMEOUT_S", default=15)
GITHUB_RATE_LIMIT_MAX_WAIT_S = env.int("GITHUB_RATE_LIMIT_MAX_WAIT_S", default=60)
# The GitHub webhook (/hooks/github/) alone takes bodies this large (GitHub caps payloads at
# 25 MB); every other view keeps Django's DATA_UPLOAD_MAX_MEMORY_SIZE.
GITHUB_WEBHOOK_MAX_BYTES = env.int("GITHUB_WEBHOOK_MAX_BYTES", default=25 * 1024 * 1024)
# The webhook's delivery log keeps this many days (beat prunes it daily); an accepted
# delivery's row refuses its replay, and GitHub redelivers within days.
GITHUB_WEBHOOK_LOG_DAYS = env.int("GITHUB_WEBHOOK_LOG_DAYS", default=30)

REST_FRAMEWORK = {
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # Public API (config/api.py): knox tokens (stored hashed, expiring) or the browser session.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # Counted atomically in Redis (registry/throttling.py), not DRF's read-modify-write list.
    "DEFAULT_THROTTLE_CLASSES": [
        "registry.throttling.AnonRateThrottle",
        "registry.throttling.UserRateThrottle",
    ],
    # The client is REMOTE_ADDR: uvicorn sets it from X-Forwarded-For for the trusted proxy
    # only (FORWARDED_ALLOW_IPS); a header a client sends itself is never read here.
    "NUM_PROXIES": 0,
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("API_THROTTLE_ANON", default="120/minute"),
        "user": env("API_THROTTLE_USER", default="1200/minute"),
        # Badge misses that reach Django, per client address (image proxies share addresses).
        "badge": env("API_THROTTLE_BADGE", default="6000/minute"),
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"traceback_only_for_5xx": {"()": "config.request_log.TracebackOnlyFor5xx"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "line",
            "filters": ["traceback_only_for_5xx"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's default logging gives "django" a console handler of its own (under DEBUG):
        # with root's, each of its lines printed twice. Its lines go to root's handler only.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        # Every request gets its line from config/request_log.py; django.request repeated the
        # 4xx (with a traceback): it now speaks of 5xx only.
        "django.request": {"level": "ERROR"},
    },
}

# Fragments pulled into the project page with htmx, each rendered by the app that owns it.
PROJECT_PAGE_FRAGMENTS: list[str] = []

# Registry: GitHub sync (registry/sources/github.py, registry/tasks.py).
# Requests of one sync run one after another; a pause between them is optional politeness.
GITHUB_SECONDS_BETWEEN_REQUESTS = env.float("GITHUB_SECONDS_BETWEEN_REQUESTS", default=0.0)
# sync_github_all queues one task per project, this many seconds apart.
GITHUB_SYNC_STAGGER_S = env.float("GITHUB_SYNC_STAGGER_S", default=2.0)
# Landscape import: first periodic reviews spread over six months, at most this many a week.
REVIEW_FIRST_MAX_PER_WEEK = env.int("REVIEW_FIRST_MAX_PER_WEEK", default=10)

# Periodic tasks. Beat (config/beat.py) seeds django-celery-beat's tables with these entries
# when absent; from then on the admin's edits rule. Other parts add theirs with .update().
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "registry.sync_github_all": {
        "task": "registry.sync_github_all",
        "schedule": crontab(hour=3, minute=17),
        "options": {"queue": "default"},
    },
}

# Public API and badges (config/api.py, registry/api.py, registry/badge_*.py).
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env.int("API_TOKEN_TTL_HOURS", default=24 * 30)),
    "AUTO_REFRESH": False,
    "TOKEN_LIMIT_PER_USER": 20,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Ecosystem Registry API",
    "DESCRIPTION": (
        "Projects of the foundation's ecosystem, their PyTorch compatibility runs and their "
        "reviews. Read endpoints are public; applications and reviews need a token "
        "(POST /api/v1/auth/login/ with your username and password) or a browser session."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc assets are served from our static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ProjectKindEnum": "registry.models.Project.Kind",
        "SubmissionKindEnum": "reviews.models.Submission.Kind",
        "CriterionOutcomeEnum": "reviews.models.CriterionResult.Outcome",
        "SubmissionStateEnum": "reviews.states.SubmissionState",
        "VoteChoiceEnum": "reviews.models.Vote.Choice",
    },
}
# Badge snippets (Markdown, reStructuredText, HTML) on the project page.
PROJECT_PAGE_FRAGMENTS.append("badges:snippets")

# Compatibility runs (ci_runners): dispatch, reaping, PyPI release checks, beat entries.
COMPAT_RUNNER_SILENT_S = env.int("COMPAT_RUNNER_SILENT_S", default=90)
# A cell whose runner sent its result (claim "done") waits this long for it, then runs again.
COMPAT_RESULT_WAIT_S = env.int("COMPAT_RESULT_WAIT_S", default=900)
COMPAT_DEFAULT_MAX_CONCURRENT = env.int("COMPAT_DEFAULT_MAX_CONCURRENT", default=4)
# Runs of one project its maintainers (not staff) may start in an hour ("Run now", the API).
COMPAT_MAINTAINER_RUNS_PER_HOUR = env.int("COMPAT_MAINTAINER_RUNS_PER_HOUR", default=6)
# The incremental night (`ci_runners.services.night_plan`): an unchanged cell is carried while
# its evidence's resolved environment is younger than this (then it runs again, to catch a new
# release of an unpinned dependency); GitHub sync data younger than COMPAT_SYNC_FRESH_S may say
# "no push since" instead of a `git ls-remote`.
COMPAT_CARRY_MAX_AGE_S = env.int("COMPAT_CARRY_MAX_AGE_S", default=7 * 24 * 3600)
COMPAT_SYNC_FRESH_S = env.int("COMPAT_SYNC_FRESH_S", default=26 * 3600)
PYPI_JSON_URL = env("PYPI_JSON_URL", default="https://pypi.org/pypi/{name}/json")
PYPI_TIMEOUT_S = env.int("PYPI_TIMEOUT_S", default=20)
PROJECT_PAGE_FRAGMENTS.append("ci_runners:project_matrix")
PROJECT_PAGE_FRAGMENTS.append("ci_runners:project_testing")
CELERY_BEAT_SCHEDULE.update(
    {
        "ci_runners.reap_stale_cells": {
            "task": "ci_runners.reap_stale_cells",
            "schedule": timedelta(minutes=1),
            "options": {"queue": "default", "expires": 50},
        },
        "ci_runners.nightly_runs": {
            "task": "ci_runners.nightly_runs",
            "schedule": crontab(hour=1, minute=7),
            "options": {"queue": "default"},
        },
        "ci_runners.check_torch_releases": {
            "task": "ci_runners.check_torch_releases",
            "schedule": crontab(hour="*/6", minute=41),
            "options": {"queue": "default"},
        },
        "ci_runners.prune_webhook_deliveries": {
            "task": "ci_runners.prune_webhook_deliveries",
            "schedule": crontab(hour=5, minute=29),
            "options": {"queue": "default"},
        },
    }
)

# Reviews (reviews/): accounts, the TAC process clock, notifications.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
# "mandatory" in a real deployment (set the variable there); "none" lets a local user start at once.
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", default="none")
ACCOUNT_LOGOUT_ON_GET = False
# Failed logins: one rule for the HTML sign-in and the API token login (config/login_throttle.py).
# It replaces allauth's own "login_failed" limit, which locks an email out for everyone.
ACCOUNT_ADAPTER = "config.accounts.AccountAdapter"
ACCOUNT_RATE_LIMITS = {"login_failed": None}
LOGIN_FAILURES_PER_IP = env.int("LOGIN_FAILURES_PER_IP", default=10)
LOGIN_FAILURE_WINDOW_S = env.int("LOGIN_FAILURE_WINDOW_S", default=900)
LOGIN_ACCOUNT_FREE_FAILURES = env.int("LOGIN_ACCOUNT_FREE_FAILURES", default=5)
LOGIN_ACCOUNT_DELAY_MAX_S = env.int("LOGIN_ACCOUNT_DELAY_MAX_S", default=30)
LOGIN_REDIRECT_URL = "/reviews/"
SOCIALACCOUNT_PROVIDERS: dict[str, dict] = {"github": {"SCOPE": ["read:user", "user:email"]}}
# A GitHub sign-in records the user's verified GitHub handle (config/accounts.py).
SOCIALACCOUNT_ADAPTER = "config.accounts.SocialAccountAdapter"
# Where GitHub's OAuth endpoints are (GitHub Enterprise, or a local fake): allauth then uses
# <url>/login/oauth/... and the API at <url>/api/v3. Read once, when allauth loads.
GITHUB_OAUTH_URL = env("GITHUB_OAUTH_URL", default="").rstrip("/")
if GITHUB_OAUTH_URL:
    SOCIALACCOUNT_PROVIDERS["github"]["GITHUB_URL"] = GITHUB_OAUTH_URL
if env("GITHUB_OAUTH_CLIENT_ID", default=""):  # GitHub login only where an OAuth app exists
    SOCIALACCOUNT_PROVIDERS["github"]["APP"] = {
        "client_id": env("GITHUB_OAUTH_CLIENT_ID"),
        "secret": env("GITHUB_OAUTH_CLIENT_SECRET", default=""),
        "key": "",
    }
    # The social login form redirects to GitHub, and form-action covers that redirect.
    CONTENT_SECURITY_POLICY["form-action"] += " " + (GITHUB_OAUTH_URL or "https://github.com")
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")
REVIEWS_VOTE_WINDOW_DAYS = env.int("REVIEWS_VOTE_WINDOW_DAYS", default=14)
# Drafts one applicant may keep open at once (submitted or withdrawn ones do not count).
REVIEWS_MAX_OPEN_DRAFTS = env.int("REVIEWS_MAX_OPEN_DRAFTS", default=10)
PROJECT_PAGE_FRAGMENTS.append("reviews:project_history")
CELERY_BEAT_SCHEDULE.update(
    {
        "reviews.close_due_votes": {
            "task": "reviews.close_due_votes",
            "schedule": timedelta(minutes=5),
            "options": {"queue": "default", "expires": 240},
        },
        "reviews.periodic_review_due": {
            "task": "reviews.periodic_review_due",
            "schedule": crontab(hour=4, minute=23),
            "options": {"queue": "default"},
        },
    }
)
