//! The breaker: the Rust API over one circuit of an environment.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fleetbreaker_core::{CircuitInfo, Config, ConfigError, Outcome, PermitKind, Transition};

use crate::Error;
use crate::clock::Clock;
use crate::environment::{Environment, Op, Reply, Slot, TransitionHook};
use crate::store::Store;
use crate::util::block_on;

/// A circuit breaker whose state is shared, through its store, by every environment of a
/// fleet. Cheap to clone; clones share the circuit.
#[derive(Clone)]
pub struct Breaker {
    env: Environment,
    slot: Arc<Slot>,
}

/// Leave to make one call. Hand it back to [`Breaker::complete`]; dropping it instead abandons
/// the call (a probe permit is then taken over once its lease runs out).
#[derive(Debug)]
#[must_use = "hand the permit back to Breaker::complete"]
pub struct Permit(Grant);

#[derive(Debug)]
enum Grant {
    /// Admitted under the admission lease, without entering the component.
    Leased,
    Granted(fleetbreaker_core::Permit),
    /// The component could not decide (an internal fault): the call goes ahead, uncounted.
    Untracked,
}

impl Permit {
    /// Whether this call is the fleet's single probe of a half-open circuit.
    pub fn is_probe(&self) -> bool {
        matches!(&self.0, Grant::Granted(p) if p.kind == PermitKind::Probe)
    }

    /// Whether this call was admitted under the admission lease.
    pub fn is_leased(&self) -> bool {
        matches!(self.0, Grant::Leased)
    }

    /// The admission lease that came with this permit (epoch ms), when the component granted
    /// one: until then calls may be admitted without asking.
    pub fn lease_until_ms(&self) -> Option<u64> {
        match &self.0 {
            Grant::Granted(p) => p.lease_until_ms,
            _ => None,
        }
    }
}

/// Builds a [`Breaker`].
pub struct BreakerBuilder {
    name: String,
    config: Config,
    store: Option<Arc<dyn Store>>,
    clock: Option<Arc<dyn Clock>>,
    environment: Option<Environment>,
    listeners: Vec<TransitionHook>,
}

impl BreakerBuilder {
    /// The configuration (default: [`Config::default`], the seed's defaults).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The store of the shared record. The breaker gets an environment of its own over it;
    /// use [`BreakerBuilder::environment`] to share one.
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The clock of the breaker's own environment (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Runs the breaker in an existing environment (its store and clock), sharing the
    /// circuit with breakers of the same name there.
    pub fn environment(mut self, environment: &Environment) -> Self {
        self.environment = Some(environment.clone());
        self
    }

    /// Called with every transition this environment's writes make, after the call that
    /// made it. A panicking hook is logged and ignored.
    pub fn on_transition(mut self, hook: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.listeners.push(Arc::new(hook));
        self
    }

    /// Validates the name and the configuration and makes the circuit ready. Reads nothing
    /// from the store yet.
    pub fn build(self) -> Result<Breaker, Error> {
        let env = match (self.environment, self.store) {
            (Some(_), Some(_)) => return Err(conflicting("store")),
            (Some(_), None) if self.clock.is_some() => return Err(conflicting("clock")),
            (Some(env), None) => env,
            (None, Some(store)) => {
                let mut b = Environment::builder_arc(store);
                if let Some(clock) = self.clock {
                    b = b.clock_arc(clock);
                }
                b.build()?
            }
            (None, None) => {
                return Err(Error::Config(ConfigError {
                    field: "store".into(),
                    message: "a breaker needs a store (or an environment)".into(),
                }));
            }
        };
        fleetbreaker_core::config::validate_name(&self.name)?;
        let slot = env.slot(&self.name, &self.config)?;
        if let Err(e) = block_on(env.run(&slot, Op::Create)) {
            env.forget_slot(&self.name);
            return Err(e);
        }
        for hook in self.listeners {
            slot.add_listener(hook);
        }
        Ok(Breaker { env, slot })
    }
}

fn conflicting(field: &str) -> Error {
    Error::Config(ConfigError {
        field: field.into(),
        message: format!("give either an environment or a {field}: the environment has its own"),
    })
}

