//! Native test doubles for driving circuits without a host: an in-memory store shared by
//! several simulated environments, a manual clock and an event log. The host crate has the
//! product's own stores; these exist so the algorithm can be tested on its own.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::circuit::{Clock, Events, Store};
use crate::types::{CorruptItem, Event, Record, StoreError, SwapResult, WindowCounts, WindowDelta};

/// What the store holds for one circuit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A valid record.
    Valid(Record),
    /// An item that is not a valid record.
    Corrupt(CorruptItem),
}

#[derive(Debug, Default)]
struct Inner {
    items: std::collections::BTreeMap<String, Item>,
    fault: Option<StoreError>,
    reads: u64,
    writes: u64,
    failed_swaps: u64,
    faulted_calls: u64,
    /// Every successful write, in order: (circuit, record).
    log: Vec<(String, Record)>,
    /// Window shards by (circuit, window start, shard).
    windows: std::collections::BTreeMap<(String, u64, u32), WindowCounts>,
    window_adds: u64,
}

/// An in-memory compare-and-swap store, shared by clones.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every later call fail with `fault`, or work again with `None`.
    pub fn set_fault(&self, fault: Option<StoreError>) {
        self.lock().fault = fault;
    }

    /// Replaces the item of `circuit` by hand, as an operator or an older version might.
    pub fn put_item(&self, circuit: &str, item: Item) {
        self.lock().items.insert(circuit.to_string(), item);
    }

    /// Deletes the item of `circuit`, as a TTL or an operator does.
    pub fn remove_item(&self, circuit: &str) {
        self.lock().items.remove(circuit);
    }

    /// The item of `circuit`, valid or not.
    pub fn item(&self, circuit: &str) -> Option<Item> {
        self.lock().items.get(circuit).cloned()
    }

    /// The valid record of `circuit`, if there is one.
    pub fn record(&self, circuit: &str) -> Option<Record> {
        match self.item(circuit) {
            Some(Item::Valid(r)) => Some(r),
            _ => None,
        }
    }

    /// Successful loads so far.
    pub fn reads(&self) -> u64 {
        self.lock().reads
    }

    /// Successful writes so far.
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// Calls refused by an injected fault so far.
    pub fn faulted_calls(&self) -> u64 {
        self.lock().faulted_calls
    }

    /// Swaps that lost on the version so far.
    pub fn failed_swaps(&self) -> u64 {
        self.lock().failed_swaps
    }

    /// Every successful write so far, in order.
    pub fn write_log(&self) -> Vec<(String, Record)> {
        self.lock().log.clone()
    }

    /// Loads `circuit`'s record, as [`crate::Store::load`] does.
    pub fn load(&self, circuit: &str) -> Result<Option<Record>, StoreError> {
        let mut inner = self.lock();
        if let Some(fault) = inner.fault.clone() {
            inner.faulted_calls += 1;
            return Err(fault);
        }
        inner.reads += 1;
        match inner.items.get(circuit) {
            None => Ok(None),
            Some(Item::Valid(r)) => Ok(Some(r.clone())),
            Some(Item::Corrupt(c)) => Err(StoreError::Corrupt(c.clone())),
        }
    }

    /// Adds to a window shard, as [`crate::Store::add_to_window`] does (nothing expires here).
    pub fn add_to_window(
        &self,
        circuit: &str,
        window_start_ms: u64,
        shard: u32,
        delta: &WindowDelta,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(fault) = inner.fault.clone() {
            inner.faulted_calls += 1;
            return Err(fault);
        }
        inner.window_adds += 1;
        let shard = inner
            .windows
            .entry((circuit.to_string(), window_start_ms, shard))
            .or_default();
        let environment = delta.environment.clone();
        shard.add(delta.calls, delta.failures, delta.slow_calls, environment);
        Ok(())
    }

    /// Reads windows, as [`crate::Store::read_windows`] does.
    pub fn read_windows(
        &self,
        circuit: &str,
        window_starts_ms: &[u64],
        shards: u32,
    ) -> Result<Vec<WindowCounts>, StoreError> {
        let mut inner = self.lock();
        if let Some(fault) = inner.fault.clone() {
            inner.faulted_calls += 1;
            return Err(fault);
        }
        inner.reads += 1;
        Ok(window_starts_ms
            .iter()
            .map(|&start| {
                WindowCounts::total(
                    (0..shards)
                        .filter_map(|shard| inner.windows.get(&(circuit.into(), start, shard))),
                )
            })
            .collect())
    }

    /// Adds made to window shards so far.
    pub fn window_adds(&self) -> u64 {
        self.lock().window_adds
    }

    /// Swaps `circuit`'s record, as [`crate::Store::swap`] does.
    pub fn swap(
        &self,
        circuit: &str,
        expected_version: Option<u64>,
        next: &Record,
    ) -> Result<SwapResult, StoreError> {
        let mut inner = self.lock();
        if let Some(fault) = inner.fault.clone() {
            inner.faulted_calls += 1;
            return Err(fault);
        }
        let current_version = match inner.items.get(circuit) {
            None => None,
            Some(Item::Valid(r)) => Some(r.version),
            Some(Item::Corrupt(c)) => c.version,
        };
        if current_version != expected_version {
            inner.failed_swaps += 1;
            let current = match inner.items.get(circuit) {
                Some(Item::Valid(r)) => Some(r.clone()),
                _ => None,
            };
            return Ok(SwapResult::Conflict(current));
        }
        inner.writes += 1;
        inner.log.push((circuit.to_string(), next.clone()));
        inner
            .items
            .insert(circuit.to_string(), Item::Valid(next.clone()));
        Ok(SwapResult::Written)
    }
}

