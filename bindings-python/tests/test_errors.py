"""Every error the native module maps (bindings-python/src/errors.rs) arrives as its Python
type, with what it is about; and the package stays free of boto3."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from fleetbreaker import _native

from fleetbreaker import (
    CircuitBreaker,
    CircuitBreakerConfigError,
    CircuitBreakerError,
    CircuitBreakerPersistenceError,
    _native,
)
from fleetbreaker.persistence import InMemoryPersistence
from fleetbreaker.testing import ManualClock, set_store_fault


def test_a_configuration_the_host_refuses_is_a_config_error_with_its_field() -> None:
    with pytest.raises(CircuitBreakerConfigError) as raised:
        _native.Settings({"failure_threshold": 0})
    assert raised.value.field == "failure_threshold"
    assert isinstance(raised.value, CircuitBreakerError)
    # Past the package's own checks, the host refuses a bad name too.
    env = _native.Environment(_native.Persistence.memory().store(), None, lambda e: None)
    with pytest.raises(CircuitBreakerConfigError, match="name") as raised:
        _native.Circuit(env, "", _native.Settings({}), None)
    assert raised.value.field == "name"


@pytest.mark.parametrize("kind", ["unavailable", "timeout", "throttled", "misconfigured"])
def test_each_store_error_kind_reaches_an_operator_as_a_persistence_error(kind: str) -> None:
    store = InMemoryPersistence()
    breaker = CircuitBreaker("c", store, clock=ManualClock())
    set_store_fault(store, kind)
    with pytest.raises(CircuitBreakerPersistenceError) as raised:
        breaker.force_open(reason="drill")
    assert raised.value.kind == kind
    assert isinstance(raised.value, CircuitBreakerError)
    assert breaker.call(lambda: "protected calls never see it") == "protected calls never see it"


def test_a_completed_permit_cannot_be_completed_again() -> None:
    breaker = CircuitBreaker("c", InMemoryPersistence(), clock=ManualClock())
    native = breaker._native
    admission = native.acquire()
    assert admission.kind == _native.AdmissionKind.ADMITTED and admission.info is None
    permit = admission.permit
    assert permit is not None
    native.complete(permit, _native.Outcome.FAILURE)
    with pytest.raises(RuntimeError, match="already completed"):
        native.complete(permit, _native.Outcome.SUCCESS)
    # Outcomes are typed: a bare number is refused.
    with pytest.raises(TypeError):
        native.leased_call_failed(1)  # type: ignore[arg-type]


def test_importing_and_using_the_package_loads_no_boto3_and_no_enum() -> None:
    code = textwrap.dedent(
        """
        import sys
        from fleetbreaker import circuit_breaker
        from fleetbreaker.persistence import CircuitBreakerDynamoDBPersistence, InMemoryPersistence
        CircuitBreakerDynamoDBPersistence("circuits", region="us-east-1", endpoint_url="http://127.0.0.1:9")
        @circuit_breaker(name="x", persistence_store=InMemoryPersistence())
        def f(): return 1
        f()
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "asyncio", "dataclasses", "enum"))
        print(loaded)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"cold-start imports: {out}"
