//! The algorithm: one circuit as seen by one environment, driving the pure machine over a
//! [`Store`], a [`Clock`] and an [`Events`] sink.

use crate::config::{validate_environment, validate_name};
use crate::machine::{
    self, AcquireDecision, Ctx, LocalChanges, ProbeDecision, Shared, Token, TripDecision, Window,
    Write,
};
use crate::types::{
    CircuitInfo, CircuitState, Config, ConfigError, Event, FailurePolicy, FailureRate, Outcome,
    Permit, PermitKind, Record, StoreError, StoreFailureMode, StoreFault, SwapResult,
    TransitionReason, WindowCounts, WindowDelta,
};
use crate::windows::{
    RateCounts, WINDOW_REPORT_INTERVAL_MS, WINDOW_SHARDS, shard_of, window_expiry, window_starts,
};

/// Where shared records live. Every write is a compare-and-swap on `version`.
pub trait Store {
    /// The record of `circuit`, or `None` when there is no item.
    fn load(&mut self, circuit: &str) -> Result<Option<Record>, StoreError>;

    /// Writes `next` only if the stored version is `expected_version`; with `None`, only if
    /// there is no item or the item has no readable version.
    fn swap(
        &mut self,
        circuit: &str,
        expected_version: Option<u64>,
        next: &Record,
    ) -> Result<SwapResult, StoreError>;

    /// Adds `delta` to shard `shard` of `circuit`'s window that starts at `window_start_ms`,
    /// in one atomic step; the store may delete the shard after `expires_at_ms`. A store
    /// without window counters answers `misconfigured`: `minimum_environments` above 1 then
    /// lets each environment decide alone.
    fn add_to_window(
        &mut self,
        circuit: &str,
        window_start_ms: u64,
        shard: u32,
        delta: &WindowDelta,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        let _ = (circuit, window_start_ms, shard, delta, expires_at_ms);
        Err(StoreError::Misconfigured(
            "this store keeps no window counters".into(),
        ))
    }

    /// The windows of `circuit` that start at each of `window_starts_ms`, each with its
    /// `shards` shards added up, in one read.
    fn read_windows(
        &mut self,
        circuit: &str,
        window_starts_ms: &[u64],
        shards: u32,
    ) -> Result<Vec<WindowCounts>, StoreError> {
        let _ = (circuit, window_starts_ms, shards);
        Err(StoreError::Misconfigured(
            "this store keeps no window counters".into(),
        ))
    }
}

/// The host's clocks.
pub trait Clock {
    /// The wall clock, ms since the Unix epoch: the times written in the shared record, which
    /// every environment of the fleet compares.
    fn now_ms(&mut self) -> u64;

    /// A monotonic clock in ms, from any origin: the deadlines only this environment uses (the
    /// age of its copy of the record, the admission lease, the store's back-off), so that a
    /// step of the wall clock cannot stretch them.
    fn monotonic_ms(&mut self) -> u64;

    /// Both clocks, `(wall, monotonic)`; a host where each reading is a call across a boundary
    /// reads them in one.
    fn now(&mut self) -> (u64, u64) {
        (self.now_ms(), self.monotonic_ms())
    }
}

/// Where a circuit reports transitions and store trouble.
pub trait Events {
    /// Reports one event to the host.
    fn emit(&mut self, event: Event);
}

/// Everything a circuit needs from its host.
pub trait Env: Store + Clock + Events {}
impl<T: Store + Clock + Events> Env for T {}

/// A lost swap re-reads and decides again, this many times at most; beyond it the call is
/// decided on the last record seen.
const MAX_ROUNDS: usize = 4;

/// The first counted failure after a quiet period reads the record again, but at most this
/// often: at a high error rate every failure follows a success, and each must not cost a read.
pub const FAILURE_REFRESH_INTERVAL_MS: u64 = 1_000;

/// Under the failure-rate policy every failure reads the record again, but at most this often:
/// the fleet, not this environment, trips the circuit, and only a read tells this one. The
/// reads last only while calls fail on a closed circuit (an open one rejects from the cache).
pub const RATE_FAILURE_REFRESH_INTERVAL_MS: u64 = 250;

