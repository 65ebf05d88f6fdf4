"""The Python API: names and defaults as in Powertools, results and exceptions unchanged,
callbacks, configuration errors naming the field, overrides, disabling."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from typing import Any, List

import pytest

from fleetbreaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerConfigError,
    CircuitBreakerError,
    CircuitBreakerOpenError,
    CircuitBreakerPersistenceError,
    CircuitInfo,
    CircuitState,
    CircuitTransition,
    circuit_breaker,
)
from fleetbreaker.persistence import (
    CircuitBreakerDynamoDBPersistence,
    InMemoryPersistence,
    SQLitePersistence,
)
from fleetbreaker.testing import ManualClock, set_store_fault, store_counts, stored_record


class Downstream(Exception):
    pass


def test_the_powertools_names_are_all_here() -> None:
    import fleetbreaker
    import fleetbreaker.persistence
    import fleetbreaker.testing

    for name in [
        "circuit_breaker", "CircuitBreaker", "CircuitBreakerConfig", "CircuitInfo", "CircuitState",
        "CircuitTransition", "CircuitBreakerError", "CircuitBreakerOpenError", "CircuitBreakerConfigError",
    ]:
        assert hasattr(fleetbreaker, name), name
    for name in ["CircuitBreakerDynamoDBPersistence", "InMemoryPersistence", "SQLitePersistence"]:
        assert hasattr(fleetbreaker.persistence, name), name
    assert fleetbreaker.testing.ManualClock


def test_circuit_state_loaded_on_first_use_is_one_enum_everywhere() -> None:
    # In a fresh interpreter: the enum is loaded lazily, on the first look.
    code = textwrap.dedent(
        """
        import pickle, sys
        import fleetbreaker, fleetbreaker.states
        assert "fleetbreaker._circuit_state" not in sys.modules
        from fleetbreaker import CircuitState
        assert fleetbreaker.states.CircuitState is CircuitState
        assert isinstance(CircuitState.OPEN, sys.modules["enum"].Enum) and CircuitState.OPEN == "OPEN"
        assert repr(CircuitState.OPEN) == "<CircuitState.OPEN: 'OPEN'>" and str(CircuitState.OPEN) == "OPEN"
        assert CircuitState.__module__ == "fleetbreaker.states"
        assert pickle.loads(pickle.dumps(CircuitState.HALF_OPEN)) is CircuitState.HALF_OPEN
        star = {}
        exec("from fleetbreaker import *", star)
        assert star["CircuitState"] is CircuitState
        try:
            fleetbreaker.NoSuchName
        except AttributeError as e:
            assert "NoSuchName" in str(e)
        else:
            raise AssertionError("missing names must raise AttributeError")
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_the_version_is_the_cargo_workspace_s_everywhere() -> None:
    import importlib.metadata
    import re
    from pathlib import Path

    import fleetbreaker
    from fleetbreaker import _native

    workspace = Path(__file__).resolve().parents[2] / "Cargo.toml"
    declared = re.search(r'^version = "([^"]+)"', workspace.read_text(), re.M)
    assert declared is not None
    assert fleetbreaker.__version__ == _native.__version__ == declared.group(1)
    assert importlib.metadata.version("fleetbreaker") == declared.group(1)


def test_the_package_s_modules_import_each_other_without_a_circle() -> None:
    # Imports that run (at module level or inside functions), not those for type checkers only.
    import ast
    from pathlib import Path

    import fleetbreaker

    package = Path(fleetbreaker.__file__).parent
    graph = {}
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text())
        type_only = {
            id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
            for n in ast.walk(node)
        }
        graph[source.stem] = {
            alias.name if node.module is None else node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and id(node) not in type_only
            for alias in node.names
        } - {"__init__"}

    def reaches(start: str, goal: str, seen: set) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    assert [m for m in graph if m != "__init__" and reaches(m, m, {m})] == []
    from fleetbreaker.clock import ManualClock
    from fleetbreaker.testing import ManualClock as FromTesting

    assert FromTesting is ManualClock


