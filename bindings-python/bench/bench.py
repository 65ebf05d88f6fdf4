"""fleetbreaker against the Powertools circuit breaker and pybreaker, side by side in one run.

    python bench/bench.py            (needs: fleetbreaker, aws-lambda-powertools, boto3,
                                      pybreaker, moto[server]; scripts/bench-python installs them)

1. Healthy-path overhead: a decorated call against the bare function, in µs per call, with a
   warm cache (both DynamoDB breakers on the same moto server).
2. Cold start: a new `python` process, from its start to the first guarded call returning, with
   DynamoDB persistence (the process's exit is shown apart: on Lambda the process lives on),
   and its peak RSS; over bare python, and over python with the modules Lambda's runtime
   client imports before any handler.
Figures only: nothing here passes or fails.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> Tuple[subprocess.Popen, str]:
    port = free_port()
    server = Path(__file__).resolve().parents[2] / "scripts" / "moto-server"
    proc = subprocess.Popen([sys.executable, str(server), "127.0.0.1", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("moto's server did not start")
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}"


def create_tables(endpoint: str) -> None:
    import boto3

    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    for table in ("fleetbreaker-bench", "powertools-bench"):
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )


def per_call_us(fn: Callable[[], object], n: int) -> float:
    """The median over 7 rounds of the time per call, in µs."""
    for _ in range(n // 10):
        fn()
    rounds = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


LEASE_CHECK = (0.0, 0.0)


def work(x: int = 1) -> int:
    return x


def healthy(endpoint: str) -> Dict[str, float]:
    from fleetbreaker import CircuitBreakerConfig, circuit_breaker
    from fleetbreaker.persistence import CircuitBreakerDynamoDBPersistence

    # A long cache: the overhead of the healthy path, not of the periodic read.
    fb = circuit_breaker(
        name="bench",
        persistence_store=CircuitBreakerDynamoDBPersistence("fleetbreaker-bench", region="us-east-1", endpoint_url=endpoint),
        config=CircuitBreakerConfig(local_cache_max_age=3600),
    )(work)

    from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerConfig as PtConfig
    from aws_lambda_powertools.utilities.circuit_breaker import circuit_breaker as pt_breaker
    from aws_lambda_powertools.utilities.circuit_breaker.persistence import CircuitBreakerDynamoDBPersistence as PtPersistence

    pt = pt_breaker(
        name="bench",
        persistence_store=PtPersistence(table_name="powertools-bench"),
        config=PtConfig(local_cache_max_age=3600),
    )(work)

    import pybreaker

    pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)(work)

    for f in (fb, pt, pb):
        f()
    # Where the lease check is fastest: one native call (coarse clock, compare, atomic
    # increment) against reading the clock from Python and comparing.
    admit = fb.circuit_breaker._admit  # type: ignore[attr-defined]
    deadline = time.time() + 3600
    global LEASE_CHECK
    LEASE_CHECK = (per_call_us(admit, 500_000), per_call_us(lambda: time.time() < deadline, 500_000))
    bare = per_call_us(work, 200_000)
    return {
        "bare function": bare,
        "fleetbreaker (shared, DynamoDB)": per_call_us(fb, 200_000) - bare,
        "Powertools circuit_breaker (shared, DynamoDB)": per_call_us(pt, 20_000) - bare,
        "pybreaker (one process only)": per_call_us(pb, 200_000) - bare,
    }


# What Lambda's Python runtime client (awslambdaric) imports before it loads a handler.
LAMBDA_RUNTIME_IMPORTS = "import importlib, json, logging, os, sys, time, traceback\n"

FLEETBREAKER_COLD = textwrap.dedent(
    """
    from fleetbreaker import circuit_breaker
    from fleetbreaker.persistence import CircuitBreakerDynamoDBPersistence
    p = CircuitBreakerDynamoDBPersistence("fleetbreaker-bench", region="us-east-1", endpoint_url=ENDPOINT)
    @circuit_breaker(name="cold", persistence_store=p)
    def work(): return 1
    work()
    """
)

COLD = {
    "python alone": "pass",
    "python with Lambda's runtime imports": LAMBDA_RUNTIME_IMPORTS,
    "fleetbreaker after Lambda's runtime imports": LAMBDA_RUNTIME_IMPORTS + FLEETBREAKER_COLD,
    "fleetbreaker": FLEETBREAKER_COLD,
    "Powertools circuit_breaker": """
        from aws_lambda_powertools.utilities.circuit_breaker import circuit_breaker
        from aws_lambda_powertools.utilities.circuit_breaker.persistence import CircuitBreakerDynamoDBPersistence
        p = CircuitBreakerDynamoDBPersistence(table_name="powertools-bench")
        @circuit_breaker(name="cold", persistence_store=p)
        def work(): return 1
        work()
    """,
}


# Where fleetbreaker's cold start goes, step by step, timed inside the child.
BREAKDOWN = """
import time
t0 = time.perf_counter()
from fleetbreaker import circuit_breaker
from fleetbreaker.persistence import CircuitBreakerDynamoDBPersistence
t1 = time.perf_counter()
p = CircuitBreakerDynamoDBPersistence("fleetbreaker-bench", region="us-east-1", endpoint_url=ENDPOINT)
t2 = time.perf_counter()
@circuit_breaker(name="cold", persistence_store=p)
def work(): return 1
t3 = time.perf_counter()
work()
t4 = time.perf_counter()
work()
t5 = time.perf_counter()
print(*((b - a) * 1e3 for a, b in ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))))
"""
BREAKDOWN_STEPS = [
    "import (loads the native library)",
    "persistence object (validates; the SDK configuration starts loading in the background)",
    "decorating (the component instance)",
    "first call (what is left of the SDK configuration's load, one GetItem on moto)",
    "second call (under the lease)",
]


def breakdown(endpoint: str) -> List[float]:
    env = lambda_env(endpoint)
    code = textwrap.dedent(BREAKDOWN).replace("ENDPOINT", repr(endpoint))
    runs = [
        [float(x) for x in subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, check=True).stdout.split()]
        for _ in range(9)
    ]
    return [statistics.median(r[i] for r in runs) for i in range(len(BREAKDOWN_STEPS))]


def store_answer_ms(endpoint: str) -> float:
    """The store server's share of a first call: one GetItem on a new connection, sent as raw
    HTTP (no SDK, no signing work), median of 9. Against DynamoDB itself this is a network
    round trip and a TLS handshake instead."""
    import http.client
    import json

    host, port = endpoint.rsplit("/", 1)[1].split(":")
    body = json.dumps({"TableName": "fleetbreaker-bench", "Key": {"id": {"S": "cold"}}})
    headers = {
        "X-Amz-Target": "DynamoDB_20120810.GetItem",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host, Signature=0",
    }
    times = []
    for _ in range(9):
        start = time.perf_counter()
        connection = http.client.HTTPConnection(host, int(port))
        connection.request("POST", "/", body, headers)
        connection.getresponse().read()
        times.append((time.perf_counter() - start) * 1e3)
        connection.close()
    return statistics.median(times)


def lambda_env(endpoint: str) -> Dict[str, str]:
    """The children's environment: Lambda's as far as certificates go (it sets neither
    SSL_CERT_FILE nor SSL_CERT_DIR, so the system bundle file is read), the moto endpoint."""
    env = dict(os.environ, AWS_ENDPOINT_URL_DYNAMODB=endpoint, AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1")
    env.pop("SSL_CERT_FILE", None)
    env.pop("SSL_CERT_DIR", None)
    return env


# How many processes of each kind the cold start runs, round by round.
COLD_RUNS = 15


def cold(endpoint: str) -> Dict[str, Tuple[float, float, float]]:
    """Per process: ms from its start to the end of its code (the first guarded call
    returning), ms its exit takes after that, and its peak RSS in MiB; medians. Each round
    starts one process of each kind, so that a slow spell of the machine falls on all of them
    alike rather than on one kind's runs."""
    env = lambda_env(endpoint)
    codes: Dict[str, str] = {}
    for name, body in COLD.items():
        # The child says when its code ended (epoch seconds, the parent's clock too) and its
        # own peak RSS (VmHWM): a forked child's rusage would count the parent's pages.
        codes[name] = "import time as _t\n" + textwrap.dedent(body).replace("ENDPOINT", repr(endpoint)) + textwrap.dedent(
            """
            _end = _t.time()
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    print(_end, int(line.split()[1]))
            """
        )
    runs: Dict[str, List[Tuple[float, float, float]]] = {name: [] for name in COLD}
    for _ in range(COLD_RUNS):
        for name, code in codes.items():
            start = time.time()
            out = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, check=True).stdout
            done = time.time()
            end, peak = out.split()[-2:]
            runs[name].append(((float(end) - start) * 1e3, (done - float(end)) * 1e3, int(peak) / 1024))
    return {
        name: (
            statistics.median(r[0] for r in rs),
            statistics.median(r[1] for r in rs),
            statistics.median(r[2] for r in rs),
        )
        for name, rs in runs.items()
    }