/// Both clocks, read together.
#[derive(Clone, Copy, Debug)]
struct Now {
    wall: u64,
    mono: u64,
}

/// The last report to the fleet's window, and whether enough environments had seen failures.
#[derive(Clone, Copy, Debug)]
struct Quorum {
    at_mono: u64,
    /// The close the answer's windows were aligned to: a later close voids it.
    closed_at_ms: Option<u64>,
    met: bool,
}

fn now(env: &mut impl Env) -> Now {
    let (wall, mono) = env.now();
    Now { wall, mono }
}

#[derive(Clone, Debug)]
struct Cached {
    shared: Shared,
    /// When the read (or the write) that produced it *started*: the copy is at least this old.
    read_at_mono: u64,
}

/// Local-only mode: the store failed, so this environment decides alone until `retry_at_mono`.
#[derive(Clone, Debug)]
struct Degraded {
    retry_at_mono: u64,
    local: Shared,
    /// The version of the last shared record this environment saw. Local-only events report
    /// it: they are not writes, so they must not take a version a real write will have.
    base_version: u64,
    changes: LocalChanges,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Freshness {
    /// A read younger than `local_cache_max_age`.
    Fresh,
    /// Any record seen before will do (a swap will fence a stale one).
    Any,
    /// Read again, whatever the cache holds.
    Reload,
}

/// One circuit in one environment.
#[derive(Clone, Debug)]
pub struct Circuit {
    name: String,
    config: Config,
    environment: String,
    cache: Option<Cached>,
    window: Window,
    degraded: Option<Degraded>,
    reported_corruption: Option<String>,
    quorum: Option<Quorum>,
    /// Counted failures, and slow calls, not yet reported to the fleet's window (consecutive
    /// policy).
    unreported: (u64, u64),
    /// The calls seen and not yet reported (failure-rate policy).
    rate: RateCounts,
}

impl Circuit {
    /// Validates the name, the environment and the config. Reads nothing yet.
    pub fn new(name: &str, config: Config, environment: &str) -> Result<Circuit, ConfigError> {
        validate_name(name)?;
        validate_environment(environment)?;
        config.validate()?;
        Ok(Circuit {
            name: name.to_string(),
            config,
            environment: environment.to_string(),
            cache: None,
            window: Window::default(),
            degraded: None,
            reported_corruption: None,
            quorum: None,
            unreported: (0, 0),
            rate: RateCounts::default(),
        })
    }

    /// The circuit's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether the store failed and this environment decides alone.
    pub fn is_local_only(&self) -> bool {
        self.degraded.is_some()
    }

    fn ctx(&self, now_ms: u64) -> Ctx<'_> {
        Ctx {
            config: &self.config,
            circuit: &self.name,
            environment: &self.environment,
            now_ms,
        }
    }

    /// Asks to make one call. `leased_successes` are the successes the host counted under the
    /// last admission lease; `permit_id` is the host's random choice for this call (a probe's
    /// token). A rejection carries the circuit as the caller should see it.
    #[allow(clippy::result_large_err)] // the rejection is the value the caller needs, whole
    pub fn acquire(
        &mut self,
        env: &mut impl Env,
        leased_successes: u32,
        permit_id: u64,
    ) -> Result<Permit, CircuitInfo> {
        self.succeeded(leased_successes);
        let mut t = now(env);
        if let FailurePolicy::FailureRate(policy) = self.config.failure_policy
            && self.rate.report_due(t.mono)
        {
            t = self.refresh(env, t, Freshness::Fresh);
            self.judge_rate(env, &mut t, &policy);
        }
        for _ in 0..MAX_ROUNDS {
            t = self.refresh(env, t, Freshness::Fresh);
            if self.degraded.is_some() && self.config.store_failure_mode == StoreFailureMode::Closed
            {
                return Err(self.info_at(t));
            }
            let lease = self.lease_candidate(t);
            let token = Token {
                environment: &self.environment,
                permit_id,
            };
            match machine::acquire(&self.ctx(t.wall), self.current(), lease, token) {
                AcquireDecision::Admit { kind, lease_ms } => {
                    let episode_ms = match kind {
                        PermitKind::Probe => self.current().record.opened_at_ms,
                        PermitKind::Normal => None,
                    };
                    return Ok(Permit {
                        id: permit_id,
                        kind,
                        acquired_at_ms: t.wall,
                        lease_until_ms: lease_ms.map(|ms| t.mono.saturating_add(ms)),
                        episode_ms,
                    });
                }
                AcquireDecision::Reject => return Err(self.info_at(t)),
                // Won or lost, decide again on the record that results.
                AcquireDecision::Write(w) => {
                    self.write(env, w, &mut t);
                }
            }
        }
        Err(self.info_at(t))
    }

