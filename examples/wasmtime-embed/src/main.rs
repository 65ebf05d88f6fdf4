//! A wasmtime host of its own for the fleetbreaker component: the bindings come from `wit/`,
//! the store is a `HashMap` behind a mutex (and the fleet's window counters another), the clock is virtual (so the run is the same every
//! time), and events are printed. It walks one circuit through trip, reject, probe and close.
//!
//! ```sh
//! cargo run -- ../../dist/fleetbreaker.wasm
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wasmtime::component::{Component, HasSelf, Linker, ResourceAny};
use wasmtime::{Engine, Store};

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "fleetbreaker",
});

use exports::fleetbreaker::breaker::breaker::Guest;
use fleetbreaker::breaker::types::{
    CircuitInfo, CircuitRecord, CircuitState, Config, Event, FailurePolicy, Outcome, Permit,
    PermitKind, StoreError, StoreFailureMode, SwapResult, WindowCounts, WindowDelta,
};

/// What the component's imports reach: the shared records, the virtual clock, the events.
struct Host {
    records: Arc<Mutex<HashMap<String, CircuitRecord>>>,
    /// Window shards by (circuit, window start, shard); nothing expires in this example.
    windows: HashMap<(String, u64, u32), WindowCounts>,
    now_ms: u64,
    events: Vec<String>,
}

impl fleetbreaker::breaker::types::Host for Host {}

impl fleetbreaker::breaker::store::Host for Host {
    fn load(&mut self, circuit: String) -> Result<Option<CircuitRecord>, StoreError> {
        Ok(self.records.lock().unwrap().get(&circuit).cloned())
    }

    /// A compare-and-swap on `version`, as every store does it.
    fn swap(
        &mut self,
        circuit: String,
        expected_version: Option<u64>,
        next: CircuitRecord,
    ) -> Result<SwapResult, StoreError> {
        let mut records = self.records.lock().unwrap();
        let current = records.get(&circuit);
        if current.map(|r| r.version) != expected_version {
            return Ok(SwapResult::Conflict(current.cloned()));
        }
        records.insert(circuit, next);
        Ok(SwapResult::Written)
    }

    /// Adds to one shard of a window (`minimum-environments` counts the environments here).
    fn add_to_window(
        &mut self,
        circuit: String,
        window_start_ms: u64,
        shard: u32,
        delta: WindowDelta,
        _expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        let counts = self
            .windows
            .entry((circuit, window_start_ms, shard))
            .or_insert(WindowCounts {
                calls: 0,
                failures: 0,
                slow_calls: 0,
                environments: Vec::new(),
            });
        counts.calls += delta.calls;
        counts.failures += delta.failures;
        counts.slow_calls += delta.slow_calls;
        if let Some(e) = delta.environment
            && !counts.environments.contains(&e)
        {
            counts.environments.push(e);
        }
        Ok(())
    }

    fn read_windows(
        &mut self,
        circuit: String,
        window_starts_ms: Vec<u64>,
        shards: u32,
    ) -> Result<Vec<WindowCounts>, StoreError> {
        Ok(window_starts_ms
            .into_iter()
            .map(|start| {
                let mut total = WindowCounts {
                    calls: 0,
                    failures: 0,
                    slow_calls: 0,
                    environments: Vec::new(),
                };
                for shard in 0..shards {
                    if let Some(c) = self.windows.get(&(circuit.clone(), start, shard)) {
                        total.calls += c.calls;
                        total.failures += c.failures;
                        total.slow_calls += c.slow_calls;
                        total.environments.extend(c.environments.iter().cloned());
                    }
                }
                total.environments.sort();
                total.environments.dedup();
                total
            })
            .collect())
    }
}

impl fleetbreaker::breaker::clock::Host for Host {
    fn now(&mut self) -> fleetbreaker::breaker::clock::Reading {
        fleetbreaker::breaker::clock::Reading {
            wall_ms: 1_700_000_000_000 + self.now_ms,
            monotonic_ms: self.now_ms,
        }
    }
}

impl fleetbreaker::breaker::events::Host for Host {
    fn emit(&mut self, event: Event) {
        if let Event::Transition(t) = event {
            self.events.push(format!(
                "{} -> {} (version {}, {:?})",
                state_name(t.from_state),
                state_name(t.to_state),
                t.version,
                t.reason
            ));
        }
    }
}

