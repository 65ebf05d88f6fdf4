//! The data every part of fleetbreaker shares: the record, the configuration, and what goes in
//! and out of a circuit. They mirror the WIT package `fleetbreaker:breaker` type for type.

use std::fmt;

pub use crate::record::Record;

/// Where a circuit stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls flow; failures are counted by each environment.
    Closed,
    /// Calls are rejected until `open_until_ms`; then one probe is let through.
    Open,
    /// One probe at a time, fleet-wide, until `success_threshold` of them succeed.
    HalfOpen,
    /// An operator rejects every call, optionally until `override_until_ms`.
    ForcedOpen,
    /// An operator admits every call and counts nothing, optionally until `override_until_ms`.
    ForcedClosed,
}

impl CircuitState {
    /// Every state, in declaration order.
    pub const ALL: [CircuitState; 5] = [
        CircuitState::Closed,
        CircuitState::Open,
        CircuitState::HalfOpen,
        CircuitState::ForcedOpen,
        CircuitState::ForcedClosed,
    ];

    /// The name stored in the record and shown to users: `CLOSED`, `HALF_OPEN`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "CLOSED",
            CircuitState::Open => "OPEN",
            CircuitState::HalfOpen => "HALF_OPEN",
            CircuitState::ForcedOpen => "FORCED_OPEN",
            CircuitState::ForcedClosed => "FORCED_CLOSED",
        }
    }

    /// The inverse of [`CircuitState::as_str`].
    pub fn parse(text: &str) -> Option<CircuitState> {
        CircuitState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored item that cannot be read as a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorruptItem {
    /// What is wrong with it, for the log.
    pub detail: String,
    /// Its version, when that much could still be read; the next write swaps against it.
    pub version: Option<u64>,
}

/// Why the store could not answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The store cannot be reached, or failed on its side.
    Unavailable(String),
    /// The store did not answer within its deadline.
    Timeout(String),
    /// The store asked us to slow down.
    Throttled(String),
    /// The store refused: missing permission, missing table, wrong key schema.
    Misconfigured(String),
    /// The item exists but is not a valid record.
    Corrupt(CorruptItem),
}

impl StoreError {
    /// The kind's name, the same in every language: `unavailable`, `timeout`, `throttled`,
    /// `misconfigured` or `corrupt`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Timeout(_) => "timeout",
            StoreError::Throttled(_) => "throttled",
            StoreError::Misconfigured(_) => "misconfigured",
            StoreError::Corrupt(_) => "corrupt",
        }
    }

    /// An error of the kind named `kind` (not `corrupt`, which needs an item), for tests and
    /// bindings that inject faults.
    pub fn of_kind(kind: &str, message: impl Into<String>) -> Option<StoreError> {
        let m = message.into();
        Some(match kind {
            "unavailable" => StoreError::Unavailable(m),
            "timeout" => StoreError::Timeout(m),
            "throttled" => StoreError::Throttled(m),
            "misconfigured" => StoreError::Misconfigured(m),
            _ => return None,
        })
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "store unavailable: {m}"),
            StoreError::Timeout(m) => write!(f, "store timed out: {m}"),
            StoreError::Throttled(m) => write!(f, "store throttled: {m}"),
            StoreError::Misconfigured(m) => write!(f, "store misconfigured: {m}"),
            StoreError::Corrupt(c) => write!(f, "corrupt record: {}", c.detail),
        }
    }
}

impl std::error::Error for StoreError {}

/// The answer to a compare-and-swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwapResult {
    /// The record was replaced.
    Written,
    /// The stored version was not the expected one. Carries the current record when the store
    /// can give it at no extra cost.
    Conflict(Option<Record>),
}

/// One environment's counts for one window of a circuit, added atomically to one shard of the
/// fleet's counters (so that no single item takes every environment's writes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowDelta {
    /// Calls made.
    pub calls: u64,
    /// Of those, the ones that failed.
    pub failures: u64,
    /// Of those, the ones that succeeded but took too long.
    pub slow_calls: u64,
    /// The reporting environment, added to the window's set of environments that saw trouble
    /// (`None` when it saw none).
    pub environment: Option<String>,
}

