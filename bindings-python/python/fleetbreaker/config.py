"""The breaker's configuration, with the Powertools circuit breaker's fields and defaults."""

from __future__ import annotations

import math

from .exceptions import CircuitBreakerConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Optional, Tuple, Type, Union

    _ExceptionTypes = Union[Type[BaseException], Iterable[Type[BaseException]], None]

__all__ = ["CircuitBreakerConfig"]

# Ten years: a longer duration is a unit mistake (these are seconds).
_MAX_SECONDS = 10 * 366 * 24 * 3600


def _positive_int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CircuitBreakerConfigError(f"{field} must be a positive integer, got {value!r}.")
    return value


def _seconds(field: str, value: Any, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero) or value > _MAX_SECONDS:
        kind = "a non-negative" if allow_zero else "a positive"
        raise CircuitBreakerConfigError(
            f"{field} must be {kind} number of seconds (at most ten years), got {value!r}."
        )
    return float(value)


def _exception_types(field: str, value: _ExceptionTypes) -> Optional[Tuple[Type[BaseException], ...]]:
    if value is None:
        return None
    if isinstance(value, str):
        raise CircuitBreakerConfigError(
            f"{field} must be an exception type or an iterable of exception types, got {value!r}."
        )
    if isinstance(value, type):
        items: Tuple[Any, ...] = (value,)
    else:
        try:
            items = tuple(value)
        except TypeError:
            raise CircuitBreakerConfigError(
                f"{field} must be an exception type or an iterable of exception types, got {value!r}."
            ) from None
    if not items:
        raise CircuitBreakerConfigError(f"{field} must contain at least one exception type.")
    for exc in items:
        if not (isinstance(exc, type) and issubclass(exc, Exception)):
            raise CircuitBreakerConfigError(f"{field} must contain only exception types, got {exc!r}.")
    return items


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


class CircuitBreakerConfig:
    """How a circuit behaves. Durations are seconds (int or float).

    Powertools fields and defaults:

    - ``failure_threshold`` (5): consecutive counted failures in one environment that open the circuit;
    - ``recovery_timeout`` (30): how long the circuit stays open before one call may probe;
    - ``success_threshold`` (3): probe successes that close it again;
    - ``handled_exceptions`` / ``ignored_exceptions`` (mutually exclusive): which exceptions
      count as failures (by default every ``Exception``);
    - ``local_cache_max_age`` (5): how long this environment trusts its read of the shared
      record (and admits calls without asking).

    New fields:

    - ``backoff_multiplier`` (1.0): each reopening multiplies the break by this;
    - ``max_recovery_timeout`` (None: with a multiplier above 1, 300 s or ``recovery_timeout``
      if longer): the longest break;
    - ``recovery_jitter`` (0.0): up to this fraction of the break is added at random;
    - ``probe_lease`` (None: ``recovery_timeout``, at least 30 s): how long one call holds the
      probe permit before another environment may take it over (a late outcome in the same
      half-open episode still counts);
    - ``store_timeout`` (1.0): the deadline of every store call;
    - ``store_retry_after`` (5): after a store error, how long to protect locally before asking
      the store again;
    - ``store_failure_mode`` (``"open"``): while the store cannot be reached, admit calls and
      protect locally (``"closed"``: reject them).
    """

    __slots__ = (
        "failure_threshold",
        "recovery_timeout",
        "success_threshold",
        "handled_exceptions",
        "ignored_exceptions",
        "local_cache_max_age",
        "backoff_multiplier",
        "max_recovery_timeout",
        "recovery_jitter",
        "probe_lease",
        "store_timeout",
        "store_retry_after",
        "store_failure_mode",
    )

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_timeout: float = 30,
        success_threshold: int = 3,
        handled_exceptions: _ExceptionTypes = None,
        ignored_exceptions: _ExceptionTypes = None,
        local_cache_max_age: float = 5,
        backoff_multiplier: float = 1.0,
        max_recovery_timeout: Optional[float] = None,
        recovery_jitter: float = 0.0,
        probe_lease: Optional[float] = None,
        store_timeout: float = 1.0,
        store_retry_after: float = 5,
        store_failure_mode: str = "open",
    ) -> None:
        self.failure_threshold = _positive_int("failure_threshold", failure_threshold)
        self.recovery_timeout = _seconds("recovery_timeout", recovery_timeout)
        self.success_threshold = _positive_int("success_threshold", success_threshold)
        self.handled_exceptions = _exception_types("handled_exceptions", handled_exceptions)
        self.ignored_exceptions = _exception_types("ignored_exceptions", ignored_exceptions)
        if self.handled_exceptions and self.ignored_exceptions:
            raise CircuitBreakerConfigError(
                "handled_exceptions and ignored_exceptions are mutually exclusive; pass only one."
            )
        self.local_cache_max_age = _seconds("local_cache_max_age", local_cache_max_age, allow_zero=True)
        if (
            isinstance(backoff_multiplier, bool)
            or not isinstance(backoff_multiplier, (int, float))
            or not math.isfinite(backoff_multiplier)
            or backoff_multiplier < 1.0
        ):
            raise CircuitBreakerConfigError(
                f"backoff_multiplier must be a number of at least 1.0, got {backoff_multiplier!r}."
            )
        self.backoff_multiplier = float(backoff_multiplier)
        self.max_recovery_timeout = (
            None if max_recovery_timeout is None else _seconds("max_recovery_timeout", max_recovery_timeout)
        )
        if self.max_recovery_timeout is not None and self.max_recovery_timeout < self.recovery_timeout:
            raise CircuitBreakerConfigError(
                f"max_recovery_timeout must be at least recovery_timeout ({self.recovery_timeout!r}), "
                f"got {max_recovery_timeout!r}."
            )
        if (
            isinstance(recovery_jitter, bool)
            or not isinstance(recovery_jitter, (int, float))
            or not 0.0 <= recovery_jitter <= 1.0
        ):
            raise CircuitBreakerConfigError(f"recovery_jitter must be between 0.0 and 1.0, got {recovery_jitter!r}.")
        self.recovery_jitter = float(recovery_jitter)
        self.probe_lease = None if probe_lease is None else _seconds("probe_lease", probe_lease)
        self.store_timeout = _seconds("store_timeout", store_timeout)
        if self.store_timeout > 60:
            raise CircuitBreakerConfigError(f"store_timeout must be at most 60 seconds, got {store_timeout!r}.")
        self.store_retry_after = _seconds("store_retry_after", store_retry_after, allow_zero=True)
        if store_failure_mode not in ("open", "closed"):
            raise CircuitBreakerConfigError(
                f"store_failure_mode must be 'open' or 'closed', got {store_failure_mode!r}."
            )
        self.store_failure_mode = store_failure_mode

    def counts_as_failure(self, exc: BaseException) -> bool:
        """Whether ``exc`` counts against the circuit."""
        if self.handled_exceptions is not None:
            return isinstance(exc, self.handled_exceptions)
        if self.ignored_exceptions is not None:
            return not isinstance(exc, self.ignored_exceptions)
        return True

    def _key(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CircuitBreakerConfig) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"CircuitBreakerConfig({fields})"

    def _native_args(self) -> Tuple[Any, ...]:
        ms = _ms
        return (
            self.failure_threshold,
            ms(self.recovery_timeout),
            self.success_threshold,
            ms(self.local_cache_max_age),
            self.backoff_multiplier,
            None if self.max_recovery_timeout is None else ms(self.max_recovery_timeout),
            self.recovery_jitter,
            None if self.probe_lease is None else ms(self.probe_lease),
            ms(self.store_retry_after),
            self.store_failure_mode == "closed",
        )
