//! The stores the breaker keeps its shared records in: the trait, the in-memory store (here),
//! DynamoDB and SQLite (each behind its feature).

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use fleetbreaker_core::{CorruptItem, Record, StoreError, SwapResult, WindowCounts, WindowDelta};

/// What a store call returns: a boxed future, so stores can be used as `Arc<dyn Store>`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where the shared records live. Every write is a compare-and-swap on `version`.
///
/// Implementations bound every call by their own deadline and map their failures to
/// [`StoreError`]; the breaker never passes a store error to a protected call.
///
/// The swap's contract, the same for every store (the conformance scenarios check it):
/// - `Some(v)` writes only if an item exists with version `v`; an absent item is a conflict;
/// - `None` writes only if there is no item, or the item has no version the breaker can read
///   (a corrupt item, or one written by the Powertools breaker, loaded as version 0), so that
///   exactly one writer replaces it.
pub trait Store: Send + Sync + 'static {
    /// The record of `circuit`, or `None` when there is no item. An item that is not a valid
    /// record is reported as [`StoreError::Corrupt`], with its version if that much is readable.
    fn load<'a>(&'a self, circuit: &'a str) -> StoreFuture<'a, Option<Record>>;

    /// Writes `next` only if the stored version is `expected_version`; with `None`, only if
    /// there is no item or the item has no readable version. A conflict carries the current
    /// record when the store gets it for free.
    fn swap<'a>(
        &'a self,
        circuit: &'a str,
        expected_version: Option<u64>,
        next: &'a Record,
    ) -> StoreFuture<'a, SwapResult>;

    /// Adds `delta` to shard `shard` of `circuit`'s window that starts at `window_start_ms`, in
    /// one atomic step (concurrent adds all count), and lets the store delete the shard after
    /// `expires_at_ms`. The fleet-wide failure rate is counted this way.
    fn add_to_window<'a>(
        &'a self,
        circuit: &'a str,
        window_start_ms: u64,
        shard: u32,
        delta: &'a WindowDelta,
        expires_at_ms: u64,
    ) -> StoreFuture<'a, ()> {
        let _ = (circuit, window_start_ms, shard, delta, expires_at_ms);
        Box::pin(std::future::ready(Err(no_windows())))
    }

    /// The windows of `circuit` that start at each of `window_starts_ms`, each with its
    /// `shards` shards added up (zeros for a window nobody reported to), in one read.
    fn read_windows<'a>(
        &'a self,
        circuit: &'a str,
        window_starts_ms: &'a [u64],
        shards: u32,
    ) -> StoreFuture<'a, Vec<WindowCounts>> {
        let _ = (circuit, window_starts_ms, shards);
        Box::pin(std::future::ready(Err(no_windows())))
    }
}

/// What a store that keeps only records answers when asked for window counters.
fn no_windows() -> StoreError {
    StoreError::Misconfigured("this store keeps no window counters".into())
}

impl<S: Store + ?Sized> Store for Arc<S> {
    fn load<'a>(&'a self, circuit: &'a str) -> StoreFuture<'a, Option<Record>> {
        (**self).load(circuit)
    }

    fn swap<'a>(
        &'a self,
        circuit: &'a str,
        expected_version: Option<u64>,
        next: &'a Record,
    ) -> StoreFuture<'a, SwapResult> {
        (**self).swap(circuit, expected_version, next)
    }

    fn add_to_window<'a>(
        &'a self,
        circuit: &'a str,
        window_start_ms: u64,
        shard: u32,
        delta: &'a WindowDelta,
        expires_at_ms: u64,
    ) -> StoreFuture<'a, ()> {
        (**self).add_to_window(circuit, window_start_ms, shard, delta, expires_at_ms)
    }

    fn read_windows<'a>(
        &'a self,
        circuit: &'a str,
        window_starts_ms: &'a [u64],
        shards: u32,
    ) -> StoreFuture<'a, Vec<WindowCounts>> {
        (**self).read_windows(circuit, window_starts_ms, shards)
    }
}

