"""The conformance scenarios (conformance/scenarios/*.json) through the Python API, with a
ManualClock: each scenario environment is its own environment on one in-memory store."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Dict, List, Optional, Tuple

import pytest

from fleetbreaker import CircuitBreaker, CircuitBreakerConfig, CircuitBreakerOpenError, CircuitBreakerPersistenceError
from fleetbreaker.breaker import Permit
from fleetbreaker.persistence import InMemoryPersistence
from fleetbreaker.testing import (
    ManualClock,
    delete_item,
    put_corrupt_item,
    record_events,
    set_store_fault,
    store_counts,
    stored_record,
)

SCENARIOS = pathlib.Path(__file__).resolve().parents[2] / "conformance" / "scenarios"
FILES = sorted(SCENARIOS.glob("*.json"))


def test_scenarios_are_found() -> None:
    assert len(FILES) >= 20, f"expected the scenarios in {SCENARIOS}"


def config_of(c: Dict[str, Any]) -> CircuitBreakerConfig:
    s = lambda ms: ms / 1000.0  # noqa: E731
    return CircuitBreakerConfig(
        failure_threshold=c.get("failure_threshold"),
        failure_rate_threshold=c.get("failure_rate_threshold"),
        minimum_calls=c.get("minimum_calls", 100),
        recovery_timeout=s(c.get("recovery_timeout_ms", 30000)),
        success_threshold=c.get("success_threshold", 3),
        local_cache_max_age=s(c.get("local_cache_max_age_ms", 5000)),
        backoff_multiplier=c.get("backoff_multiplier", 1.0),
        max_recovery_timeout=None if "max_recovery_timeout_ms" not in c else s(c["max_recovery_timeout_ms"]),
        probe_lease=None if "probe_lease_ms" not in c else s(c["probe_lease_ms"]),
        store_retry_after=s(c.get("store_retry_after_ms", 5000)),
        store_failure_mode=c.get("store_failure_mode", "open"),
        minimum_environments=c.get("minimum_environments", 1),
        window=s(c.get("window_ms", 60000)),
        slow_call=None if "slow_call_ms" not in c else s(c["slow_call_ms"]),
    )


class Tagged:
    """A sink that tags each event with its environment, into one list in emission order."""

    def __init__(self, name: str, shared: List[Tuple[str, Tuple[Any, ...]]]) -> None:
        self.name, self.shared = name, shared

    def append(self, event: Tuple[Any, ...]) -> None:
        self.shared.append((self.name, event))


class Runner:
    def __init__(self, scenario: Dict[str, Any]) -> None:
        self.s = scenario
        self.start_ms = scenario.get("start_ms", 1_700_000_000_000)
        self.circuit = scenario.get("circuit", "payments")
        self.clock = ManualClock(self.start_ms / 1000.0)
        self.root = InMemoryPersistence()
        config = config_of(scenario.get("config", {}))
        self.envs = scenario.get("environments", ["a"])
        self.breakers: Dict[str, CircuitBreaker] = {}
        self.seen_events: List[Tuple[str, Tuple[Any, ...]]] = []
        for name in self.envs:
            persistence = self.root.environment(environment_id=f"env-{name}")
            self.breakers[name] = CircuitBreaker(self.circuit, persistence, config, clock=self.clock)
            record_events(persistence, self.clock, into=Tagged(name, self.seen_events))  # type: ignore[arg-type]
        self.env = self.envs[0]
        self.permits: Dict[str, Permit] = {}
        self.last: Dict[str, Permit] = {}
        # Every permit stays referenced to the end: a permit dropped unfinished is released.
        self.held: List[Permit] = []

    def rel(self, t: Optional[int]) -> Optional[int]:
        return None if t is None else t - self.start_ms

    def acquire(self, expect: str, name: Optional[str] = None, leased: Optional[bool] = None,
                state: Optional[str] = None, retry_after_ms: Optional[int] = None) -> None:
        try:
            permit = self.breakers[self.env].acquire()
        except CircuitBreakerOpenError as e:
            assert expect == "rejected", f"expected {expect}, got a rejection {e.circuit}"
            assert e.circuit is not None
            if state is not None:
                assert e.circuit.state == state
            if retry_after_ms is not None:
                assert e.circuit.retry_after is not None and round(e.circuit.retry_after * 1000) == retry_after_ms
            return
        assert expect != "rejected", "expected a rejection"
        assert permit.probe == (expect == "probe"), f"expected {expect}, probe={permit.probe}"
        if leased is not None:
            assert permit.leased == leased, f"leased: expected {leased}"
        self.last[self.env] = permit
        self.held.append(permit)
        if name:
            self.permits[name] = permit

    def complete(self, permit: Permit, outcome: str) -> None:
        {"success": permit.success, "failure": permit.failure, "ignored": permit.ignore}[outcome]()

    def operator(self, call: Any, expect_error: Optional[str]) -> None:
        try:
            call()
        except CircuitBreakerPersistenceError as e:
            assert expect_error == e.kind, f"expected {expect_error}, got {e.kind}"
            return
        assert expect_error is None, f"expected the store error {expect_error}"

    def events(self) -> List[Tuple[str, Tuple[Any, ...]]]:
        out = list(self.seen_events)
        self.seen_events.clear()
        return out

    def step(self, step: Dict[str, Any]) -> None:
        (kind, arg), = step.items()
        b = self.breakers[self.env]
        if kind == "note":
            return
        if kind == "advance_ms":
            self.clock.advance(arg / 1000.0)
        elif kind == "env":
            self.env = arg
        elif kind == "acquire":
            self.acquire(arg["expect"], arg.get("as"), arg.get("leased"), arg.get("state"), arg.get("retry_after_ms"))
        elif kind == "complete":
            permit = self.permits[arg["permit"]] if "permit" in arg else self.last[self.env]
            self.complete(permit, arg["outcome"])
        elif kind == "call":
            for _ in range(arg.get("times", 1)):
                self.acquire(arg.get("expect", "admitted"))
                if arg.get("expect", "admitted") != "rejected":
                    if arg.get("takes_ms"):
                        self.clock.advance(arg["takes_ms"] / 1000.0)
                    self.complete(self.last[self.env], arg["outcome"])
                if arg.get("every_ms"):
                    self.clock.advance(arg["every_ms"] / 1000.0)
        elif kind in ("force_open", "force_closed"):
            d = arg.get("duration_ms")
            fn = b.force_open if kind == "force_open" else b.force_closed
            self.operator(lambda: fn(None if d is None else d / 1000.0, arg.get("reason", "")), arg.get("expect_error"))
        elif kind == "reset":
            self.operator(b.reset, arg.get("expect_error"))
        elif kind == "store_fault":
            set_store_fault(self.root, arg)
        elif kind == "corrupt_item":
            put_corrupt_item(self.root, self.circuit, arg["version"], arg["problem"])
        elif kind == "delete_item":
            delete_item(self.root, self.circuit)
        elif kind == "expect_store":
            self.expect_store(arg)
        elif kind == "expect_info":
            info = b.info()
            checks = {
                "state": info.state.value, "version": info.version, "failure_count": info.failure_count,
                "slow_call_count": info.slow_call_count,
                "local_only": info.local_only, "override_reason": info.override_reason,
                "retry_after_ms": None if info.retry_after is None else round(info.retry_after * 1000),
            }
            for key, want in arg.items():
                assert checks[key] == want, f"info.{key}: expected {want!r}, got {checks[key]!r}"
        elif kind == "expect_events":
            self.expect_events(arg)
        else:
            raise AssertionError(f"unknown step {kind}")

    def expect_store(self, e: Dict[str, Any]) -> None:
        reads, writes, failed = store_counts(self.root)
        for key, got in (("reads", reads), ("writes", writes), ("failed_calls", failed)):
            if key in e:
                assert got == e[key], f"{key}: expected {e[key]}, got {got}"
        r = stored_record(self.root, self.circuit)
        if "absent" in e:
            assert (r is None) == e["absent"], f"absent: expected {e['absent']}, got {r}"
        if r is None:
            assert not any(k in e for k in ("state", "version", "trips")), "expected a stored record"
            return
        for key in ("state", "version", "trips", "probe_successes", "failure_count", "slow_call_count", "override_reason"):
            if key in e:
                assert r[key] == e[key], f"{key}: expected {e[key]!r}, got {r[key]!r}"
        for key in ("opened_at_ms", "open_until_ms", "closed_at_ms", "override_until_ms"):
            if key in e:
                assert self.rel(r[key]) == e[key], f"{key}: expected {e[key]}, got {self.rel(r[key])}"  # type: ignore[arg-type]
        if "probe_owner" in e:
            owner = r["probe_owner"]
            if e["probe_owner"] == "":
                assert owner is None, f"probe_owner: expected none, got {owner}"
            else:
                assert owner is not None and str(owner).startswith(f"env-{e['probe_owner']}#"), owner
        if "updated_by" in e:
            assert r["updated_by"] == f"env-{e['updated_by']}"

    def expect_events(self, expected: List[Dict[str, Any]]) -> None:
        got = self.events()
        assert len(got) == len(expected), f"expected {len(expected)} events, got {got}"
        for want, (env, event) in zip(expected, got):
            assert env == want["env"], f"event from {env}, expected {want['env']}: {event}"
            kind = event[0]
            assert kind == want["kind"], f"expected {want['kind']}, got {event}"
            if kind == "transition":
                _, _, from_state, to_state, version, _, _, reason, _, local_only = event
                for key, value in (("from", from_state), ("to", to_state), ("reason", reason), ("version", version)):
                    if key in want:
                        assert value == want[key], f"{key}: expected {want[key]}, got {value}"
                assert local_only == want.get("local_only", False)
            elif kind == "store_degraded" and "error" in want:
                assert event[2] == want["error"]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path: pathlib.Path) -> None:
    scenario = json.loads(path.read_text())
    assert scenario["name"] == path.stem
    runner = Runner(scenario)
    for i, step in enumerate(scenario["steps"], 1):
        try:
            runner.step(step)
        except AssertionError as e:
            raise AssertionError(f"{scenario['name']} step {i} {step}: {e}") from None
