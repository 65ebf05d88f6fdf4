"""Where circuits are shared: DynamoDB for a fleet, SQLite for the processes of one machine,
memory for one process.

Within one process, breakers that share a name and a persistence store share one circuit, as
one execution environment does. Separate processes are separate environments: a process forked
after the store was made (gunicorn ``--preload``, Celery prefork, ``multiprocessing`` with
fork) gets its own connections, threads and identity on first use, and the parent keeps its
own. After a Lambda SnapStart restore, each restored copy takes a new identity.

Hooks (``on_transition``) run after the call that caused the event, with no breaker lock held,
so a hook may call any breaker:

- for a sync call, on the caller's thread, before the call returns;
- for an ``async`` call, on the event loop's thread, before the awaiting task resumes;
- for work the breaker finishes after its caller went away (a cancelled call's probe permit,
  released in the background), on the ``fleetbreaker-events`` thread.

An ``async def`` hook is scheduled as a task on the running event loop when there is one, else
on the loop of the breaker's last async call, else run to completion with ``asyncio.run``.
"""

from __future__ import annotations

import os
from _thread import allocate_lock

from . import _native

# Lean imports on purpose (cold starts): typing only for checkers, logging when first needed.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import Any, Callable, Dict, List, Optional, Tuple

    import asyncio

    from .clock import ManualClock
    from .states import CircuitTransition

__all__ = [
    "CircuitBreakerPersistenceLayer",
    "CircuitBreakerDynamoDBPersistence",
    "SQLitePersistence",
    "InMemoryPersistence",
]


def _logger() -> logging.Logger:
    import logging

    return logging.getLogger("fleetbreaker")


class _Environment:
    """One environment: its native side (which holds its circuits, while breakers use them),
    its log, and where its async hooks run."""

    def __init__(self, store: _native.Store, clock: Optional["ManualClock"], environment_id: Optional[str]) -> None:
        # Test sinks (fleetbreaker.testing.record_events): every event, as its tuple.
        self.sinks: List[List[Tuple[Any, ...]]] = []
        # Held, as environments are found by their clock's id (which must not be reused).
        self.clock = clock
        native_clock = None if clock is None else clock._native
        self.native = _native.Environment(store, native_clock, self._dispatch, environment_id)
        # The event loop of the last async call, where an async hook goes when it is
        # delivered on a thread without a running loop.
        self.loop: Optional["asyncio.AbstractEventLoop"] = None

    def _dispatch(self, event: _native.Event) -> None:
        if self.sinks:
            as_tuple = (event.kind, event.circuit, *list(event.fields.values())[: event.positional])
            for sink in self.sinks:
                sink.append(as_tuple)
        _logger().log(event.log_level, "%s", event.log_text)

    def call_hook(self, hook: Callable[[CircuitTransition], Any], transition: CircuitTransition) -> None:
        """Calls a breaker's transition hook (after the event's log line): its errors are
        logged, an ``async def`` hook is scheduled."""
        try:
            outcome = hook(transition)
            if hasattr(outcome, "__await__"):
                self._schedule(outcome, transition.circuit_name)
        except Exception:
            _logger().warning(
                "on_transition hook for circuit '%s' raised; ignoring.", transition.circuit_name, exc_info=True
            )

    def _schedule(self, coroutine: Any, circuit: str) -> None:
        """Runs an async hook's coroutine: on this thread's running loop, else on the loop of
        the last async call, else to completion here."""
        import asyncio

        async def guarded() -> None:
            try:
                await coroutine
            except Exception:
                _logger().warning("on_transition hook for circuit '%s' raised; ignoring.", circuit, exc_info=True)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None:
            running.create_task(guarded())
        elif self.loop is not None and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(guarded(), self.loop)
        else:
            asyncio.run(guarded())


