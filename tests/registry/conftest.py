"""Fixtures of the registry tests."""

from pathlib import Path

import pytest

REAL_LANDSCAPE = Path(__file__).resolve().parents[2] / "data" / "pytorch-landscape.yml"


@pytest.fixture
def real_landscape_path() -> Path:
    return REAL_LANDSCAPE


@pytest.fixture
def imported_landscape(db, real_landscape_path):
    from django.core.management import call_command

    call_command("import_landscape", str(real_landscape_path), stdout=open("/dev/null", "w"))
