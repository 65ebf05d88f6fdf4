"""Helpers for testing code that uses fleetbreaker: a manual clock, and a look inside an
in-memory store."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from . import _native
from .clock import ManualClock
from .exceptions import CircuitBreakerConfigError
from .persistence import CircuitBreakerPersistenceLayer, InMemoryPersistence

__all__ = [
    "ManualClock",
    "record_events",
    "stored_record",
    "store_counts",
    "set_store_fault",
    "put_corrupt_item",
    "delete_item",
    "hold_store_calls",
    "release_store_calls",
]


def _memory(persistence: CircuitBreakerPersistenceLayer) -> _native.Store:
    if not isinstance(persistence._shared_from or persistence, InMemoryPersistence):
        raise CircuitBreakerConfigError("only an InMemoryPersistence can be inspected or broken on purpose")
    return persistence._store()


def stored_record(persistence: CircuitBreakerPersistenceLayer, name: str) -> Optional[Dict[str, object]]:
    """The valid record of circuit ``name``, as a dict of every field, or None (no item, or a
    corrupt one)."""
    return _memory(persistence).record(name)


def store_counts(persistence: CircuitBreakerPersistenceLayer) -> Tuple[int, int, int]:
    """(successful reads, successful writes, calls refused by ``set_store_fault``)."""
    return _memory(persistence).stats()


def set_store_fault(persistence: CircuitBreakerPersistenceLayer, kind: Optional[str]) -> None:
    """Makes every later store call fail with ``kind`` (``unavailable``, ``timeout``,
    ``throttled``, ``misconfigured``), or work again with None."""
    _memory(persistence).set_fault(kind)


def put_corrupt_item(persistence: CircuitBreakerPersistenceLayer, name: str, version: Optional[int], problem: str) -> None:
    """Replaces circuit ``name``'s item with one that is not a valid record."""
    _memory(persistence).put_corrupt(name, version, problem)


def hold_store_calls(persistence: CircuitBreakerPersistenceLayer) -> None:
    """Makes every later store call wait (a slow store) until ``release_store_calls``."""
    _memory(persistence).hold_calls()


def release_store_calls(persistence: CircuitBreakerPersistenceLayer) -> None:
    """Lets the calls held by ``hold_store_calls`` go on."""
    _memory(persistence).release_calls()


def delete_item(persistence: CircuitBreakerPersistenceLayer, name: str) -> None:
    """Deletes circuit ``name``'s item, as DynamoDB's TTL or an operator does."""
    persistence._store().remove(name)


def record_events(
    persistence: CircuitBreakerPersistenceLayer,
    clock: Optional[ManualClock] = None,
    into: Optional[List[Tuple[Any, ...]]] = None,
) -> List[Tuple[Any, ...]]:
    """A list that receives every event of ``persistence``'s environment (for ``clock``), in
    order, as tuples: ``("transition", circuit, from, to, version, at_ms, opened_at_ms, reason,
    override_reason, local_only)``, ``("store_degraded", circuit, kind, message, retry_at_ms)``,
    ``("store_recovered", circuit)``, ``("corrupt_record", circuit, message)``. With ``into``,
    events are appended to that list (anything with ``append``) instead of a new one."""
    sink: List[Tuple[Any, ...]] = [] if into is None else into
    persistence._environment(None, clock).sinks.append(sink)
    return sink
