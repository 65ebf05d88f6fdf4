//! An environment: the breaker component with its store and clock, and the circuits its
//! breakers use. Breakers with the same name share one circuit; each circuit has a component
//! instance of its own, so one circuit's store I/O never holds up another's decisions. In a
//! fleet, each Lambda execution environment (or process) is one environment.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use fleetbreaker_core::{
    CircuitInfo, CircuitState, Config, ConfigError, Event, Outcome, Permit, PermitKind, StoreError,
    Transition, config,
};
use wasmtime::component::ResourceAny;

use crate::Error;
use crate::bridge::spawn_detached;
use crate::clock::{Clock, SystemClock};
use crate::component::bindings::{self, Fleetbreaker};
use crate::component::host::HostCtx;
use crate::component::runtime::runtime;
use crate::events::Events;
use crate::fork::{self, ForkLocal, Scope};
use crate::stores::Store;
use crate::util::lock;

pub(crate) type TransitionHook = Arc<dyn Fn(&Transition) + Send + Sync>;
/// What an embedder keeps with a circuit (see [`crate::BreakerBuilder::attachment`]).
pub type Attachment = Arc<dyn std::any::Any + Send + Sync>;
type EventHook = Arc<dyn Fn(&Event) + Send + Sync>;

/// The circuits of one environment, shared by its breakers; cheap to clone.
#[derive(Clone)]
pub struct Environment {
    inner: Arc<EnvInner>,
}

pub(crate) struct EnvInner {
    /// The identity the embedder chose, if any; otherwise one is minted per process.
    chosen_id: Option<String>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    on_event: Option<EventHook>,
    /// The identity of this process: a forked child or a restored snapshot gets a new one (its
    /// probe tokens must not be the parent's).
    id: ForkLocal<String>,
    /// Circuits in use, by name. A circuit whose last breaker is gone is released with its
    /// instance, so a process that sees many names keeps bounded memory.
    slots: Mutex<HashMap<String, Weak<Slot>>>,
}

/// The component instance of one circuit.
struct Instance {
    store: wasmtime::Store<HostCtx>,
    bindings: Fleetbreaker,
    circuit: ResourceAny,
}

/// The host's side of one circuit: its configuration, the admission lease, and listeners.
/// It lives as long as a breaker of that circuit does.
pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) config: Config,
    /// Until this time (on the monotonic clock) calls are admitted without entering the
    /// component.
    pub(crate) lease_until_ms: AtomicU64,
    /// Successes counted under the lease, not yet reported.
    pub(crate) leased_successes: AtomicU32,
    /// The last decision here was not a plain admission (a rejection, a probe, a failure): the
    /// kill switch is then read before asking the component, not only after.
    pub(crate) unsettled: std::sync::atomic::AtomicBool,
    listeners: Mutex<Vec<(u64, TransitionHook)>>,
    /// The first breaker's attachment, kept while the circuit is in use.
    pub(crate) attachment: Option<Attachment>,
    /// This circuit's component instance: `None` until first use, and again after a fault in
    /// the component (it is rebuilt). Held across the call's store I/O, which is this
    /// circuit's alone. A forked child or a restored snapshot gets a new one (the old one may
    /// be locked by a thread that does not exist there, and its probe tokens are the parent's).
    instance: ForkLocal<tokio::sync::Mutex<Option<Instance>>>,
    env: Weak<EnvInner>,
}

impl Slot {
    pub(crate) fn end_lease(&self) {
        self.lease_until_ms.store(0, Ordering::Relaxed);
    }

    pub(crate) fn take_leased_successes(&self) -> u32 {
        self.leased_successes.swap(0, Ordering::Relaxed)
    }

    /// Adds listeners; they stay until [`Slot::remove_listeners`] with the returned keys.
    pub(crate) fn add_listeners(&self, hooks: Vec<TransitionHook>) -> Vec<u64> {
        let mut listeners = lock(&self.listeners);
        hooks
            .into_iter()
            .map(|hook| {
                let key = next_key();
                listeners.push((key, hook));
                key
            })
            .collect()
    }

    pub(crate) fn remove_listeners(&self, keys: &[u64]) {
        lock(&self.listeners).retain(|(key, _)| !keys.contains(key));
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(env) = self.env.upgrade() {
            let mut slots = lock(&env.slots);
            if slots
                .get(&self.name)
                .is_some_and(|weak| weak.strong_count() == 0)
            {
                slots.remove(&self.name);
            }
        }
    }
}

