//! Runs every conformance scenario against the component through the host: each scenario
//! environment is its own component instance ([`Environment`]), all sharing one store and one
//! [`ManualClock`]. The host honours the admission lease itself.
//!
//! The scenarios run three times: on the [`MemoryStore`] (with its own fault injection), on a
//! SQLite file and on a DynamoDB table on moto's server. The real stores sit behind a small
//! fault injector, so a scenario's store outage is the same everywhere; their own failures
//! (a killed server, throttling, a slow store) have their own tests.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_dynamodb::types::AttributeValue;
use fleetbreaker::dynamodb::attr;
use fleetbreaker::{
    Breaker, CorruptItem, DynamoDbStore, Environment, ManualClock, MemoryStore, Permit, Record,
    SqliteStore, Store, StoreError, StoreFuture, SwapResult, WindowCounts, WindowDelta,
};
use fleetbreaker_conformance::{
    self as conf, Acquired, Driver, Fault, Info, PermitHandle, Scenario, SeenEvent, StoreCounts,
    Stored,
};
use support::TempDir;
use support::moto::{self, Moto};

type EventLog = Arc<Mutex<Vec<(String, SeenEvent)>>>;

/// A real store behind a fault injector that counts what the memory store counts: loads that
/// reached an item (or its absence), writes that landed, calls refused by the injected fault.
struct Injector {
    inner: Arc<dyn Store>,
    fault: Mutex<Option<StoreError>>,
    reads: AtomicU64,
    writes: AtomicU64,
    faulted: AtomicU64,
}

impl Injector {
    fn new(inner: Arc<dyn Store>) -> Injector {
        Injector {
            inner,
            fault: Mutex::new(None),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            faulted: AtomicU64::new(0),
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        match &*self.fault.lock().unwrap() {
            Some(fault) => {
                self.faulted.fetch_add(1, Ordering::Relaxed);
                Err(fault.clone())
            }
            None => Ok(()),
        }
    }
}

impl Store for Injector {
    fn load<'a>(&'a self, circuit: &'a str) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            self.check()?;
            let result = self.inner.load(circuit).await;
            if matches!(result, Ok(_) | Err(StoreError::Corrupt(_))) {
                self.reads.fetch_add(1, Ordering::Relaxed);
            }
            result
        })
    }

    fn swap<'a>(
        &'a self,
        circuit: &'a str,
        expected_version: Option<u64>,
        next: &'a Record,
    ) -> StoreFuture<'a, SwapResult> {
        Box::pin(async move {
            self.check()?;
            let result = self.inner.swap(circuit, expected_version, next).await;
            if matches!(result, Ok(SwapResult::Written)) {
                self.writes.fetch_add(1, Ordering::Relaxed);
            }
            result
        })
    }

    fn add_to_window<'a>(
        &'a self,
        circuit: &'a str,
        window_start_ms: u64,
        shard: u32,
        delta: &'a WindowDelta,
        expires_at_ms: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.check()?;
            self.inner
                .add_to_window(circuit, window_start_ms, shard, delta, expires_at_ms)
                .await
        })
    }

    fn read_windows<'a>(
        &'a self,
        circuit: &'a str,
        window_starts_ms: &'a [u64],
        shards: u32,
    ) -> StoreFuture<'a, Vec<WindowCounts>> {
        Box::pin(async move {
            self.check()?;
            self.inner
                .read_windows(circuit, window_starts_ms, shards)
                .await
        })
    }
}

/// Where a scenario's environments keep their shared record.
enum Backend {
    Memory(MemoryStore),
    Sqlite {
        injector: Arc<Injector>,
        store: Arc<SqliteStore>,
        dir: TempDir,
    },
    DynamoDb {
        injector: Arc<Injector>,
        store: Arc<DynamoDbStore>,
    },
}

/// A fresh SQLite file per scenario.
fn sqlite_backend(scenario: &Scenario) -> Backend {
    let dir = TempDir::new(&format!("conformance-{}", scenario.name));
    let store = Arc::new(SqliteStore::open(dir.join("circuits.db")).unwrap());
    let injector = Arc::new(Injector::new(store.clone()));
    Backend::Sqlite {
        injector,
        store,
        dir,
    }
}

fn shared_moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(Moto::start)
}

