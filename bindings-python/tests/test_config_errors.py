"""The error table (conformance/config-errors.json) through the Python API: every bad input is
refused with the field and the message that Rust and Node give for it."""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any, Dict, List, Optional

from fleetbreaker import CircuitBreaker, CircuitBreakerConfig, CircuitBreakerConfigError
from fleetbreaker.persistence import CircuitBreakerDynamoDBPersistence, InMemoryPersistence, SQLitePersistence

TABLE = pathlib.Path(__file__).resolve().parents[2] / "conformance" / "config-errors.json"


def value(typed: Dict[str, Any]) -> Any:
    ((kind, v),) = typed.items()
    if kind == "int":
        return int(v)
    if kind == "float":
        return float(v)
    if kind == "repeat":
        return v[0] * v[1]
    if kind in ("text", "bool", "null"):
        return v
    raise AssertionError(f"unknown value kind {kind}")


def config(fields: Dict[str, Any]) -> CircuitBreakerConfig:
    return CircuitBreakerConfig(**{k: value(v) for k, v in fields.items()})


def refusal(case: Dict[str, Any]) -> Optional[BaseException]:
    persistence = InMemoryPersistence()
    try:
        if "config" in case:
            config(case["config"])
        elif "name" in case:
            CircuitBreaker(value(case["name"]), persistence)
        elif "dynamodb" in case:
            CircuitBreakerDynamoDBPersistence(**{k: value(v) for k, v in case["dynamodb"].items()})
        elif "sqlite" in case:
            SQLitePersistence(value(case["sqlite"]))
        elif "override" in case:
            args = {k: value(v) for k, v in case["override"].items()}
            CircuitBreaker("payments", persistence).force_open(**args)
        else:
            first, second = case["conflict"]
            in_use = CircuitBreaker("payments", persistence, config(first))
            CircuitBreaker("payments", persistence, config(second))
            del in_use
    except Exception as e:  # noqa: BLE001 - the test reports whatever came out
        return e
    return None


def test_every_bad_input_in_the_table_gets_its_field_and_message() -> None:
    cases = json.loads(TABLE.read_text(encoding="utf-8"))["cases"]
    assert len(cases) > 50
    wrong: List[str] = []
    for case in cases:
        e = refusal(case)
        field = case["field"]
        message = re.sub(r"\{([a-z_]+)\}", lambda m: m.group(1), case["message"])
        ok = isinstance(e, CircuitBreakerConfigError) and e.field == field and str(e) == f"invalid {field}: {message}"
        if not ok:
            got = f"{type(e).__name__} {getattr(e, 'field', None)}: {e}"
            wrong.append(f"{case['what']}: expected {field}: {message}\n      got {got}")
    assert wrong == []