fn next_key() -> u64 {
    static KEYS: AtomicU64 = AtomicU64::new(1);
    KEYS.fetch_add(1, Ordering::Relaxed)
}

/// A request to the component for one circuit.
pub(crate) enum Op {
    Create,
    /// The successes counted under the lease, and the permit's random id.
    Acquire(u32, u64),
    Complete(Permit, Outcome),
    CompleteLeased(u32, Outcome),
    Info,
    ForceOpen(Option<u64>, String),
    ForceClosed(Option<u64>, String),
    Reset,
}

/// A component call's answer. The circuit's info is boxed: replies travel through several
/// layers, and a small one moves cheaply.
pub(crate) enum Reply {
    Done,
    Acquired(Result<Permit, Box<CircuitInfo>>),
    Info(Box<CircuitInfo>),
    Operated(Result<Box<CircuitInfo>, StoreError>),
}

/// What a component call gives back: its reply, and the events it emitted (to deliver).
pub(crate) type Done = (Result<Reply, Error>, Vec<Event>);

/// Builds an [`Environment`].
pub struct EnvironmentBuilder {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    id: Option<String>,
    on_event: Option<EventHook>,
}

impl EnvironmentBuilder {
    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub(crate) fn clock_arc(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// This environment's identity in the records it writes and the probe tokens it holds.
    /// The default is the process id plus a random part, minted again after a `fork()` or a
    /// snapshot restore. A chosen identity is kept as it is; probe tokens stay unique anyway,
    /// since each carries a random part of its own.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Called with every event of every circuit in this environment (transitions, store
    /// trouble, corrupt records), after the call that caused it, with no breaker lock held.
    /// Events are also logged through the `log` crate.
    pub fn on_event(mut self, hook: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(hook));
        self
    }

    /// The environment; a chosen identity that is not valid is a configuration error.
    pub fn build(self) -> Result<Environment, Error> {
        if let Some(id) = &self.id {
            config::validate_environment(id)?;
        }
        fork::watch();
        // Load the component now, so a packaging fault shows here and not on the first call.
        runtime()?;
        Ok(Environment {
            inner: Arc::new(EnvInner {
                chosen_id: self.id,
                store: self.store,
                clock: self.clock,
                on_event: self.on_event,
                id: ForkLocal::new(Scope::Identity),
                slots: Mutex::new(HashMap::new()),
            }),
        })
    }
}

fn new_environment_id() -> String {
    format!(
        "{}-{:012x}",
        std::process::id(),
        fork::random_u64() & 0xffff_ffff_ffff
    )
}

impl EnvInner {
    fn id(&self) -> &str {
        self.id
            .get_or_init(|| self.chosen_id.clone().unwrap_or_else(new_environment_id))
    }
}

impl Environment {
    /// An environment over `store`, with the system clock and a fresh identity.
    pub fn builder(store: impl Store) -> EnvironmentBuilder {
        Environment::builder_arc(Arc::new(store))
    }

    pub(crate) fn builder_arc(store: Arc<dyn Store>) -> EnvironmentBuilder {
        EnvironmentBuilder {
            store,
            clock: Arc::new(SystemClock),
            id: None,
            on_event: None,
        }
    }

    /// This environment's identity (new in a forked child or a restored snapshot, unless it
    /// was chosen).
    pub fn id(&self) -> &str {
        self.inner.id()
    }

    /// The circuits breakers of this environment hold, for tests and monitoring: a circuit is
    /// released when its last breaker is dropped.
    pub fn circuits_in_use(&self) -> usize {
        lock(&self.inner.slots)
            .values()
            .filter(|s| s.strong_count() > 0)
            .count()
    }