class CircuitBreakerPersistenceLayer:
    """The base of the persistence stores. A store opens its connection on first use."""

    _persistence: _native.Persistence

    def __init__(self) -> None:
        self._environments: Dict[Optional[int], _Environment] = {}
        self._environment_id: Optional[str] = None
        self._shared_from: Optional["CircuitBreakerPersistenceLayer"] = None

    def _store(self, store_timeout: Optional[float] = None) -> _native.Store:
        """The one store of this persistence object (and of its other environments), for a
        breaker with ``store_timeout`` (None: the one in use)."""
        return (self._shared_from or self)._persistence.store(store_timeout)

    def _environment(self, store_timeout: Optional[float], clock: Optional["ManualClock"]) -> _Environment:
        """The environment for ``clock``; ``store_timeout`` None takes the one in use."""
        store = self._store(store_timeout)
        key = None if clock is None else id(clock)
        with _lock:
            env = self._environments.get(key)
            if env is None:
                env = _Environment(store, clock, self._environment_id)
                self._environments[key] = env
            return env

    def environment(self, environment_id: Optional[str] = None) -> "CircuitBreakerPersistenceLayer":
        """Another environment on the same store, as if in another process: for simulating a
        fleet in one process (tests, demos). ``environment_id`` names it in the records it
        writes (default: a unique id)."""
        other = object.__new__(type(self))
        CircuitBreakerPersistenceLayer.__init__(other)
        other._shared_from = self._shared_from or self
        other._environment_id = environment_id
        return other


class CircuitBreakerDynamoDBPersistence(CircuitBreakerPersistenceLayer):
    """Circuits in a DynamoDB table: one item per circuit, read with ``GetItem`` and written
    with a conditional ``PutItem``; IAM needs ``dynamodb:GetItem`` and ``dynamodb:PutItem``.

    Unset arguments come from the standard AWS environment (``AWS_REGION``,
    ``AWS_ENDPOINT_URL_DYNAMODB``, the credentials chain). With ``sort_key_attr``, the circuit
    name goes in the sort key and ``static_pk_value`` (default
    ``circuit_breaker#<AWS_LAMBDA_FUNCTION_NAME>``, as in Powertools) in the partition key.
    """

    def __init__(
        self,
        table_name: str,
        key_attr: str = "id",
        sort_key_attr: Optional[str] = None,
        static_pk_value: Optional[str] = None,
        region: Optional[str] = None,
        endpoint_url: Optional[str] = None,
        consistent_read: bool = False,
    ) -> None:
        super().__init__()
        # Checked as the store will (the table name by DynamoDB's rules, the keys), now rather
        # than at the first call; the store opens now, so the first call after a cold start
        # finds its SDK configuration loaded.
        options = {name: value for name, value in locals().items() if name not in ("self", "__class__")}
        self._persistence = _native.Persistence.dynamodb(options)
        if self._persistence.warning is not None:
            import warnings

            warnings.warn(self._persistence.warning, stacklevel=2)
        self.table_name = table_name
        self.key_attr = key_attr
        self.sort_key_attr = sort_key_attr
        self.static_pk_value = self._persistence.partition_value
        """The partition key value in effect with composite keys (the given one, or
        ``circuit_breaker#<AWS_LAMBDA_FUNCTION_NAME>`` as in Powertools); None without them."""
        self.region = region
        self.endpoint_url = endpoint_url
        self.consistent_read = consistent_read

    def create_table(self) -> None:
        """Creates the table (on-demand capacity, TTL on ``expiration``): for development and
        tests. Production tables belong in infrastructure code."""
        self._persistence.create_table()


class SQLitePersistence(CircuitBreakerPersistenceLayer):
    """Circuits in a SQLite file, shared by the processes of one machine (server workers,
    local development)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._persistence = _native.Persistence.sqlite(path)
        self.path = path


class InMemoryPersistence(CircuitBreakerPersistenceLayer):
    """Circuits in this process's memory: for tests and single-process programs."""

    def __init__(self) -> None:
        super().__init__()
        self._persistence = _native.Persistence.memory()


# Guards every persistence object's environments (held only to look one up or add it).
_lock = allocate_lock()


def _after_fork_in_child() -> None:
    """A lock some other thread of the parent held stays held in a forked child forever: the
    child gets a new one. (The native stores and environments renew themselves on first use.)"""
    global _lock
    _lock = allocate_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _register_snapshot_restore() -> None:
    """On Lambda SnapStart, each restored copy takes a new environment identity (so two
    copies never hold the same probe token) and opens new connections."""
    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found]
    except ImportError:
        return
    register_after_restore(_native.after_restore)


# Only on Lambda: elsewhere the failing import would cost a search of sys.path.
if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:
    _register_snapshot_restore()
