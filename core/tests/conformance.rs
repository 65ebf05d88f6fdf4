//! Runs every conformance scenario against the core natively: each scenario environment is a
//! `Circuit` with its own identity, all sharing one in-memory store and one manual clock. The
//! driver honours the admission lease the way a host does.

use std::collections::BTreeMap;

use fleetbreaker_conformance::{
    self as conf, Acquired, Driver, Fault, Info, PermitHandle, Scenario, SeenEvent, StoreCounts,
    Stored,
};
use fleetbreaker_core::testing::{Item, ManualClock, MemoryStore, TestEnv};
use fleetbreaker_core::{Circuit, CorruptItem, Event, Outcome, Permit, PermitKind, StoreError};

struct EnvSlot {
    circuit: Circuit,
    host: TestEnv,
    lease_until_ms: u64,
    leased_successes: u32,
}

enum Held {
    Leased,
    Granted(Permit),
}

struct NativeDriver {
    store: MemoryStore,
    clock: ManualClock,
    circuit: String,
    envs: BTreeMap<String, EnvSlot>,
    /// Each permit's holder, grant, and admission on the monotonic clock (a host times the
    /// call from there, for `slow_call_ms`).
    permits: Vec<(String, Held, u64)>,
    events: Vec<(String, SeenEvent)>,
    /// Permit ids: a host picks them at random; a counter is as unique within a scenario.
    next_permit_id: u64,
}

impl NativeDriver {
    fn new(scenario: &Scenario) -> NativeDriver {
        let store = MemoryStore::default();
        let clock = ManualClock::new(scenario.start_ms);
        let config = scenario.config.to_config();
        let envs = scenario
            .environments
            .iter()
            .map(|name| {
                let circuit =
                    Circuit::new(&scenario.circuit, config.clone(), &format!("env-{name}"))
                        .expect("scenario config is valid");
                let slot = EnvSlot {
                    circuit,
                    host: TestEnv::with_clock(store.clone(), clock.clone()),
                    lease_until_ms: 0,
                    leased_successes: 0,
                };
                (name.clone(), slot)
            })
            .collect();
        NativeDriver {
            store,
            clock,
            circuit: scenario.circuit.clone(),
            envs,
            permits: Vec::new(),
            events: Vec::new(),
            next_permit_id: 1,
        }
    }

    fn slot(&mut self, env: &str) -> &mut EnvSlot {
        self.envs.get_mut(env).expect("known environment")
    }

    /// Moves the events `env` emitted into the shared, ordered log.
    fn collect(&mut self, env: &str) {
        let drained: Vec<Event> = std::mem::take(&mut self.slot(env).host.events);
        for e in drained {
            self.events
                .push((env.to_string(), SeenEvent::from_event(&e)));
        }
    }

    fn operator(
        &mut self,
        env: &str,
        op: impl FnOnce(&mut EnvSlot) -> Result<fleetbreaker_core::CircuitInfo, StoreError>,
    ) -> Result<(), String> {
        let slot = self.slot(env);
        slot.lease_until_ms = 0;
        let result = op(slot);
        self.collect(env);
        result
            .map(|_| ())
            .map_err(|e| Fault::kind_of(&e).to_string())
    }
}

impl Driver for NativeDriver {
    fn acquire(&mut self, env: &str) -> Acquired {
        let now = self.clock.monotonic_ms();
        let id = self.next_permit_id;
        self.next_permit_id += 1;
        let slot = self.slot(env);
        let acquired = if now < slot.lease_until_ms {
            Ok(Held::Leased)
        } else {
            let leased = std::mem::take(&mut slot.leased_successes);
            match slot.circuit.acquire(&mut slot.host, leased, id) {
                Ok(p) => {
                    slot.lease_until_ms = p.lease_until_ms.unwrap_or(0);
                    Ok(Held::Granted(p))
                }
                Err(info) => Err(info),
            }
        };
        self.collect(env);
        match acquired {
            Ok(held) => {
                let (probe, leased) = match &held {
                    Held::Leased => (false, true),
                    Held::Granted(p) => (p.kind == PermitKind::Probe, false),
                };
                self.permits.push((env.to_string(), held, now));
                Acquired::Admitted {
                    permit: PermitHandle(self.permits.len() as u64 - 1),
                    probe,
                    leased,
                }
            }
            Err(info) => Acquired::Rejected {
                state: info.state.as_str().into(),
                retry_after_ms: info.retry_after_ms,
            },
        }
    }

    fn complete(&mut self, env: &str, permit: PermitHandle, outcome: conf::Outcome) {
        let (owner, held, started) = &self.permits[permit.0 as usize];
        let elapsed = self.clock.monotonic_ms().saturating_sub(*started);
        assert_eq!(
            owner, env,
            "a permit is completed by the environment that holds it"
        );
        let held = match held {
            Held::Leased => None,
            Held::Granted(p) => Some(*p),
        };
        let slot = self.slot(env);
        let outcome = Outcome::from(outcome).timed(elapsed, slot.circuit.config().slow_call_ms);
        if matches!(outcome, Outcome::Failure | Outcome::Slow) {
            slot.lease_until_ms = 0;
        }
        match held {
            None => match outcome {
                Outcome::Success => slot.leased_successes += 1,
                Outcome::Ignored => {}
                Outcome::Failure | Outcome::Slow => {
                    let leased = std::mem::take(&mut slot.leased_successes);
                    slot.circuit
                        .complete_leased(&mut slot.host, leased, outcome);
                }
            },
            Some(p) => slot.circuit.complete(&mut slot.host, p, outcome),
        }
        self.collect(env);
    }

    fn force_open(
        &mut self,
        env: &str,
        duration_ms: Option<u64>,
        reason: &str,
    ) -> Result<(), String> {
        self.operator(env, |s| {
            s.circuit.force_open(&mut s.host, duration_ms, reason)
        })
    }

    fn force_closed(
        &mut self,
        env: &str,
        duration_ms: Option<u64>,
        reason: &str,
    ) -> Result<(), String> {
        self.operator(env, |s| {
            s.circuit.force_closed(&mut s.host, duration_ms, reason)
        })
    }

    fn reset(&mut self, env: &str) -> Result<(), String> {
        self.operator(env, |s| s.circuit.reset(&mut s.host))
    }

    fn info(&mut self, env: &str) -> Info {
        let slot = self.slot(env);
        let info = slot.circuit.info(&mut slot.host);
        self.collect(env);
        Info::from_info(info)
    }

    fn advance(&mut self, ms: u64) {
        self.clock.advance(ms);
    }

    fn set_store_fault(&mut self, fault: Option<Fault>) {
        self.store.set_fault(fault.map(Fault::to_store_error));
    }

    fn corrupt_item(&mut self, version: Option<u64>, problem: &str) {
        self.store.put_item(
            &self.circuit,
            Item::Corrupt(CorruptItem {
                detail: problem.to_string(),
                version,
            }),
        );
    }

    fn delete_item(&mut self) {
        self.store.remove_item(&self.circuit);
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
        std::mem::take(&mut self.events)
    }

    fn environment_id(&self, env: &str) -> String {
        format!("env-{env}")
    }
}

#[test]
fn every_scenario_passes_on_the_native_core() {
    let n = conf::run_all("core", NativeDriver::new);
    assert!(n >= 20, "expected at least 20 scenarios, found {n}");
}
