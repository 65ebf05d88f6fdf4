//! The WebAssembly component: exports `fleetbreaker:breaker/breaker` over the imported store,
//! clock and events. This module only translates between the generated types and the crate's.

use std::cell::RefCell;

use crate::circuit::{Circuit, Clock, Events, Store};
use crate::types as t;

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
            .map(|r| r.map(Into::into))
            .map_err(Into::into)
    }

    fn swap(
        &mut self,
        circuit: &str,
        expected_version: Option<u64>,
        next: &t::Record,
    ) -> Result<t::SwapResult, t::StoreError> {
        store::swap(circuit, expected_version, &next.clone().into())
            .map(Into::into)
            .map_err(Into::into)
    }

    fn add_to_window(
        &mut self,
        circuit: &str,
        window_start_ms: u64,
        shard: u32,
        delta: &t::WindowDelta,
        expires_at_ms: u64,
    ) -> Result<(), t::StoreError> {
        let delta = delta.clone().into();
        store::add_to_window(circuit, window_start_ms, shard, &delta, expires_at_ms)
            .map_err(Into::into)
    }

    fn read_windows(
        &mut self,
        circuit: &str,
        window_starts_ms: &[u64],
        shards: u32,
    ) -> Result<Vec<t::WindowCounts>, t::StoreError> {
        store::read_windows(circuit, window_starts_ms, shards)
            .map(|windows| windows.into_iter().map(Into::into).collect())
            .map_err(Into::into)
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
        events::emit(&event.into());
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
        Circuit::new(&name, config.into(), &environment)
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
            .map(Into::into)
            .map_err(Into::into)
    }

    fn complete(&self, permit: w::Permit, outcome: w::Outcome) {
        self.0
            .borrow_mut()
            .complete(&mut Imports, permit.into(), outcome.into())
    }

    fn complete_leased(&self, leased_successes: u32, outcome: w::Outcome) {
        self.0
            .borrow_mut()
            .complete_leased(&mut Imports, leased_successes, outcome.into())
    }

    fn info(&self) -> w::CircuitInfo {
        self.0.borrow_mut().info(&mut Imports).into()
    }

    fn force_open(
        &self,
        duration_ms: Option<u64>,
        reason: String,
    ) -> Result<w::CircuitInfo, w::StoreError> {
        self.0
            .borrow_mut()
            .force_open(&mut Imports, duration_ms, &reason)
            .map(Into::into)
            .map_err(Into::into)
    }

    fn force_closed(
        &self,
        duration_ms: Option<u64>,
        reason: String,
    ) -> Result<w::CircuitInfo, w::StoreError> {
        self.0
            .borrow_mut()
            .force_closed(&mut Imports, duration_ms, &reason)
            .map(Into::into)
            .map_err(Into::into)
    }

    fn reset(&self) -> Result<w::CircuitInfo, w::StoreError> {
        self.0
            .borrow_mut()
            .reset(&mut Imports)
            .map(Into::into)
            .map_err(Into::into)
    }
}

export!(Component);

crate::wit_conversions!(w);
