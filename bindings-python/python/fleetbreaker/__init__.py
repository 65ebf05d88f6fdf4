"""fleetbreaker: a circuit breaker shared by a whole serverless fleet.

A drop-in for the Powertools for AWS Lambda circuit breaker: the same names and defaults, with
the circuit's state shared through DynamoDB (or SQLite, or memory), one probe at a time
fleet-wide, and no store I/O on a healthy call.

    from fleetbreaker import circuit_breaker, CircuitBreakerConfig
    from fleetbreaker.persistence import CircuitBreakerDynamoDBPersistence

    persistence = CircuitBreakerDynamoDBPersistence(table_name="CircuitBreakerState")

    @circuit_breaker(name="payment-backend", persistence_store=persistence,
                     config=CircuitBreakerConfig(failure_threshold=5, recovery_timeout=30))
    def charge(order):
        ...
"""

from . import _native
from .breaker import CircuitBreaker, circuit_breaker
from .config import CircuitBreakerConfig
from .exceptions import (
    CircuitBreakerConfigError,
    CircuitBreakerError,
    CircuitBreakerOpenError,
    CircuitBreakerPersistenceError,
)
from .states import CircuitInfo, CircuitTransition

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .states import CircuitState

__all__ = [
    "circuit_breaker",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitInfo",
    "CircuitState",
    "CircuitTransition",
    "CircuitBreakerError",
    "CircuitBreakerOpenError",
    "CircuitBreakerConfigError",
    "CircuitBreakerPersistenceError",
]

__version__: str = _native.__version__


def __getattr__(name: str) -> "Any":
    # CircuitState loads on first use: its enum import is a cold-start cost (see states).
    if name == "CircuitState":
        from .states import _circuit_state_class

        return _circuit_state_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