def test_defaults_are_the_seeds() -> None:
    c = CircuitBreakerConfig()
    assert (c.failure_threshold, c.recovery_timeout, c.success_threshold, c.local_cache_max_age) == (5, 30, 3, 5)
    assert (c.backoff_multiplier, c.max_recovery_timeout, c.probe_lease) == (1.0, None, None)
    assert (c.store_timeout, c.store_retry_after, c.store_failure_mode) == (1.0, 5, "open")
    assert c.handled_exceptions is None and c.ignored_exceptions is None


def test_results_and_exceptions_reach_the_caller_unchanged() -> None:
    clock = ManualClock()

    @circuit_breaker(name="payments", persistence_store=InMemoryPersistence(), clock=clock)
    def charge(amount: int, *, currency: str = "EUR") -> dict:
        if amount < 0:
            raise Downstream(f"refused {amount}")
        return {"amount": amount, "currency": currency}

    assert charge(5, currency="USD") == {"amount": 5, "currency": "USD"}
    error = Downstream("original")
    with pytest.raises(Downstream) as raised:
        CircuitBreaker("other", InMemoryPersistence(), clock=clock).call(_raise, error)
    assert raised.value is error, "the very same exception object"
    assert charge.__name__ == "charge", "functools.wraps"


def _raise(e: BaseException) -> None:
    raise e


def test_consecutive_failures_open_the_circuit_and_rejections_carry_the_circuit() -> None:
    clock = ManualClock(1_000.0)
    store = InMemoryPersistence()
    breaker = CircuitBreaker("payments", store, CircuitBreakerConfig(failure_threshold=3, recovery_timeout=30), clock=clock)
    for _ in range(3):
        with pytest.raises(Downstream):
            breaker.call(_raise, Downstream())
    clock.advance(10)
    with pytest.raises(CircuitBreakerOpenError) as raised:
        breaker.call(lambda: pytest.fail("a rejected call must not run"))
    err = raised.value
    assert str(err) == "Circuit 'payments' is open."
    assert isinstance(err, CircuitBreakerError)
    assert err.circuit is not None and err.circuit.state is CircuitState.OPEN
    assert err.circuit.name == "payments" and err.circuit.failure_count == 3
    assert err.circuit.opened_at == 1_000.0
    assert err.retry_after == pytest.approx(20.0)
    assert stored_record(store, "payments")["state"] == "OPEN"  # type: ignore[index]


def test_failure_rate_policy_trips_on_the_share_of_failed_calls_and_healthy_calls_write_nothing() -> None:
    config = CircuitBreakerConfig(failure_rate_threshold=0.5, minimum_calls=10, window=10)
    assert config.failure_threshold is None and config.failure_rate_threshold == 0.5
    assert config.minimum_calls == 10 and CircuitBreakerConfig().failure_threshold == 5
    clock = ManualClock(1_000.0)
    store = InMemoryPersistence()
    breaker = CircuitBreaker("payments", store, config, clock=clock)
    for _ in range(30):
        assert breaker.call(lambda: "ok") == "ok"
        clock.advance(0.1)
    assert store_counts(store)[1] == 0
    failed = 0
    while True:
        try:
            breaker.call(_raise, Downstream())
        except Downstream:
            failed += 1
        except CircuitBreakerOpenError as e:
            assert e.circuit is not None and e.circuit.state is CircuitState.OPEN
            break
        assert failed < 100, "the failure rate never tripped the circuit"
        clock.advance(0.3)
    # A first report counts at least 3 / 0.5 = 6 calls, so one failure alone never trips it.
    assert failed > 1
    assert store_counts(store)[1] == 1
    with pytest.raises(CircuitBreakerConfigError) as raised:
        CircuitBreakerConfig(failure_threshold=5, failure_rate_threshold=0.2)
    assert raised.value.field == "failure_rate_threshold"


