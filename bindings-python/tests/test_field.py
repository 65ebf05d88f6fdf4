"""The package as it is used in the field: hooks that call other breakers, processes that fork,
tasks that are cancelled, many circuit names, breakers made again and again, a wall clock that
steps, SnapStart restores, and the Powertools drop-in details. Whatever can hang runs in a
subprocess with a deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path
from typing import Any, List

import pytest

from fleetbreaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerConfigError,
    CircuitBreakerOpenError,
    CircuitInfo,
    CircuitState,
    CircuitTransition,
    circuit_breaker,
)
from fleetbreaker.persistence import CircuitBreakerDynamoDBPersistence, InMemoryPersistence
from fleetbreaker.testing import (
    ManualClock,
    hold_store_calls,
    release_store_calls,
    stored_record,
)


class Downstream(Exception):
    pass


def run_child(code: str, *args: str, timeout: float = 60, env: Any = None) -> str:
    """Runs `code` in a fresh interpreter; a hang is a failure, reported with what it printed."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            capture_output=True, text=True, timeout=timeout, env=env,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"hung for {timeout} s; stdout: {e.stdout!r}; stderr: {e.stderr!r}") from None
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stdout


def persistence_code(kind: str) -> str:
    return {
        "sqlite": "from fleetbreaker.persistence import SQLitePersistence\n"
                  "def persistence(): return SQLitePersistence(sys.argv[1])\n",
        "dynamodb": "from fleetbreaker.persistence import CircuitBreakerDynamoDBPersistence\n"
                    "def persistence():\n"
                    "    p = CircuitBreakerDynamoDBPersistence(sys.argv[2], region='us-east-1', endpoint_url=sys.argv[1])\n"
                    "    return p\n",
    }[kind]


@pytest.fixture(params=["sqlite", "dynamodb"])
def store_args(request: Any, tmp_path: Path, table_name: str) -> List[str]:
    if request.param == "sqlite":
        return ["sqlite", str(tmp_path / "circuits.db")]
    moto = request.getfixturevalue("moto")
    p = CircuitBreakerDynamoDBPersistence(table_name, region="us-east-1", endpoint_url=moto.endpoint)
    p.create_table()
    return ["dynamodb", moto.endpoint, table_name]


HOOKS = """
import asyncio, sys
from fleetbreaker import CircuitBreaker, CircuitBreakerConfig
{persistence}
store = persistence()
alerts = CircuitBreaker("alerts", store, CircuitBreakerConfig(failure_threshold=5))
other = CircuitBreaker("other", store)
seen = []

def on_transition(t):
    # A hook that calls other breakers on the same store, synchronously: a webhook guarded by
    # its own breaker, and a look at a circuit this process has not read yet.
    seen.append(("alert", alerts.call(lambda: f"paged {{t.to_state}}")))
    seen.append(("other", other.info().state.value))

payments = CircuitBreaker("payments", store, CircuitBreakerConfig(failure_threshold=1, local_cache_max_age=0),
                          on_transition=on_transition)

def down():
    raise ValueError("down")

try:
    payments.call(down)
except ValueError:
    pass
assert seen == [("alert", "paged OPEN"), ("other", "CLOSED")], seen
payments.reset()

async def main():
    async def page(t):
        seen.append(("async", await alerts.call_async(asyncio.sleep, 0, result=t.to_state.value)))
    async_payments = CircuitBreaker("payments-async", store, CircuitBreakerConfig(failure_threshold=1, local_cache_max_age=0),
                                    on_transition=page)
    async def fail():
        raise ValueError("down")
    try:
        await async_payments.call_async(fail)
    except ValueError:
        pass
    for _ in range(100):
        if any(k == "async" for k, _ in seen):
            break
        await asyncio.sleep(0.01)

asyncio.run(main())
assert ("async", "OPEN") in seen, seen
print("ok")
"""


def test_a_transition_hook_may_call_other_breakers(store_args: List[str]) -> None:
    kind, *args = store_args
    out = run_child(HOOKS.format(persistence=persistence_code(kind)), *args, timeout=60)
    assert out.strip() == "ok"