/// What a store has done so far, for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Successful loads.
    pub reads: u64,
    /// Successful writes of a record.
    pub writes: u64,
    /// Successful adds to the fleet's window counters (each one write of the store too).
    pub window_adds: u64,
    /// Swaps refused on the version.
    pub conflicts: u64,
    /// Calls that failed (timeouts, throttling, unreachable, refused).
    pub errors: u64,
}

/// The counters behind [`StoreStats`], shared by the stores that keep them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
    window_adds: AtomicU64,
    conflicts: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    pub(crate) fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn window_add(&self) {
        self.window_adds.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn conflict(&self) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            window_adds: self.window_adds.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Valid(Record),
    Corrupt(CorruptItem),
}

/// Window shards by (circuit, window start, shard), with when they may go.
type Windows = HashMap<(String, u64, u32), (WindowCounts, u64)>;

/// Whether loads (`.0`) and swaps (`.1`) are held, and which of the two a call waits on.
type Held = tokio::sync::watch::Receiver<(bool, bool)>;
type Pick = fn(&(bool, bool)) -> bool;

#[derive(Debug)]
struct MemoryInner {
    items: Mutex<HashMap<String, Item>>,
    windows: Mutex<Windows>,
    fault: Mutex<Option<StoreError>>,
    /// While set, loads (`.0`) and swaps (`.1`) wait (for tests of races and slow stores).
    hold: tokio::sync::watch::Sender<(bool, bool)>,
    /// Whether anything is held: checked first, so an ordinary call pays one atomic load.
    holding: std::sync::atomic::AtomicBool,
    reads: AtomicU64,
    writes: AtomicU64,
    window_adds: AtomicU64,
    conflicts: AtomicU64,
    faulted: AtomicU64,
}

impl Default for MemoryInner {
    fn default() -> MemoryInner {
        MemoryInner {
            items: Mutex::default(),
            windows: Mutex::default(),
            fault: Mutex::default(),
            hold: tokio::sync::watch::Sender::new((false, false)),
            holding: std::sync::atomic::AtomicBool::new(false),
            reads: AtomicU64::default(),
            writes: AtomicU64::default(),
            window_adds: AtomicU64::default(),
            conflicts: AtomicU64::default(),
            faulted: AtomicU64::default(),
        }
    }
}