def test_slow_calls_count_as_failures_keep_their_result_and_are_reported_apart() -> None:
    clock = ManualClock(1_000.0)
    seen: List[CircuitTransition] = []
    config = CircuitBreakerConfig(failure_threshold=3, slow_call=0.5)
    assert config.slow_call == 0.5
    breaker = CircuitBreaker("payments", InMemoryPersistence(), config, on_transition=seen.append, clock=clock)

    def answers_in(seconds: float) -> str:
        clock.advance(seconds)
        return "late"

    # A slow success still returns its result; it counts against the circuit.
    assert breaker.call(answers_in, 0.8) == "late"
    assert breaker.info().failure_count == 1 and breaker.info().slow_call_count == 1
    assert breaker.call(answers_in, 0.1) == "late"
    assert breaker.info().failure_count == 0, "a fast success ends the streak"
    assert breaker.call(answers_in, 0.8) == "late"
    assert breaker.call(answers_in, 0.8) == "late"
    with pytest.raises(Downstream):
        breaker.call(_raise, Downstream())
    with pytest.raises(CircuitBreakerOpenError) as raised:
        breaker.call(lambda: "never")
    assert raised.value.circuit is not None
    assert (raised.value.circuit.failure_count, raised.value.circuit.slow_call_count) == (3, 2)
    assert [(t.reason, t.failure_count, t.slow_call_count) for t in seen] == [("tripped", 3, 2)]


def test_the_stored_record_shows_every_field_of_the_record() -> None:
    clock = ManualClock(1_000.0)
    store = InMemoryPersistence()
    breaker = CircuitBreaker("payments", store, CircuitBreakerConfig(failure_threshold=1, recovery_timeout=30), clock=clock)
    with pytest.raises(Downstream):
        breaker.call(_raise, Downstream())
    record = stored_record(store, "payments")
    assert record is not None
    # The one field list of the record, in its order: a field added there shows up here.
    assert list(record) == [
        "state", "version", "opened_at_ms", "open_until_ms", "trips", "probe_owner",
        "probe_lease_until_ms", "probe_successes", "closed_at_ms", "failure_count", "slow_call_count",
        "updated_at_ms", "updated_by", "override_reason", "override_until_ms", "expires_at_ms",
    ]
    assert (record["state"], record["version"], record["trips"]) == ("OPEN", 1, 1)
    assert (record["opened_at_ms"], record["open_until_ms"]) == (1_000_000, 1_030_000)
    assert record["probe_owner"] is None and record["updated_at_ms"] == 1_000_000
    assert isinstance(record["expires_at_ms"], int) and record["expires_at_ms"] > 1_030_000


def test_on_circuit_open_gets_the_arguments_and_its_value_or_exception_is_the_result() -> None:
    clock = ManualClock()
    seen: List[Any] = []

    def fallback(order: str, *, priority: int, circuit: CircuitInfo) -> str:
        seen.append((order, priority, circuit.state))
        if order == "boom":
            raise ValueError("fallback failed")
        return "queued"

    @circuit_breaker(
        name="payments",
        persistence_store=InMemoryPersistence(),
        on_circuit_open=fallback,
        config=CircuitBreakerConfig(failure_threshold=1),
        clock=clock,
    )
    def pay(order: str, *, priority: int) -> str:
        raise Downstream(order)

    with pytest.raises(Downstream):
        pay("a", priority=1)
    assert pay("b", priority=2) == "queued"
    assert seen == [("b", 2, CircuitState.OPEN)]
    with pytest.raises(ValueError, match="fallback failed"):
        pay("boom", priority=3)


def test_on_transition_receives_each_write_and_a_raising_hook_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(2_000.0)
    seen: List[CircuitTransition] = []
    breaker = CircuitBreaker(
        "payments",
        InMemoryPersistence(),
        CircuitBreakerConfig(failure_threshold=1, recovery_timeout=5, success_threshold=1),
        on_transition=seen.append,
        clock=clock,
    )
    with pytest.raises(Downstream):
        breaker.call(_raise, Downstream())
    clock.advance(5)
    assert breaker.call(lambda: "ok") == "ok"
    assert [(t.from_state, t.to_state, t.reason, t.version) for t in seen] == [
        ("CLOSED", "OPEN", "tripped", 1),
        ("OPEN", "HALF_OPEN", "probe_started", 2),
        ("HALF_OPEN", "CLOSED", "recovered", 3),
    ]
    first = seen[0]
    assert first.circuit_name == "payments" and first.opened_at == 2_000.0 and first.at == 2_000.0
    assert first.to_state is CircuitState.OPEN

    def broken(_: CircuitTransition) -> None:
        raise RuntimeError("metrics are down")

    noisy = CircuitBreaker("noisy", InMemoryPersistence(), CircuitBreakerConfig(failure_threshold=1), on_transition=broken, clock=clock)
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        with pytest.raises(Downstream):
            noisy.call(_raise, Downstream())
    assert "on_transition hook for circuit 'noisy' raised; ignoring." in caplog.text


