"""Several processes share one circuit, on one DynamoDB table and on one SQLite file: when the
break ends, exactly one of them probes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, List

import pytest

from fleetbreaker import CircuitBreaker, CircuitBreakerConfig
from fleetbreaker.persistence import CircuitBreakerDynamoDBPersistence, SQLitePersistence

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from fleetbreaker import CircuitBreaker, CircuitBreakerConfig, CircuitBreakerOpenError
    from fleetbreaker.persistence import CircuitBreakerDynamoDBPersistence, SQLitePersistence

    kind, where, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    if kind == "sqlite":
        persistence = SQLitePersistence(where)
    else:
        persistence = CircuitBreakerDynamoDBPersistence("fleet", region="us-east-1", endpoint_url=where)
    config = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=2, success_threshold=1,
                                  probe_lease=30, local_cache_max_age=0.05)
    breaker = CircuitBreaker("shared", persistence, config)
    time.sleep(max(0.0, start - time.time()))
    probes = admitted = rejected = 0
    until = time.time() + 2.5
    while time.time() < until:
        try:
            permit = breaker.acquire()
        except CircuitBreakerOpenError:
            rejected += 1
            time.sleep(0.005)
            continue
        if permit.probe:
            probes += 1
            time.sleep(0.3)  # a slow probe: the others must wait for it
        else:
            admitted += 1
        permit.success()
        time.sleep(0.005)
    print(json.dumps({"probes": probes, "admitted": admitted, "rejected": rejected}))
    """
)


def run_fleet(kind: str, where: str, trip: CircuitBreaker) -> List[Any]:
    with pytest.raises(ValueError):
        trip.call(lambda: (_ for _ in ()).throw(ValueError("down")))
    start = time.time() + 1.0  # every process is up and sees the circuit open; the break ends during the run
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, kind, where, str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err.decode()
        results.append(json.loads(out))
    return results


def check(results: List[Any]) -> None:
    assert sum(r["probes"] for r in results) == 1, f"exactly one probe across the processes: {results}"
    assert all(r["rejected"] > 0 for r in results), "every process saw the circuit open"
    assert sum(r["admitted"] for r in results) > 0, "and closed again after the probe"


def config() -> CircuitBreakerConfig:
    return CircuitBreakerConfig(failure_threshold=1, recovery_timeout=2, success_threshold=1, probe_lease=30, local_cache_max_age=0.05)


def test_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    db = str(tmp_path / "circuits.db")
    check(run_fleet("sqlite", db, CircuitBreaker("shared", SQLitePersistence(db), config())))


def test_processes_on_one_dynamodb_table(moto: Any) -> None:
    p = CircuitBreakerDynamoDBPersistence("fleet", region="us-east-1", endpoint_url=moto.endpoint)
    p.create_table()
    check(run_fleet("dynamodb", moto.endpoint, CircuitBreaker("shared", p, config())))
