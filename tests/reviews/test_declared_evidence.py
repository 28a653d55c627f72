"""The evidence of the TAC criterion on current PyTorch support names the torch range the
project's metadata declares, beside what was measured."""

from datetime import timedelta

from django.utils import timezone

from ci_runners.models import CompatCell, TorchTarget
from reviews import checks


def _cell(version: str, state: str, declared: dict, minutes_ago: int) -> CompatCell:
    return CompatCell(
        target=TorchTarget(version=version, variant="cpu"),
        state=state,
        counts={"passed": 4, "failed": 0},
        declared=declared,
        finished_at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def test_evidence_names_the_declared_range_the_measurement_disagrees_with():
    declared = {"torch": ">=2.3,<2.14", "requires_python": ">=3.9"}
    cells = [
        _cell("2.13.0", "passed", declared, minutes_ago=2),
        _cell("2.14.1", "not_installable", declared, minutes_ago=1),
    ]

    one, eight = checks.compat_measurements(cells, run_url="/runs/cells/1/")

    assert one.criterion == 1 and one.outcome == checks.UNMET
    assert one.value.startswith("cannot be installed with PyTorch 2.14.1")
    assert one.value.endswith(" (its metadata declares torch>=2.3,<2.14)")
    assert eight.value.startswith(one.value)


def test_no_declared_range_leaves_the_evidence_as_it_was():
    cells = [_cell("2.13.0", "passed", {}, 1), _cell("2.14.1", "passed", {"torch": ""}, 1)]

    one, _ = checks.compat_measurements(cells, run_url="")

    assert one.value == "passes on PyTorch 2.13.0, 2.14.1"