def main() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    moto, endpoint = start_moto()
    try:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
        create_tables(endpoint)
        overhead = healthy(endpoint)
        print(f"Python {sys.version.split()[0]}; healthy-path overhead, µs per call (median of 7 rounds):\n")
        print(f"| {'breaker':<48} | {'µs per call':>12} |")
        print(f"|{'-' * 50}|{'-' * 14}|")
        for name, us in overhead.items():
            label = "bare call (time itself)" if name == "bare function" else f"{name}: overhead"
            print(f"| {label:<48} | {us:>12.3f} |")
        ours = overhead["fleetbreaker (shared, DynamoDB)"]
        pt = overhead["Powertools circuit_breaker (shared, DynamoDB)"]
        pb = overhead["pybreaker (one process only)"]
        print(f"\nfleetbreaker's overhead is 1/{pt / ours:.0f} of Powertools' (target: at most 1/20) and "
              f"{ours / pb:.2f}x pybreaker's (target: below 1).")
        rust, python = LEASE_CHECK
        print(f"the lease check: {rust:.3f} µs in Rust (one native call), {python:.3f} µs in Python "
              f"(time.time() and a compare, without the bookkeeping); the faster one is used.")

        print(f"\ncold start: a new python process, to the first guarded call returning (median of {COLD_RUNS}, the kinds in turn):\n")
        print(f"| {'process':<44} | {'ms to the call':>14} | {'then exit ms':>12} | {'peak RSS MiB':>12} |")
        print(f"|{'-' * 46}|{'-' * 16}|{'-' * 14}|{'-' * 14}|")
        results = cold(endpoint)
        for name, (wall, exit_ms, rss) in results.items():
            print(f"| {name:<44} | {wall:>14.1f} | {exit_ms:>12.1f} | {rss:>12.1f} |")
        base = results["python alone"][0]
        fw, pw = results["fleetbreaker"][0], results["Powertools circuit_breaker"][0]
        lambda_base = results["python with Lambda's runtime imports"][0]
        on_lambda = results["fleetbreaker after Lambda's runtime imports"][0] - lambda_base
        print(f"\nfleetbreaker: {fw:.0f} ms ({fw - base:.1f} ms over python alone; target: at most 10); "
              f"Powertools: {pw:.0f} ms ({pw - base:.0f} ms over). Ratio of the times added to python: "
              f"1/{(pw - base) / max(fw - base, 0.1):.1f}. After the modules Lambda's runtime client "
              f"loads anyway, fleetbreaker adds {on_lambda:.1f} ms.")
        exit_over = results["fleetbreaker"][1] - results["python alone"][1]
        print(f"the process's exit after the call takes {exit_over:.1f} ms more than python alone's "
              f"(not part of a Lambda cold start: the runtime keeps the process).")
        server = store_answer_ms(endpoint)
        print(f"of fleetbreaker's {fw - base:.1f} ms, moto's own answer to the first GetItem (raw HTTP, new "
              f"connection, median of 9) takes {server:.1f} ms: {fw - base - server:.1f} ms are fleetbreaker's "
              f"(target: the whole at most 10 ms).")
        print("\nwhere fleetbreaker's cold start goes (ms, median of 9, timed in the process):\n")
        for step, ms in zip(BREAKDOWN_STEPS, breakdown(endpoint)):
            print(f"  {ms:7.2f}  {step}")
    finally:
        moto.kill()


if __name__ == "__main__":
    main()
