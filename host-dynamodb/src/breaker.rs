//! The breaker: the Rust API over one circuit of an environment.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use fleetbreaker_core::{CircuitInfo, Config, ConfigError, Outcome, PermitKind, Transition};

use crate::Error;
use crate::bridge::spawn_detached;
use crate::clock::Clock;
use crate::environment::{
    Attachment, Environment, Op, Reply, Slot, TransitionHook, boxed_in_place,
};
use crate::events::Events;
use crate::fork;
use crate::kill_switch;
use crate::stores::Store;
use crate::util::block_on;

/// A circuit breaker whose state is shared, through its store, by every environment of a
/// fleet. Cheap to clone; clones share the circuit. Its transition listeners live as long as
/// it (or a clone) does.
#[derive(Clone)]
pub struct Breaker {
    env: Environment,
    slot: Arc<Slot>,
    /// The listeners this breaker added; removed when the last clone is dropped.
    _listeners: Option<Arc<Listeners>>,
}

struct Listeners {
    slot: Arc<Slot>,
    keys: Vec<u64>,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.slot.remove_listeners(&self.keys);
    }
}

/// Leave to make one call. Hand it back to [`Breaker::complete`]. Dropping it instead
/// abandons the call: a probe permit is then released at once, in the background (the call
/// counts as nothing), so a cancelled task never holds the fleet's only probe.
#[must_use = "hand the permit back to Breaker::complete"]
pub struct Permit {
    grant: Grant,
    /// For a probe: the breaker to release it with, if it is dropped.
    releaser: Option<Breaker>,
    /// When the call was admitted (coarse monotonic ms), kept only with `slow_call_ms`: a
    /// success slower than that is reported as a slow call.
    /// `UNTIMED` without: a plain number keeps the permit small, and the healthy path moves
    /// it twice.
    started_ms: u64,
}

#[derive(Debug)]
enum Grant {
    /// Admitted under the admission lease, without entering the component.
    Leased,
    Granted(fleetbreaker_core::Permit),
    /// The component could not decide (an internal fault): the call goes ahead, uncounted.
    Untracked,
    /// The kill switch is on: the call goes ahead and the breaker does nothing.
    Disabled,
    /// Completed; nothing left to release.
    Done,
}

/// A permit's `started_ms` when its call is not timed (no `slow_call_ms`).
const UNTIMED: u64 = u64::MAX;

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Permit").field(&self.grant).finish()
    }
}

impl Permit {
    fn new(grant: Grant, breaker: &Breaker) -> Permit {
        let releaser = match &grant {
            Grant::Granted(p) if p.kind == PermitKind::Probe => Some(breaker.clone()),
            _ => None,
        };
        let started_ms = match breaker.slot.config.slow_call_ms {
            Some(_) => breaker.env.monotonic_ms_coarse(),
            None => UNTIMED,
        };
        Permit {
            grant,
            releaser,
            started_ms,
        }
    }

    fn take(&mut self) -> Grant {
        self.releaser = None;
        std::mem::replace(&mut self.grant, Grant::Done)
    }

    /// Whether this call is the fleet's single probe of a half-open circuit.
    pub fn is_probe(&self) -> bool {
        matches!(&self.grant, Grant::Granted(p) if p.kind == PermitKind::Probe)
    }

    /// Whether this call was admitted under the admission lease.
    pub fn is_leased(&self) -> bool {
        matches!(self.grant, Grant::Leased)
    }

    /// Whether the kill switch (`FLEETBREAKER_DISABLED`, `POWERTOOLS_CIRCUIT_BREAKER_DISABLED`)
    /// let this call through without the breaker.
    pub fn is_disabled(&self) -> bool {
        matches!(self.grant, Grant::Disabled)
    }

    /// The admission lease that came with this permit (on the environment's monotonic clock),
    /// when the component granted one: until then calls may be admitted without asking.
    pub fn lease_until_ms(&self) -> Option<u64> {
        match &self.grant {
            Grant::Granted(p) => p.lease_until_ms,
            _ => None,
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(breaker) = self.releaser.take() else {
            return;
        };
        if let Grant::Granted(permit) = std::mem::replace(&mut self.grant, Grant::Done) {
            spawn_detached(async move {
                let (_, events) = breaker
                    .env
                    .run(&breaker.slot, Op::Complete(permit, Outcome::Ignored))
                    .await;
                drop(Events::new(breaker.env.clone(), events));
            });
        }
    }
}

/// The future of a breaker call that is usually ready at once (under the admission lease): then
/// it is small and holds only the answer; otherwise it holds the call's work, boxed.
#[must_use = "futures do nothing unless awaited"]
pub struct Quick<'a, T>(QuickInner<'a, T>);

