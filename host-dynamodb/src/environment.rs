//! An environment: one instance of the breaker component, with its store and clock. Every
//! breaker of one environment shares the instance; breakers with the same name share one
//! circuit. In a fleet, each Lambda execution environment (or process) is one environment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use fleetbreaker_core::{
    CircuitInfo, Config, Event, Outcome, Permit, StoreError, Transition, config,
};
use wasmtime::component::ResourceAny;

use crate::Error;
use crate::bindings::{self, Fleetbreaker};
use crate::clock::{Clock, SystemClock};
use crate::host::HostCtx;
use crate::runtime::runtime;
use crate::store::Store;

pub(crate) type TransitionHook = Arc<dyn Fn(&Transition) + Send + Sync>;
type EventHook = Arc<dyn Fn(&Event) + Send + Sync>;

/// One component instance shared by breakers; cheap to clone.
#[derive(Clone)]
pub struct Environment {
    inner: Arc<EnvInner>,
}

struct EnvInner {
    id: String,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    on_event: Option<EventHook>,
    /// `None` until first use, and again after a fault in the component (it is rebuilt).
    instance: tokio::sync::Mutex<Option<Instance>>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

struct Instance {
    store: wasmtime::Store<HostCtx>,
    bindings: Fleetbreaker,
    circuits: HashMap<String, ResourceAny>,
}

/// The host's side of one circuit: its configuration, the admission lease, and listeners.
pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) config: Config,
    /// Until this time calls are admitted without entering the component.
    pub(crate) lease_until_ms: AtomicU64,
    /// Successes counted under the lease, not yet reported.
    pub(crate) leased_successes: AtomicU32,
    listeners: Mutex<Vec<TransitionHook>>,
}

impl Slot {
    pub(crate) fn end_lease(&self) {
        self.lease_until_ms.store(0, Ordering::Relaxed);
    }

    pub(crate) fn take_leased_successes(&self) -> u32 {
        self.leased_successes.swap(0, Ordering::Relaxed)
    }

    pub(crate) fn add_listener(&self, hook: TransitionHook) {
        lock(&self.listeners).push(hook);
    }
}

/// A request to the component for one circuit.
pub(crate) enum Op {
    Create,
    Acquire(u32),
    Complete(Permit, Outcome),
    CompleteLeased(u32, Outcome),
    Info,
    ForceOpen(Option<u64>, String),
    ForceClosed(Option<u64>, String),
    Reset,
}

pub(crate) enum Reply {
    Done,
    Acquired(Result<Permit, CircuitInfo>),
    Info(CircuitInfo),
    Operated(Result<CircuitInfo, StoreError>),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

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
    /// It must be unique in the fleet; the default is the process id plus a random part.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Called with every event of every circuit in this environment (transitions, store
    /// trouble, corrupt records), after the call that caused it, outside any lock. Events are
    /// also logged through the `log` crate.
    pub fn on_event(mut self, hook: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(hook));
        self
    }

    pub fn build(self) -> Result<Environment, Error> {
        let id = self.id.unwrap_or_else(new_environment_id);
        config::validate_environment(&id)?;
        // Load the component now, so a packaging fault shows here and not on the first call.
        runtime()?;
        Ok(Environment {
            inner: Arc::new(EnvInner {
                id,
                store: self.store,
                clock: self.clock,
                on_event: self.on_event,
                instance: tokio::sync::Mutex::new(None),
                slots: Mutex::new(HashMap::new()),
            }),
        })
    }
}

