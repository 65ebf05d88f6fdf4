"""The ``CircuitState`` enum, in a module of its own: importing ``enum`` (with ``functools`` and
``collections``) costs a bare interpreter about 3 ms, so a cold start loads it only when a state
is first looked at (``fleetbreaker.CircuitState``, ``info()``, a transition)."""

from enum import Enum

__all__ = ["CircuitState"]


class CircuitState(str, Enum):
    """Where a circuit stands. Members compare equal to their names (``"OPEN"``)."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"
    FORCED_OPEN = "FORCED_OPEN"
    FORCED_CLOSED = "FORCED_CLOSED"

    def __str__(self) -> str:
        return self.value


# Public under the module that has always exported it (repr, pickling, documentation).
CircuitState.__module__ = "fleetbreaker.states"