/// An in-memory store. Clones share the same records, so several environments in one process
/// can stand in for a fleet. Reads and writes are counted.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<MemoryInner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn items(&self) -> MutexGuard<'_, HashMap<String, Item>> {
        self.inner.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored record of `circuit`, if there is a valid one.
    pub fn record(&self, circuit: &str) -> Option<Record> {
        match self.items().get(circuit) {
            Some(Item::Valid(r)) => Some(r.clone()),
            _ => None,
        }
    }

    /// Every circuit with an item, sorted.
    pub fn circuits(&self) -> Vec<String> {
        let mut names: Vec<String> = self.items().keys().cloned().collect();
        names.sort();
        names
    }

    /// Deletes the item of `circuit`, as DynamoDB's TTL or an operator does.
    pub fn remove(&self, circuit: &str) {
        self.items().remove(circuit);
    }

    /// Replaces the item of `circuit` with one that is not a valid record (for tests of the
    /// breaker's handling of corrupt items).
    pub fn put_corrupt(&self, circuit: &str, item: CorruptItem) {
        self.items()
            .insert(circuit.to_string(), Item::Corrupt(item));
    }

    /// Makes every later call fail with `fault`, or work again with `None` (for tests and
    /// demonstrations of store outages).
    pub fn set_fault(&self, fault: Option<StoreError>) {
        *self.inner.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// Makes later loads and swaps wait until [`MemoryStore::release_calls`] (for tests of
    /// what happens while the store is slow: a breaker's call is then stuck inside the store,
    /// as with a slow network).
    pub fn hold_calls(&self) {
        self.inner.holding.store(true, Ordering::SeqCst);
        self.inner.hold.send_replace((true, true));
    }

    /// Like [`MemoryStore::hold_calls`], for loads only or writes only; loads and writes
    /// already held stay held.
    pub fn hold(&self, loads: bool, writes: bool) {
        self.inner.holding.store(true, Ordering::SeqCst);
        self.inner
            .hold
            .send_modify(|held| *held = (held.0 || loads, held.1 || writes));
    }

    /// Lets the calls held by [`MemoryStore::hold_calls`] (and later ones) go on; with
    /// [`MemoryStore::release`], only loads or only writes.
    pub fn release_calls(&self) {
        self.inner.hold.send_replace((false, false));
    }

    /// Lets held loads (with `loads`) or held writes (with `writes`) go on; the others stay
    /// held.
    pub fn release(&self, loads: bool, writes: bool) {
        self.inner
            .hold
            .send_modify(|held| *held = (held.0 && !loads, held.1 && !writes));
    }

    /// A way to wait while calls of this kind are held; `None` when they are not (the call
    /// answers at once).
    fn held(&self, pick: Pick) -> Option<(Held, Pick)> {
        if !self.inner.holding.load(Ordering::SeqCst) {
            return None;
        }
        let held = self.inner.hold.subscribe();
        let waiting = pick(&held.borrow());
        waiting.then_some((held, pick))
    }

    /// Successful loads so far.
    pub fn reads(&self) -> u64 {
        self.inner.reads.load(Ordering::Relaxed)
    }

    /// Successful writes of a record so far.
    pub fn writes(&self) -> u64 {
        self.inner.writes.load(Ordering::Relaxed)
    }

    /// Successful adds to the fleet's window counters so far.
    pub fn window_adds(&self) -> u64 {
        self.inner.window_adds.load(Ordering::Relaxed)
    }

    /// Swaps refused on the version so far.
    pub fn conflicts(&self) -> u64 {
        self.inner.conflicts.load(Ordering::Relaxed)
    }

    /// Calls refused by a fault set with [`MemoryStore::set_fault`] so far.
    pub fn faulted_calls(&self) -> u64 {
        self.inner.faulted.load(Ordering::Relaxed)
    }

    fn check_fault(&self) -> Result<(), StoreError> {
        match &*self.inner.fault.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(fault) => {
                self.inner.faulted.fetch_add(1, Ordering::Relaxed);
                Err(fault.clone())
            }
            None => Ok(()),
        }
    }

    fn load_now(&self, circuit: &str) -> Result<Option<Record>, StoreError> {
        self.check_fault()?;
        self.inner.reads.fetch_add(1, Ordering::Relaxed);
        match self.items().get(circuit) {
            None => Ok(None),
            Some(Item::Valid(r)) => Ok(Some(r.clone())),
            Some(Item::Corrupt(c)) => Err(StoreError::Corrupt(c.clone())),
        }
    }

    fn swap_now(
        &self,
        circuit: &str,
        expected_version: Option<u64>,
        next: &Record,
    ) -> Result<SwapResult, StoreError> {
        self.check_fault()?;
        let mut items = self.items();
        let (current_version, current) = match items.get(circuit) {
            None => (None, None),
            // Version 0: an item without a version of ours, swapped against "none".
            Some(Item::Valid(r)) => (Some(r.version).filter(|v| *v > 0), Some(r.clone())),
            Some(Item::Corrupt(c)) => (c.version, None),
        };
        if current_version != expected_version {
            self.inner.conflicts.fetch_add(1, Ordering::Relaxed);
            return Ok(SwapResult::Conflict(current));
        }
        items.insert(circuit.to_string(), Item::Valid(next.clone()));
        self.inner.writes.fetch_add(1, Ordering::Relaxed);
        Ok(SwapResult::Written)
    }

    fn windows(&self) -> MutexGuard<'_, Windows> {
        self.inner.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add_to_window_now(
        &self,
        circuit: &str,
        window_start_ms: u64,
        shard: u32,
        delta: &WindowDelta,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        self.check_fault()?;
        let mut windows = self.windows();
        // As DynamoDB's TTL does, sooner or later: here, whenever a window is added to.
        windows.retain(|_, (_, expires)| *expires >= window_start_ms);
        let (counts, expires) = windows
            .entry((circuit.to_string(), window_start_ms, shard))
            .or_default();
        let environment = delta.environment.clone();
        counts.add(delta.calls, delta.failures, delta.slow_calls, environment);
        *expires = (*expires).max(expires_at_ms);
        self.inner.window_adds.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn read_windows_now(
        &self,
        circuit: &str,
        window_starts_ms: &[u64],
        shards: u32,
    ) -> Result<Vec<WindowCounts>, StoreError> {
        self.check_fault()?;
        let windows = self.windows();
        self.inner.reads.fetch_add(1, Ordering::Relaxed);
        Ok(window_starts_ms
            .iter()
            .map(|&start| {
                WindowCounts::total((0..shards).filter_map(|shard| {
                    windows
                        .get(&(circuit.into(), start, shard))
                        .map(|(counts, _)| counts)
                }))
            })
            .collect())
    }
}