/// One window of a circuit, its shards added up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Calls made, fleet-wide.
    pub calls: u64,
    /// Of those, the ones that failed.
    pub failures: u64,
    /// Of those, the ones that succeeded but took too long.
    pub slow_calls: u64,
    /// The distinct environments that reported failures or slow calls, sorted.
    pub environments: Vec<String>,
}

impl WindowCounts {
    /// Adds one shard's counts (or one delta) to these.
    pub fn add(
        &mut self,
        calls: u64,
        failures: u64,
        slow_calls: u64,
        environments: impl IntoIterator<Item = String>,
    ) {
        self.calls = self.calls.saturating_add(calls);
        self.failures = self.failures.saturating_add(failures);
        self.slow_calls = self.slow_calls.saturating_add(slow_calls);
        self.environments.extend(environments);
        self.environments.sort_unstable();
        self.environments.dedup();
    }

    /// The counts of several shards or windows added up (environments as one set).
    pub fn total<'a>(parts: impl IntoIterator<Item = &'a WindowCounts>) -> WindowCounts {
        let mut total = WindowCounts::default();
        for p in parts {
            total.add(
                p.calls,
                p.failures,
                p.slow_calls,
                p.environments.iter().cloned(),
            );
        }
        total
    }
}

/// When a closed circuit trips.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FailurePolicy {
    /// Trip after this many consecutive counted failures in one environment.
    ConsecutiveFailures(u32),
    /// Trip when the share of failed calls across the whole fleet, over a sliding window of
    /// `window_ms`, reaches a threshold.
    FailureRate(FailureRate),
}

/// The failure-rate policy: the calls and failures of every environment in the window, added
/// up. Environments report only once they see a failure, so a healthy fleet writes nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FailureRate {
    /// The share of failed calls (0 to 1, above 0) that trips the circuit.
    pub threshold: f64,
    /// The fleet's calls the window must hold before its rate is trusted.
    pub minimum_calls: u32,
}

/// What a call meets while the store cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StoreFailureMode {
    /// Admit calls and protect with a local-only breaker.
    #[default]
    Open,
    /// Reject calls until the store answers again.
    Closed,
}

/// A circuit's configuration. Durations are milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// When a closed circuit trips.
    pub failure_policy: FailurePolicy,
    /// The first break after a trip.
    pub recovery_timeout_ms: u64,
    /// Successful probes that close a half-open circuit.
    pub success_threshold: u32,
    /// How long a read of the shared record is trusted.
    pub local_cache_max_age_ms: u64,
    /// Each further trip multiplies the break by this (1.0: a fixed break).
    pub backoff_multiplier: f64,
    /// Upper bound of the break, when set.
    pub max_recovery_timeout_ms: Option<u64>,
    /// Up to this fraction of the break is added at random, so environments spread out.
    pub recovery_jitter: f64,
    /// How long a probe permit is held before another environment may take it over
    /// (default: `recovery_timeout_ms`).
    pub probe_lease_ms: Option<u64>,
    /// After a store error, how long to decide locally before asking the store again.
    pub store_retry_after_ms: u64,
    /// What calls meet while the store cannot be reached.
    pub store_failure_mode: StoreFailureMode,
    /// How many distinct environments must have seen the failures before the circuit trips
    /// for the fleet (1: any one environment trips it, as in Powertools).
    pub minimum_environments: u32,
    /// The length of the fleet's sliding window: the failure-rate policy's rate is taken over
    /// it, and another environment's failures count toward `minimum_environments` while they
    /// are this recent.
    pub window_ms: u64,
    /// A success slower than this counts as a failure, reported as a slow call (`None`: no
    /// call is too slow).
    pub slow_call_ms: Option<u64>,
}