enum QuickInner<'a, T> {
    Ready(Option<T>),
    Waiting(Pin<Box<dyn Future<Output = T> + Send + 'a>>),
}

impl<'a, T> Quick<'a, T> {
    fn ready(value: T) -> Quick<'a, T> {
        Quick(QuickInner::Ready(Some(value)))
    }

    fn waiting(work: Pin<Box<dyn Future<Output = T> + Send + 'a>>) -> Quick<'a, T> {
        Quick(QuickInner::Waiting(work))
    }
}

// The answer is never pinned (it is only moved out), and the work is pinned in its box.
impl<T> Unpin for Quick<'_, T> {}

impl<T> Future for Quick<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match &mut self.get_mut().0 {
            QuickInner::Ready(value) => Poll::Ready(value.take().expect("polled after completion")),
            QuickInner::Waiting(work) => work.as_mut().poll(cx),
        }
    }
}

impl<T> std::fmt::Debug for Quick<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            QuickInner::Ready(_) => "Quick(ready)",
            QuickInner::Waiting(_) => "Quick(waiting)",
        })
    }
}

/// A call's result with the events it produced, for hosts that choose where hooks run (see
/// [`Breaker::with_events`]).
#[derive(Debug)]
pub struct Delivery<T> {
    /// What the call returned.
    pub value: T,
    /// The events it produced, not yet delivered.
    pub events: Events,
}

impl<T> Delivery<T> {
    /// Delivers the events on this thread and returns the value.
    pub fn deliver(self) -> T {
        self.events.deliver();
        self.value
    }
}

/// Builds a [`Breaker`].
pub struct BreakerBuilder {
    name: String,
    config: Option<Config>,
    store: Option<Arc<dyn Store>>,
    clock: Option<Arc<dyn Clock>>,
    environment: Option<Environment>,
    listeners: Vec<TransitionHook>,
    attachment: Option<Attachment>,
}

impl BreakerBuilder {
    /// The configuration. Without one, the breaker takes the configuration of the circuit if
    /// it is already in use in the environment, else [`Config::default`] (the seed's
    /// defaults). A different configuration for a circuit in use is an error.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
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

    /// Called with every transition this environment's writes make, after the call that made
    /// it and with no breaker lock held: it may call any breaker. A panicking hook is logged
    /// and ignored. It is removed when the breaker (and every clone) is dropped.
    pub fn on_transition(mut self, hook: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.listeners.push(Arc::new(hook));
        self
    }

