//! The pure state machine. No I/O and no clock: the time comes in as `now_ms`, and decisions,
//! next records and the events they imply come out. [`crate::Circuit`] drives it over a store.

use crate::types::{
    CircuitInfo, CircuitState, Config, CorruptItem, FailurePolicy, FailureRate, Outcome,
    PermitKind, Record, Transition, TransitionReason, WindowCounts,
};

/// How long a record outlives its last deadline before a store may delete it.
pub const RECORD_TTL_MARGIN_MS: u64 = 3600 * 1000;

/// How long a record with an override that has no end is kept (a year): an operator's
/// decision must not vanish with the TTL.
pub const OPEN_ENDED_OVERRIDE_TTL_MS: u64 = 366 * 24 * 3600 * 1000;

/// What the machine needs to know besides the record.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    /// The circuit's configuration.
    pub config: &'a Config,
    /// The circuit's name.
    pub circuit: &'a str,
    /// This environment's identity (written in the record's audit fields and probe tokens).
    pub environment: &'a str,
    /// The wall clock now, epoch ms.
    pub now_ms: u64,
}

/// A view of the shared record: the record as the machine reasons about it, and what a swap
/// replacing it must expect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shared {
    /// The record as the machine reasons about it (an absent item reads as a closed one).
    pub record: Record,
    /// `None`: there is no item, or it has no readable version.
    pub expected: Option<u64>,
}

impl Shared {
    /// From a store's answer to `load`.
    pub fn loaded(record: Option<Record>) -> Shared {
        match record {
            Some(record) => Shared::written(record),
            None => Shared {
                record: Record::absent(0),
                expected: None,
            },
        }
    }

    /// A corrupt item is treated as absent, but the next write swaps against what is left of
    /// its version, so it is replaced by exactly one writer.
    pub fn corrupt(item: &CorruptItem) -> Shared {
        Shared {
            record: Record::absent(item.version.unwrap_or(0)),
            expected: item.version,
        }
    }

    /// A record known to be stored. Version 0 is an item without a version of ours (one
    /// written by the Powertools breaker): the next write swaps against "no readable version"
    /// and upgrades it.
    pub fn written(record: Record) -> Shared {
        Shared {
            expected: (record.version > 0).then_some(record.version),
            record,
        }
    }
}

/// The token that identifies one call holding the probe permit: the environment and the
/// number of the call within it. Compared without allocating.
#[derive(Clone, Copy, Debug)]
pub struct Token<'a> {
    /// The environment holding the permit.
    pub environment: &'a str,
    /// The permit's id, unique in that environment.
    pub permit_id: u64,
}

impl Token<'_> {
    /// Whether `owner` (a record's `probe_owner`) is this token.
    pub fn matches(&self, owner: &str) -> bool {
        owner
            .strip_prefix(self.environment)
            .and_then(|rest| rest.strip_prefix('#'))
            .and_then(|id| id.parse::<u64>().ok())
            == Some(self.permit_id)
    }
}

impl std::fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.environment, self.permit_id)
    }
}

/// A compare-and-swap to attempt, with the event it reports if it wins.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    /// The version the swap expects (`None`: no item, or one without a readable version).
    pub expected: Option<u64>,
    /// The record to write.
    pub next: Record,
    /// The transition the write makes, reported once it lands.
    pub transition: Transition,
}

/// The failures an environment has seen on a closed circuit, for the consecutive policy: the
/// times of the current streak of counted failures (a success clears it). Times are kept so
/// that failures from before the circuit's last close can be dropped. Under the failure-rate
/// policy the fleet's windows count instead, and this stays empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Each failure's time, and whether it was a slow call.
    failures_at_ms: Vec<(u64, bool)>,
}

impl Window {
    /// Whether no failure is counted.
    pub fn is_empty(&self) -> bool {
        self.failures_at_ms.is_empty()
    }

    /// The failures counted.
    pub fn count(&self) -> u32 {
        self.failures_at_ms.len() as u32
    }

    /// Of those, the slow calls.
    pub fn slow_count(&self) -> u32 {
        self.failures_at_ms.iter().filter(|(_, slow)| *slow).count() as u32
    }