impl Store for MemoryStore {
    fn load<'a>(&'a self, circuit: &'a str) -> StoreFuture<'a, Option<Record>> {
        match self.held(|h| h.0) {
            None => Box::pin(std::future::ready(self.load_now(circuit))),
            Some((mut held, pick)) => Box::pin(async move {
                let _ = held.wait_for(|h| !pick(h)).await;
                self.load_now(circuit)
            }),
        }
    }

    fn swap<'a>(
        &'a self,
        circuit: &'a str,
        expected_version: Option<u64>,
        next: &'a Record,
    ) -> StoreFuture<'a, SwapResult> {
        match self.held(|h| h.1) {
            None => Box::pin(std::future::ready(self.swap_now(
                circuit,
                expected_version,
                next,
            ))),
            Some((mut held, pick)) => Box::pin(async move {
                let _ = held.wait_for(|h| !pick(h)).await;
                self.swap_now(circuit, expected_version, next)
            }),
        }
    }

    fn add_to_window<'a>(
        &'a self,
        circuit: &'a str,
        window_start_ms: u64,
        shard: u32,
        delta: &'a WindowDelta,
        expires_at_ms: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(std::future::ready(self.add_to_window_now(
            circuit,
            window_start_ms,
            shard,
            delta,
            expires_at_ms,
        )))
    }

    fn read_windows<'a>(
        &'a self,
        circuit: &'a str,
        window_starts_ms: &'a [u64],
        shards: u32,
    ) -> StoreFuture<'a, Vec<WindowCounts>> {
        Box::pin(std::future::ready(self.read_windows_now(
            circuit,
            window_starts_ms,
            shards,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_store_counts_windows_and_honours_an_injected_fault() {
        let store = MemoryStore::new();
        let delta = WindowDelta {
            calls: 4,
            failures: 2,
            slow_calls: 1,
            environment: Some("env-1".into()),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for shard in 0..3 {
                store
                    .add_to_window("payments", 1_000, shard, &delta, 61_000)
                    .await
                    .unwrap();
            }
            let read = store
                .read_windows("payments", &[1_000, 11_000], 3)
                .await
                .unwrap();
            assert_eq!(
                (read[0].calls, read[0].failures, read[0].slow_calls),
                (12, 6, 3)
            );
            assert_eq!(read[0].environments, vec!["env-1".to_string()]);
            assert_eq!(read[1], WindowCounts::default());
            store.set_fault(Some(StoreError::Throttled("slow down".into())));
            assert!(store.read_windows("payments", &[1_000], 3).await.is_err());
            assert!(
                store
                    .add_to_window("payments", 1_000, 0, &delta, 61_000)
                    .await
                    .is_err()
            );
        });
    }
}