FORK = """
import os, sys, time
from fleetbreaker import CircuitBreaker, CircuitBreakerConfig, CircuitBreakerOpenError
{persistence}
order = sys.argv[-1]
store = persistence()
config = CircuitBreakerConfig(failure_threshold=1, local_cache_max_age=0)
parent_breaker = None
if order == "breaker":
    parent_breaker = CircuitBreaker("payments", store, config)
    assert parent_breaker.call(lambda: 1) == 1
    parent_id = store._environment(None, None).native.id

pid = os.fork()
if pid == 0:
    import signal
    signal.alarm(30)  # a hang in the child is a failure, not a stuck test
    code = 1
    try:
        b = parent_breaker or CircuitBreaker("payments", store, config)
        assert b.call(lambda: 2) == 2
        if order == "breaker":
            assert store._environment(None, None).native.id != parent_id, "a new identity"
        try:
            b.call(lambda: (_ for _ in ()).throw(ValueError("down")))
        except ValueError:
            pass
        info = b.info()
        assert info.state.value == "OPEN" and not info.local_only, info
        code = 0
    finally:
        os._exit(code)

_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"the child failed or hung: {{status:#x}}"
b = parent_breaker or CircuitBreaker("payments", store, config)
try:
    b.call(lambda: 3)
    raise AssertionError("the parent should see the child's trip")
except CircuitBreakerOpenError as e:
    assert not e.circuit.local_only, e.circuit
b.reset()
assert b.call(lambda: 4) == 4
print("ok")
"""


@pytest.mark.parametrize("order", ["persistence", "breaker"])
def test_fork_gives_the_child_its_own_everything_and_leaves_the_parent_working(store_args: List[str], order: str) -> None:
    kind, *args = store_args
    out = run_child(FORK.format(persistence=persistence_code(kind)), *args, order, timeout=90)
    assert out.strip() == "ok"


def test_two_environments_with_the_same_identity_cannot_both_take_the_probe() -> None:
    root, clock = InMemoryPersistence(), ManualClock()
    config = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=1)
    a = CircuitBreaker("payments", root.environment("copied"), config, clock=clock)
    b = CircuitBreaker("payments", root.environment("copied"), config, clock=clock)
    for breaker in (a, b):
        try:
            breaker.call(lambda: (_ for _ in ()).throw(Downstream()))
        except (Downstream, CircuitBreakerOpenError):
            pass
    clock.advance(1)
    first = a.acquire()
    assert first.probe
    with pytest.raises(CircuitBreakerOpenError) as rejected:
        b.acquire()
    assert rejected.value.circuit is not None and rejected.value.circuit.state is CircuitState.HALF_OPEN
    first.success()


SNAPSTART = """
import sys, types
hooks = []
sys.modules["snapshot_restore_py"] = types.SimpleNamespace(register_after_restore=hooks.append)
from fleetbreaker import CircuitBreaker
from fleetbreaker.persistence import InMemoryPersistence
store = InMemoryPersistence()
CircuitBreaker("payments", store)
env = store._environment(None, None).native
before = env.id
assert len(hooks) == 1, hooks
hooks[0]()  # what the Lambda runtime calls after restoring the snapshot
after = env.id
assert after != before, (before, after)
print("ok")
"""


def test_a_snapstart_restore_gives_each_copy_a_new_identity() -> None:
    env = dict(os.environ, AWS_LAMBDA_FUNCTION_NAME="checkout")
    assert run_child(SNAPSTART, env=env).strip() == "ok"