def test_events_are_logged_with_the_one_text_of_every_language(caplog: pytest.LogCaptureFixture) -> None:
    # The texts come from the host (fleetbreaker::events::log_line); Node logs the same ones.
    store = InMemoryPersistence()
    breaker = CircuitBreaker("payments", store, CircuitBreakerConfig(failure_threshold=1), clock=ManualClock(1_000.0))
    with caplog.at_level(logging.INFO, logger="fleetbreaker"):
        with pytest.raises(Downstream):
            breaker.call(_raise, Downstream())
        set_store_fault(store, "misconfigured")
        orders = CircuitBreaker("orders", store, CircuitBreakerConfig(), clock=ManualClock(1_000.0))
        assert orders.call(lambda: "ok") == "ok"
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "circuit 'payments': CLOSED -> OPEN (tripped), version 1"),
        (logging.ERROR, "circuit 'orders': store misconfigured: injected; protecting locally until the store answers again"),
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"failure_threshold": 0}, "invalid failure_threshold: must be absent or an integer from 1 to 4294967295, got 0"),
        ({"failure_threshold": 2.5}, "invalid failure_threshold: must be absent or an integer from 1 to 4294967295, got 2.5"),
        ({"failure_threshold": 5.0}, "invalid failure_threshold: must be absent or an integer from 1 to 4294967295, got 5.0"),
        ({"failure_threshold": True}, "invalid failure_threshold: must be absent or an integer from 1 to 4294967295, got true"),
        ({"failure_threshold": 10**30}, "invalid failure_threshold: must be absent or an integer from 1 to 4294967295, got 1e30"),
        ({"success_threshold": -1}, "invalid success_threshold: must be an integer from 1 to 4294967295, got -1"),
        ({"recovery_timeout": 0}, "invalid recovery_timeout: must be a number of seconds from 0.001 to 316224000"),
        ({"recovery_timeout": "30"}, 'invalid recovery_timeout: must be a number of seconds from 0.001 to 316224000 (ten years), got "30"'),
        ({"recovery_timeout": [30]}, "got a value of type list"),
        ({"local_cache_max_age": -1}, "invalid local_cache_max_age: must be a number of seconds from 0 to"),
        ({"backoff_multiplier": 0.5}, "invalid backoff_multiplier: must be a finite number of at least 1, got 0.5"),
        ({"max_recovery_timeout": 10}, "invalid max_recovery_timeout: must be at least recovery_timeout (30), got 10"),
        ({"recovery_jitter": 2}, "invalid recovery_jitter: must be a number from 0 to 1, got 2"),
        ({"probe_lease": 0}, "invalid probe_lease: must be absent or a number of seconds from 0.001"),
        ({"store_timeout": 120}, "invalid store_timeout: must be a number of seconds from 0.001 to 60, got 120"),
        ({"store_retry_after": float("nan")}, "invalid store_retry_after: must be a number of seconds from 0 to 316224000 (ten years), got NaN"),
        ({"store_failure_mode": "maybe"}, 'invalid store_failure_mode: must be "open" or "closed", got "maybe"'),
        ({"handled_exceptions": "ValueError"}, "handled_exceptions must be an exception type or an iterable of exception types, got 'ValueError'."),
        ({"handled_exceptions": 5}, "handled_exceptions must be an exception type or an iterable of exception types, got 5."),
        ({"ignored_exceptions": []}, "ignored_exceptions must contain at least one exception type."),
        ({"ignored_exceptions": [ValueError, int]}, "ignored_exceptions must contain only exception types, got <class 'int'>."),
        ({"handled_exceptions": ValueError, "ignored_exceptions": KeyError}, "handled_exceptions and ignored_exceptions are mutually exclusive; pass only one."),
    ],
)
def test_invalid_configuration_names_the_field_and_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(CircuitBreakerConfigError) as raised:
        CircuitBreakerConfig(**kwargs)
    assert message in str(raised.value)
    if message.startswith("invalid "):
        assert raised.value.field == message.split()[1].rstrip(":")


