"""The manual clock: time that moves only when told, for tests and simulations. Also exported
by ``fleetbreaker.testing``, its home before."""

from . import _native

__all__ = ["ManualClock"]


class ManualClock:
    """A wall clock that moves only when told. Pass it as ``clock=`` to a breaker: every
    breaker given the same clock on the same persistence store shares one environment."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._native = _native.Clock(int(round(start * 1000)))

    def now(self) -> float:
        """Unix seconds."""
        return self._native.now_ms() / 1000.0

    def set(self, now: float) -> None:
        self._native.set_ms(int(round(now * 1000)))

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self._native.advance_ms(int(round(seconds * 1000)))

    def step(self, seconds: float) -> None:
        """Steps the wall clock by ``seconds`` (back when negative), as an NTP step does: the
        times in the shared record move, but the breaker's own deadlines (its copy's age, the
        admission lease) run on a monotonic clock, which does not."""
        self._native.step_wall_ms(int(round(seconds * 1000)))