def test_cancelling_a_call_waiting_on_the_store_never_leaves_it_holding_the_probe() -> None:
    persistence, clock = InMemoryPersistence(), ManualClock()
    breaker = CircuitBreaker("payments", persistence, CircuitBreakerConfig(failure_threshold=1, recovery_timeout=1,
                                                                            probe_lease=60), clock=clock)
    with pytest.raises(Downstream):
        breaker.call(lambda: (_ for _ in ()).throw(Downstream()))
    clock.advance(2)

    async def main() -> None:
        calls: List[int] = []

        async def work() -> int:
            calls.append(1)
            return 1

        hold_store_calls(persistence)
        task = asyncio.ensure_future(breaker.call_async(work))
        await asyncio.sleep(0.05)  # the task now waits for the store, inside acquire
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release_store_calls(persistence)
        for _ in range(200):  # the abandoned acquire finishes in the background
            record = stored_record(persistence, "payments")
            if record is not None and record["state"] == "HALF_OPEN" and record["probe_owner"] is None:
                break
            await asyncio.sleep(0.01)
        record = stored_record(persistence, "payments")
        assert record is not None and record["probe_owner"] is None, f"the cancelled call holds the probe: {record}"
        assert calls == [], "the cancelled call never ran"
        assert await breaker.call_async(work) == 1, "the next call may probe at once"

    asyncio.run(main())


def test_cancelling_a_running_probe_does_not_block_the_event_loop() -> None:
    persistence, clock = InMemoryPersistence(), ManualClock()
    breaker = CircuitBreaker("payments", persistence, CircuitBreakerConfig(failure_threshold=1, recovery_timeout=1),
                             clock=clock)
    with pytest.raises(Downstream):
        breaker.call(lambda: (_ for _ in ()).throw(Downstream()))
    clock.advance(2)

    async def main() -> float:
        started = asyncio.Event()

        async def slow_probe() -> None:
            started.set()
            await asyncio.sleep(30)

        task = asyncio.ensure_future(breaker.call_async(slow_probe))
        await started.wait()
        hold_store_calls(persistence)  # releasing the permit now waits on a slow store
        ticks: List[float] = []

        async def ticker() -> None:
            for _ in range(40):
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        ticking = asyncio.ensure_future(ticker())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await ticking
        release_store_calls(persistence)
        return max(b - a for a, b in zip(ticks, ticks[1:]))

    longest = asyncio.run(main())
    assert longest < 0.25, f"the loop stalled for {longest:.3f} s while the permit was released"


def test_listeners_go_away_with_their_breaker() -> None:
    persistence, clock = InMemoryPersistence(), ManualClock()
    calls: List[CircuitTransition] = []
    config = CircuitBreakerConfig(failure_threshold=1)
    for _ in range(1000):
        CircuitBreaker("payments", persistence, config, on_transition=calls.append, clock=clock)
    kept = CircuitBreaker("payments", persistence, config, on_transition=calls.append, clock=clock)
    with pytest.raises(Downstream):
        kept.call(lambda: (_ for _ in ()).throw(Downstream()))
    assert len(calls) == 1, f"{len(calls)} hook calls for one trip"

    # A hook that holds its own breaker (a cycle through the native circuit) is collected too.
    class Watcher:
        def __init__(self) -> None:
            self.breaker = CircuitBreaker("watched", persistence, config, on_transition=self.seen, clock=clock)

        def seen(self, t: CircuitTransition) -> None:
            calls.append(t)

    watcher = Watcher()
    gone = weakref.ref(watcher.breaker)
    del watcher
    gc.collect()
    assert gone() is None, "the breaker and its hook were collected"
    assert persistence._environment(None, clock).native.circuits_in_use() == 1, "only 'payments' is in use"


def test_circuit_names_are_released_with_their_last_breaker() -> None:
    persistence, clock = InMemoryPersistence(), ManualClock()
    kept = CircuitBreaker("kept", persistence, clock=clock)
    for i in range(20_000):
        CircuitBreaker(f"tenant-{i}", persistence, clock=clock).call(lambda: None)
    gc.collect()
    env = persistence._environment(None, clock)
    assert env.native.circuits_in_use() == 1
    assert env.native.component_circuits() <= 1
    assert kept.call(lambda: 7) == 7


