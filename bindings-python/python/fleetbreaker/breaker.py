"""The breaker: the ``circuit_breaker`` decorator and the ``CircuitBreaker`` class."""

from __future__ import annotations

from . import _native
from .config import CircuitBreakerConfig
from .exceptions import CircuitBreakerConfigError, CircuitBreakerOpenError
from .persistence import CircuitBreakerPersistenceLayer
from .states import CircuitInfo, CircuitTransition

# Lean imports on purpose: this module loads at every cold start, and asyncio, inspect and
# typing cost tens of milliseconds. The async paths import asyncio when they run (a caller
# awaiting them has loaded it already).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any, Awaitable, Callable, Dict, Optional, TypeVar

    from .clock import ManualClock

    _F = TypeVar("_F", bound=Callable[..., Any])
    _T = TypeVar("_T")

__all__ = ["circuit_breaker", "CircuitBreaker", "Permit"]

_SUCCESS, _FAILURE, _IGNORED = _native.Outcome.SUCCESS, _native.Outcome.FAILURE, _native.Outcome.IGNORED
_PROBE, _REJECTED, _DISABLED = _native.AdmissionKind.PROBE, _native.AdmissionKind.REJECTED, _native.AdmissionKind.DISABLED
_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE


def _is_coroutine_function(fn: Any) -> bool:
    code = getattr(fn, "__code__", None)
    if code is not None and not hasattr(fn, "_is_coroutine_marker"):
        return bool(code.co_flags & _CO_COROUTINE)
    import inspect  # partials, callables, marked functions: the full answer

    return inspect.iscoroutinefunction(fn)


def _wraps(wrapper: Any, fn: Any) -> None:
    """functools.wraps, without its imports at cold start."""
    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        try:
            setattr(wrapper, name, getattr(fn, name))
        except AttributeError:
            pass
    wrapper.__dict__.update(getattr(fn, "__dict__", {}))
    wrapper.__wrapped__ = fn


async def _settle(pending: Any) -> None:
    """Awaits what a native async method returned: None when it finished at once."""
    if pending is not None:
        await pending


class Permit:
    """Leave to make one call, from ``CircuitBreaker.acquire()``. Report how the call ended
    with exactly one of ``success()``, ``failure()`` or ``ignore()``."""

    __slots__ = ("_complete", "_native", "leased", "probe")

    def __init__(self, circuit: _native.Circuit, admission: _native.Admission) -> None:
        self._complete = circuit.complete
        self._native: Any = admission.permit  # there is one: the call was not rejected
        self.leased = admission.leased
        """Admitted under the admission lease, without asking the breaker."""
        self.probe = admission.kind == _PROBE
        """This call is the fleet's single probe of a half-open circuit."""

    def success(self) -> None:
        self._complete(self._native, _SUCCESS)

    def failure(self) -> None:
        """A failure that counts."""
        self._complete(self._native, _FAILURE)

    def ignore(self) -> None:
        """An error that says nothing about the downstream's health."""
        self._complete(self._native, _IGNORED)


def _warn_disabled(stacklevel: int) -> None:
    """The kill switch's warning, the first time it lets a call through in this process."""
    warning = _native.disabled_warning()
    if warning is not None:
        import warnings

        warnings.warn(warning, stacklevel=stacklevel)