    /// Data the embedder keeps with the circuit (a language package keeps its own view of the
    /// configuration there): the first breaker's is kept while the circuit is in use, and
    /// every breaker of it reads that one with [`Breaker::attachment`].
    pub fn attachment(mut self, attachment: Attachment) -> Self {
        self.attachment = Some(attachment);
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
        if let Some(config) = &self.config {
            config.validate()?;
        }
        let slot = env.slot(&self.name, self.config.as_ref(), self.attachment)?;
        let (created, events) = block_on(env.run(&slot, Op::Create));
        drop(Events::new(env.clone(), events));
        created?;
        let listeners = (!self.listeners.is_empty()).then(|| {
            Arc::new(Listeners {
                keys: slot.add_listeners(self.listeners),
                slot: slot.clone(),
            })
        });
        Ok(Breaker {
            env,
            slot,
            _listeners: listeners,
        })
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
            config: None,
            store: None,
            clock: None,
            environment: None,
            listeners: Vec::new(),
            attachment: None,
        }
    }

    /// The circuit's name.
    pub fn name(&self) -> &str {
        &self.slot.name
    }

    /// The circuit's configuration.
    pub fn config(&self) -> &Config {
        &self.slot.config
    }

    /// The circuit's attachment: the one its first breaker was built with, if any.
    pub fn attachment(&self) -> Option<&Attachment> {
        self.slot.attachment.as_ref()
    }

    /// The environment this breaker's circuit belongs to.
    pub fn environment(&self) -> &Environment {
        &self.env
    }

    /// The calls of this breaker that hand back the events they produced instead of
    /// delivering them, for hosts that choose the thread where hooks run (the Python and
    /// Node bindings).
    pub fn with_events(&self) -> WithEvents<'_> {
        WithEvents(self)
    }

    /// Asks to make one call. `Err(Error::Open(info))` when the circuit rejects it.
    ///
    /// While the admission lease holds, this is a clock read and a compare: no call into the
    /// component, no lock, no I/O, and the future is ready at once.
    #[inline]
    pub fn acquire(&self) -> Quick<'_, Result<Permit, Error>> {
        if self.env.monotonic_ms_coarse() < self.slot.lease_until_ms.load(Ordering::Relaxed) {
            return Quick::ready(Ok(Permit::new(Grant::Leased, self)));
        }
        Quick::waiting(boxed_in_place(move || async move {
            self.with_events().acquire().await.deliver()
        }))
    }

    /// How much of the admission lease is left, in ms (0 when there is none). Bindings that
    /// keep their own copy of the lease (on their own monotonic clock) start from this.
    pub fn lease_remaining_ms(&self) -> u64 {
        if self.slot.config.slow_call_ms.is_some() {
            // Calls a binding admits itself are not timed: with slow calls, none is.
            return 0;
        }
        self.slot
            .lease_until_ms
            .load(Ordering::Relaxed)
            .saturating_sub(self.env.clock().monotonic_ms())
    }

    /// For bindings whose own calls cost more than this check: admits a call under the
    /// admission lease if it holds, counting it as a success unless
    /// [`WithEvents::leased_call_failed`] says otherwise. A coarse clock read and an atomic
    /// increment. Never with `slow_call_ms`: a call the binding admits is not timed, so every
    /// call then takes a [`Permit`], which is.
    #[inline]
    pub fn try_admit_leased(&self) -> bool {
        if self.env.monotonic_ms_coarse() < self.slot.lease_until_ms.load(Ordering::Relaxed)
            && self.slot.config.slow_call_ms.is_none()
        {
            self.slot.leased_successes.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// A call admitted by [`Breaker::try_admit_leased`] did not succeed: its provisional
    /// success is taken back, and a failure is reported at once.
    pub async fn leased_call_failed(&self, outcome: Outcome) {
        self.with_events()
            .leased_call_failed(outcome)
            .await
            .deliver()
    }

    /// A permit's outcome as the circuit counts it: a success slower than `slow_call_ms` is a
    /// slow call.
    fn timed(&self, permit: &Permit, outcome: Outcome) -> Outcome {
        match permit.started_ms {
            UNTIMED => outcome,
            started => {
                let elapsed = self.env.monotonic_ms_coarse().saturating_sub(started);
                outcome.timed(elapsed, self.slot.config.slow_call_ms)
            }
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
        self.complete(Permit::new(Grant::Leased, self), outcome)
            .await
    }

    /// Reports how the call made with `permit` ended. A success under the admission lease is
    /// ready at once.
    #[inline]
    pub fn complete(&self, mut permit: Permit, outcome: Outcome) -> Quick<'_, ()> {
        let outcome = self.timed(&permit, outcome);
        // The healthy path: a success under the lease is a counter increment, nothing more.
        let leased_success = outcome == Outcome::Success
            && match &permit.grant {
                Grant::Leased => true,
                Grant::Granted(p) => p.kind == PermitKind::Normal && p.lease_until_ms.is_some(),
                _ => false,
            };
        if leased_success {
            permit.take();
            self.slot.leased_successes.fetch_add(1, Ordering::Relaxed);
            return Quick::ready(());
        }
        Quick::waiting(boxed_in_place(move || async move {
            self.with_events().complete(permit, outcome).await.deliver()
        }))
    }

    /// Runs `call` under the breaker and returns its result unchanged, or `Err(Error::Open)`
    /// without running it. An `Err` from `call` counts as a failure.
    ///
    /// If the returned future is dropped before `call` finishes, the call counts as nothing
    /// and a probe permit it held is released.
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
        self.with_events().info().await.deliver()
    }

    /// Rejects every call, fleet-wide, for `duration` or until changed. Reaches every
    /// environment within `local_cache_max_age`.
    pub async fn force_open(
        &self,
        duration: Option<Duration>,
        reason: &str,
    ) -> Result<CircuitInfo, Error> {
        self.with_events()
            .force_open(duration, reason)
            .await
            .deliver()
    }

    /// Admits every call and counts nothing, fleet-wide, for `duration` or until changed.
    pub async fn force_closed(
        &self,
        duration: Option<Duration>,
        reason: &str,
    ) -> Result<CircuitInfo, Error> {
        self.with_events()
            .force_closed(duration, reason)
            .await
            .deliver()
    }

    /// Writes a fresh closed record, whatever the state.
    pub async fn reset(&self) -> Result<CircuitInfo, Error> {
        self.with_events().reset().await.deliver()
    }

    async fn run(&self, op: Op) -> (Result<Reply, Error>, Events) {
        let (reply, events) = self.env.run(&self.slot, op).await;
        (reply, Events::new(self.env.clone(), events))
    }
}