    /// Reports how the call made with `permit` ended.
    pub fn complete(&mut self, env: &mut impl Env, permit: Permit, outcome: Outcome) {
        match (permit.kind, outcome) {
            (PermitKind::Normal, Outcome::Success) => self.succeeded(1),
            (PermitKind::Normal, Outcome::Ignored) => {}
            (PermitKind::Normal, Outcome::Failure) => {
                self.record_failure(env, permit.acquired_at_ms, false)
            }
            (PermitKind::Normal, Outcome::Slow) => {
                self.record_failure(env, permit.acquired_at_ms, true)
            }
            (PermitKind::Probe, _) => self.finish_probe(env, &permit, outcome),
        }
    }

    /// Reports how a call the host admitted under the lease ended, with the successes the
    /// host counted before it.
    pub fn complete_leased(&mut self, env: &mut impl Env, leased_successes: u32, outcome: Outcome) {
        self.succeeded(leased_successes);
        match outcome {
            Outcome::Success => self.succeeded(1),
            Outcome::Ignored => {}
            Outcome::Failure | Outcome::Slow => {
                let now = env.now_ms();
                self.record_failure(env, now, outcome == Outcome::Slow)
            }
        }
    }

    /// What the circuit looks like from here, reading the store if the cache is stale.
    pub fn info(&mut self, env: &mut impl Env) -> CircuitInfo {
        let t = now(env);
        let t = self.refresh(env, t, Freshness::Fresh);
        self.info_at(t)
    }

    /// An operator override: reject every call, fleet-wide, for `duration_ms` or until
    /// changed.
    pub fn force_open(
        &mut self,
        env: &mut impl Env,
        duration_ms: Option<u64>,
        reason: &str,
    ) -> Result<CircuitInfo, StoreError> {
        self.operate(env, |ctx, shared| {
            machine::force(ctx, shared, CircuitState::ForcedOpen, duration_ms, reason)
        })
    }

    /// An operator override: admit every call and count nothing, fleet-wide, for
    /// `duration_ms` or until changed.
    pub fn force_closed(
        &mut self,
        env: &mut impl Env,
        duration_ms: Option<u64>,
        reason: &str,
    ) -> Result<CircuitInfo, StoreError> {
        self.operate(env, |ctx, shared| {
            machine::force(ctx, shared, CircuitState::ForcedClosed, duration_ms, reason)
        })
    }

    /// Writes a fresh closed record, whatever the state.
    pub fn reset(&mut self, env: &mut impl Env) -> Result<CircuitInfo, StoreError> {
        self.operate(env, machine::reset)
    }