def test_exception_lists_are_normalised_and_classify_failures() -> None:
    c = CircuitBreakerConfig(handled_exceptions=[TimeoutError, ConnectionError])
    assert c.handled_exceptions == (TimeoutError, ConnectionError)
    assert c.counts_as_failure(TimeoutError()) and not c.counts_as_failure(KeyError())
    c = CircuitBreakerConfig(ignored_exceptions=KeyError)
    assert c.ignored_exceptions == (KeyError,)
    assert not c.counts_as_failure(KeyError()) and c.counts_as_failure(ValueError())
    assert CircuitBreakerConfig(handled_exceptions=iter([ValueError])).handled_exceptions == (ValueError,)


def test_ignored_exceptions_neither_count_nor_reset() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("c", InMemoryPersistence(), CircuitBreakerConfig(failure_threshold=2, ignored_exceptions=KeyError), clock=clock)
    with pytest.raises(Downstream):
        breaker.call(_raise, Downstream())
    for _ in range(5):
        with pytest.raises(KeyError):
            breaker.call(_raise, KeyError("not found"))
    assert breaker.info().state is CircuitState.CLOSED and breaker.info().failure_count == 1
    with pytest.raises(Downstream):
        breaker.call(_raise, Downstream())
    assert breaker.info().state is CircuitState.OPEN


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3), GeneratorExit()])
def test_base_exceptions_pass_through_uncounted(exc: BaseException) -> None:
    breaker = CircuitBreaker("c", InMemoryPersistence(), CircuitBreakerConfig(failure_threshold=1), clock=ManualClock())
    for _ in range(3):
        with pytest.raises(type(exc)):
            breaker.call(_raise, exc)
    assert breaker.info().state is CircuitState.CLOSED


def test_durations_take_int_or_float_seconds_and_overrides_expire() -> None:
    clock = ManualClock(100.0)
    breaker = CircuitBreaker("c", InMemoryPersistence(), CircuitBreakerConfig(recovery_timeout=1.5, local_cache_max_age=0.25), clock=clock)
    info = breaker.force_open(duration=90, reason="deploy")
    assert info.state is CircuitState.FORCED_OPEN and info.override_reason == "deploy"
    assert info.override_until == 190.0 and info.retry_after == 90.0
    with pytest.raises(CircuitBreakerOpenError) as raised:
        breaker.call(lambda: None)
    assert raised.value.circuit is not None and raised.value.circuit.state is CircuitState.FORCED_OPEN
    clock.advance(90)
    assert breaker.call(lambda: 7) == 7, "the override expired"
    assert breaker.force_closed(2.5, "known flaky").override_until == 192.5
    for _ in range(10):
        with pytest.raises(Downstream):
            breaker.call(_raise, Downstream())
    assert breaker.info().state is CircuitState.FORCED_CLOSED, "forced closed counts nothing"
    assert breaker.reset().state is CircuitState.CLOSED
    with pytest.raises(CircuitBreakerConfigError, match="invalid duration: must be absent or a number of seconds"):
        breaker.force_open(duration=-1)


def test_operator_actions_report_store_errors() -> None:
    store = InMemoryPersistence()
    breaker = CircuitBreaker("c", store, clock=ManualClock())
    set_store_fault(store, "throttled")
    with pytest.raises(CircuitBreakerPersistenceError) as raised:
        breaker.reset()
    assert raised.value.kind == "throttled"
    assert breaker.call(lambda: "still protected") == "still protected", "calls never see store errors"


def test_names_are_checked() -> None:
    store = InMemoryPersistence()
    for bad in ["", "x" * 1025, 42]:
        with pytest.raises(CircuitBreakerConfigError, match="invalid name: must") as raised:
            CircuitBreaker(bad, store)  # type: ignore[arg-type]
        assert raised.value.field == "name"
    with pytest.raises(CircuitBreakerConfigError, match="lone surrogate"):
        CircuitBreaker("\udcff", store)
    CircuitBreaker("é" * 512, store)


