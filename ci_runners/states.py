"""The compatibility cell's state machine: the only transitions `cell_transition` accepts.

The states themselves are the wire's (`ci_runners.agent.contracts.CellState`), so the models
and the agent speak one vocabulary.
"""

from ci_runners.agent.contracts import ACTIVE_STATES, FINAL_STATES, RESULT_STATES, CellState

__all__ = [
    "ACTIVE_STATES", "CELL_STATE_CHOICES", "CELL_STATE_VALUES", "FINAL_STATES", "RESULT_STATES",
    "STATE_MEANINGS", "TRANSITIONS", "CellState", "InvalidTransition", "check_transition",
]  # fmt: skip

CELL_STATE_CHOICES = [(state.value, state.label) for state in CellState]
CELL_STATE_VALUES = frozenset(state.value for state in CellState)

# What each state says of the project on that PyTorch build (the matrix's legend).
STATE_MEANINGS: dict[str, str] = {
    CellState.PASSED: "The test suite passed: it works with this PyTorch.",
    CellState.FAILED: "Tests failed, or a test module could not be imported: it breaks.",
    CellState.TIMED_OUT: "The suite ran past its time limit: counted as breaking.",
    CellState.NOT_INSTALLABLE: (
        "The project cannot be installed with this PyTorch (its own metadata or its "
        "dependencies exclude it): it does not work with it. Not an infrastructure problem."
    ),
    CellState.ERRORED: (
        "Our infrastructure could not run it (the error code says why): it says nothing "
        "about the project."
    ),
    CellState.CANCELLED: "Cancelled before it finished.",
    CellState.QUEUED: "Waiting for a runner.",
    CellState.PREPARING: "A runner is checking out the project and building its environment.",
    CellState.RUNNING: "The tests are running.",
}

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