    /// A success: the run of failures ends.
    pub fn record_success(&mut self) {
        self.failures_at_ms.clear();
    }

    /// A failure at `at_ms` (`slow`: a slow call), counted as `policy` counts.
    pub fn record_failure(&mut self, at_ms: u64, policy: FailurePolicy, slow: bool) {
        match policy {
            FailurePolicy::ConsecutiveFailures(threshold) => {
                if self.failures_at_ms.len() >= threshold as usize {
                    self.failures_at_ms.remove(0);
                }
                self.failures_at_ms.push((at_ms, slow));
            }
            FailurePolicy::FailureRate(_) => {}
        }
    }

    /// Drops failures from before `closed_at_ms`: they belong to an episode that has ended.
    pub fn forget_before(&mut self, closed_at_ms: Option<u64>) {
        if let Some(closed) = closed_at_ms {
            self.failures_at_ms.retain(|&(t, _)| t >= closed);
        }
    }

    /// Forgets every failure.
    pub fn clear(&mut self) {
        self.failures_at_ms.clear();
    }

    /// Whether the failures counted trip the circuit under `policy`.
    pub fn tripped(&self, policy: FailurePolicy) -> bool {
        match policy {
            FailurePolicy::ConsecutiveFailures(threshold) => self.count() >= threshold,
            FailurePolicy::FailureRate(_) => false,
        }
    }
}

/// What to do with a request for a permit.
#[derive(Clone, Debug, PartialEq)]
pub enum AcquireDecision {
    /// Let the call through.
    Admit {
        /// A normal call, or the fleet's single probe.
        kind: PermitKind,
        /// How long, from now, the host may admit calls without asking (the admission lease).
        lease_ms: Option<u64>,
    },
    /// Reject the call: the circuit is open.
    Reject,
    /// Write first, then decide again on the record that results.
    Write(Box<Write>),
}

/// What to do with a failure on a closed circuit.
#[derive(Clone, Debug, PartialEq)]
pub enum TripDecision {
    /// Counted; the policy has not tripped.
    Count,
    /// The circuit is no longer closed here (another environment opened it, or an operator
    /// forced it): the streak is over.
    Absorb,
    /// Write this first, then decide again.
    Write(Box<Write>),
}

/// What to do with the outcome of a probe.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeDecision {
    /// The permit was taken over (or the episode ended): the outcome is dropped.
    Fenced,
    /// Write this.
    Write(Box<Write>),
}

