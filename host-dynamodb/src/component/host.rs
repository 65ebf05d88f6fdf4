//! The host side of the component's imports (store, clock, events), and `add_to_linker` for
//! embedders who run their own `wasmtime::Store<T>`.

use std::sync::Arc;

use fleetbreaker_core::Event;
use wasmtime::component::{HasSelf, Linker};

use crate::clock::Clock;
use crate::component::bindings::{self, w};
use crate::stores::Store;

/// What the component's imports reach: a store, a clock, and the events emitted so far.
/// Keep one in your `wasmtime::Store<T>` data and hand it to [`add_to_linker`].
pub struct HostCtx {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    events: Vec<Event>,
}

impl HostCtx {
    /// The imports' state for one instance: its store and clock, and no events yet.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> HostCtx {
        HostCtx {
            store,
            clock,
            events: Vec::new(),
        }
    }

    /// The events the component emitted since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }
}

/// Adds the `fleetbreaker:breaker` imports (store, clock, events) to `linker`, reaching a
/// [`HostCtx`] through `get`. The store import is async: call the component with
/// `call_async` / `instantiate_async`.
///
/// ```no_run
/// use std::sync::Arc;
/// use fleetbreaker::{HostCtx, MemoryStore, SystemClock};
/// use wasmtime::component::Linker;
///
/// struct MyState { breaker: HostCtx }
/// let engine = wasmtime::Engine::default();
/// let mut linker = Linker::<MyState>::new(&engine);
/// fleetbreaker::add_to_linker(&mut linker, |s| &mut s.breaker).unwrap();
/// let state = MyState { breaker: HostCtx::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock)) };
/// ```
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut HostCtx,
) -> wasmtime::Result<()> {
    bindings::Fleetbreaker::add_to_linker::<T, HasSelf<HostCtx>>(linker, get)
}

impl bindings::fleetbreaker::breaker::types::Host for HostCtx {}

impl bindings::fleetbreaker::breaker::store::Host for HostCtx {
    async fn load(&mut self, circuit: String) -> Result<Option<w::CircuitRecord>, w::StoreError> {
        self.store
            .load(&circuit)
            .await
            .map(|r| r.map(Into::into))
            .map_err(Into::into)
    }

    async fn swap(
        &mut self,
        circuit: String,
        expected_version: Option<u64>,
        next: w::CircuitRecord,
    ) -> Result<w::SwapResult, w::StoreError> {
        let next: fleetbreaker_core::Record = next.into();
        self.store
            .swap(&circuit, expected_version, &next)
            .await
            .map(Into::into)
            .map_err(Into::into)
    }

    async fn add_to_window(
        &mut self,
        circuit: String,
        window_start_ms: u64,
        shard: u32,
        delta: w::WindowDelta,
        expires_at_ms: u64,
    ) -> Result<(), w::StoreError> {
        let delta: fleetbreaker_core::WindowDelta = delta.into();
        self.store
            .add_to_window(&circuit, window_start_ms, shard, &delta, expires_at_ms)
            .await
            .map_err(Into::into)
    }

    async fn read_windows(
        &mut self,
        circuit: String,
        window_starts_ms: Vec<u64>,
        shards: u32,
    ) -> Result<Vec<w::WindowCounts>, w::StoreError> {
        self.store
            .read_windows(&circuit, &window_starts_ms, shards)
            .await
            .map(|windows| windows.into_iter().map(Into::into).collect())
            .map_err(Into::into)
    }
}

impl bindings::fleetbreaker::breaker::clock::Host for HostCtx {
    fn now(&mut self) -> bindings::fleetbreaker::breaker::clock::Reading {
        bindings::fleetbreaker::breaker::clock::Reading {
            wall_ms: self.clock.now_ms(),
            monotonic_ms: self.clock.monotonic_ms(),
        }
    }
}

impl bindings::fleetbreaker::breaker::events::Host for HostCtx {
    fn emit(&mut self, event: w::Event) {
        self.events.push(event.into());
    }
}
