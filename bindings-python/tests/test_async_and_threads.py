"""async def functions, cancellation, and threads sharing one circuit."""

from __future__ import annotations

import asyncio
import threading
from typing import List

import pytest

from fleetbreaker import CircuitBreaker, CircuitBreakerConfig, CircuitBreakerOpenError, CircuitState, circuit_breaker
from fleetbreaker.persistence import InMemoryPersistence
from fleetbreaker.testing import ManualClock


class Downstream(Exception):
    pass


def test_async_functions_get_an_async_wrapper_and_their_results() -> None:
    clock = ManualClock()

    @circuit_breaker(name="async", persistence_store=InMemoryPersistence(), config=CircuitBreakerConfig(failure_threshold=2), clock=clock)
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        if x < 0:
            raise Downstream(x)
        return x * 2

    async def main() -> None:
        assert asyncio.iscoroutinefunction(fetch)
        assert await fetch(21) == 42
        for _ in range(2):
            with pytest.raises(Downstream):
                await fetch(-1)
        with pytest.raises(CircuitBreakerOpenError):
            await fetch(1)

    asyncio.run(main())


def test_async_on_circuit_open_may_be_a_coroutine() -> None:
    async def fallback(x: int, circuit: object) -> str:
        return f"later {x}"

    @circuit_breaker(name="a", persistence_store=InMemoryPersistence(), on_circuit_open=fallback,
                     config=CircuitBreakerConfig(failure_threshold=1), clock=ManualClock())
    async def work(x: int) -> str:
        raise Downstream()

    async def main() -> None:
        with pytest.raises(Downstream):
            await work(1)
        assert await work(2) == "later 2"

    asyncio.run(main())


def test_cancellation_passes_through_uncounted() -> None:
    breaker = CircuitBreaker("cancel", InMemoryPersistence(), CircuitBreakerConfig(failure_threshold=1), clock=ManualClock())

    async def slow() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        for _ in range(3):
            task = asyncio.ensure_future(breaker.call_async(slow))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert breaker.info().state is CircuitState.CLOSED, "cancelled calls count as nothing"

    asyncio.run(main())


def test_threads_never_both_probe() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("threads", InMemoryPersistence(),
                             CircuitBreakerConfig(failure_threshold=1, recovery_timeout=1), clock=clock)
    with pytest.raises(Downstream):
        breaker.call(_raise)
    clock.advance(1)
    probes: List[int] = []
    rejected: List[int] = []
    gate = threading.Barrier(16)
    release = threading.Event()

    def probe() -> None:
        release.wait(5)
        return None

    def worker() -> None:
        gate.wait()
        try:
            permit = breaker.acquire()
        except CircuitBreakerOpenError:
            rejected.append(1)
            return
        if permit.probe:
            probes.append(1)
        release.wait(5)
        permit.success()

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    threading.Timer(0.5, release.set).start()
    for t in threads:
        t.join()
    assert len(probes) == 1 and len(rejected) == 15


def _raise() -> None:
    raise Downstream()


def test_threads_share_the_lease_and_count_failures() -> None:
    breaker = CircuitBreaker("busy", InMemoryPersistence(), CircuitBreakerConfig(failure_threshold=5), clock=ManualClock())
    errors: List[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(2000):
                assert breaker.call(lambda: 1) == 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert breaker.info().state is CircuitState.CLOSED