/// A manual clock shared by clones: a wall clock and a monotonic one. `advance` moves both;
/// `step_wall` moves only the wall clock, as an NTP step or an operator does.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    times: Arc<Mutex<(u64, u64)>>,
}

impl ManualClock {
    /// A clock at `now_ms`, epoch ms (its monotonic reading starts there too).
    pub fn new(now_ms: u64) -> ManualClock {
        ManualClock {
            times: Arc::new(Mutex::new((now_ms, 1_000_000))),
        }
    }

    /// The wall clock, epoch ms.
    pub fn now_ms(&self) -> u64 {
        self.times.lock().unwrap().0
    }

    /// The monotonic clock, ms.
    pub fn monotonic_ms(&self) -> u64 {
        self.times.lock().unwrap().1
    }

    /// Sets the wall clock; the monotonic clock moves forward by as much (never back).
    pub fn set(&self, now_ms: u64) {
        let mut t = self.times.lock().unwrap();
        t.1 += now_ms.saturating_sub(t.0);
        t.0 = now_ms;
    }

    /// Moves both clocks forward by `ms`.
    pub fn advance(&self, ms: u64) {
        let mut t = self.times.lock().unwrap();
        t.0 += ms;
        t.1 += ms;
    }

    /// Steps the wall clock by `delta_ms` (back when negative); the monotonic clock stays.
    pub fn step_wall(&self, delta_ms: i64) {
        let mut t = self.times.lock().unwrap();
        t.0 = t.0.saturating_add_signed(delta_ms);
    }
}

/// One simulated environment's host: a shared store, a shared clock, its own event log.
#[derive(Clone, Debug)]
pub struct TestEnv {
    /// The store the circuit reads and writes.
    pub store: MemoryStore,
    /// The clock it reads.
    pub clock: ManualClock,
    /// The events it reported, oldest first.
    pub events: Vec<Event>,
}

impl TestEnv {
    /// An environment with its own clock starting at `now_ms`.
    pub fn new(store: MemoryStore, now_ms: u64) -> TestEnv {
        TestEnv::with_clock(store, ManualClock::new(now_ms))
    }

    /// An environment on `store` whose clock is `clock`.
    pub fn with_clock(store: MemoryStore, clock: ManualClock) -> TestEnv {
        TestEnv {
            store,
            clock,
            events: Vec::new(),
        }
    }
}

impl Store for TestEnv {
    fn load(&mut self, circuit: &str) -> Result<Option<Record>, StoreError> {
        self.store.load(circuit)
    }

    fn swap(
        &mut self,
        circuit: &str,
        expected_version: Option<u64>,
        next: &Record,
    ) -> Result<SwapResult, StoreError> {
        self.store.swap(circuit, expected_version, next)
    }

    fn add_to_window(
        &mut self,
        circuit: &str,
        window_start_ms: u64,
        shard: u32,
        delta: &WindowDelta,
        _expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        self.store
            .add_to_window(circuit, window_start_ms, shard, delta)
    }

    fn read_windows(
        &mut self,
        circuit: &str,
        window_starts_ms: &[u64],
        shards: u32,
    ) -> Result<Vec<WindowCounts>, StoreError> {
        self.store.read_windows(circuit, window_starts_ms, shards)
    }
}

impl Clock for TestEnv {
    fn now_ms(&mut self) -> u64 {
        self.clock.now_ms()
    }

    fn monotonic_ms(&mut self) -> u64 {
        self.clock.monotonic_ms()
    }
}

impl Events for TestEnv {
    fn emit(&mut self, event: Event) {
        self.events.push(event);
    }
}

/// A small, seedable generator (xorshift64*) for simulations and random tests: the same seed
/// gives the same run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 is taken as 1: xorshift never leaves 0).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A number from 0 to `n - 1` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The seed of a random test: `FLEETBREAKER_SEED` when set (to replay a run), else one drawn
/// from the time. Tests print it.
pub fn seed() -> u64 {
    std::env::var("FLEETBREAKER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(time_seed)
}

/// A seed drawn from the time.
pub fn time_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1
}