def test_a_breaker_made_without_a_config_takes_the_circuits() -> None:
    persistence = InMemoryPersistence()
    config = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=7)
    in_use = CircuitBreaker("payments", persistence, config)
    reader = CircuitBreaker("payments", persistence)
    assert reader.config == config
    assert reader.info().state is CircuitState.CLOSED
    with pytest.raises(CircuitBreakerConfigError, match="different configuration"):
        CircuitBreaker("payments", persistence, CircuitBreakerConfig(failure_threshold=3))
    # The exception types are part of the circuit's config too (the host sees only the rest).
    typed = CircuitBreakerConfig(handled_exceptions=TimeoutError)
    typed_in_use = CircuitBreaker("typed", persistence, typed)
    assert CircuitBreaker("typed", persistence).config.handled_exceptions == (TimeoutError,)
    with pytest.raises(CircuitBreakerConfigError, match="different configuration"):
        CircuitBreaker("typed", persistence, CircuitBreakerConfig(handled_exceptions=KeyError))
    del in_use, reader, typed_in_use
    gc.collect()
    assert CircuitBreaker("payments", persistence).config == CircuitBreakerConfig(), "a circuit no breaker holds is new"


def test_a_wall_clock_stepped_back_does_not_stretch_the_copy_of_the_record() -> None:
    root, clock = InMemoryPersistence(), ManualClock()
    worker = CircuitBreaker("payments", root.environment("worker"), clock=clock)
    operator = CircuitBreaker("payments", root.environment("operator"), clock=clock)
    assert worker.call(lambda: 1) == 1
    clock.step(-3600)
    operator.force_open(reason="incident")
    clock.advance(5)  # local_cache_max_age, on the monotonic clock
    with pytest.raises(CircuitBreakerOpenError) as rejected:
        worker.call(lambda: 1)
    assert rejected.value.circuit is not None and rejected.value.circuit.state is CircuitState.FORCED_OPEN


def test_a_growing_break_is_capped_by_default() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("payments", InMemoryPersistence(),
                             CircuitBreakerConfig(failure_threshold=1, recovery_timeout=1, backoff_multiplier=2),
                             clock=clock)
    with pytest.raises(Downstream):
        breaker.call(lambda: (_ for _ in ()).throw(Downstream()))
    for _ in range(20):
        clock.advance(400)
        with pytest.raises(Downstream):
            breaker.call(lambda: (_ for _ in ()).throw(Downstream()))
    info = breaker.info()
    assert info.retry_after is not None and info.retry_after <= 300, info


def test_hooks_of_async_calls_run_on_the_event_loop_and_async_hooks_are_scheduled_on_it() -> None:
    clock = ManualClock()
    threads: List[str] = []
    async_seen: List[str] = []

    def sync_hook(t: CircuitTransition) -> None:
        threads.append(threading.current_thread().name)

    async def async_hook(t: CircuitTransition) -> None:
        await asyncio.sleep(0)
        async_seen.append(t.to_state.value)

    persistence = InMemoryPersistence()
    config = CircuitBreakerConfig(failure_threshold=1)
    a = CircuitBreaker("payments", persistence, config, on_transition=sync_hook, clock=clock)
    b = CircuitBreaker("search", persistence, config, on_transition=async_hook, clock=clock)

    async def fail() -> None:
        raise Downstream()

    async def main() -> str:
        for breaker in (a, b):
            with pytest.raises(Downstream):
                await breaker.call_async(fail)
        for _ in range(50):
            if async_seen:
                break
            await asyncio.sleep(0.01)
        return threading.current_thread().name

    loop_thread = asyncio.run(main())
    assert threads == [loop_thread]
    assert async_seen == ["OPEN"]
    # An async hook of a sync call, with no loop running: run to completion there.
    with pytest.raises(Downstream):
        CircuitBreaker("other", persistence, config, on_transition=async_hook, clock=clock).call(
            lambda: (_ for _ in ()).throw(Downstream()))
    assert async_seen == ["OPEN", "OPEN"]