/// The defaults are the Powertools circuit breaker's: open after 5 consecutive failures, probe
/// after 30 s, close after 3 probe successes, trust a read for 5 s.
impl Default for Config {
    fn default() -> Config {
        Config {
            failure_policy: FailurePolicy::ConsecutiveFailures(5),
            recovery_timeout_ms: 30_000,
            success_threshold: 3,
            local_cache_max_age_ms: 5_000,
            backoff_multiplier: 1.0,
            max_recovery_timeout_ms: None,
            recovery_jitter: 0.0,
            probe_lease_ms: None,
            store_retry_after_ms: 5_000,
            store_failure_mode: StoreFailureMode::Open,
            minimum_environments: 1,
            window_ms: 60_000,
            slow_call_ms: None,
        }
    }
}

/// A field of the configuration, or the name, that was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The field to blame, snake_case.
    pub field: String,
    /// What is wrong with it, with the value given.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// What a call or an operator sees of a circuit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitInfo {
    /// The circuit's name.
    pub name: String,
    /// Where it stands.
    pub state: CircuitState,
    /// The version of the record this view comes from (0: never written).
    pub version: u64,
    /// Closed: this environment's current failure count. Otherwise: the failures seen by the
    /// environment that tripped it.
    pub failure_count: u32,
    /// Of those, the slow calls (successes slower than `slow_call_ms`).
    pub slow_call_count: u32,
    /// When the circuit last opened, epoch ms.
    pub opened_at_ms: Option<u64>,
    /// When the current break ends, epoch ms.
    pub open_until_ms: Option<u64>,
    /// How long a rejected call may expect to wait before calls go through again.
    pub retry_after_ms: Option<u64>,
    /// Why an operator forced the state, when one did.
    pub override_reason: Option<String>,
    /// When the operator's override ends, if it does.
    pub override_until_ms: Option<u64>,
    /// The store cannot be reached; this environment decides alone.
    pub local_only: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// What a permit lets a call be.
pub enum PermitKind {
    /// A call on a closed circuit.
    Normal,
    /// The single fleet-wide probe of a half-open circuit.
    Probe,
}

/// Leave to make one call; handed back to `complete`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permit {
    /// Chosen by the host, at random: a probe's token is `<environment>#<id>`, so it stays
    /// unique fleet-wide even when a fork or a snapshot restore copies an environment whole.
    pub id: u64,
    /// A normal call, or the fleet's single probe.
    pub kind: PermitKind,
    /// Wall clock, compared with the record's `closed_at_ms`.
    pub acquired_at_ms: u64,
    /// The admission lease, on the host's **monotonic** clock: until then the host may admit
    /// calls without asking, counting their successes and reporting any failure at once.
    pub lease_until_ms: Option<u64>,
    /// For a probe: the `opened_at_ms` of the half-open episode it probes. Its outcome counts
    /// as long as the circuit is still in that episode, even after a takeover.
    pub episode_ms: Option<u64>,
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The call worked.
    Success,
    /// A failure that counts.
    Failure,
    /// An error that does not count (a cancelled call, an excluded exception).
    Ignored,
    /// The call worked but took longer than `slow_call_ms`: it counts as a failure, and is
    /// reported as a slow call. Hosts decide it from the call's duration.
    Slow,
}