def test_breakers_sharing_a_name_and_a_store_share_one_circuit() -> None:
    clock = ManualClock()
    store = InMemoryPersistence()
    config = CircuitBreakerConfig(failure_threshold=2)
    one = CircuitBreaker("payments", store, config, clock=clock)
    two = CircuitBreaker("payments", store, config, clock=clock)
    with pytest.raises(Downstream):
        one.call(_raise, Downstream())
    with pytest.raises(Downstream):
        two.call(_raise, Downstream())
    assert one.info().state is CircuitState.OPEN, "two failures through two breakers: one circuit"
    with pytest.raises(CircuitBreakerConfigError, match="different configuration"):
        CircuitBreaker("payments", store, CircuitBreakerConfig(failure_threshold=9), clock=clock)
    other = CircuitBreaker("payments", InMemoryPersistence(), config, clock=clock)
    assert other.info().state is CircuitState.CLOSED, "another store: another circuit"


def test_the_kill_switch_warns_once_per_process_at_the_caller_s_line() -> None:
    code = textwrap.dedent(
        """
        import os, warnings
        from fleetbreaker import CircuitBreakerConfig, circuit_breaker
        from fleetbreaker.persistence import InMemoryPersistence

        def fail():
            raise ValueError()

        config = CircuitBreakerConfig(failure_threshold=1)
        work = circuit_breaker(name="x", persistence_store=InMemoryPersistence(), config=config)(lambda: 1)
        try:
            work.circuit_breaker.call(fail)
        except ValueError:
            pass
        os.environ["FLEETBREAKER_DISABLED"] = "1"
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            work()  # the first bypassed call
            work()
            work.circuit_breaker.acquire().success()
            os.environ["POWERTOOLS_CIRCUIT_BREAKER_DISABLED"] = "1"
            work()
        for w in seen:
            print(w.lineno, w.message)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    first = next(n for n, line in enumerate(code.splitlines(), 1) if "the first bypassed call" in line)
    assert out.stdout.strip().splitlines() == [
        f"{first} FLEETBREAKER_DISABLED (or POWERTOOLS_CIRCUIT_BREAKER_DISABLED) is set: circuit breakers are "
        "bypassed. This is for development only; nothing protects the downstream."
    ], out.stderr


@pytest.mark.parametrize("variable", ["FLEETBREAKER_DISABLED", "POWERTOOLS_CIRCUIT_BREAKER_DISABLED"])
def test_the_kill_switch_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.delenv("FLEETBREAKER_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_CIRCUIT_BREAKER_DISABLED", raising=False)
    persistence = InMemoryPersistence()
    calls: List[int] = []

    @circuit_breaker(name="x", persistence_store=persistence, config=CircuitBreakerConfig(failure_threshold=1),
                     clock=ManualClock())
    def work(n: int) -> int:
        calls.append(n)
        if n < 0:
            raise Downstream(n)
        return n

    with pytest.raises(Downstream):
        work(-1)
    with pytest.raises(CircuitBreakerOpenError):
        work(1)
    before = store_counts(persistence)
    # Set after decoration, as a test or an operator does: it takes effect at the next call.
    monkeypatch.setenv(variable, "true")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # once per process (see the test below)
        assert work(2) == 2, "bypassed: the open circuit does not reject"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Downstream):
            work(-3)
    assert store_counts(persistence) == before, "the breaker did nothing at all"
    assert calls == [-1, 2, -3]
    monkeypatch.setenv(variable, "0")
    with pytest.raises(CircuitBreakerOpenError):
        work(4)
    monkeypatch.setenv(variable, "sometimes")
    with pytest.raises(CircuitBreakerConfigError, match=f"{variable}.*truth value"):
        work(5)
    assert calls == [-1, 2, -3], "a bad switch value fails before the call"


def test_persistence_arguments_are_checked() -> None:
    with pytest.raises(CircuitBreakerConfigError, match=r"key_attr \[id\] and sort_key_attr \[id\] cannot be the same!"):
        CircuitBreakerDynamoDBPersistence("circuits", sort_key_attr="id")
    # As in Powertools: a partition value without a sort key is ignored, with a warning.
    with pytest.warns(UserWarning, match="static_pk_value is ignored unless sort_key_attr is also set"):
        ignored = CircuitBreakerDynamoDBPersistence("circuits", static_pk_value="x")
    assert ignored.static_pk_value is None
    # Table names by DynamoDB's rules, when the persistence object is made.
    for bad in ["", "t", "ab", "x" * 256, "circuit breakers", "circuits/eu"]:
        with pytest.raises(CircuitBreakerConfigError, match="table_name"):
            CircuitBreakerDynamoDBPersistence(bad)
    CircuitBreakerDynamoDBPersistence("my-table_1.v2")
    for bad_path in ["", 42, None]:
        with pytest.raises(CircuitBreakerConfigError, match="must be a non-empty string") as bad:
            SQLitePersistence(bad_path)  # type: ignore[arg-type]
        assert bad.value.field == "path"
    with pytest.raises(CircuitBreakerConfigError, match="must be true or false") as wrong_type:
        CircuitBreakerDynamoDBPersistence("circuits", consistent_read="yes")  # type: ignore[arg-type]
    assert wrong_type.value.field == "consistent_read"
    with pytest.raises(CircuitBreakerConfigError, match="persistence_store must be"):
        CircuitBreaker("c", object())  # type: ignore[arg-type]
    # A file that cannot be opened is a deployment fault: it fails when the breaker is made.
    with pytest.raises(CircuitBreakerPersistenceError, match="cannot open SQLite database /nonexistent-dir/x/circuits.db") as raised:
        CircuitBreaker("c", SQLitePersistence("/nonexistent-dir/x/circuits.db"))
    assert raised.value.kind == "misconfigured"


def test_one_persistence_store_keeps_one_store_timeout(tmp_path: Any) -> None:
    persistence = SQLitePersistence(str(tmp_path / "circuits.db"))
    first = CircuitBreaker("a", persistence, CircuitBreakerConfig(store_timeout=2))
    # Without a config, a breaker takes the deadline in use.
    CircuitBreaker("b", persistence)
    with pytest.raises(CircuitBreakerConfigError) as raised:
        CircuitBreaker("c", persistence, CircuitBreakerConfig(store_timeout=0.5))
    assert raised.value.field == "store_timeout"
    assert str(raised.value) == (
        "invalid store_timeout: must be the 2 s this persistence store already uses, got 0.5; "
        "give breakers with another store_timeout their own persistence store"
    )
    del first


def test_static_pk_value_reports_the_value_in_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "checkout")
    composite = CircuitBreakerDynamoDBPersistence("circuits", key_attr="pk", sort_key_attr="sk")
    assert composite.static_pk_value == "circuit_breaker#checkout", "the Powertools default"
    chosen = CircuitBreakerDynamoDBPersistence("circuits", key_attr="pk", sort_key_attr="sk", static_pk_value="shared")
    assert chosen.static_pk_value == "shared"
    assert CircuitBreakerDynamoDBPersistence("circuits").static_pk_value is None


def test_state_is_a_str_enum() -> None:
    assert CircuitState.OPEN == "OPEN" and str(CircuitState.HALF_OPEN) == "HALF_OPEN"
    assert [s.value for s in CircuitState] == ["CLOSED", "OPEN", "HALF_OPEN", "FORCED_OPEN", "FORCED_CLOSED"]


def test_error_messages_follow_the_seed() -> None:
    assert str(CircuitBreakerError("main message", "extra detail")) == "main message - (extra detail)"
    assert str(CircuitBreakerError()) == ""
    err = CircuitBreakerOpenError("Circuit 'x' is open.")
    assert err.circuit is None and err.retry_after is None


def test_a_manual_permit_reports_its_outcome_once() -> None:
    breaker = CircuitBreaker("c", InMemoryPersistence(), CircuitBreakerConfig(failure_threshold=1), clock=ManualClock())
    permit = breaker.acquire()
    assert not permit.probe
    permit.failure()
    with pytest.raises(RuntimeError, match="already completed"):
        permit.success()
    with pytest.raises(CircuitBreakerOpenError):
        breaker.acquire()