    /// Operator writes read the store afresh and report store errors to the operator instead
    /// of degrading. A corrupt item is replaced like any other: these commands are the way out.
    fn operate(
        &mut self,
        env: &mut impl Env,
        make: impl Fn(&Ctx<'_>, &Shared) -> Write,
    ) -> Result<CircuitInfo, StoreError> {
        let mut known: Option<Shared> = None;
        for _ in 0..MAX_ROUNDS {
            let before = now(env);
            let shared = match known.take() {
                Some(s) => s,
                None => match env.load(&self.name) {
                    Ok(r) => Shared::loaded(r),
                    Err(StoreError::Corrupt(item)) => Shared::corrupt(&item),
                    Err(e) => return Err(e),
                },
            };
            let t = now(env);
            let w = make(&self.ctx(t.wall), &shared);
            match env.swap(&self.name, w.expected, &w.next) {
                Ok(SwapResult::Written) => {
                    if self.degraded.take().is_some() {
                        env.emit(Event::StoreRecovered(self.name.clone()));
                    }
                    self.adopt(Shared::written(w.next), before.mono);
                    env.emit(Event::Transition(w.transition));
                    let t = now(env);
                    return Ok(self.info_at(t));
                }
                Ok(SwapResult::Conflict(current)) => known = current.map(Shared::written),
                Err(StoreError::Corrupt(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(format!(
            "the record of '{}' kept changing during {MAX_ROUNDS} attempts; try again",
            self.name
        )))
    }

    /// `calls` successful calls: a streak of failures ends; the rate policy counts them.
    fn succeeded(&mut self, calls: u32) {
        if calls == 0 {
            return;
        }
        self.window.record_success();
        if let FailurePolicy::FailureRate(policy) = &self.config.failure_policy {
            self.rate.succeeded(u64::from(calls), policy);
        }
    }

    /// Whether failures wait for this environment to act on them (no admission lease then).
    fn has_pending_failures(&self) -> bool {
        !self.window.is_empty() || self.rate.has_pending()
    }

    /// A counted failure (`slow`: a success slower than `slow_call_ms`).
    fn record_failure(&mut self, env: &mut impl Env, acquired_at_ms: u64, slow: bool) {
        let mut t = now(env);
        // The first counted failure after a quiet period reads the record again: another
        // environment may already have opened the circuit, and this one should know at once.
        // Under the failure-rate policy every failure may.
        let by_fleet = matches!(self.config.failure_policy, FailurePolicy::FailureRate(_));
        let interval = if by_fleet {
            RATE_FAILURE_REFRESH_INTERVAL_MS
        } else {
            FAILURE_REFRESH_INTERVAL_MS
        };
        let stale = self
            .cache
            .as_ref()
            .is_none_or(|c| t.mono.saturating_sub(c.read_at_mono) >= interval);
        let freshness = if (by_fleet || !self.has_pending_failures()) && stale {
            Freshness::Reload
        } else {
            Freshness::Fresh
        };
        t = self.refresh(env, t, freshness);
        if !machine::counts_failure(&self.current().record, acquired_at_ms) {
            return;
        }
        if let FailurePolicy::FailureRate(policy) = self.config.failure_policy {
            let closed_at_ms = self.current().record.closed_at_ms;
            self.rate.roll(closed_at_ms, self.config.window_ms, t.wall);
            self.rate
                .failed(t.mono, &policy, self.config.window_ms, slow);
            self.judge_rate(env, &mut t, &policy);
            return;
        }
        self.window
            .record_failure(t.wall, self.config.failure_policy, slow);
        if self.config.minimum_environments > 1 {
            if slow {
                self.unreported.1 += 1;
            } else {
                self.unreported.0 += 1;
            }
        }
        for _ in 0..MAX_ROUNDS {
            match machine::trip(&self.ctx(t.wall), self.current(), &self.window) {
                TripDecision::Count => return,
                TripDecision::Absorb => {
                    self.window.clear();
                    return;
                }
                TripDecision::Write(w) => {
                    if !self.quorum_met(env, &mut t) {
                        return;
                    }
                    if self.write(env, w, &mut t) {
                        self.window.clear();
                        return;
                    }
                    t = self.refresh(env, t, Freshness::Any);
                }
            }
        }
    }

    /// Whether enough environments saw failures for this one's trip to count for the fleet:
    /// always with `minimum_environments` 1, and while this environment decides alone (its
    /// store is down). Otherwise it reports its failures, and its name, to the fleet's window
    /// (at most once per [`WINDOW_REPORT_INTERVAL_MS`]) and counts the environments that
    /// reported in this window and the one before.
    fn quorum_met(&mut self, env: &mut impl Env, t: &mut Now) -> bool {
        let needed = self.config.minimum_environments;
        if needed <= 1 || self.degraded.is_some() {
            return true;
        }
        let closed_at_ms = self.current().record.closed_at_ms;
        if let Some(q) = self.quorum
            && t.mono < q.at_mono.saturating_add(WINDOW_REPORT_INTERVAL_MS)
            && q.closed_at_ms == closed_at_ms
        {
            return q.met;
        }
        let delta = WindowDelta {
            calls: 0,
            failures: self.unreported.0,
            slow_calls: self.unreported.1,
            environment: Some(self.environment.clone()),
        };
        let counted = self.report(env, t, closed_at_ms, &delta);
        match counted {
            Ok(windows) => {
                self.unreported = (0, 0);
                let seen = WindowCounts::total(&windows);
                let met = seen.environments.len() >= needed as usize;
                self.quorum = Some(Quorum {
                    at_mono: t.mono,
                    closed_at_ms,
                    met,
                });
                met
            }
            // Decide alone, as for any store fault: this environment's trip protects it.
            Err(e) => {
                self.degrade(env, e, *t);
                true
            }
        }
    }

    /// The failure-rate policy: reports what waits to the fleet's window when a report is
    /// due, and trips the circuit if the fleet's rate (with enough calls, and enough
    /// environments) reached the threshold. While the store is down, this environment's own
    /// windows decide.
    fn judge_rate(&mut self, env: &mut impl Env, t: &mut Now, policy: &FailureRate) {
        if self.current().record.state != CircuitState::Closed {
            self.rate.forget_pending();
            return;
        }
        let closed_at_ms = self.current().record.closed_at_ms;
        self.rate.roll(closed_at_ms, self.config.window_ms, t.wall);
        let Some(failures) = self.rate_verdict(env, t, policy) else {
            return;
        };
        for _ in 0..MAX_ROUNDS {
            match machine::trip_now(&self.ctx(t.wall), self.current(), failures.0, failures.1) {
                TripDecision::Count => return,
                TripDecision::Absorb => {
                    self.rate.forget_pending();
                    return;
                }
                TripDecision::Write(w) => {
                    if self.write(env, w, t) {
                        self.rate.forget_pending();
                        return;
                    }
                    *t = self.refresh(env, *t, Freshness::Any);
                }
            }
        }
    }

    /// Whether the rate policy trips now, and with how many failures (and of them slow calls)
    /// in its windows.
    fn rate_verdict(
        &mut self,
        env: &mut impl Env,
        t: &mut Now,
        policy: &FailureRate,
    ) -> Option<(u32, u32)> {
        let length = self.config.window_ms;
        let closed_at_ms = self.current().record.closed_at_ms;
        let (start, _) = window_starts(closed_at_ms, length, t.wall);
        let judge = |current: &WindowCounts, previous: Option<&WindowCounts>, wall: u64| {
            machine::rate_tripped(
                policy,
                current,
                previous,
                wall.saturating_sub(start),
                length,
            )
            .then(|| {
                let slow = current.slow_calls + previous.map_or(0, |p| p.slow_calls);
                let failures = current.failures + previous.map_or(0, |p| p.failures) + slow;
                let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
                (count(failures), count(slow))
            })
        };
        if self.degraded.is_some() {
            let (own, own_previous) = self.rate.own();
            return judge(own, Some(own_previous), t.wall);
        }
        if !self.rate.report_due(t.mono) {
            return None;
        }
        let delta = self.rate.delta(&self.environment);
        match self.report(env, t, closed_at_ms, &delta) {
            Ok(windows) => {
                self.rate.reported(t.mono);
                let seen = WindowCounts::total(&windows);
                if seen.environments.len() < self.config.minimum_environments as usize {
                    return None;
                }
                let current = windows.first()?;
                judge(current, windows.get(1), t.wall)
            }
            Err(e) => {
                self.degrade(env, e, *t);
                let (own, own_previous) = self.rate.own();
                judge(own, Some(own_previous), t.wall)
            }
        }
    }

    /// Adds `delta` to this environment's shard of the current window (aligned to
    /// `closed_at_ms`) and reads the current window and the one before back, in that order;
    /// `t` becomes the time after the I/O.
    fn report(
        &self,
        env: &mut impl Env,
        t: &mut Now,
        closed_at_ms: Option<u64>,
        delta: &WindowDelta,
    ) -> Result<Vec<WindowCounts>, StoreError> {
        let length = self.config.window_ms;
        let (start, previous) = window_starts(closed_at_ms, length, t.wall);
        let shard = shard_of(&self.environment);
        let counted = env
            .add_to_window(
                &self.name,
                start,
                shard,
                delta,
                window_expiry(start, length),
            )
            .and_then(|()| {
                let starts: Vec<u64> = std::iter::once(start).chain(previous).collect();
                env.read_windows(&self.name, &starts, WINDOW_SHARDS)
            });
        *t = now(env);
        counted
    }

    fn finish_probe(&mut self, env: &mut impl Env, permit: &Permit, outcome: Outcome) {
        let mut t = now(env);
        // A stale record will do: if the episode ended, the swap fails and the record it
        // returns fences this outcome out.
        t = self.refresh(env, t, Freshness::Any);
        for _ in 0..MAX_ROUNDS {
            let token = Token {
                environment: &self.environment,
                permit_id: permit.id,
            };
            let decision = machine::probe_outcome(
                &self.ctx(t.wall),
                self.current(),
                token,
                permit.episode_ms,
                outcome,
            );
            match decision {
                ProbeDecision::Fenced => return,
                ProbeDecision::Write(w) => {
                    if self.write(env, w, &mut t) {
                        return;
                    }
                    t = self.refresh(env, t, Freshness::Any);
                }
            }
        }
    }

    /// Makes sure `current()` holds a record good enough for `freshness`, reading the store
    /// (or, in local-only mode, retrying it) when needed. `t` is the time now; returns the
    /// time after any I/O.
    fn refresh(&mut self, env: &mut impl Env, t: Now, freshness: Freshness) -> Now {
        if let Some(d) = &self.degraded {
            if t.mono < d.retry_at_mono {
                return t;
            }
            return self.retry_store(env, t);
        }
        if let Some(c) = &self.cache {
            let fresh = t.mono
                < c.read_at_mono
                    .saturating_add(self.config.local_cache_max_age_ms);
            match freshness {
                Freshness::Any => return t,
                Freshness::Fresh if fresh => return t,
                _ => {}
            }
        }
        let loaded = env.load(&self.name);
        let after = now(env);
        match self.interpret(env, loaded, after) {
            // The copy is as old as the moment the read began: a slow answer must not make a
            // stale record look fresh.
            Ok(shared) => self.adopt(shared, t.mono),
            Err(e) => self.degrade(env, e, after),
        }
        after
    }

    /// A store's answer to `load`: a corrupt item is reported and read as absent.
    fn interpret(
        &mut self,
        env: &mut impl Env,
        loaded: Result<Option<Record>, StoreError>,
        t: Now,
    ) -> Result<Shared, StoreError> {
        match loaded {
            Ok(record) => {
                self.reported_corruption = None;
                Ok(Shared::loaded(record))
            }
            Err(StoreError::Corrupt(item)) => {
                // Once per distinct problem, not on every read.
                if self.reported_corruption.as_deref() != Some(item.detail.as_str()) {
                    self.reported_corruption = Some(item.detail.clone());
                    env.emit(Event::CorruptRecord(StoreFault {
                        circuit: self.name.clone(),
                        error: StoreError::Corrupt(item.clone()),
                        retry_at_ms: t.wall,
                    }));
                }
                Ok(Shared::corrupt(&item))
            }
            Err(e) => Err(e),
        }
    }

    /// Local-only mode, retry due: ask the store again, and reconcile if it answers.
    fn retry_store(&mut self, env: &mut impl Env, t: Now) -> Now {
        let loaded = env.load(&self.name);
        let mut after = now(env);
        let stored = match self.interpret(env, loaded, after) {
            Ok(shared) => shared,
            Err(e) => {
                self.degrade(env, e, after);
                return after;
            }
        };
        let degraded = self.degraded.take();
        env.emit(Event::StoreRecovered(self.name.clone()));
        self.adopt(stored, t.mono);
        if let Some(d) = degraded
            && let Some(w) = machine::reconcile(
                &self.ctx(after.wall),
                self.current(),
                &d.local.record,
                d.changes,
            )
        {
            self.write(env, Box::new(w), &mut after);
        }
        after
    }

    /// Attempts a write; on a store error, enters local-only mode and applies it locally.
    /// Returns whether it was made (to the store, or locally). Either way `current()`
    /// afterwards holds the best-known record, and `t` the time after the I/O.
    fn write(&mut self, env: &mut impl Env, w: Box<Write>, t: &mut Now) -> bool {
        if self.degraded.is_some() {
            self.apply_locally(env, w);
            return true;
        }
        let before = *t;
        let result = env.swap(&self.name, w.expected, &w.next);
        *t = now(env);
        match result {
            Ok(SwapResult::Written) => {
                self.adopt(Shared::written(w.next), before.mono);
                env.emit(Event::Transition(w.transition));
                true
            }
            Ok(SwapResult::Conflict(Some(current))) => {
                self.adopt(Shared::written(current), before.mono);
                false
            }
            // Read again on the next refresh.
            Ok(SwapResult::Conflict(None)) | Err(StoreError::Corrupt(_)) => {
                self.cache = None;
                false
            }
            Err(e) => {
                self.degrade(env, e, *t);
                self.apply_locally(env, w);
                true
            }
        }
    }

    fn apply_locally(&mut self, env: &mut impl Env, w: Box<Write>) {
        if let Some(d) = &mut self.degraded {
            let mut transition = w.transition;
            if transition.reason == TransitionReason::Recovered {
                d.changes.closed_episode = d.local.record.opened_at_ms;
            }
            transition.local_only = true;
            transition.version = d.base_version;
            d.local = Shared::written(w.next);
            env.emit(Event::Transition(transition));
        }
    }

    fn adopt(&mut self, shared: Shared, read_at_mono: u64) {
        self.window.forget_before(shared.record.closed_at_ms);
        self.cache = Some(Cached {
            shared,
            read_at_mono,
        });
    }

    fn degrade(&mut self, env: &mut impl Env, error: StoreError, t: Now) {
        let retry_at_mono = t.mono.saturating_add(self.config.store_retry_after_ms);
        if let Some(d) = &mut self.degraded {
            d.retry_at_mono = retry_at_mono;
            return;
        }
        let local = self
            .cache
            .as_ref()
            .map(|c| c.shared.clone())
            .unwrap_or_else(|| Shared::loaded(None));
        self.degraded = Some(Degraded {
            retry_at_mono,
            base_version: local.record.version,
            local,
            changes: LocalChanges::default(),
        });
        env.emit(Event::StoreDegraded(StoreFault {
            circuit: self.name.clone(),
            error,
            retry_at_ms: t.wall.saturating_add(self.config.store_retry_after_ms),
        }));
    }

    /// The record decisions are made on: the local one in local-only mode, else the cache.
    fn current(&self) -> &Shared {
        match (&self.degraded, &self.cache) {
            (Some(d), _) => &d.local,
            (None, Some(c)) => &c.shared,
            (None, None) => unreachable!("refresh() leaves a cache or local-only mode"),
        }
    }

    /// How long this environment can offer an admission lease from now: until its read of
    /// the record goes stale (or, in local-only mode, until it asks the store again), and only
    /// while no failure is pending in its window.
    fn lease_candidate(&self, t: Now) -> Option<u64> {
        if self.has_pending_failures() {
            return None;
        }
        let until = match (&self.degraded, &self.cache) {
            (Some(d), _) => d.retry_at_mono,
            (None, Some(c)) => c
                .read_at_mono
                .saturating_add(self.config.local_cache_max_age_ms),
            (None, None) => return None,
        };
        (until > t.mono).then(|| until - t.mono)
    }

    fn info_at(&self, t: Now) -> CircuitInfo {
        let failures = match self.config.failure_policy {
            FailurePolicy::ConsecutiveFailures(_) => {
                (self.window.count(), self.window.slow_count())
            }
            FailurePolicy::FailureRate(_) => self.rate.own_failures(),
        };
        let (record, local_only) = match (&self.degraded, &self.cache) {
            (Some(d), _) => (&d.local.record, true),
            (None, Some(c)) => (&c.shared.record, false),
            (None, None) => {
                let absent = Record::absent(0);
                return machine::info(&self.ctx(t.wall), &absent, failures, false);
            }
        };
        let mut info = machine::info(&self.ctx(t.wall), record, failures, local_only);
        if let Some(d) = &self.degraded
            && self.config.store_failure_mode == StoreFailureMode::Closed
        {
            info.retry_after_ms = Some(d.retry_at_mono.saturating_sub(t.mono));
        }
        info
    }
}
