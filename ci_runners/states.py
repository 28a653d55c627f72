"""The compatibility cell's state machine: the only transitions `cell_transition` accepts.

The states themselves are the wire's (`ci_runners.agent.contracts.CellState`), so the models
and the agent speak one vocabulary.
"""

from ci_runners.agent.contracts import ACTIVE_STATES, FINAL_STATES, RESULT_STATES, CellState

__all__ = [
    "ACTIVE_STATES", "CELL_STATE_CHOICES", "CELL_STATE_VALUES", "FINAL_STATES", "RESULT_STATES",
    "TRANSITIONS", "CellState", "InvalidTransition", "check_transition",
]  # fmt: skip

CELL_STATE_CHOICES = [(state.value, state.label) for state in CellState]
CELL_STATE_VALUES = frozenset(state.value for state in CellState)

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
