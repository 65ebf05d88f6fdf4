"""The breaker's configuration, with the Powertools circuit breaker's fields and defaults."""

from __future__ import annotations

from . import _native
from .exceptions import CircuitBreakerConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Optional, Tuple, Type, Union

    _ExceptionTypes = Union[Type[BaseException], Iterable[Type[BaseException]], None]

__all__ = ["CircuitBreakerConfig"]


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


class CircuitBreakerConfig:
    """How a circuit behaves. Durations are seconds (int or float).

    Powertools fields and defaults:

    - ``failure_threshold`` (5): consecutive counted failures in one environment that open the
      circuit (None when ``failure_rate_threshold`` selects the failure-rate policy);
    - ``recovery_timeout`` (30): how long the circuit stays open before one call may probe;
    - ``success_threshold`` (3): probe successes that close it again;
    - ``handled_exceptions`` / ``ignored_exceptions`` (mutually exclusive): which exceptions
      count as failures (by default every ``Exception``);
    - ``local_cache_max_age`` (5): how long this environment trusts its read of the shared
      record (and admits calls without asking).

    New fields:

    - ``failure_rate_threshold`` (None): setting it selects the failure-rate policy: the
      circuit opens when this share of the whole fleet's calls in the ``window`` failed (0.2:
      a fifth). Environments report only once they see a failure, so a healthy fleet writes
      nothing. Setting it together with ``failure_threshold`` is an error;
    - ``minimum_calls`` (100): under the failure-rate policy, the fleet's calls the window must
      hold before its rate counts;
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
      protect locally (``"closed"``: reject them);
    - ``minimum_environments`` (1): how many distinct environments must have seen the
      failures before the circuit trips for the fleet (1: any one, as in Powertools). Above 1,
      one bad environment (a broken network path, a bad sandbox) no longer opens the circuit
      for everyone; while the store cannot be reached, each environment still protects itself;
    - ``window`` (60): the fleet's sliding window, in seconds: the failure rate is taken over
      it, and another environment's failures count toward ``minimum_environments`` within it;
    - ``slow_call`` (None): a success slower than this many seconds counts as a failure under
      either policy, and is reported apart (``slow_call_count`` in the info and transitions).
      Every call then takes a permit: the admission lease, which admits calls untimed, is off.
    """

    __slots__ = (
        "failure_threshold",
        "failure_rate_threshold",
        "minimum_calls",
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
        "minimum_environments",
        "window",
        "slow_call",
        "_settings",
    )

    failure_threshold: Optional[int]
    failure_rate_threshold: Optional[float]
    minimum_calls: int
    recovery_timeout: float
    success_threshold: int
    handled_exceptions: Optional[Tuple[Type[BaseException], ...]]
    ignored_exceptions: Optional[Tuple[Type[BaseException], ...]]
    local_cache_max_age: float
    backoff_multiplier: float
    max_recovery_timeout: Optional[float]
    recovery_jitter: float
    probe_lease: Optional[float]
    store_timeout: float
    store_retry_after: float
    store_failure_mode: str
    minimum_environments: int
    window: float
    slow_call: Optional[float]

    def __init__(
        self,
        failure_threshold: Optional[int] = None,
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
        minimum_environments: int = 1,
        window: float = 60,
        failure_rate_threshold: Optional[float] = None,
        minimum_calls: int = 100,
        slow_call: Optional[float] = None,
    ) -> None:
        # Every field but the exception types is checked in the native host, the same way as
        # in every language.
        fields = dict(locals())
        del fields["self"], fields["handled_exceptions"], fields["ignored_exceptions"]
        self._settings = _native.Settings(fields)
        for name, value in self._settings.values().items():
            setattr(self, name, value)
        self.handled_exceptions = _exception_types("handled_exceptions", handled_exceptions)
        self.ignored_exceptions = _exception_types("ignored_exceptions", ignored_exceptions)
        if self.handled_exceptions and self.ignored_exceptions:
            raise CircuitBreakerConfigError(
                "handled_exceptions and ignored_exceptions are mutually exclusive; pass only one."
            )

    def counts_as_failure(self, exc: BaseException) -> bool:
        """Whether ``exc`` counts against the circuit."""
        if self.handled_exceptions is not None:
            return isinstance(exc, self.handled_exceptions)
        if self.ignored_exceptions is not None:
            return not isinstance(exc, self.ignored_exceptions)
        return True

    def _key(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CircuitBreakerConfig) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"CircuitBreakerConfig({fields})"


_FIELDS = tuple(name for name in CircuitBreakerConfig.__slots__ if not name.startswith("_"))