fn max_duration(duration: Option<Duration>) -> Result<Option<u64>, Error> {
    match duration {
        None => Ok(None),
        Some(d) if d.as_millis() <= fleetbreaker_core::config::MAX_DURATION_MS as u128 => {
            Ok(Some(d.as_millis() as u64))
        }
        Some(d) => Err(Error::Config(ConfigError {
            field: "duration".into(),
            message: format!("must be at most ten years, got {d:?}"),
        })),
    }
}

impl Breaker {
    /// Starts building a breaker for the circuit `name`.
    pub fn builder(name: impl Into<String>) -> BreakerBuilder {
        BreakerBuilder {
            name: name.into(),
            config: Config::default(),
            store: None,
            clock: None,
            environment: None,
            listeners: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.slot.name
    }

    pub fn config(&self) -> &Config {
        &self.slot.config
    }

    pub fn environment(&self) -> &Environment {
        &self.env
    }

    /// Asks to make one call. `Err(Error::Open(info))` when the circuit rejects it.
    ///
    /// While the admission lease holds, this is a clock read and a compare: no call into the
    /// component, no lock, no I/O.
    #[inline]
    pub async fn acquire(&self) -> Result<Permit, Error> {
        if self.env.now_ms_coarse() < self.slot.lease_until_ms.load(Ordering::Relaxed) {
            return Ok(Permit(Grant::Leased));
        }
        self.acquire_slow().await
    }

    async fn acquire_slow(&self) -> Result<Permit, Error> {
        let leased = self.slot.take_leased_successes();
        match self.env.run(&self.slot, Op::Acquire(leased)).await {
            Ok(Reply::Acquired(Ok(permit))) => {
                self.slot
                    .lease_until_ms
                    .store(permit.lease_until_ms.unwrap_or(0), Ordering::Relaxed);
                Ok(Permit(Grant::Granted(permit)))
            }
            Ok(Reply::Acquired(Err(info))) => Err(Error::Open(Box::new(info))),
            Ok(_) => unreachable!("acquire answers with a permit or a rejection"),
            // The breaker must never become the outage: an internal fault admits the call.
            Err(e) => {
                log::error!(target: "fleetbreaker", "circuit '{}': {e}; admitting the call", self.slot.name);
                Ok(Permit(Grant::Untracked))
            }
        }
    }

    /// The admission lease's deadline (epoch ms; 0 when there is none), for bindings that keep
    /// their own copy so a healthy call makes no call at all into this library. Such a binding
    /// admits calls while `Clock::now_ms_coarse() < lease_until_ms()` (or its own equivalent),
    /// counts their successes for [`Breaker::add_leased_successes`], and reports a failure at
    /// once with [`Breaker::complete_leased`].
    #[inline]
    pub fn lease_until_ms(&self) -> u64 {
        self.slot.lease_until_ms.load(Ordering::Relaxed)
    }

    /// For bindings whose own calls cost more than this check: admits a call under the
    /// admission lease if it holds, counting it as a success unless
    /// [`Breaker::leased_call_failed`] says otherwise. A coarse clock read and an atomic
    /// increment.
    #[inline]
    pub fn try_admit_leased(&self) -> bool {
        if self.env.now_ms_coarse() < self.slot.lease_until_ms.load(Ordering::Relaxed) {
            self.slot.leased_successes.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// A call admitted by [`Breaker::try_admit_leased`] did not succeed: its provisional
    /// success is taken back, and a failure is reported at once.
    pub async fn leased_call_failed(&self, outcome: Outcome) {
        let _ =
            self.slot
                .leased_successes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        match outcome {
            Outcome::Success => self.add_leased_successes(1),
            Outcome::Ignored => {}
            Outcome::Failure => self.complete_leased(outcome).await,
        }
    }

    /// Adds successes a binding counted under the lease; they are reported with the next call
    /// into the component.
    pub fn add_leased_successes(&self, successes: u32) {
        if successes > 0 {
            self.slot
                .leased_successes
                .fetch_add(successes, Ordering::Relaxed);
        }
    }

    /// Reports how a call a binding admitted under the lease (without [`Breaker::acquire`])
    /// ended.
    pub async fn complete_leased(&self, outcome: Outcome) {
        self.complete(Permit(Grant::Leased), outcome).await
    }

    /// Reports how the call made with `permit` ended.
    #[inline]
    pub async fn complete(&self, permit: Permit, outcome: Outcome) {
        let op = match (permit.0, outcome) {
            (Grant::Untracked, _) => return,
            (Grant::Leased, Outcome::Success) => {
                self.slot.leased_successes.fetch_add(1, Ordering::Relaxed);
                return;
            }
            (Grant::Leased, Outcome::Ignored) => return,
            // A failure ends the lease and is reported at once, with the successes before it.
            (Grant::Leased, Outcome::Failure) => {
                self.slot.end_lease();
                Op::CompleteLeased(self.slot.take_leased_successes(), outcome)
            }
            // A success of a call that came with a lease changes nothing the component must
            // decide now (its window was empty): count it like a leased success, in order
            // with the others, and save the crossing.
            (Grant::Granted(p), Outcome::Success)
                if p.kind == PermitKind::Normal && p.lease_until_ms.is_some() =>
            {
                self.slot.leased_successes.fetch_add(1, Ordering::Relaxed);
                return;
            }
            (Grant::Granted(p), outcome) => {
                if outcome == Outcome::Failure {
                    // Any failure ends the lease: the next calls must be counted one by one.
                    self.slot.end_lease();
                    // Successes counted before this failure are reported first, so the
                    // failure is not erased by them later.
                    let earlier = self.slot.take_leased_successes();
                    if earlier > 0 {
                        let flush = Op::CompleteLeased(earlier, Outcome::Ignored);
                        if let Err(e) = self.env.run(&self.slot, flush).await {
                            log::error!(target: "fleetbreaker", "circuit '{}': {e}", self.slot.name);
                        }
                    }
                }
                Op::Complete(p, outcome)
            }
        };
        if let Err(e) = self.env.run(&self.slot, op).await {
            log::error!(target: "fleetbreaker", "circuit '{}': {e}", self.slot.name);
        }
    }

    /// Runs `call` under the breaker and returns its result unchanged, or `Err(Error::Open)`
    /// without running it. An `Err` from `call` counts as a failure.
    ///
    /// If the returned future is dropped before `call` finishes, the call counts as nothing.
    pub async fn call<T, E, F>(&self, call: F) -> Result<Result<T, E>, Error>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.call_with(call, |r| match r {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        })
        .await
    }

    /// Like [`Breaker::call`], with `classify` deciding the outcome from the result (for
    /// example, to ignore errors that say nothing about the downstream's health).
    pub async fn call_with<T, F, C>(&self, call: F, classify: C) -> Result<T, Error>
    where
        F: Future<Output = T>,
        C: FnOnce(&T) -> Outcome,
    {
        let permit = self.acquire().await?;
        let result = call.await;
        let outcome = classify(&result);
        self.complete(permit, outcome).await;
        Ok(result)
    }

    /// The circuit as this environment sees it, reading the store if its copy is stale.
    pub async fn info(&self) -> Result<CircuitInfo, Error> {
        match self.env.run(&self.slot, Op::Info).await? {
            Reply::Info(info) => Ok(info),
            _ => unreachable!("info answers with info"),
        }
    }

    /// Rejects every call, fleet-wide, for `duration` or until changed. Reaches every
    /// environment within `local_cache_max_age`.
    pub async fn force_open(
        &self,
        duration: Option<Duration>,
        reason: &str,
    ) -> Result<CircuitInfo, Error> {
        let duration = max_duration(duration)?;
        self.operate(Op::ForceOpen(duration, reason.to_string()))
            .await
    }

    /// Admits every call and counts nothing, fleet-wide, for `duration` or until changed.
    pub async fn force_closed(
        &self,
        duration: Option<Duration>,
        reason: &str,
    ) -> Result<CircuitInfo, Error> {
        let duration = max_duration(duration)?;
        self.operate(Op::ForceClosed(duration, reason.to_string()))
            .await
    }

    /// Writes a fresh closed record, whatever the state.
    pub async fn reset(&self) -> Result<CircuitInfo, Error> {
        self.operate(Op::Reset).await
    }

    async fn operate(&self, op: Op) -> Result<CircuitInfo, Error> {
        self.slot.end_lease();
        match self.env.run(&self.slot, op).await? {
            Reply::Operated(result) => result.map_err(Error::Store),
            _ => unreachable!("operator calls answer with their result"),
        }
    }
}