class CircuitBreaker:
    """A circuit shared, through ``persistence_store``, by every environment of a fleet.

    ``call(fn, *args, **kwargs)`` runs ``fn`` under the breaker and returns its result (or
    raises its exception) unchanged; a rejected call raises ``CircuitBreakerOpenError``.
    """

    def __init__(
        self,
        name: str,
        persistence_store: CircuitBreakerPersistenceLayer,
        config: Optional[CircuitBreakerConfig] = None,
        on_transition: Optional[Callable[[CircuitTransition], Any]] = None,
        clock: Optional[ManualClock] = None,
    ) -> None:
        self._name = _native.check_name(name)
        if config is not None and not isinstance(config, CircuitBreakerConfig):
            raise CircuitBreakerConfigError(f"config must be a CircuitBreakerConfig, got {config!r}.")
        if on_transition is not None and not callable(on_transition):
            raise CircuitBreakerConfigError(f"on_transition must be callable, got {on_transition!r}.")
        if not isinstance(persistence_store, CircuitBreakerPersistenceLayer):
            raise CircuitBreakerConfigError(
                f"persistence_store must be a fleetbreaker persistence store, got {persistence_store!r}."
            )
        self._env = persistence_store._environment(None if config is None else config.store_timeout, clock)
        # Breakers of one name in one environment share its circuit, and its config: without
        # one, the breaker takes the circuit's (if it is in use here) or the default. The
        # circuit holds this breaker's listener weakly: its hook goes away with the breaker.
        self._native = _native.Circuit(
            self._env.native,
            self._name,
            None if config is None else config._settings,
            CircuitBreakerConfig() if config is None else config,
            None if on_transition is None else self._transitioned,
        )
        self._config: CircuitBreakerConfig = self._native.config
        if config is not None and self._config != config:
            raise _native.config_conflict(self._name)
        self._on_transition = on_transition
        self._admit: Callable[[], bool] = self._native.try_admit_leased
        self._counts = self._config.counts_as_failure

    def _transitioned(self, fields: Dict[str, Any]) -> None:
        if self._on_transition is not None:
            self._env.call_hook(self._on_transition, CircuitTransition._from_native(self._name, fields))

    @property
    def name(self) -> str:
        return self._name

    @property
    def config(self) -> CircuitBreakerConfig:
        return self._config

    def _rejected(self, info: Any) -> CircuitBreakerOpenError:
        circuit = CircuitInfo._from_native(info)
        return CircuitBreakerOpenError(f"Circuit '{self._name}' is open.", circuit=circuit)

    def _outcome(self, exc: Exception) -> _native.Outcome:
        return _FAILURE if self._counts(exc) else _IGNORED

    def call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Runs ``fn(*args, **kwargs)`` under the breaker."""
        if not self._admit():
            return self._call_slow(fn, args, kwargs, None)
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            self._native.leased_call_failed(self._outcome(exc))
            raise
        except BaseException:
            self._native.leased_call_failed(_IGNORED)
            raise

    def _call_slow(self, fn: Callable[..., _T], args: Any, kwargs: Any, on_open: Optional[Callable[..., Any]]) -> _T:
        """A call the lease does not cover: ask the breaker."""
        native = self._native
        admission = native.acquire()
        permit = admission.permit
        if permit is None:
            return self._refused(admission, args, kwargs, on_open)  # type: ignore[no-any-return]
        if admission.kind == _DISABLED:
            _warn_disabled(4)
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            native.complete(permit, self._outcome(exc))
            raise
        except BaseException:
            native.complete(permit, _IGNORED)
            raise
        native.complete(permit, _SUCCESS)
        return result

    def _refused(self, admission: _native.Admission, args: Any, kwargs: Any, on_open: Optional[Callable[..., Any]]) -> Any:
        """A call the breaker rejected: ``on_open``'s answer (an awaitable is the async
        caller's to await), or the rejection."""
        if on_open is None:
            raise self._rejected(admission.info)
        return on_open(*args, **kwargs, circuit=CircuitInfo._from_native(admission.info))

    def acquire(self) -> Permit:
        """Asks to make one call, for code that cannot hand the breaker a function (callbacks,
        streams): raises ``CircuitBreakerOpenError`` when the circuit rejects it. Report the
        outcome on the returned permit."""
        admission = self._native.acquire()
        if admission.kind == _REJECTED:
            raise self._rejected(admission.info)
        if admission.kind == _DISABLED:
            _warn_disabled(3)
        return Permit(self._native, admission)

    async def call_async(self, fn: Callable[..., Awaitable[_T]], *args: Any, **kwargs: Any) -> _T:
        """Awaits ``fn(*args, **kwargs)`` under the breaker. Store I/O never blocks the event
        loop; a cancelled call counts as nothing."""
        return await self._call_async(fn, args, kwargs, None)

    async def _call_async(
        self, fn: Callable[..., Awaitable[_T]], args: Any, kwargs: Any, on_open: Optional[Callable[..., Any]]
    ) -> _T:
        native = self._native
        if self._admit():
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                import asyncio

                await _settle(native.leased_call_failed(self._outcome(exc), asyncio.get_running_loop()))
                raise
            except BaseException:
                # Takes back the provisional success: no I/O, nothing to wait for.
                native.leased_call_failed(_IGNORED)
                raise
        import asyncio

        loop = asyncio.get_running_loop()
        self._env.loop = loop
        # If this task is cancelled while the breaker asks the store, a permit granted anyway
        # is freed with the result nobody takes: a probe permit is then released at once.
        acquired = native.acquire(loop)
        admission = await acquired if isinstance(acquired, asyncio.Future) else acquired
        permit = admission.permit
        if permit is None:
            outcome = self._refused(admission, args, kwargs, on_open)
            return await outcome if hasattr(outcome, "__await__") else outcome  # type: ignore[no-any-return]
        if admission.kind == _DISABLED:
            _warn_disabled(4)
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            await _settle(native.complete(permit, self._outcome(exc), loop))
            raise
        except BaseException:
            # Cancellation (and exits) pass through uncounted. The permit is released in the
            # background: nothing here waits for the store on the event loop.
            permit.abandon()
            raise
        await _settle(native.complete(permit, _SUCCESS, loop))
        return result

    def info(self) -> CircuitInfo:
        """The circuit as this environment sees it (reading the store if its copy is stale)."""
        return CircuitInfo._from_native(self._native.info())

    def force_open(self, duration: Optional[float] = None, reason: Optional[str] = None) -> CircuitInfo:
        """Rejects every call, fleet-wide, for ``duration`` seconds or until changed."""
        return self._act(_native.Action.FORCE_OPEN, duration, reason)

    def force_closed(self, duration: Optional[float] = None, reason: Optional[str] = None) -> CircuitInfo:
        """Admits every call and counts nothing, fleet-wide, for ``duration`` seconds or until
        changed."""
        return self._act(_native.Action.FORCE_CLOSED, duration, reason)

    def reset(self) -> CircuitInfo:
        """Writes a fresh closed record, whatever the state."""
        return self._act(_native.Action.RESET, None, None)

    def _act(self, action: _native.Action, duration: object, reason: object) -> CircuitInfo:
        return CircuitInfo._from_native(self._native.act(action, duration, reason))


