"""An imported project enters the periodic review on its due date (the clock moved by the
`today` the daily task is given), not a day before."""

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from registry.models import Project
from reviews import services
from reviews.models import PeriodicReview

REAL_LANDSCAPE = Path(__file__).resolve().parents[2] / "data" / "pytorch-landscape.yml"


@pytest.fixture
def imported(db, settings):
    settings.REVIEW_FIRST_MAX_PER_WEEK = 2  # few projects a day: few reviews to start
    call_command("import_landscape", str(REAL_LANDSCAPE), stdout=io.StringIO())


@pytest.mark.parametrize("kind", ["ecosystem", "hosted"])
def test_an_imported_projects_review_starts_on_its_due_date(imported, github, pypi, kind):
    project = Project.objects.active().filter(kind=kind).order_by("next_review_due").first()
    due = project.next_review_due
    assert due > timezone.localdate()
    # The projects due on or before that day (the first of them: this one among them).
    first = set(
        Project.objects.active().filter(next_review_due__lte=due).values_list("pk", flat=True)
    )

    before = services.periodic_reviews_due(today=due - timedelta(days=1))

    assert not PeriodicReview.objects.filter(project=project).exists()
    assert project.pk not in {
        r.project_id for r in PeriodicReview.objects.filter(pk__in=before["started"])
    }

    on_the_day = services.periodic_reviews_due(today=due)

    review = PeriodicReview.objects.get(project=project)
    assert review.pk in on_the_day["started"]
    assert review.due_on == due
    started = set(PeriodicReview.objects.values_list("project_id", flat=True))
    assert started == first  # nothing due later was started
