//! Runs every conformance scenario against the component through the host: each scenario
//! environment is its own component instance ([`Environment`]), all sharing one
//! [`MemoryStore`] and one [`ManualClock`]. The host honours the admission lease itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use fleetbreaker::{Breaker, CorruptItem, Environment, ManualClock, MemoryStore, Permit};
use fleetbreaker_conformance::{
    self as conf, Acquired, Driver, Fault, Info, PermitHandle, Scenario, SeenEvent, StoreCounts,
    Stored,
};

type EventLog = Arc<Mutex<Vec<(String, SeenEvent)>>>;

struct HostDriver {
    rt: tokio::runtime::Runtime,
    store: MemoryStore,
    clock: ManualClock,
    circuit: String,
    breakers: BTreeMap<String, Breaker>,
    permits: Vec<Option<(String, Permit)>>,
    events: EventLog,
}

impl HostDriver {
    fn new(scenario: &Scenario) -> HostDriver {
        let store = MemoryStore::new();
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
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            store,
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
        self.store.set_fault(fault.map(Fault::to_store_error));
    }

    fn corrupt_item(&mut self, version: Option<u64>, problem: &str) {
        self.store.put_corrupt(
            &self.circuit,
            CorruptItem {
                detail: problem.to_string(),
                version,
            },
        );
    }

    fn stored(&mut self) -> Option<Stored> {
        self.store.record(&self.circuit).map(Stored::from_record)
    }

    fn store_counts(&mut self) -> StoreCounts {
        StoreCounts {
            reads: self.store.reads(),
            writes: self.store.writes(),
            failed_calls: self.store.faulted_calls(),
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
    let n = conf::run_all("component", HostDriver::new);
    assert!(n >= 20, "expected at least 20 scenarios, found {n}");
}
