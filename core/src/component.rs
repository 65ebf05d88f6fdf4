//! The WebAssembly component: exports `fleetbreaker:breaker/breaker` over the imported store,
//! clock and events. This module only translates between the generated types and the crate's.

use std::cell::RefCell;

use crate::circuit::{Circuit, Clock, Events, Store};
use crate::types as t;
use crate::{convert_record, record_fields};

wit_bindgen::generate!({
    path: "wit",
    world: "fleetbreaker",
});

use exports::fleetbreaker::breaker::breaker as wb;
use fleetbreaker::breaker::types as w;
use fleetbreaker::breaker::{clock, events, store};

/// The imports, seen as the algorithm's environment.
struct Imports;

impl Store for Imports {
    fn load(&mut self, circuit: &str) -> Result<Option<t::Record>, t::StoreError> {
        store::load(circuit)
            .map(|r| r.map(record_in))
            .map_err(store_error_in)
    }

    fn swap(
        &mut self,
        circuit: &str,
        expected_version: Option<u64>,
        next: &t::Record,
    ) -> Result<t::SwapResult, t::StoreError> {
        match store::swap(circuit, expected_version, &record_out(next.clone())) {
            Ok(w::SwapResult::Written) => Ok(t::SwapResult::Written),
            Ok(w::SwapResult::Conflict(current)) => {
                Ok(t::SwapResult::Conflict(current.map(record_in)))
            }
            Err(e) => Err(store_error_in(e)),
        }
    }
}

impl Clock for Imports {
    fn now_ms(&mut self) -> u64 {
        clock::now().wall_ms
    }

    fn monotonic_ms(&mut self) -> u64 {
        clock::now().monotonic_ms
    }

    fn now(&mut self) -> (u64, u64) {
        let reading = clock::now();
        (reading.wall_ms, reading.monotonic_ms)
    }
}

impl Events for Imports {
    fn emit(&mut self, event: t::Event) {
        events::emit(&event_out(event));
    }
}

struct Component;

impl wb::Guest for Component {
    type Circuit = CircuitResource;
}

/// The resource: a circuit behind a `RefCell`, since the exported methods take `&self`.
struct CircuitResource(RefCell<Circuit>);

impl wb::GuestCircuit for CircuitResource {
    fn create(
        name: String,
        config: w::Config,
        environment: String,
    ) -> Result<wb::Circuit, w::ConfigError> {
        Circuit::new(&name, config_in(config), &environment)
            .map(|c| wb::Circuit::new(CircuitResource(RefCell::new(c))))
            .map_err(|e| w::ConfigError {
                field: e.field,
                message: e.message,
            })
    }

    fn acquire(&self, leased_successes: u32, permit_id: u64) -> Result<w::Permit, w::CircuitInfo> {
        self.0
            .borrow_mut()
            .acquire(&mut Imports, leased_successes, permit_id)
            .map(permit_out)
            .map_err(info_out)
    }

    fn complete(&self, permit: w::Permit, outcome: w::Outcome) {
        self.0
            .borrow_mut()
            .complete(&mut Imports, permit_in(permit), outcome_in(outcome))
    }

    fn complete_leased(&self, leased_successes: u32, outcome: w::Outcome) {
        self.0
            .borrow_mut()
            .complete_leased(&mut Imports, leased_successes, outcome_in(outcome))
    }

    fn info(&self) -> w::CircuitInfo {
        info_out(self.0.borrow_mut().info(&mut Imports))
    }

    fn force_open(
        &self,
        duration_ms: Option<u64>,
        reason: String,
    ) -> Result<w::CircuitInfo, w::StoreError> {
        self.0
            .borrow_mut()
            .force_open(&mut Imports, duration_ms, &reason)
            .map(info_out)
            .map_err(store_error_out)
    }

    fn force_closed(
        &self,
        duration_ms: Option<u64>,
        reason: String,
    ) -> Result<w::CircuitInfo, w::StoreError> {
        self.0
            .borrow_mut()
            .force_closed(&mut Imports, duration_ms, &reason)
            .map(info_out)
            .map_err(store_error_out)
    }

    fn reset(&self) -> Result<w::CircuitInfo, w::StoreError> {
        self.0
            .borrow_mut()
            .reset(&mut Imports)
            .map(info_out)
            .map_err(store_error_out)
    }
}

export!(Component);

fn state_in(s: w::CircuitState) -> t::CircuitState {
    match s {
        w::CircuitState::Closed => t::CircuitState::Closed,
        w::CircuitState::Open => t::CircuitState::Open,
        w::CircuitState::HalfOpen => t::CircuitState::HalfOpen,
        w::CircuitState::ForcedOpen => t::CircuitState::ForcedOpen,
        w::CircuitState::ForcedClosed => t::CircuitState::ForcedClosed,
    }
}

fn state_out(s: t::CircuitState) -> w::CircuitState {
    match s {
        t::CircuitState::Closed => w::CircuitState::Closed,
        t::CircuitState::Open => w::CircuitState::Open,
        t::CircuitState::HalfOpen => w::CircuitState::HalfOpen,
        t::CircuitState::ForcedOpen => w::CircuitState::ForcedOpen,
        t::CircuitState::ForcedClosed => w::CircuitState::ForcedClosed,
    }
}

impl From<w::CircuitState> for t::CircuitState {
    fn from(s: w::CircuitState) -> Self {
        state_in(s)
    }
}

impl From<t::CircuitState> for w::CircuitState {
    fn from(s: t::CircuitState) -> Self {
        state_out(s)
    }
}

fn record_in(r: w::CircuitRecord) -> t::Record {
    record_fields!(convert_record r => t::Record)
}