fn new_environment_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!(
        "{}-{:012x}",
        std::process::id(),
        h.finish() & 0xffff_ffff_ffff
    )
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

    /// This environment's identity.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    #[inline]
    pub(crate) fn now_ms_coarse(&self) -> u64 {
        self.inner.clock.now_ms_coarse()
    }

    /// The slot of circuit `name`; breakers of the same name share it, and must agree on the
    /// configuration.
    pub(crate) fn slot(&self, name: &str, config: &Config) -> Result<Arc<Slot>, Error> {
        let mut slots = lock(&self.inner.slots);
        if let Some(slot) = slots.get(name) {
            if &slot.config != config {
                return Err(Error::Config(fleetbreaker_core::ConfigError {
                    field: "config".into(),
                    message: format!(
                        "circuit '{name}' is already in use in this environment with a \
                         different configuration; breakers that share a name share one circuit"
                    ),
                }));
            }
            return Ok(slot.clone());
        }
        let slot = Arc::new(Slot {
            name: name.to_string(),
            config: config.clone(),
            lease_until_ms: AtomicU64::new(0),
            leased_successes: AtomicU32::new(0),
            listeners: Mutex::new(Vec::new()),
        });
        slots.insert(name.to_string(), slot.clone());
        Ok(slot)
    }

    pub(crate) fn forget_slot(&self, name: &str) {
        lock(&self.inner.slots).remove(name);
    }

    /// Runs `op` on the circuit of `slot` inside the component, then delivers the events it
    /// emitted. A fault in the component drops the instance, which is rebuilt on next use.
    pub(crate) async fn run(&self, slot: &Slot, op: Op) -> Result<Reply, Error> {
        let (result, events) = {
            let mut guard = self.inner.instance.lock().await;
            let result = self.run_locked(&mut guard, slot, op).await;
            let events = match guard.as_mut() {
                Some(i) if i.store.data().has_events() => i.store.data_mut().take_events(),
                _ => Vec::new(),
            };
            if matches!(result, Err(Error::Component(_))) {
                *guard = None;
            }
            (result, events)
        };
        if !events.is_empty() {
            self.dispatch(events);
        }
        result
    }

    async fn run_locked(
        &self,
        guard: &mut Option<Instance>,
        slot: &Slot,
        op: Op,
    ) -> Result<Reply, Error> {
        if guard.is_none() {
            let rt = runtime()?;
            let ctx = HostCtx::new(self.inner.store.clone(), self.inner.clock.clone());
            let mut store = wasmtime::Store::new(rt.pre.engine(), ctx);
            let bindings = rt.pre.instantiate_async(&mut store).await?;
            *guard = Some(Instance {
                store,
                bindings,
                circuits: HashMap::new(),
            });
        }
        let instance = guard.as_mut().expect("instantiated above");
        let api = instance.bindings.fleetbreaker_breaker_breaker().circuit();
        let store = &mut instance.store;
        let circuit = match instance.circuits.get(&slot.name) {
            Some(c) => *c,
            None => {
                let config = bindings::config_out(&slot.config);
                match api
                    .call_create(&mut *store, &slot.name, config, &self.inner.id)
                    .await?
                {
                    Ok(c) => {
                        instance.circuits.insert(slot.name.clone(), c);
                        c
                    }
                    Err(e) => {
                        return Err(Error::Config(fleetbreaker_core::ConfigError {
                            field: e.field,
                            message: e.message,
                        }));
                    }
                }
            }
        };
        Ok(match op {
            Op::Create => Reply::Done,
            Op::Acquire(leased) => Reply::Acquired(
                api.call_acquire(&mut *store, circuit, leased)
                    .await?
                    .map(bindings::permit_in)
                    .map_err(bindings::info_in),
            ),
            Op::Complete(permit, outcome) => {
                api.call_complete(
                    &mut *store,
                    circuit,
                    bindings::permit_out(permit),
                    bindings::outcome_out(outcome),
                )
                .await?;
                Reply::Done
            }
            Op::CompleteLeased(leased, outcome) => {
                api.call_complete_leased(
                    &mut *store,
                    circuit,
                    leased,
                    bindings::outcome_out(outcome),
                )
                .await?;
                Reply::Done
            }
            Op::Info => Reply::Info(bindings::info_in(
                api.call_info(&mut *store, circuit).await?,
            )),
            Op::ForceOpen(duration, reason) => Reply::Operated(
                api.call_force_open(&mut *store, circuit, duration, &reason)
                    .await?
                    .map(bindings::info_in)
                    .map_err(bindings::store_error_in),
            ),
            Op::ForceClosed(duration, reason) => Reply::Operated(
                api.call_force_closed(&mut *store, circuit, duration, &reason)
                    .await?
                    .map(bindings::info_in)
                    .map_err(bindings::store_error_in),
            ),
            Op::Reset => Reply::Operated(
                api.call_reset(&mut *store, circuit)
                    .await?
                    .map(bindings::info_in)
                    .map_err(bindings::store_error_in),
            ),
        })
    }

    fn dispatch(&self, events: Vec<Event>) {
        for event in &events {
            log_event(event);
            if let Some(hook) = &self.inner.on_event {
                guarded("on_event", || hook(event));
            }
            if let Event::Transition(t) = event {
                let listeners = match lock(&self.inner.slots).get(&t.circuit) {
                    Some(slot) => lock(&slot.listeners).clone(),
                    None => Vec::new(),
                };
                for hook in listeners {
                    guarded("on_transition", || hook(t));
                }
            }
        }
    }
}

/// A raising hook is logged and ignored: it must not break the call that caused the event.
fn guarded(what: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        log::warn!(target: "fleetbreaker", "{what} hook panicked; ignoring");
    }
}

fn log_event(event: &Event) {
    match event {
        Event::Transition(t) => log::info!(
            target: "fleetbreaker",
            "circuit '{}': {} -> {} ({}), version {}{}",
            t.circuit,
            t.from_state,
            t.to_state,
            t.reason,
            t.version,
            if t.local_only { ", local only" } else { "" }
        ),
        Event::CorruptRecord(f) => log::warn!(
            target: "fleetbreaker",
            "circuit '{}': {}; treating it as absent until the next transition replaces it",
            f.circuit,
            f.error
        ),
        Event::StoreDegraded(f) => {
            let level = match f.error {
                StoreError::Misconfigured(_) => log::Level::Error,
                _ => log::Level::Warn,
            };
            log::log!(
                target: "fleetbreaker",
                level,
                "circuit '{}': {}; protecting locally and asking the store again at {} ms",
                f.circuit,
                f.error,
                f.retry_at_ms
            )
        }
        Event::StoreRecovered(c) => log::info!(
            target: "fleetbreaker",
            "circuit '{c}': the store answers again"
        ),
    }
}