    /// The component instances this environment holds (one per circuit in use that has been
    /// called), for tests.
    #[doc(hidden)]
    pub async fn component_circuits(&self) -> usize {
        let slots: Vec<Arc<Slot>> = lock(&self.inner.slots)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        let mut count = 0;
        for slot in slots {
            if let Some(instance) = slot.instance.get()
                && instance.lock().await.is_some()
            {
                count += 1;
            }
        }
        count
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    #[inline]
    pub(crate) fn monotonic_ms_coarse(&self) -> u64 {
        self.inner.clock.monotonic_ms_coarse()
    }

    /// The slot of circuit `name`; breakers of the same name share it. With a `config`, it
    /// must be the circuit's; without, the breaker takes the circuit's (or the default, for a
    /// circuit not yet in use here). A new slot keeps `attachment`.
    pub(crate) fn slot(
        &self,
        name: &str,
        config: Option<&Config>,
        attachment: Option<Attachment>,
    ) -> Result<Arc<Slot>, Error> {
        let mut slots = lock(&self.inner.slots);
        if let Some(slot) = slots.get(name).and_then(Weak::upgrade) {
            if config.is_some_and(|c| c != &slot.config) {
                return Err(Error::Config(config_conflict(name)));
            }
            return Ok(slot);
        }
        let slot = Arc::new(Slot {
            name: name.to_string(),
            config: config.cloned().unwrap_or_default(),
            lease_until_ms: AtomicU64::new(0),
            leased_successes: AtomicU32::new(0),
            unsettled: std::sync::atomic::AtomicBool::new(false),
            listeners: Mutex::new(Vec::new()),
            attachment,
            instance: ForkLocal::new(Scope::Identity),
            env: Arc::downgrade(&self.inner),
        });
        slots.insert(name.to_string(), Arc::downgrade(&slot));
        Ok(slot)
    }

    /// Runs `op` on the circuit of `slot` inside the component, and returns what it replied
    /// with the events it emitted, for the caller to deliver where hooks may run.
    ///
    /// The call runs to its end even if this future is dropped (a cancelled task, a timeout):
    /// it then finishes in the background, a probe permit it was granted is released, and
    /// its events are delivered on the events thread. Stopping a component call halfway would
    /// leave the instance unusable.
    pub(crate) async fn run(&self, slot: &Arc<Slot>, op: Op) -> Done {
        let inner = self.inner.clone();
        let owned_slot = slot.clone();
        let work = Recycled::new(move || async move { run_op(&inner, &owned_slot, op).await });
        Completing {
            work: Some(work),
            env: self.clone(),
            slot: slot.clone(),
        }
        .await
    }

    /// Delivers events now, on this thread: logs them, then calls the environment's
    /// `on_event` hook and the circuit's transition listeners. Hooks that panic are logged and
    /// ignored.
    pub(crate) fn deliver(&self, events: &[Event]) {
        for event in events {
            log_event(event);
            if let Some(hook) = &self.inner.on_event {
                guarded("on_event", || hook(event));
            }
            if let Event::Transition(t) = event {
                let slot = lock(&self.inner.slots)
                    .get(&t.circuit)
                    .and_then(Weak::upgrade);
                let listeners: Vec<TransitionHook> = match &slot {
                    Some(slot) => lock(&slot.listeners)
                        .iter()
                        .map(|(_, h)| h.clone())
                        .collect(),
                    None => Vec::new(),
                };
                for hook in listeners {
                    guarded("on_transition", || hook(t));
                }
            }
        }
    }
}

/// Boxes the future `make` returns, writing it straight into the allocation: the future of a
/// component call is large, and building it on the stack to move it in costs a copy per call.
pub(crate) fn boxed_in_place<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    let mut place = Box::<F>::new_uninit();
    place.write(make());
    // SAFETY: written just above.
    Box::into_pin(unsafe { place.assume_init() })
}

/// A future on the heap whose allocation is kept for the next one on the same thread. The
/// future of a component call is over 1 KB, past the allocator's per-thread cache, and one is
/// made for every call that enters the component.
struct Recycled<F: Future> {
    future: std::ptr::NonNull<F>,
}

thread_local! {
    /// One spare allocation, with its layout.
    static SPARE: std::cell::Cell<Option<(std::ptr::NonNull<u8>, std::alloc::Layout)>> =
        const { std::cell::Cell::new(None) };
    static SPARE_FREED_AT_EXIT: SpareGuard = const { SpareGuard };
}

/// Frees the thread's spare allocation when the thread ends.
struct SpareGuard;

impl Drop for SpareGuard {
    fn drop(&mut self) {
        if let Ok(Some((ptr, layout))) = SPARE.try_with(|s| s.take()) {
            // SAFETY: the spare was allocated by the global allocator with this layout.
            unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
        }
    }
}

