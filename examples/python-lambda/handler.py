"""A Lambda function that calls a payment provider through a fleet-wide circuit breaker.

When the provider starts failing, every execution environment of the function stops calling it
within seconds; one call at a time probes it while it recovers. Rejected orders are queued for
later instead of failing the request.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from typing import Any, Dict

from fleetbreaker import CircuitBreakerConfig, CircuitInfo, CircuitTransition, circuit_breaker
from fleetbreaker.persistence import CircuitBreakerDynamoDBPersistence

logger = logging.getLogger()
logger.setLevel(logging.INFO)

# Module scope: built once per execution environment, at cold start.
persistence = CircuitBreakerDynamoDBPersistence(table_name=os.environ.get("FLEETBREAKER_TABLE", "CircuitBreakerState"))
PROVIDER_URL = os.environ.get("PROVIDER_URL", "https://payments.example.com/charge")


def queue_for_later(order: Dict[str, Any], *, circuit: CircuitInfo) -> Dict[str, Any]:
    """What a rejected call returns instead: the order is kept, the caller told to retry."""
    logger.info("provider circuit %s; queueing order %s", circuit.state, order.get("id"))
    return {"status": "queued", "retry_after": circuit.retry_after}


def report(transition: CircuitTransition) -> None:
    logger.info(
        "circuit %s: %s -> %s (%s)", transition.circuit_name, transition.from_state, transition.to_state, transition.reason
    )


@circuit_breaker(
    name="payment-provider",
    persistence_store=persistence,
    on_circuit_open=queue_for_later,
    on_transition=report,
    config=CircuitBreakerConfig(
        failure_threshold=5,
        recovery_timeout=30,
        success_threshold=3,
        handled_exceptions=(TimeoutError, ConnectionError, OSError),
        backoff_multiplier=2.0,
        max_recovery_timeout=300,
    ),
)
def charge(order: Dict[str, Any]) -> Dict[str, Any]:
    request = urllib.request.Request(PROVIDER_URL, data=json.dumps(order).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=2) as response:
        result: Dict[str, Any] = json.loads(response.read())
        return result


def lambda_handler(event: Dict[str, Any], context: Any) -> Dict[str, Any]:
    order = json.loads(event.get("body") or "{}")
    return {"statusCode": 200, "body": json.dumps(charge(order))}
