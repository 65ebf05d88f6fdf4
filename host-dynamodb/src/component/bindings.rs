//! The generated bindings of the WIT package, and the translation between their types and the
//! crate's public ones. Nothing generated leaves this module.

use fleetbreaker_core as t;
use fleetbreaker_core::convert_record;

wasmtime::component::bindgen!({
    path: "../core/wit",
    world: "fleetbreaker",
    imports: { "fleetbreaker:breaker/store": async },
    exports: { default: async },
});

pub(crate) use self::fleetbreaker::breaker::types as w;

pub(crate) fn state_in(s: w::CircuitState) -> t::CircuitState {
    match s {
        w::CircuitState::Closed => t::CircuitState::Closed,
        w::CircuitState::Open => t::CircuitState::Open,
        w::CircuitState::HalfOpen => t::CircuitState::HalfOpen,
        w::CircuitState::ForcedOpen => t::CircuitState::ForcedOpen,
        w::CircuitState::ForcedClosed => t::CircuitState::ForcedClosed,
    }
}

pub(crate) fn state_out(s: t::CircuitState) -> w::CircuitState {
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

pub(crate) fn record_in(r: w::CircuitRecord) -> t::Record {
    fleetbreaker_core::record_fields!(convert_record r => t::Record)
}

pub(crate) fn record_out(r: t::Record) -> w::CircuitRecord {
    fleetbreaker_core::record_fields!(convert_record r => w::CircuitRecord)
}

pub(crate) fn store_error_in(e: w::StoreError) -> t::StoreError {
    match e {
        w::StoreError::Unavailable(m) => t::StoreError::Unavailable(m),
        w::StoreError::Timeout(m) => t::StoreError::Timeout(m),
        w::StoreError::Throttled(m) => t::StoreError::Throttled(m),
        w::StoreError::Misconfigured(m) => t::StoreError::Misconfigured(m),
        w::StoreError::Corrupt(c) => t::StoreError::Corrupt(t::CorruptItem {
            detail: c.detail,
            version: c.version,
        }),
    }
}

pub(crate) fn store_error_out(e: t::StoreError) -> w::StoreError {
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

pub(crate) fn swap_out(s: t::SwapResult) -> w::SwapResult {
    match s {
        t::SwapResult::Written => w::SwapResult::Written,
        t::SwapResult::Conflict(current) => w::SwapResult::Conflict(current.map(record_out)),
    }
}

pub(crate) fn config_out(c: &t::Config) -> w::Config {
    w::Config {
        failure_policy: match c.failure_policy {
            t::FailurePolicy::ConsecutiveFailures(n) => w::FailurePolicy::ConsecutiveFailures(n),
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
            t::StoreFailureMode::Open => w::StoreFailureMode::Open,
            t::StoreFailureMode::Closed => w::StoreFailureMode::Closed,
        },
    }
}

pub(crate) fn info_in(i: w::CircuitInfo) -> t::CircuitInfo {
    t::CircuitInfo {
        name: i.name,
        state: state_in(i.state),
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

pub(crate) fn permit_in(p: w::Permit) -> t::Permit {
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

pub(crate) fn permit_out(p: t::Permit) -> w::Permit {
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

pub(crate) fn outcome_out(o: t::Outcome) -> w::Outcome {
    match o {
        t::Outcome::Success => w::Outcome::Success,
        t::Outcome::Failure => w::Outcome::Failure,
        t::Outcome::Ignored => w::Outcome::Ignored,
    }
}

fn reason_in(r: w::TransitionReason) -> t::TransitionReason {
    use t::TransitionReason as R;
    use w::TransitionReason as W;
    match r {
        W::Tripped => R::Tripped,
        W::ProbeStarted => R::ProbeStarted,
        W::ProbeTakenOver => R::ProbeTakenOver,
        W::ProbeSucceeded => R::ProbeSucceeded,
        W::ProbeReleased => R::ProbeReleased,
        W::ProbeFailed => R::ProbeFailed,
        W::Recovered => R::Recovered,
        W::ForcedOpen => R::ForcedOpen,
        W::ForcedClosed => R::ForcedClosed,
        W::OverrideExpired => R::OverrideExpired,
        W::Reset => R::Reset,
        W::Reconciled => R::Reconciled,
    }
}

fn fault_in(f: w::StoreFault) -> t::StoreFault {
    t::StoreFault {
        circuit: f.circuit,
        error: store_error_in(f.error),
        retry_at_ms: f.retry_at_ms,
    }
}

pub(crate) fn event_in(e: w::Event) -> t::Event {
    match e {
        w::Event::Transition(tr) => t::Event::Transition(t::Transition {
            circuit: tr.circuit,
            from_state: state_in(tr.from_state),
            to_state: state_in(tr.to_state),
            version: tr.version,
            at_ms: tr.at_ms,
            opened_at_ms: tr.opened_at_ms,
            reason: reason_in(tr.reason),
            override_reason: tr.override_reason,
            local_only: tr.local_only,
        }),
        w::Event::CorruptRecord(f) => t::Event::CorruptRecord(fault_in(f)),
        w::Event::StoreDegraded(f) => t::Event::StoreDegraded(fault_in(f)),
        w::Event::StoreRecovered(c) => t::Event::StoreRecovered(c),
    }
}