impl<F: Future> Recycled<F> {
    fn new(make: impl FnOnce() -> F) -> Recycled<F> {
        let layout = std::alloc::Layout::new::<F>();
        let spare = SPARE
            .try_with(|s| match s.take() {
                Some((ptr, l)) if l == layout => Some(ptr),
                other => {
                    s.set(other);
                    None
                }
            })
            .ok()
            .flatten();
        let ptr = match spare {
            Some(ptr) => ptr.cast::<F>(),
            None => {
                let _ = SPARE_FREED_AT_EXIT.try_with(|_| ());
                // SAFETY: `F` is not zero-sized (it holds the call's state).
                let raw = unsafe { std::alloc::alloc(layout) };
                match std::ptr::NonNull::new(raw.cast::<F>()) {
                    Some(ptr) => ptr,
                    None => std::alloc::handle_alloc_error(layout),
                }
            }
        };
        // SAFETY: `ptr` is a fresh or recycled allocation of `F`'s layout, uninitialised; the
        // future is built straight into it.
        unsafe { ptr.as_ptr().write(make()) };
        Recycled { future: ptr }
    }
}

impl<F: Future> Future for Recycled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the future lives at a fixed heap address until `drop`; it is never moved.
        unsafe { Pin::new_unchecked(&mut *self.future.as_ptr()) }.poll(cx)
    }
}

impl<F: Future> Drop for Recycled<F> {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::new::<F>();
        // SAFETY: the future is initialised and dropped exactly once, in place.
        unsafe { std::ptr::drop_in_place(self.future.as_ptr()) };
        let ptr = self.future.cast::<u8>();
        let kept = SPARE
            .try_with(|s| match s.take() {
                None => {
                    // This thread may never have allocated one: make sure it frees it.
                    let _ = SPARE_FREED_AT_EXIT.try_with(|_| ());
                    s.set(Some((ptr, layout)));
                    true
                }
                other => {
                    s.set(other);
                    false
                }
            })
            .unwrap_or(false);
        if !kept {
            // SAFETY: allocated by the global allocator with this layout.
            unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
        }
    }
}

// SAFETY: a `Recycled<F>` owns its `F` as a `Box<F>` would.
unsafe impl<F: Future + Send> Send for Recycled<F> {}
// The future is never moved out of its allocation.
impl<F: Future> Unpin for Recycled<F> {}

/// Drives a component call; if dropped before the end, finishes it in the background.
struct Completing<F: Future<Output = Done> + Send + 'static> {
    work: Option<Recycled<F>>,
    env: Environment,
    slot: Arc<Slot>,
}

