"""The exceptions of fleetbreaker. They keep the Powertools circuit breaker's names and
behaviour, so code that catches those keeps working."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Union

    from .states import CircuitInfo

__all__ = [
    "CircuitBreakerError",
    "CircuitBreakerOpenError",
    "CircuitBreakerConfigError",
    "CircuitBreakerPersistenceError",
]


class CircuitBreakerError(Exception):
    """The base of every fleetbreaker error.

    ``CircuitBreakerError("message", "detail")`` prints ``message - (detail)``.
    """

    def __init__(self, *args: Union[str, Exception, None]) -> None:
        self.message = str(args[0]) if args else ""
        self.details: Optional[str] = "".join(str(a) for a in args[1:]) if args[1:] else None
        super().__init__(*args)

    def __str__(self) -> str:
        if self.message and self.details:
            return f"{self.message} - ({self.details})"
        return self.message


class CircuitBreakerOpenError(CircuitBreakerError):
    """A call was rejected: the circuit is open (or half-open with its probe taken, or forced
    open). ``.circuit`` says what the caller may want to know; ``.retry_after`` is how many
    seconds to wait before calls go through again, when known."""

    def __init__(self, *args: Union[str, Exception, None], circuit: Optional[CircuitInfo] = None) -> None:
        super().__init__(*args)
        self.circuit = circuit

    @property
    def retry_after(self) -> Optional[float]:
        return self.circuit.retry_after if self.circuit is not None else None


class CircuitBreakerConfigError(CircuitBreakerError):
    """A configuration, a name or a store's settings were refused; the message names the field
    and the value. ``.field`` is the field's name, when one field is to blame."""

    field: Optional[str] = None


class CircuitBreakerPersistenceError(CircuitBreakerError):
    """An operator action (``force_open``, ``force_closed``, ``reset``) could not reach the
    store. Protected calls never see store errors. ``.kind`` is ``unavailable``, ``timeout``,
    ``throttled``, ``misconfigured`` or ``corrupt``."""

    kind: str = "unavailable"