def test_info_and_transition_are_frozen_dataclasses_as_in_powertools() -> None:
    info = CircuitInfo(name="payments", state=CircuitState.OPEN, failure_count=5, opened_at=1.5)
    assert dataclasses.is_dataclass(info) and dataclasses.is_dataclass(CircuitInfo)
    as_dict = dataclasses.asdict(info)
    assert as_dict["name"] == "payments" and as_dict["failure_count"] == 5 and as_dict["state"] is CircuitState.OPEN
    assert [f.name for f in dataclasses.fields(CircuitInfo)][:4] == ["name", "state", "failure_count", "opened_at"]
    later = dataclasses.replace(info, failure_count=6)
    assert later.failure_count == 6 and later.name == "payments" and info.failure_count == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.failure_count = 9  # type: ignore[misc]
    t = CircuitTransition(circuit_name="payments", from_state=CircuitState.CLOSED, to_state=CircuitState.OPEN)
    assert dataclasses.asdict(t)["to_state"] is CircuitState.OPEN
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.reason = "x"  # type: ignore[misc]
    import pickle

    assert pickle.loads(pickle.dumps(info)) == info
    assert dataclasses.astuple(info)[:2] == ("payments", CircuitState.OPEN)
    assert CircuitInfo("payments", CircuitState.OPEN, 5, 1.5) == info, "fields by position, in order"
    assert [f.default for f in dataclasses.fields(CircuitInfo)][2:5] == [0, None, 0], "the declared defaults"
    assert CircuitInfo.__match_args__[:3] == ("name", "state", "failure_count")
    for bad in ({"name": "p"}, {"name": "p", "state": CircuitState.OPEN, "nope": 1}):
        with pytest.raises(TypeError):
            CircuitInfo(**bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="repeated"):
        CircuitInfo("p", CircuitState.OPEN, name="q")  # type: ignore[misc]


DAEMON_THREAD_AT_EXIT = """
    import builtins, os, threading
    from fleetbreaker import CircuitBreaker
    from fleetbreaker.persistence import InMemoryPersistence
    from fleetbreaker.testing import hold_store_calls, release_store_calls, store_counts

    persistence = InMemoryPersistence()
    CircuitBreaker("payments", persistence).call(lambda: 1)  # the store is open
    reads = store_counts(persistence)[0]
    orders = CircuitBreaker("orders", persistence)
    hold_store_calls(persistence)
    started = threading.Event()

    def worker():
        started.set()
        orders.call(lambda: 1)  # loads "orders": waits on the store with the GIL released

    threading.Thread(target=worker, daemon=True).start()
    started.wait()

    class AnswerWhileFinalizing:
        # Runs while the interpreter finalizes (builtins are cleared last): the daemon thread's
        # store call is answered now, and it comes back for the GIL just as Python <= 3.13
        # makes such threads exit with pthread_exit, a forced unwind through the extension.
        def __del__(self, os=os, release=release_store_calls, counts=store_counts, p=persistence):
            release(p)
            for _ in range(10_000_000):
                if counts(p)[0] > reads:
                    os.write(1, b"answered while finalizing")
                    return

    builtins.fleetbreaker_answer = AnswerWhileFinalizing()
"""


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_a_daemon_thread_waiting_on_the_store_when_the_interpreter_exits_does_not_crash_it(attempt: int) -> None:
    # The extension must use the system's unwinder (libgcc_s): with a private copy, the forced
    # unwind that ends such a thread crashed the process at exit.
    out = run_child(DAEMON_THREAD_AT_EXIT, timeout=60)
    assert out == "answered while finalizing", out


def test_making_a_breaker_waits_for_the_component_without_holding_the_gil() -> None:
    persistence, clock = InMemoryPersistence(), ManualClock()
    busy = CircuitBreaker("busy", persistence, clock=clock)
    hold_store_calls(persistence)
    reading = threading.Thread(target=busy.info)  # holds the component, waiting on the store
    reading.start()
    time.sleep(0.05)
    ticks: List[float] = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.005)

    ticking = threading.Thread(target=ticker)
    ticking.start()
    made: List[CircuitBreaker] = []
    maker = threading.Thread(target=lambda: made.append(CircuitBreaker("new", persistence, clock=clock)))
    maker.start()
    time.sleep(0.3)
    during = len(ticks)
    release_store_calls(persistence)
    maker.join(10)
    reading.join(10)
    stop.set()
    ticking.join()
    assert made, "the breaker was made once the component was free"
    assert during > 20, f"other Python threads ran while it waited: {during} ticks"