impl<F: Future<Output = Done> + Send + 'static> Future for Completing<F> {
    type Output = Done;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Done> {
        let work = self.work.as_mut().expect("polled after completion");
        match Pin::new(work).poll(cx) {
            Poll::Ready(done) => {
                self.work = None;
                Poll::Ready(done)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F: Future<Output = Done> + Send + 'static> Drop for Completing<F> {
    fn drop(&mut self) {
        let Some(work) = self.work.take() else {
            return;
        };
        let env = self.env.clone();
        let slot = self.slot.clone();
        spawn_detached(async move {
            let (reply, mut events) = work.await;
            // Nobody will use a permit granted to a caller that went away: a probe permit
            // would hold the fleet's only probe until its lease ran out.
            if let Ok(Reply::Acquired(Ok(permit))) = reply
                && permit.kind == PermitKind::Probe
            {
                let (_, more) =
                    run_op(&env.inner, &slot, Op::Complete(permit, Outcome::Ignored)).await;
                events.extend(more);
            }
            drop(Events::new(env, events));
        });
    }
}

async fn run_op(inner: &Arc<EnvInner>, slot: &Slot, op: Op) -> Done {
    let instance = slot.instance.get_or_init(|| tokio::sync::Mutex::new(None));
    let mut guard = instance.lock().await;
    let result = run_locked(inner, inner.id(), &mut guard, slot, &op).await;
    let events = match guard.as_mut() {
        Some(i) if i.store.data().has_events() => i.store.data_mut().take_events(),
        _ => Vec::new(),
    };
    if matches!(result, Err(Error::Component(_))) {
        *guard = None;
    }
    // The admission lease is set while the circuit's instance is still locked, so it reflects
    // the last decision: a lease granted by one call cannot outlive a trip decided by the next.
    set_lease(slot, &op, &result);
    drop(guard);
    (result, events)
}

fn set_lease(slot: &Slot, op: &Op, result: &Result<Reply, Error>) {
    let lease = match (op, result) {
        (Op::Acquire(..), Ok(Reply::Acquired(Ok(p)))) => {
            slot.unsettled
                .store(p.kind == PermitKind::Probe, Ordering::Relaxed);
            p.lease_until_ms.unwrap_or(0)
        }
        (Op::Complete(p, outcome), _) if p.kind == PermitKind::Normal && !outcome.is_failure() => {
            return;
        }
        (Op::CompleteLeased(_, outcome), _) if !outcome.is_failure() => return,
        (Op::Create, _) => return,
        (Op::Info, Ok(Reply::Info(info)))
            if matches!(
                info.state,
                CircuitState::Closed | CircuitState::ForcedClosed
            ) && info.failure_count == 0 =>
        {
            return;
        }
        // A rejection, a failure, a probe's outcome, an operator's write, a fault, or a
        // look that found the circuit open: no call goes by without asking.
        _ => {
            slot.unsettled.store(true, Ordering::Relaxed);
            0
        }
    };
    slot.lease_until_ms.store(lease, Ordering::Relaxed);
}

async fn run_locked(
    inner: &EnvInner,
    environment_id: &str,
    guard: &mut Option<Instance>,
    slot: &Slot,
    op: &Op,
) -> Result<Reply, Error> {
    if guard.is_none() {
        let rt = runtime()?;
        let ctx = HostCtx::new(inner.store.clone(), inner.clock.clone());
        let mut store = wasmtime::Store::new(rt.pre.engine(), ctx);
        let bindings = rt.pre.instantiate_async(&mut store).await?;
        let config: bindings::w::Config = slot.config.clone().into();
        let created = bindings
            .fleetbreaker_breaker_breaker()
            .circuit()
            .call_create(&mut store, &slot.name, config, environment_id)
            .await?;
        let circuit = created.map_err(|e| {
            Error::Config(ConfigError {
                field: e.field,
                message: e.message,
            })
        })?;
        *guard = Some(Instance {
            store,
            bindings,
            circuit,
        });
    }
    let instance = guard.as_mut().expect("instantiated above");
    let api = instance.bindings.fleetbreaker_breaker_breaker().circuit();
    let store = &mut instance.store;
    let circuit = instance.circuit;
    Ok(match op {
        Op::Create => Reply::Done,
        Op::Acquire(leased, id) => Reply::Acquired(
            api.call_acquire(&mut *store, circuit, *leased, *id)
                .await?
                .map(Into::into)
                .map_err(|i| Box::new(i.into())),
        ),
        Op::Complete(permit, outcome) => {
            api.call_complete(&mut *store, circuit, (*permit).into(), (*outcome).into())
                .await?;
            Reply::Done
        }
        Op::CompleteLeased(leased, outcome) => {
            api.call_complete_leased(&mut *store, circuit, *leased, (*outcome).into())
                .await?;
            Reply::Done
        }
        Op::Info => Reply::Info(Box::new(api.call_info(&mut *store, circuit).await?.into())),
        Op::ForceOpen(duration, reason) => Reply::Operated(
            api.call_force_open(&mut *store, circuit, *duration, reason)
                .await?
                .map(|i| Box::new(i.into()))
                .map_err(Into::into),
        ),
        Op::ForceClosed(duration, reason) => Reply::Operated(
            api.call_force_closed(&mut *store, circuit, *duration, reason)
                .await?
                .map(|i| Box::new(i.into()))
                .map_err(Into::into),
        ),
        Op::Reset => Reply::Operated(
            api.call_reset(&mut *store, circuit)
                .await?
                .map(|i| Box::new(i.into()))
                .map_err(Into::into),
        ),
    })
}

/// A raising hook is logged and ignored: it must not break the call that caused the event.
fn guarded(what: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        log::warn!(target: "fleetbreaker", "{what} hook panicked; ignoring");
    }
}

fn log_event(event: &Event) {
    let (level, text) = crate::events::log_line(event);
    log::log!(target: "fleetbreaker", level, "{text}");
}

/// The refusal of a second configuration for a circuit already in use: every package's
/// registry gives this one text.
pub(crate) fn config_conflict(name: &str) -> ConfigError {
    ConfigError {
        field: "config".into(),
        message: format!(
            "circuit '{name}' is already in use in this environment with a different \
             configuration; breakers that share a name share one circuit (leave the \
             configuration out to use the circuit's)"
        ),
    }
}
