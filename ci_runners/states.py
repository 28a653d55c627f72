"""The compatibility cell's state machine: the only transitions `cell_transition` accepts."""

from django.db import models


class CellState(models.TextChoices):
    QUEUED = "queued", "Queued"
    PREPARING = "preparing", "Preparing"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ERRORED = "errored", "Errored"
    TIMED_OUT = "timed_out", "Timed out"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STATES = frozenset(
    {
        CellState.PASSED,
        CellState.FAILED,
        CellState.ERRORED,
        CellState.TIMED_OUT,
        CellState.CANCELLED,
    }
)
ACTIVE_STATES = frozenset({CellState.QUEUED, CellState.PREPARING, CellState.RUNNING})
RESULT_STATES = frozenset(
    {CellState.PASSED, CellState.FAILED, CellState.ERRORED, CellState.TIMED_OUT}
)

# A result may arrive before any progress report (progress messages are best effort), so every
# non-final state may end directly. Re-queueing (a lost runner) goes back to `queued` with a new
# attempt. Final states are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    CellState.QUEUED: frozenset(
        {CellState.QUEUED, CellState.PREPARING, CellState.RUNNING, *FINAL_STATES}
    ),
    CellState.PREPARING: frozenset({CellState.QUEUED, CellState.RUNNING, *FINAL_STATES}),
    CellState.RUNNING: frozenset({CellState.QUEUED, *FINAL_STATES}),
    **{state: frozenset() for state in FINAL_STATES},
}


class InvalidTransition(Exception):
    """A cell cannot move from its state to the one asked for."""

    def __init__(self, *, current: str, to: str) -> None:
        super().__init__(f"a {current} cell cannot become {to}")
        self.current, self.to = current, to


def check_transition(*, current: str, to: str) -> None:
    if to not in TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(current=current, to=to)