fn state_name(state: CircuitState) -> &'static str {
    match state {
        CircuitState::Closed => "CLOSED",
        CircuitState::Open => "OPEN",
        CircuitState::HalfOpen => "HALF_OPEN",
        CircuitState::ForcedOpen => "FORCED_OPEN",
        CircuitState::ForcedClosed => "FORCED_CLOSED",
    }
}

/// One circuit in one environment, and the calls made on it.
struct Circuit<'a> {
    store: &'a mut Store<Host>,
    api: &'a Guest,
    handle: ResourceAny,
    next_id: u64,
}

impl Circuit<'_> {
    fn acquire(&mut self) -> wasmtime::Result<Result<Permit, CircuitInfo>> {
        self.next_id += 1;
        // The host picks each permit's id; a real host draws it at random.
        let id = 0x5eed_0000 + self.next_id;
        self.api
            .circuit()
            .call_acquire(&mut *self.store, self.handle, 0, id)
    }

    /// Makes one call whose outcome is `outcome`, and says what happened.
    fn call(&mut self, outcome: Outcome) -> wasmtime::Result<()> {
        let at = self.store.data().now_ms;
        match self.acquire()? {
            Ok(permit) => {
                let kind = if permit.kind == PermitKind::Probe {
                    "probe"
                } else {
                    "call"
                };
                self.api
                    .circuit()
                    .call_complete(&mut *self.store, self.handle, permit, outcome)?;
                println!("{at:>6} ms  {kind} admitted, {outcome:?}");
            }
            Err(info) => println!(
                "{at:>6} ms  call rejected: {}, retry in {} ms",
                state_name(info.state),
                info.retry_after_ms.unwrap_or(0)
            ),
        }
        for event in self.store.data_mut().events.drain(..) {
            println!("            transition {event}");
        }
        Ok(())
    }
}

fn main() -> wasmtime::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../../dist/fleetbreaker.wasm".into());
    let engine = Engine::default();
    let component = Component::from_file(&engine, &path)
        .map_err(|e| wasmtime::format_err!("loading the component from {path}: {e}"))?;
    let mut linker = Linker::new(&engine);
    Fleetbreaker::add_to_linker::<Host, HasSelf<Host>>(&mut linker, |host| host)?;

    let records = Arc::new(Mutex::new(HashMap::new()));
    let host = Host {
        records: records.clone(),
        windows: HashMap::new(),
        now_ms: 0,
        events: Vec::new(),
    };
    let mut store = Store::new(&engine, host);
    let bindings = Fleetbreaker::instantiate(&mut store, &component, &linker)?;
    let api = bindings.fleetbreaker_breaker_breaker();

    let config = Config {
        failure_policy: FailurePolicy::ConsecutiveFailures(3),
        recovery_timeout_ms: 1_000,
        success_threshold: 1,
        local_cache_max_age_ms: 0,
        backoff_multiplier: 1.0,
        max_recovery_timeout_ms: None,
        recovery_jitter: 0.0,
        probe_lease_ms: None,
        store_retry_after_ms: 5_000,
        store_failure_mode: StoreFailureMode::Open,
        minimum_environments: 1,
        window_ms: 60_000,
        slow_call_ms: None,
    };
    let handle = api
        .circuit()
        .call_create(&mut store, "payments", config, "embed-example")?
        .map_err(|e| wasmtime::format_err!("config refused: {}: {}", e.field, e.message))?;
    let mut circuit = Circuit {
        store: &mut store,
        api,
        handle,
        next_id: 0,
    };

    println!("the circuit 'payments': trips after 3 failures, probes after 1 s");
    circuit.call(Outcome::Success)?;
    for _ in 0..3 {
        circuit.call(Outcome::Failure)?;
    }
    circuit.call(Outcome::Success)?;
    circuit.store.data_mut().now_ms += 1_000;
    circuit.call(Outcome::Success)?;
    circuit.call(Outcome::Success)?;
    handle.resource_drop(&mut store)?;

    let record = records.lock().unwrap()["payments"].clone();
    println!(
        "stored record: {}, version {}, trips {}",
        state_name(record.state),
        record.version,
        record.trips
    );
    Ok(())
}