/// A fresh table per scenario, on a moto server shared by the scenarios.
fn dynamodb_backend(rt: &tokio::runtime::Runtime) -> Backend {
    let store = rt.block_on(async {
        let config = moto::config(&shared_moto().endpoint(), &moto::table("conformance"));
        let store = moto::connect(config).await;
        store.create_table().await.unwrap();
        Arc::new(store)
    });
    let injector = Arc::new(Injector::new(store.clone()));
    Backend::DynamoDb { injector, store }
}

impl Backend {
    fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Memory(m) => Arc::new(m.clone()),
            Backend::Sqlite { injector, .. } | Backend::DynamoDb { injector, .. } => {
                injector.clone()
            }
        }
    }
}

struct HostDriver {
    rt: tokio::runtime::Runtime,
    backend: Backend,
    clock: ManualClock,
    circuit: String,
    breakers: BTreeMap<String, Breaker>,
    permits: Vec<Option<(String, Permit)>>,
    events: EventLog,
}

impl HostDriver {
    fn new(
        scenario: &Scenario,
        backend: impl FnOnce(&tokio::runtime::Runtime) -> Backend,
    ) -> HostDriver {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let backend = backend(&rt);
        let store = backend.store();
        let clock = ManualClock::new(scenario.start_ms);
        let events: EventLog = Arc::default();
        let breakers = scenario
            .environments
            .iter()
            .map(|name| {
                let log = events.clone();
                let label = name.clone();
                let env = Environment::builder(store.clone())
                    .clock(clock.clone())
                    .id(format!("env-{name}"))
                    .on_event(move |e| {
                        log.lock()
                            .unwrap()
                            .push((label.clone(), SeenEvent::from_event(e)))
                    })
                    .build()
                    .unwrap();
                let breaker = Breaker::builder(scenario.circuit.clone())
                    .config(scenario.config.to_config())
                    .environment(&env)
                    .build()
                    .unwrap();
                (name.clone(), breaker)
            })
            .collect();
        HostDriver {
            rt,
            backend,
            clock,
            circuit: scenario.circuit.clone(),
            breakers,
            permits: Vec::new(),
            events,
        }
    }

