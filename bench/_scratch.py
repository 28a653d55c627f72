"""Set up Django against a scratch PostgreSQL database for a benchmark (never the real one)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def django_on_scratch_database(name: str) -> None:
    """Create (or recreate) database `name`, point Django at it and migrate it."""
    import psycopg

    sys.path.insert(0, str(ROOT))
    base = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = f"{base}/{name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