def circuit_breaker(
    name: str,
    persistence_store: CircuitBreakerPersistenceLayer,
    on_circuit_open: Optional[Callable[..., Any]] = None,
    on_transition: Optional[Callable[[CircuitTransition], Any]] = None,
    config: Optional[CircuitBreakerConfig] = None,
    clock: Optional[ManualClock] = None,
) -> Callable[[_F], _F]:
    """Protects a function (plain or ``async def``) with the circuit ``name``.

    A rejected call runs ``on_circuit_open(*args, **kwargs, circuit=CircuitInfo)`` and returns
    its value, or raises ``CircuitBreakerOpenError`` when there is no callback. The protected
    function's own result and exceptions always reach the caller unchanged.
    """
    if on_circuit_open is not None and not callable(on_circuit_open):
        raise CircuitBreakerConfigError(f"on_circuit_open must be callable, got {on_circuit_open!r}.")
    breaker = CircuitBreaker(name, persistence_store, config, on_transition, clock)

    def decorate(fn: _F) -> _F:
        if _is_coroutine_function(fn):

            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await breaker._call_async(fn, args, kwargs, on_circuit_open)

            _wraps(async_wrapper, fn)
            async_wrapper.circuit_breaker = breaker  # type: ignore[attr-defined]
            return async_wrapper  # type: ignore[return-value]

        # The healthy path, inlined: one native call (the lease check), then the call.
        admit, leased_call_failed, outcome, slow = (
            breaker._admit,
            breaker._native.leased_call_failed,
            breaker._outcome,
            breaker._call_slow,
        )

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if admit():
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    leased_call_failed(outcome(exc))
                    raise
                except BaseException:
                    leased_call_failed(_IGNORED)
                    raise
            return slow(fn, args, kwargs, on_circuit_open)

        _wraps(wrapper, fn)
        wrapper.circuit_breaker = breaker  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