    fn operator(
        &self,
        result: Result<fleetbreaker::CircuitInfo, fleetbreaker::Error>,
    ) -> Result<(), String> {
        match result {
            Ok(_) => Ok(()),
            Err(fleetbreaker::Error::Store(e)) => Err(Fault::kind_of(&e).to_string()),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
}

impl Driver for HostDriver {
    fn acquire(&mut self, env: &str) -> Acquired {
        let breaker = &self.breakers[env];
        match self.rt.block_on(breaker.acquire()) {
            Ok(permit) => {
                let (probe, leased) = (permit.is_probe(), permit.is_leased());
                self.permits.push(Some((env.to_string(), permit)));
                Acquired::Admitted {
                    permit: PermitHandle(self.permits.len() as u64 - 1),
                    probe,
                    leased,
                }
            }
            Err(fleetbreaker::Error::Open(info)) => Acquired::Rejected {
                state: info.state.as_str().into(),
                retry_after_ms: info.retry_after_ms,
            },
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn complete(&mut self, env: &str, permit: PermitHandle, outcome: conf::Outcome) {
        let (owner, permit) = self.permits[permit.0 as usize]
            .take()
            .expect("a permit is completed once");
        assert_eq!(owner, env);
        self.rt
            .block_on(self.breakers[env].complete(permit, outcome.into()));
    }

    fn force_open(
        &mut self,
        env: &str,
        duration_ms: Option<u64>,
        reason: &str,
    ) -> Result<(), String> {
        let d = duration_ms.map(std::time::Duration::from_millis);
        let r = self.rt.block_on(self.breakers[env].force_open(d, reason));
        self.operator(r)
    }

    fn force_closed(
        &mut self,
        env: &str,
        duration_ms: Option<u64>,
        reason: &str,
    ) -> Result<(), String> {
        let d = duration_ms.map(std::time::Duration::from_millis);
        let r = self.rt.block_on(self.breakers[env].force_closed(d, reason));
        self.operator(r)
    }

    fn reset(&mut self, env: &str) -> Result<(), String> {
        let r = self.rt.block_on(self.breakers[env].reset());
        self.operator(r)
    }

    fn info(&mut self, env: &str) -> Info {
        Info::from_info(self.rt.block_on(self.breakers[env].info()).unwrap())
    }

    fn advance(&mut self, ms: u64) {
        self.clock.advance(ms);
    }

    fn set_store_fault(&mut self, fault: Option<Fault>) {
        let fault = fault.map(Fault::to_store_error);
        match &self.backend {
            Backend::Memory(m) => m.set_fault(fault),
            Backend::Sqlite { injector, .. } | Backend::DynamoDb { injector, .. } => {
                *injector.fault.lock().unwrap() = fault
            }
        }
    }

    fn corrupt_item(&mut self, version: Option<u64>, problem: &str) {
        // An unknown state, with or without a readable version, written the way a stray writer
        // would. (A known state without a version is an item of the Powertools breaker, read
        // as the state it holds; it has tests of its own.)
        let state = "SIDEWAYS";
        match &self.backend {
            Backend::Memory(m) => m.put_corrupt(
                &self.circuit,
                CorruptItem {
                    detail: problem.to_string(),
                    version,
                },
            ),
            Backend::Sqlite { dir, .. } => {
                let conn = rusqlite::Connection::open(dir.join("circuits.db")).unwrap();
                conn.execute(
                    &format!(
                        "INSERT OR REPLACE INTO {} (name, state, version) VALUES (?1, ?2, ?3)",
                        fleetbreaker::sqlite::TABLE
                    ),
                    rusqlite::params![self.circuit, state, version.map(|v| v as i64)],
                )
                .unwrap();
            }
            Backend::DynamoDb { store, .. } => {
                let mut item = HashMap::from([
                    ("id".to_string(), AttributeValue::S(self.circuit.clone())),
                    (attr::STATE.to_string(), AttributeValue::S(state.into())),
                ]);
                if let Some(v) = version {
                    item.insert(attr::VERSION.to_string(), AttributeValue::N(v.to_string()));
                }
                self.rt
                    .block_on(
                        store
                            .client()
                            .put_item()
                            .table_name(store.table_name())
                            .set_item(Some(item))
                            .send(),
                    )
                    .unwrap();
            }
        }
    }

    fn delete_item(&mut self) {
        match &self.backend {
            Backend::Memory(m) => m.remove(&self.circuit),
            Backend::Sqlite { store, .. } => self.rt.block_on(store.remove(&self.circuit)).unwrap(),
            Backend::DynamoDb { store, .. } => {
                self.rt.block_on(store.remove(&self.circuit)).unwrap()
            }
        }
    }

    fn stored(&mut self) -> Option<Stored> {
        // Straight from the store, past the injector: inspection is neither a read nor faulted.
        let record = match &self.backend {
            Backend::Memory(m) => m.record(&self.circuit),
            Backend::Sqlite { store, .. } => self.rt.block_on(store.load(&self.circuit)).ok()?,
            Backend::DynamoDb { store, .. } => self.rt.block_on(store.load(&self.circuit)).ok()?,
        };
        record.map(Stored::from_record)
    }

    fn store_counts(&mut self) -> StoreCounts {
        match &self.backend {
            Backend::Memory(m) => StoreCounts {
                reads: m.reads(),
                writes: m.writes(),
                failed_calls: m.faulted_calls(),
            },
            Backend::Sqlite { injector, .. } | Backend::DynamoDb { injector, .. } => StoreCounts {
                reads: injector.reads.load(Ordering::Relaxed),
                writes: injector.writes.load(Ordering::Relaxed),
                failed_calls: injector.faulted.load(Ordering::Relaxed),
            },
        }
    }

    fn take_events(&mut self) -> Vec<(String, SeenEvent)> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }

    fn environment_id(&self, env: &str) -> String {
        format!("env-{env}")
    }
}

#[test]
fn every_scenario_passes_on_the_component_through_the_host() {
    let n = conf::run_all("component", |s| {
        HostDriver::new(s, |_| Backend::Memory(MemoryStore::new()))
    });
    assert!(n >= 20, "expected at least 20 scenarios, found {n}");
}

#[test]
fn every_scenario_passes_on_the_sqlite_store() {
    let n = conf::run_all("sqlite", |s| HostDriver::new(s, |_| sqlite_backend(s)));
    assert!(n >= 20, "expected at least 20 scenarios, found {n}");
}

#[test]
fn every_scenario_passes_on_the_dynamodb_store() {
    let n = conf::run_all("dynamodb", |s| HostDriver::new(s, dynamodb_backend));
    assert!(n >= 20, "expected at least 20 scenarios, found {n}");
}