impl Outcome {
    /// Every outcome, in declaration order: a binding's own enum of the same cases maps to
    /// these by position.
    pub const ALL: [Outcome; 4] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Ignored,
        Outcome::Slow,
    ];

    /// Whether it counts against the circuit: a failure, or a slow call.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failure | Outcome::Slow)
    }

    /// A success that took `elapsed_ms` is slow when `slow_call_ms` is set and reached; every
    /// other outcome stays what it is.
    pub fn timed(self, elapsed_ms: u64, slow_call_ms: Option<u64>) -> Outcome {
        match (self, slow_call_ms) {
            (Outcome::Success, Some(slow)) if elapsed_ms >= slow => Outcome::Slow,
            (outcome, _) => outcome,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
/// Why a circuit changed state: each transition of the state machine has one.
pub enum TransitionReason {
    /// Enough failures: closed to open.
    Tripped,
    /// The break ended and this environment took the probe permit: open to half-open.
    ProbeStarted,
    /// A probe holder went silent past its lease and this environment took the permit over.
    ProbeTakenOver,
    /// A probe succeeded; more are needed before the circuit closes.
    ProbeSucceeded,
    /// A probe ended without an answer (ignored or cancelled) and gave the permit back.
    ProbeReleased,
    /// A probe failed: half-open to open, with a longer break.
    ProbeFailed,
    /// Enough probes succeeded: half-open to closed.
    Recovered,
    /// An operator forced the circuit open.
    ForcedOpen,
    /// An operator forced the circuit closed.
    ForcedClosed,
    /// An operator's override ran out.
    OverrideExpired,
    /// An operator wrote a fresh closed record.
    Reset,
    /// The store answers again and this environment's local decision was written back.
    Reconciled,
}

impl TransitionReason {
    /// Every reason, in declaration order.
    pub const ALL: [TransitionReason; 12] = [
        TransitionReason::Tripped,
        TransitionReason::ProbeStarted,
        TransitionReason::ProbeTakenOver,
        TransitionReason::ProbeSucceeded,
        TransitionReason::ProbeReleased,
        TransitionReason::ProbeFailed,
        TransitionReason::Recovered,
        TransitionReason::ForcedOpen,
        TransitionReason::ForcedClosed,
        TransitionReason::OverrideExpired,
        TransitionReason::Reset,
        TransitionReason::Reconciled,
    ];

    /// The name used in events and logs, in every language: `tripped`, `probe_started`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionReason::Tripped => "tripped",
            TransitionReason::ProbeStarted => "probe_started",
            TransitionReason::ProbeTakenOver => "probe_taken_over",
            TransitionReason::ProbeSucceeded => "probe_succeeded",
            TransitionReason::ProbeReleased => "probe_released",
            TransitionReason::ProbeFailed => "probe_failed",
            TransitionReason::Recovered => "recovered",
            TransitionReason::ForcedOpen => "forced_open",
            TransitionReason::ForcedClosed => "forced_closed",
            TransitionReason::OverrideExpired => "override_expired",
            TransitionReason::Reset => "reset",
            TransitionReason::Reconciled => "reconciled",
        }
    }
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One write of the shared record, reported by the environment whose swap won it. With
/// `local_only`, the store could not be reached and only this environment changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The circuit's name.
    pub circuit: String,
    /// The state before.
    pub from_state: CircuitState,
    /// The state after.
    pub to_state: CircuitState,
    /// The version the write made.
    pub version: u64,
    /// When it was written, epoch ms.
    pub at_ms: u64,
    /// When the circuit last opened, epoch ms.
    pub opened_at_ms: Option<u64>,
    /// Why it changed.
    pub reason: TransitionReason,
    /// Why an operator forced the state, when one did.
    pub override_reason: Option<String>,
    /// Only this environment changed: the store could not be reached.
    pub local_only: bool,
    /// The failures that tripped the circuit into this episode (0 once it closed).
    pub failure_count: u32,
    /// Of those, the slow calls.
    pub slow_call_count: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// A store's failure, reported for a circuit.
pub struct StoreFault {
    /// The circuit whose call met it.
    pub circuit: String,
    /// What the store said.
    pub error: StoreError,
    /// Until when this environment decides alone before asking the store again.
    pub retry_at_ms: u64,
}

/// What a circuit reports to the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A circuit changed state (reported by the environment whose write made it).
    Transition(Transition),
    /// A stored item was not a valid record; it is treated as absent and replaced by the next
    /// write.
    CorruptRecord(StoreFault),
    /// The store failed; the environment decides alone for a while.
    StoreDegraded(StoreFault),
    /// The store answers again (carries the circuit's name).
    StoreRecovered(String),
}