fn record_out(r: t::Record) -> w::CircuitRecord {
    record_fields!(convert_record r => w::CircuitRecord)
}

fn corrupt_in(c: w::CorruptItem) -> t::CorruptItem {
    t::CorruptItem {
        detail: c.detail,
        version: c.version,
    }
}

fn store_error_in(e: w::StoreError) -> t::StoreError {
    match e {
        w::StoreError::Unavailable(m) => t::StoreError::Unavailable(m),
        w::StoreError::Timeout(m) => t::StoreError::Timeout(m),
        w::StoreError::Throttled(m) => t::StoreError::Throttled(m),
        w::StoreError::Misconfigured(m) => t::StoreError::Misconfigured(m),
        w::StoreError::Corrupt(c) => t::StoreError::Corrupt(corrupt_in(c)),
    }
}

fn store_error_out(e: t::StoreError) -> w::StoreError {
    match e {
        t::StoreError::Unavailable(m) => w::StoreError::Unavailable(m),
        t::StoreError::Timeout(m) => w::StoreError::Timeout(m),
        t::StoreError::Throttled(m) => w::StoreError::Throttled(m),
        t::StoreError::Misconfigured(m) => w::StoreError::Misconfigured(m),
        t::StoreError::Corrupt(c) => w::StoreError::Corrupt(w::CorruptItem {
            detail: c.detail,
            version: c.version,
        }),
    }
}

fn config_in(c: w::Config) -> t::Config {
    t::Config {
        failure_policy: match c.failure_policy {
            w::FailurePolicy::ConsecutiveFailures(n) => t::FailurePolicy::ConsecutiveFailures(n),
        },
        recovery_timeout_ms: c.recovery_timeout_ms,
        success_threshold: c.success_threshold,
        local_cache_max_age_ms: c.local_cache_max_age_ms,
        backoff_multiplier: c.backoff_multiplier,
        max_recovery_timeout_ms: c.max_recovery_timeout_ms,
        recovery_jitter: c.recovery_jitter,
        probe_lease_ms: c.probe_lease_ms,
        store_retry_after_ms: c.store_retry_after_ms,
        store_failure_mode: match c.store_failure_mode {
            w::StoreFailureMode::Open => t::StoreFailureMode::Open,
            w::StoreFailureMode::Closed => t::StoreFailureMode::Closed,
        },
    }
}

fn info_out(i: t::CircuitInfo) -> w::CircuitInfo {
    w::CircuitInfo {
        name: i.name,
        state: state_out(i.state),
        version: i.version,
        failure_count: i.failure_count,
        opened_at_ms: i.opened_at_ms,
        open_until_ms: i.open_until_ms,
        retry_after_ms: i.retry_after_ms,
        override_reason: i.override_reason,
        override_until_ms: i.override_until_ms,
        local_only: i.local_only,
    }
}

fn permit_out(p: t::Permit) -> w::Permit {
    w::Permit {
        id: p.id,
        kind: match p.kind {
            t::PermitKind::Normal => w::PermitKind::Normal,
            t::PermitKind::Probe => w::PermitKind::Probe,
        },
        acquired_at_ms: p.acquired_at_ms,
        lease_until_ms: p.lease_until_ms,
        episode_ms: p.episode_ms,
    }
}

fn permit_in(p: w::Permit) -> t::Permit {
    t::Permit {
        id: p.id,
        kind: match p.kind {
            w::PermitKind::Normal => t::PermitKind::Normal,
            w::PermitKind::Probe => t::PermitKind::Probe,
        },
        acquired_at_ms: p.acquired_at_ms,
        lease_until_ms: p.lease_until_ms,
        episode_ms: p.episode_ms,
    }
}

fn outcome_in(o: w::Outcome) -> t::Outcome {
    match o {
        w::Outcome::Success => t::Outcome::Success,
        w::Outcome::Failure => t::Outcome::Failure,
        w::Outcome::Ignored => t::Outcome::Ignored,
    }
}

fn reason_out(r: t::TransitionReason) -> w::TransitionReason {
    use t::TransitionReason as R;
    use w::TransitionReason as W;
    match r {
        R::Tripped => W::Tripped,
        R::ProbeStarted => W::ProbeStarted,
        R::ProbeTakenOver => W::ProbeTakenOver,
        R::ProbeSucceeded => W::ProbeSucceeded,
        R::ProbeReleased => W::ProbeReleased,
        R::ProbeFailed => W::ProbeFailed,
        R::Recovered => W::Recovered,
        R::ForcedOpen => W::ForcedOpen,
        R::ForcedClosed => W::ForcedClosed,
        R::OverrideExpired => W::OverrideExpired,
        R::Reset => W::Reset,
        R::Reconciled => W::Reconciled,
    }
}

fn fault_out(f: t::StoreFault) -> w::StoreFault {
    w::StoreFault {
        circuit: f.circuit,
        error: store_error_out(f.error),
        retry_at_ms: f.retry_at_ms,
    }
}

fn event_out(e: t::Event) -> w::Event {
    match e {
        t::Event::Transition(tr) => w::Event::Transition(w::Transition {
            circuit: tr.circuit,
            from_state: state_out(tr.from_state),
            to_state: state_out(tr.to_state),
            version: tr.version,
            at_ms: tr.at_ms,
            opened_at_ms: tr.opened_at_ms,
            reason: reason_out(tr.reason),
            override_reason: tr.override_reason,
            local_only: tr.local_only,
        }),
        t::Event::CorruptRecord(f) => w::Event::CorruptRecord(fault_out(f)),
        t::Event::StoreDegraded(f) => w::Event::StoreDegraded(fault_out(f)),
        t::Event::StoreRecovered(c) => w::Event::StoreRecovered(c),
    }
}
