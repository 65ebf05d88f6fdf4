"""The DynamoDB persistence against moto's server on loopback."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any, List

import pytest

from fleetbreaker import CircuitBreaker, CircuitBreakerConfig, CircuitBreakerOpenError, CircuitState
from fleetbreaker.persistence import CircuitBreakerDynamoDBPersistence
from fleetbreaker.testing import ManualClock


class Downstream(Exception):
    pass


def _raise() -> None:
    raise Downstream()


def persistence(moto: Any, table: str, **kw: Any) -> CircuitBreakerDynamoDBPersistence:
    return CircuitBreakerDynamoDBPersistence(table, region="us-east-1", endpoint_url=moto.endpoint, **kw)


def test_environments_share_one_circuit_through_the_table(moto: Any, table_name: str) -> None:
    persistence(moto, table_name).create_table()
    clock = ManualClock()
    config = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=10)
    a = CircuitBreaker("payments", persistence(moto, table_name), config, clock=clock)
    b = CircuitBreaker("payments", persistence(moto, table_name), config, clock=clock)
    for _ in range(2):
        with pytest.raises(Downstream):
            a.call(_raise)
    with pytest.raises(CircuitBreakerOpenError) as raised:
        b.call(lambda: pytest.fail("b must not call a downstream the fleet has cut off"))
    assert raised.value.circuit is not None and raised.value.circuit.version == 1


def test_composite_keys(moto: Any, table_name: str) -> None:
    p = persistence(moto, table_name, key_attr="pk", sort_key_attr="sk", static_pk_value="svc#checkout")
    p.create_table()
    clock = ManualClock()
    breaker = CircuitBreaker("payments", p, CircuitBreakerConfig(failure_threshold=1), clock=clock)
    with pytest.raises(Downstream):
        breaker.call(_raise)
    again = CircuitBreaker("payments", persistence(moto, table_name, key_attr="pk", sort_key_attr="sk", static_pk_value="svc#checkout"), clock=clock)
    assert again.info().state is CircuitState.OPEN
    other = CircuitBreaker("payments", persistence(moto, table_name, key_attr="pk", sort_key_attr="sk", static_pk_value="svc#search"), clock=clock)
    assert other.info().state is CircuitState.CLOSED


def test_a_missing_table_is_logged_once_and_protection_continues(moto: Any, caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("payments", persistence(moto, "no-such-table"),
                             CircuitBreakerConfig(failure_threshold=2, recovery_timeout=60), clock=clock)
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        for _ in range(2):
            with pytest.raises(Downstream):
                breaker.call(_raise)
        for _ in range(20):
            with pytest.raises(CircuitBreakerOpenError):
                breaker.call(lambda: None)
            clock.advance(1)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in caplog.records]
    message = errors[0].getMessage()
    assert "no-such-table" in message and "us-east-1" in message and "ResourceNotFoundException" in message
    assert breaker.info().local_only


class DelayingProxy:
    """Forwards TCP to moto, holding every chunk from the client for `delay` seconds."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.delay = delay
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, delayed: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if delayed:
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_a_slow_store_does_not_block_the_event_loop(moto: Any, table_name: str) -> None:
    persistence(moto, table_name).create_table()
    proxy = DelayingProxy(moto.port, delay=0.5)
    slow = CircuitBreakerDynamoDBPersistence(table_name, region="us-east-1", endpoint_url=f"http://127.0.0.1:{proxy.port}")
    breaker = CircuitBreaker("payments", slow, CircuitBreakerConfig(store_timeout=3.0))
    ticks: List[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def work() -> str:
        return "done"

    async def main() -> None:
        task = asyncio.ensure_future(ticker())
        await asyncio.sleep(0.02)
        before = len(ticks)
        started = time.monotonic()
        assert await breaker.call_async(work) == "done"
        took = time.monotonic() - started
        task.cancel()
        assert took >= 0.5, f"the call waited for the store ({took:.2f} s)"
        assert len(ticks) - before >= 20, f"the loop kept turning: {len(ticks) - before} ticks in {took:.2f} s"

    asyncio.run(main())


def test_switching_the_import_on_a_live_powertools_table_keeps_open_circuits_open(moto: Any, table_name: str) -> None:
    """Items written the way the Powertools circuit breaker (3.37) writes them: no version,
    times in epoch seconds. They are read as the state they hold and upgraded by the next
    write."""
    import boto3  # moto's own dependency; the package never imports it

    p = persistence(moto, table_name)
    p.create_table()
    now = int(time.time())
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto.endpoint)
    client.put_item(TableName=table_name, Item={
        "id": {"S": "payments"}, "state": {"S": "OPEN"}, "failure_count": {"N": "5"},
        "opened_at": {"N": str(now - 10)}, "expiration": {"N": str(now + 3630)},
    })
    breaker = CircuitBreaker("payments", persistence(moto, table_name), CircuitBreakerConfig(recovery_timeout=30))
    with pytest.raises(CircuitBreakerOpenError) as raised:
        breaker.call(lambda: pytest.fail("an open circuit must stay open after the import changes"))
    circuit = raised.value.circuit
    assert circuit is not None and circuit.state is CircuitState.OPEN and circuit.failure_count == 5
    assert circuit.retry_after is not None and 15 <= circuit.retry_after <= 20, circuit
    breaker.force_open(reason="migrated")
    item = client.get_item(TableName=table_name, Key={"id": {"S": "payments"}}, ConsistentRead=True)["Item"]
    assert item["version"] == {"N": "1"} and item["state"] == {"S": "FORCED_OPEN"}, item
    assert "opened_at" not in item, "upgraded to this package's layout by the next write"


SLOW_PROFILE = """
import sys
from fleetbreaker import CircuitBreaker
from fleetbreaker.persistence import CircuitBreakerDynamoDBPersistence
from fleetbreaker.testing import ManualClock

persistence = CircuitBreakerDynamoDBPersistence({table!r}, region="us-east-1", endpoint_url={endpoint!r})
print("constructed", flush=True)
clock = ManualClock()
breaker = CircuitBreaker("slow-profile", persistence, clock=clock)
print("first", breaker.call(lambda: 1), breaker.info().local_only, flush=True)
sys.stdin.readline()  # the profile file has been written
clock.advance(60)  # past store_retry_after: the store is tried again
print("second", breaker.call(lambda: 1), breaker.info().local_only, flush=True)
"""


def test_a_profile_file_that_blocks_holds_up_neither_construction_nor_a_call_past_the_deadline(
    moto: Any, table_name: str, tmp_path: Any
) -> None:
    # The SDK reads the profile files while it loads its configuration, which happens in the
    # background from the persistence's construction on. A FIFO blocks that read until a writer
    # comes: construction, decorating and the first call go on meanwhile (the call fails open
    # after store_timeout); once the file is written, calls use the table.
    import os
    import subprocess
    import sys

    persistence(moto, table_name).create_table()
    fifo = tmp_path / "aws-config"
    os.mkfifo(fifo)
    env = dict(os.environ, AWS_CONFIG_FILE=str(fifo), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_PROFILE.format(table=table_name, endpoint=moto.endpoint)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    lines: List[str] = []
    reader = threading.Thread(target=lambda: lines.extend(child.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while len(lines) < 2 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.01)
        assert lines[:2] == ["constructed\n", "first 1 True\n"], f"the child waited for the profile file: {lines}"
        with open(fifo, "w") as profile:  # opens once the SDK's reader is there
            profile.write("[default]\n")
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=30) == 0
        reader.join(timeout=5)
        assert lines[2] == "second 1 False\n", lines
    finally:
        child.kill()