/// The break after the `trips`-th open since the last close:
/// `min(recovery_timeout × backoff_multiplier^(trips-1), max_recovery_timeout)`, plus up to
/// `recovery_jitter` of it, drawn from `seed`.
pub fn break_ms(config: &Config, trips: u32, seed: u64) -> u64 {
    let exponent = trips.saturating_sub(1).min(1024) as i32;
    let raw = config.recovery_timeout_ms as f64 * config.backoff_multiplier.powi(exponent);
    let cap = config.max_recovery_timeout();
    let base = if raw.is_finite() && raw < cap as f64 {
        raw as u64
    } else {
        cap
    };
    if config.recovery_jitter <= 0.0 {
        return base;
    }
    let spread = (base as f64 * config.recovery_jitter) as u64;
    base + splitmix64(seed) % (spread + 1)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn jitter_seed(ctx: &Ctx<'_>) -> u64 {
    // FNV-1a over who trips and when: different environments draw different breaks.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ctx
        .environment
        .bytes()
        .chain(ctx.circuit.bytes())
        .chain(ctx.now_ms.to_le_bytes())
    {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// When a store may delete `next`: an hour after its last deadline; open-ended overrides are
/// kept for a year.
fn expires_at(next: &Record, now_ms: u64) -> u64 {
    let mut last = now_ms;
    for deadline in [next.open_until_ms, next.probe_lease_until_ms]
        .into_iter()
        .flatten()
    {
        last = last.max(deadline);
    }
    if matches!(
        next.state,
        CircuitState::ForcedOpen | CircuitState::ForcedClosed
    ) {
        last = match next.override_until_ms {
            Some(until) => last.max(until),
            None => last.saturating_add(OPEN_ENDED_OVERRIDE_TTL_MS),
        };
    }
    last.saturating_add(RECORD_TTL_MARGIN_MS)
}

/// Builds the swap that replaces `shared` with `change` applied to it.
fn write(
    ctx: &Ctx<'_>,
    shared: &Shared,
    reason: TransitionReason,
    change: impl FnOnce(&mut Record),
) -> Write {
    let mut next = shared.record.clone();
    change(&mut next);
    next.version = shared.record.version + 1;
    next.updated_at_ms = ctx.now_ms;
    next.updated_by = ctx.environment.to_string();
    if !matches!(
        next.state,
        CircuitState::ForcedOpen | CircuitState::ForcedClosed
    ) {
        next.override_reason = None;
        next.override_until_ms = None;
    }
    next.expires_at_ms = expires_at(&next, ctx.now_ms);
    let transition = Transition {
        circuit: ctx.circuit.to_string(),
        from_state: shared.record.state,
        to_state: next.state,
        version: next.version,
        at_ms: ctx.now_ms,
        opened_at_ms: next.opened_at_ms,
        reason,
        override_reason: next.override_reason.clone(),
        local_only: false,
        failure_count: next.failure_count,
        slow_call_count: next.slow_call_count,
    };
    Write {
        expected: shared.expected,
        next,
        transition,
    }
}

fn clear_probe(r: &mut Record) {
    r.probe_owner = None;
    r.probe_lease_until_ms = None;
}

/// A fresh closed record: a new episode starts, and earlier failures no longer count.
fn close(r: &mut Record, now_ms: u64) {
    r.state = CircuitState::Closed;
    r.opened_at_ms = None;
    r.open_until_ms = None;
    r.trips = 0;
    clear_probe(r);
    r.probe_successes = 0;
    r.closed_at_ms = Some(now_ms);
    r.failure_count = 0;
    r.slow_call_count = 0;
}

/// Opens for the `trips`-th time since the last close.
fn open(ctx: &Ctx<'_>, r: &mut Record, trips: u32, failure_count: u32, slow_call_count: u32) {
    r.state = CircuitState::Open;
    r.opened_at_ms = Some(ctx.now_ms);
    r.open_until_ms = Some(ctx.now_ms.saturating_add(break_ms(
        ctx.config,
        trips,
        jitter_seed(ctx),
    )));
    r.trips = trips;
    clear_probe(r);
    r.probe_successes = 0;
    r.failure_count = failure_count;
    r.slow_call_count = slow_call_count;
}

fn take_probe(ctx: &Ctx<'_>, shared: &Shared, token: Token<'_>, reason: TransitionReason) -> Write {
    write(ctx, shared, reason, |r| {
        r.state = CircuitState::HalfOpen;
        // The episode is named by when the circuit opened; a record that lost it gets one.
        r.opened_at_ms = r.opened_at_ms.or(Some(ctx.now_ms));
        r.probe_owner = Some(token.to_string());
        r.probe_lease_until_ms = Some(ctx.now_ms.saturating_add(ctx.config.probe_lease()));
    })
}

/// When an open circuit's break ends. A record without `open_until_ms` (an item written by the
/// Powertools breaker, which stores only when it opened) ends its break `break(trips)` after it
/// opened; with neither, the break is over (never wedge a circuit).
pub fn break_end(config: &Config, record: &Record) -> Option<u64> {
    record.open_until_ms.or_else(|| {
        record
            .opened_at_ms
            .map(|opened| opened.saturating_add(break_ms(config, record.trips.max(1), 0)))
    })
}

fn override_expired(record: &Record, now_ms: u64) -> bool {
    record
        .override_until_ms
        .is_some_and(|until| now_ms >= until)
}

/// Decides a request for a permit.
///
/// `lease_ms` is the admission lease the caller can offer, as a duration from now (its copy of
/// the record is fresh that much longer and its failure window is empty); it is granted only
/// where no call needs to be counted one by one.
pub fn acquire(
    ctx: &Ctx<'_>,
    shared: &Shared,
    lease_ms: Option<u64>,
    token: Token<'_>,
) -> AcquireDecision {
    let r = &shared.record;
    let now = ctx.now_ms;
    match r.state {
        CircuitState::Closed => AcquireDecision::Admit {
            kind: PermitKind::Normal,
            lease_ms,
        },
        CircuitState::Open => match break_end(ctx.config, r) {
            Some(until) if now < until => AcquireDecision::Reject,
            // At or after the break's end (or no end known: never wedge), take the probe.
            _ => AcquireDecision::Write(Box::new(take_probe(
                ctx,
                shared,
                token,
                TransitionReason::ProbeStarted,
            ))),
        },
        CircuitState::HalfOpen => match (&r.probe_owner, r.probe_lease_until_ms) {
            (Some(owner), _) if token.matches(owner) => AcquireDecision::Admit {
                kind: PermitKind::Probe,
                lease_ms: None,
            },
            (None, _) => AcquireDecision::Write(Box::new(take_probe(
                ctx,
                shared,
                token,
                TransitionReason::ProbeStarted,
            ))),
            (Some(_), Some(lease)) if now < lease => AcquireDecision::Reject,
            // The lease ran out (or was never recorded): the permit is free to take over.
            (Some(_), _) => AcquireDecision::Write(Box::new(take_probe(
                ctx,
                shared,
                token,
                TransitionReason::ProbeTakenOver,
            ))),
        },
        CircuitState::ForcedOpen | CircuitState::ForcedClosed if override_expired(r, now) => {
            AcquireDecision::Write(Box::new(write(
                ctx,
                shared,
                TransitionReason::OverrideExpired,
                |r| close(r, now),
            )))
        }
        CircuitState::ForcedOpen => AcquireDecision::Reject,
        CircuitState::ForcedClosed => AcquireDecision::Admit {
            kind: PermitKind::Normal,
            lease_ms: match (lease_ms, r.override_until_ms) {
                (Some(lease), Some(until)) => Some(lease.min(until.saturating_sub(now))),
                (lease, _) => lease,
            },
        },
    }
}

/// Whether a failure of a normal call acquired at `acquired_at_ms` counts against `record`:
/// only on a closed circuit, and only if the call started after its last close.
pub fn counts_failure(record: &Record, acquired_at_ms: u64) -> bool {
    record.state == CircuitState::Closed
        && record
            .closed_at_ms
            .is_none_or(|closed| acquired_at_ms >= closed)
}

/// Decides what a counted failure (already in `window`) does to the circuit.
pub fn trip(ctx: &Ctx<'_>, shared: &Shared, window: &Window) -> TripDecision {
    if shared.record.state != CircuitState::Closed {
        return TripDecision::Absorb;
    }
    if !window.tripped(ctx.config.failure_policy) {
        return TripDecision::Count;
    }
    trip_now(ctx, shared, window.count(), window.slow_count())
}

/// Opens a closed circuit whose policy has tripped (`failures`, of them `slow_calls`: what
/// tripped it, written in the record for operators).
pub fn trip_now(ctx: &Ctx<'_>, shared: &Shared, failures: u32, slow_calls: u32) -> TripDecision {
    if shared.record.state != CircuitState::Closed {
        return TripDecision::Absorb;
    }
    TripDecision::Write(Box::new(write(
        ctx,
        shared,
        TransitionReason::Tripped,
        |r| open(ctx, r, 1, failures, slow_calls),
    )))
}

/// Whether a window pair trips the failure-rate policy. The rate is a sliding estimate: the
/// current window's counts plus the previous window's, weighted by the share of it a window
/// of the same length ending now still covers (`elapsed_ms` into the current one). Slow calls
/// count as failures.
pub fn rate_tripped(
    policy: &FailureRate,
    current: &WindowCounts,
    previous: Option<&WindowCounts>,
    elapsed_ms: u64,
    length_ms: u64,
) -> bool {
    let weight = 1.0 - (elapsed_ms.min(length_ms) as f64 / length_ms.max(1) as f64);
    let bad = |w: &WindowCounts| w.failures.saturating_add(w.slow_calls) as f64;
    let (calls, failed) = previous.map_or((0.0, 0.0), |p| (p.calls as f64, bad(p)));
    let calls = current.calls as f64 + calls * weight;
    let failed = bad(current) + failed * weight;
    calls >= f64::from(policy.minimum_calls) && calls > 0.0 && failed >= policy.threshold * calls
}

/// Decides what the outcome of a probe does to the circuit. `token` is the probe's, and
/// `episode_ms` the episode it probed (the `opened_at_ms` it was admitted under).
///
/// An outcome counts while the circuit is still half-open in that episode, even if the permit
/// was taken over meanwhile: a late success counts toward `success_threshold` and a late
/// failure reopens, so a downstream slower than the probe lease still closes its circuit. Only
/// the holder releases the permit; a late success leaves the new holder's permit alone. An
/// outcome from an episode that has ended (the circuit reopened, closed or was forced) is
/// fenced out.
pub fn probe_outcome(
    ctx: &Ctx<'_>,
    shared: &Shared,
    token: Token<'_>,
    episode_ms: Option<u64>,
    outcome: Outcome,
) -> ProbeDecision {
    let r = &shared.record;
    if r.state != CircuitState::HalfOpen || r.opened_at_ms != episode_ms {
        return ProbeDecision::Fenced;
    }
    let holds = r.probe_owner.as_deref().is_some_and(|o| token.matches(o));
    let now = ctx.now_ms;
    ProbeDecision::Write(Box::new(match outcome {
        Outcome::Success if r.probe_successes + 1 >= ctx.config.success_threshold => {
            write(ctx, shared, TransitionReason::Recovered, |r| close(r, now))
        }
        Outcome::Success => write(ctx, shared, TransitionReason::ProbeSucceeded, |r| {
            if holds {
                clear_probe(r);
            }
            r.probe_successes += 1;
        }),
        Outcome::Failure | Outcome::Slow => {
            let trips = r.trips.saturating_add(1);
            // A late failure reopens while another call may still hold the permit: the break
            // lasts at least until that call's lease ends, so no new probe starts beside it.
            let holder_lease = if holds { None } else { r.probe_lease_until_ms };
            write(ctx, shared, TransitionReason::ProbeFailed, |r| {
                open(ctx, r, trips, 0, 0);
                if let Some(lease) = holder_lease {
                    r.open_until_ms = r.open_until_ms.map(|until| until.max(lease));
                }
            })
        }
        Outcome::Ignored if holds => {
            write(ctx, shared, TransitionReason::ProbeReleased, clear_probe)
        }
        // A late call that says nothing about the downstream has nothing to release.
        Outcome::Ignored => return ProbeDecision::Fenced,
    }))
}

/// An operator override of `state` (forced open or forced closed).
pub fn force(
    ctx: &Ctx<'_>,
    shared: &Shared,
    state: CircuitState,
    duration_ms: Option<u64>,
    reason: &str,
) -> Write {
    debug_assert!(matches!(
        state,
        CircuitState::ForcedOpen | CircuitState::ForcedClosed
    ));
    let why = if state == CircuitState::ForcedOpen {
        TransitionReason::ForcedOpen
    } else {
        TransitionReason::ForcedClosed
    };
    let now = ctx.now_ms;
    write(ctx, shared, why, |r| {
        r.state = state;
        clear_probe(r);
        r.probe_successes = 0;
        r.override_reason = Some(reason.to_string());
        r.override_until_ms = duration_ms.map(|d| now.saturating_add(d));
    })
}

/// A fresh closed record, whatever the state.
pub fn reset(ctx: &Ctx<'_>, shared: &Shared) -> Write {
    let now = ctx.now_ms;
    write(ctx, shared, TransitionReason::Reset, |r| close(r, now))
}

/// What this environment did alone while the store could not be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalChanges {
    /// It closed the circuit by its own probes; this is the episode (`opened_at_ms`) it closed.
    pub closed_episode: Option<u64>,
}

/// When the store answers again after this environment decided alone: a change made locally
/// during the outage is written, unless the shared record has moved on. Otherwise the shared
/// record simply wins.
///
/// - A local trip is written if the stored record is a close older than it (or absent).
/// - A local close (its probes succeeded) is written if the stored record is still in the
///   episode it closed; a newer open or close elsewhere wins.
pub fn reconcile(
    ctx: &Ctx<'_>,
    stored: &Shared,
    local: &Record,
    changes: LocalChanges,
) -> Option<Write> {
    let stored_record = &stored.record;
    match local.state {
        CircuitState::Open => {
            let local_open = local.open_until_ms.is_some_and(|until| ctx.now_ms < until);
            let opened_at = local.opened_at_ms?;
            let stored_is_older_close = stored_record.state == CircuitState::Closed
                && stored_record
                    .closed_at_ms
                    .is_none_or(|closed| closed <= opened_at);
            if !(local_open && stored_is_older_close) {
                return None;
            }
            Some(write(ctx, stored, TransitionReason::Reconciled, |r| {
                r.state = CircuitState::Open;
                r.opened_at_ms = local.opened_at_ms;
                r.open_until_ms = local.open_until_ms;
                r.trips = local.trips.max(1);
                clear_probe(r);
                r.probe_successes = 0;
                r.failure_count = local.failure_count;
                r.slow_call_count = local.slow_call_count;
            }))
        }
        CircuitState::Closed => {
            let episode = changes.closed_episode?;
            let same_episode = matches!(
                stored_record.state,
                CircuitState::Open | CircuitState::HalfOpen
            ) && stored_record.opened_at_ms == Some(episode);
            if !same_episode {
                return None;
            }
            let closed_at = local.closed_at_ms.unwrap_or(ctx.now_ms);
            Some(write(ctx, stored, TransitionReason::Reconciled, |r| {
                close(r, closed_at)
            }))
        }
        _ => None,
    }
}

/// What a caller or an operator sees of `record`; `failures` is this environment's count of
/// failures on a closed circuit (its streak, or its window's failures under the failure-rate
/// policy), and of them slow calls.
pub fn info(ctx: &Ctx<'_>, record: &Record, failures: (u32, u32), local_only: bool) -> CircuitInfo {
    let now = ctx.now_ms;
    let wait_until = |t: u64| Some(t.saturating_sub(now));
    let retry_after_ms = match record.state {
        CircuitState::Closed | CircuitState::ForcedClosed => None,
        CircuitState::Open => break_end(ctx.config, record)
            .and_then(wait_until)
            .or(Some(0)),
        CircuitState::HalfOpen => match (&record.probe_owner, record.probe_lease_until_ms) {
            (Some(_), Some(lease)) => wait_until(lease),
            _ => Some(0),
        },
        CircuitState::ForcedOpen => record.override_until_ms.and_then(wait_until),
    };
    CircuitInfo {
        name: ctx.circuit.to_string(),
        state: record.state,
        version: record.version,
        failure_count: if record.state == CircuitState::Closed {
            failures.0
        } else {
            record.failure_count
        },
        slow_call_count: if record.state == CircuitState::Closed {
            failures.1
        } else {
            record.slow_call_count
        },
        opened_at_ms: record.opened_at_ms,
        open_until_ms: record.open_until_ms,
        retry_after_ms,
        override_reason: record.override_reason.clone(),
        override_until_ms: record.override_until_ms,
        local_only,
    }
}

/// Every (from, reason, to) a write may make. Used by tests to check that nothing else occurs.
pub fn is_legal(from: CircuitState, reason: TransitionReason, to: CircuitState) -> bool {
    use CircuitState as S;
    use TransitionReason as R;
    match reason {
        R::Tripped => from == S::Closed && to == S::Open,
        R::Reconciled => {
            (from == S::Closed && to == S::Open)
                || (matches!(from, S::Open | S::HalfOpen) && to == S::Closed)
        }
        R::ProbeStarted => matches!(from, S::Open | S::HalfOpen) && to == S::HalfOpen,
        R::ProbeTakenOver | R::ProbeSucceeded | R::ProbeReleased => {
            from == S::HalfOpen && to == S::HalfOpen
        }
        R::ProbeFailed => from == S::HalfOpen && to == S::Open,
        R::Recovered => from == S::HalfOpen && to == S::Closed,
        R::ForcedOpen => to == S::ForcedOpen,
        R::ForcedClosed => to == S::ForcedClosed,
        R::OverrideExpired => matches!(from, S::ForcedOpen | S::ForcedClosed) && to == S::Closed,
        R::Reset => to == S::Closed,
    }
}