/// With the kill switch on (or set to something unreadable), what `acquire` answers instead of
/// asking the circuit.
fn switched_off(b: &Breaker) -> Option<Result<Permit, Error>> {
    match kill_switch() {
        Ok(false) => None,
        Ok(true) => {
            b.slot.end_lease();
            Some(Ok(Permit::new(Grant::Disabled, b)))
        }
        Err(e) => Some(Err(e)),
    }
}

/// A breaker's calls that hand back their events ([`Delivery`]) instead of delivering them:
/// the host then runs the hooks where a hook may call any breaker (see [`Events`]).
pub struct WithEvents<'a>(&'a Breaker);

impl WithEvents<'_> {
    /// [`Breaker::acquire`], asking the component whatever the lease says.
    pub async fn acquire(&self) -> Delivery<Result<Permit, Error>> {
        let b = self.0;
        let none = || Events::none();
        // As in `Breaker::acquire`: under the admission lease, no call into the component.
        // (Written out in both: a shared helper returning `Option<Permit>` costs the healthy
        // path 16 ns, measured.)
        if b.env.monotonic_ms_coarse() < b.slot.lease_until_ms.load(Ordering::Relaxed) {
            return Delivery {
                value: Ok(Permit::new(Grant::Leased, b)),
                events: none(),
            };
        }
        // The kill switch matters where the breaker would reject, probe or count. Read before
        // asking when the circuit was last seen unsettled (so a switched-off breaker neither
        // reads nor writes), else only when the answer is not a plain admission.
        if b.slot.unsettled.load(Ordering::Relaxed)
            && let Some(value) = switched_off(b)
        {
            return Delivery {
                value,
                events: none(),
            };
        }
        let leased = b.slot.take_leased_successes();
        let (reply, events) = b.run(Op::Acquire(leased, fork::random_u64())).await;
        let plain = matches!(&reply, Ok(Reply::Acquired(Ok(p))) if p.kind == PermitKind::Normal);
        if !plain && let Some(value) = switched_off(b) {
            // A probe permit taken meanwhile is released (in the background, as when dropped).
            if let Ok(Reply::Acquired(Ok(permit))) = reply {
                drop(Permit::new(Grant::Granted(permit), b));
            }
            return Delivery { value, events };
        }
        let value = match reply {
            Ok(Reply::Acquired(Ok(permit))) => Ok(Permit::new(Grant::Granted(permit), b)),
            Ok(Reply::Acquired(Err(info))) => Err(Error::Open(info)),
            Ok(_) => unreachable!("acquire answers with a permit or a rejection"),
            // The breaker must never become the outage: an internal fault admits the call.
            Err(e) => {
                log::error!(target: "fleetbreaker", "circuit '{}': {e}; admitting the call", b.slot.name);
                Ok(Permit::new(Grant::Untracked, b))
            }
        };
        Delivery { value, events }
    }

    /// [`Breaker::leased_call_failed`].
    pub async fn leased_call_failed(&self, outcome: Outcome) -> Delivery<()> {
        let b = self.0;
        let _ = b
            .slot
            .leased_successes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        match outcome {
            Outcome::Success => {
                b.add_leased_successes(1);
                Delivery {
                    value: (),
                    events: Events::none(),
                }
            }
            Outcome::Ignored => Delivery {
                value: (),
                events: Events::none(),
            },
            Outcome::Failure | Outcome::Slow => {
                self.complete(Permit::new(Grant::Leased, b), outcome).await
            }
        }
    }

    /// [`Breaker::complete`].
    pub async fn complete(&self, mut permit: Permit, outcome: Outcome) -> Delivery<()> {
        let b = self.0;
        let outcome = b.timed(&permit, outcome);
        let failed = outcome.is_failure();
        let none = || Delivery {
            value: (),
            events: Events::none(),
        };
        let op = match (permit.take(), outcome) {
            (Grant::Untracked | Grant::Disabled | Grant::Done, _) => return none(),
            (Grant::Leased, Outcome::Success) => {
                b.slot.leased_successes.fetch_add(1, Ordering::Relaxed);
                return none();
            }
            (Grant::Leased, Outcome::Ignored) => return none(),
            // A failure ends the lease and is reported at once, with the successes before it
            // (unless the kill switch is on: then the breaker does nothing at all).
            (Grant::Leased, Outcome::Failure | Outcome::Slow) => {
                b.slot.end_lease();
                if kill_switch().unwrap_or(false) {
                    return none();
                }
                Op::CompleteLeased(b.slot.take_leased_successes(), outcome)
            }
            // A success of a call that came with a lease changes nothing the component must
            // decide now (its window was empty): count it like a leased success, in order
            // with the others, and save the crossing.
            (Grant::Granted(p), Outcome::Success)
                if p.kind == PermitKind::Normal && p.lease_until_ms.is_some() =>
            {
                b.slot.leased_successes.fetch_add(1, Ordering::Relaxed);
                return none();
            }
            (Grant::Granted(p), outcome) => {
                // With the kill switch on, a failure counts as nothing (a probe's permit is
                // still released).
                let outcome = if failed && kill_switch().unwrap_or(false) {
                    b.slot.end_lease();
                    Outcome::Ignored
                } else {
                    outcome
                };
                let mut events = Events::none();
                if outcome.is_failure() {
                    // Any failure ends the lease: the next calls must be counted one by one.
                    b.slot.end_lease();
                    // Successes counted before this failure are reported first, so the
                    // failure is not erased by them later.
                    let earlier = b.slot.take_leased_successes();
                    if earlier > 0 {
                        let (flushed, more) =
                            b.run(Op::CompleteLeased(earlier, Outcome::Ignored)).await;
                        if let Err(e) = flushed {
                            log::error!(target: "fleetbreaker", "circuit '{}': {e}", b.slot.name);
                        }
                        events.extend(more);
                    }
                }
                let (done, more) = b.run(Op::Complete(p, outcome)).await;
                if let Err(e) = done {
                    log::error!(target: "fleetbreaker", "circuit '{}': {e}", b.slot.name);
                }
                events.extend(more);
                return Delivery { value: (), events };
            }
        };
        let (done, events) = b.run(op).await;
        if let Err(e) = done {
            log::error!(target: "fleetbreaker", "circuit '{}': {e}", b.slot.name);
        }
        Delivery { value: (), events }
    }

    /// [`Breaker::info`].
    pub async fn info(&self) -> Delivery<Result<CircuitInfo, Error>> {
        let (reply, events) = self.0.run(Op::Info).await;
        let value = reply.map(|r| match r {
            Reply::Info(info) => *info,
            _ => unreachable!("info answers with info"),
        });
        Delivery { value, events }
    }

    /// [`Breaker::force_open`].
    pub async fn force_open(
        &self,
        duration: Option<Duration>,
        reason: &str,
    ) -> Delivery<Result<CircuitInfo, Error>> {
        match max_duration(duration) {
            Ok(d) => self.operate(Op::ForceOpen(d, reason.to_string())).await,
            Err(e) => Delivery {
                value: Err(e),
                events: Events::none(),
            },
        }
    }

    /// [`Breaker::force_closed`].
    pub async fn force_closed(
        &self,
        duration: Option<Duration>,
        reason: &str,
    ) -> Delivery<Result<CircuitInfo, Error>> {
        match max_duration(duration) {
            Ok(d) => self.operate(Op::ForceClosed(d, reason.to_string())).await,
            Err(e) => Delivery {
                value: Err(e),
                events: Events::none(),
            },
        }
    }

    /// [`Breaker::reset`].
    pub async fn reset(&self) -> Delivery<Result<CircuitInfo, Error>> {
        self.operate(Op::Reset).await
    }

    async fn operate(&self, op: Op) -> Delivery<Result<CircuitInfo, Error>> {
        self.0.slot.end_lease();
        let (reply, events) = self.0.run(op).await;
        let value = reply.and_then(|r| match r {
            Reply::Operated(result) => result.map(|i| *i).map_err(Error::Store),
            _ => unreachable!("operator calls answer with their result"),
        });
        Delivery { value, events }
    }
}
