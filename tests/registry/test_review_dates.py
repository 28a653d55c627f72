"""Periodic review dates from the landscape import: six-monthly from acceptance, else spread
over the next six months, never in the past, never more than the cap a week."""

import datetime as dt
import io
from collections import Counter

import pytest
from django.core.management import call_command
from django.utils import timezone

from registry.landscape import (
    ReviewDue,
    add_months,
    review_dates_plan,
    review_due_from_acceptance,
    review_first_due,
)
from registry.models import Project
from registry.services import landscape_schedule_reviews
from tests.registry.factories import ProjectFactory

TODAY = dt.date(2026, 7, 1)


def weeks(dates) -> Counter:
    return Counter(day.isocalendar()[:2] for day in dates)


# --- the pure planning ----------------------------------------------------------------------


def test_add_months_clamps_to_the_month_end():
    assert add_months(dt.date(2024, 8, 31), 6) == dt.date(2025, 2, 28)
    assert add_months(dt.date(2023, 8, 31), 6) == dt.date(2024, 2, 29)
    assert add_months(dt.date(2025, 11, 15), 2) == dt.date(2026, 1, 15)


@pytest.mark.parametrize(
    ("accepted", "due"),
    [
        ("2022-09-07", "2026-09-07"),  # acceptance + 8 x 6 months
        ("2025-04-08", "2026-10-08"),
        ("2026-01-01", "2027-01-01"),  # 2026-07-01 is today: the next one, not today
        ("2026-06-30", "2026-12-30"),  # accepted yesterday
        ("2024-12-31", "2026-12-31"),
    ],
)
def test_due_from_acceptance_is_the_first_half_year_after_today(accepted, due):
    found = review_due_from_acceptance(dt.date.fromisoformat(accepted), today=TODAY)
    assert found == dt.date.fromisoformat(due)


def test_first_due_is_deterministic_within_six_months():
    days = [review_first_due(f"project-{n}", today=TODAY) for n in range(500)]
    assert all(TODAY < day <= TODAY + dt.timedelta(days=182) for day in days)
    assert review_first_due("project-1", today=TODAY) == days[1]
    assert len(weeks(days)) >= 25  # spread over the half year


def test_plan_keeps_dates_from_today_on_and_respects_the_cap():
    projects = [ReviewDue(f"p{n}", None, None) for n in range(40)]
    projects.append(ReviewDue("kept", None, TODAY))
    projects.append(ReviewDue("past", None, TODAY - dt.timedelta(days=1)))
    booked = [TODAY + dt.timedelta(days=7)] * 2  # next week is full already

    plan = review_dates_plan(projects, today=TODAY, max_per_week=2, booked=booked)

    assert "kept" not in plan and "past" in plan
    assert set(plan) == {p.slug for p in projects} - {"kept"}
    assert all(day > TODAY for day in plan.values())
    load = weeks([*plan.values(), TODAY, *booked])
    assert max(load.values()) == 2
    full_week = (TODAY + dt.timedelta(days=7)).isocalendar()[:2]
    assert all(day.isocalendar()[:2] != full_week for day in plan.values())
    for slug, day in plan.items():  # shifted by whole weeks from the hashed day, if at all
        assert (day - review_first_due(slug, today=TODAY)).days % 7 == 0


# --- the import of the real landscape ----------------------------------------------------------


@pytest.mark.django_db
def test_every_active_imported_project_gets_a_future_review_date(imported_landscape, settings):
    today = timezone.localdate()
    active = Project.objects.active()
    dated = active.filter(next_review_due__gt=today)

    assert active.count() == 75  # 69 ecosystem + 6 hosted
    assert dated.count() == active.count()
    assert max(weeks(dated.values_list("next_review_due", flat=True)).values()) <= (
        settings.REVIEW_FIRST_MAX_PER_WEEK
    )
    assert not Project.objects.filter(status="retired", next_review_due__isnull=False).exists()
    pytorch = Project.objects.get(slug="pytorch")
    assert pytorch.next_review_due == review_due_from_acceptance(dt.date(2022, 9, 7), today=today)
    assert pytorch.review_state == "hosted since 2022-09-07"
    assert Project.objects.get(slug="vllm").review_state == "hosted since 2025-04-08"
    assert set(active.filter(kind="ecosystem").values_list("review_state", flat=True)) == {""}


@pytest.mark.django_db
def test_a_smaller_cap_holds_for_the_real_file(settings, real_landscape_path):
    settings.REVIEW_FIRST_MAX_PER_WEEK = 3
    call_command("import_landscape", str(real_landscape_path), stdout=io.StringIO())

    dates = Project.objects.active().values_list("next_review_due", flat=True)
    assert None not in dates and max(weeks(dates).values()) == 3


@pytest.mark.django_db
def test_reimport_is_stable_and_fixes_only_past_dates(imported_landscape, real_landscape_path):
    before = dict(Project.objects.values_list("slug", "next_review_due"))
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    Project.objects.filter(slug="captum").update(next_review_due=yesterday)
    Project.objects.filter(slug="onnx").update(next_review_due=timezone.localdate())
    Project.objects.filter(slug="vllm").update(review_state="periodic_passed")

    out = io.StringIO()
    call_command("import_landscape", str(real_landscape_path), stdout=out)

    assert "created 0, updated 0, unchanged 143" in out.getvalue()
    after = dict(Project.objects.values_list("slug", "next_review_due"))
    assert after["onnx"] == timezone.localdate()  # due today: kept
    assert after["captum"] > timezone.localdate()  # was past: a new date
    del before["captum"], before["onnx"], after["captum"], after["onnx"]
    assert after == before
    assert Project.objects.get(slug="vllm").review_state == "periodic_passed"  # a review's


@pytest.mark.django_db
def test_scheduling_counts_projects_outside_the_file(settings):
    settings.REVIEW_FIRST_MAX_PER_WEEK = 1
    today = timezone.localdate()
    newcomer = ProjectFactory(slug="newcomer")
    ideal = review_first_due("newcomer", today=today)
    ProjectFactory(slug="onboarded", next_review_due=ideal)  # not in the file, same week

    assert landscape_schedule_reviews(slugs=["newcomer", "onboarded"][:1]) == 1

    newcomer.refresh_from_db()
    assert newcomer.next_review_due == ideal + dt.timedelta(days=7)
