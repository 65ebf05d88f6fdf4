//! Runs every conformance scenario against the core natively: each scenario environment is a
//! `Circuit` with its own identity, all sharing one in-memory store and one manual clock. The
//! driver honours the admission lease the way a host does.

use std::collections::BTreeMap;

use fleetbreaker_conformance::{
    self as conf, Acquired, Driver, Fault, Info, PermitHandle, Scenario, SeenEvent, StoreCounts,
    Stored,
};
use fleetbreaker_core::testing::{Item, ManualClock, MemoryStore, TestEnv};
use fleetbreaker_core::{
    Circuit, Config, CorruptItem, Event, FailurePolicy, Outcome, Permit, PermitKind, StoreError,
    StoreFailureMode,
};

pub fn config_of(scenario: &Scenario) -> Config {
    let c = &scenario.config;
    let d = Config::default();
    Config {
        failure_policy: FailurePolicy::ConsecutiveFailures(
            c.failure_threshold.unwrap_or(d.failure_threshold()),
        ),
        recovery_timeout_ms: c.recovery_timeout_ms.unwrap_or(d.recovery_timeout_ms),
        success_threshold: c.success_threshold.unwrap_or(d.success_threshold),
        local_cache_max_age_ms: c.local_cache_max_age_ms.unwrap_or(d.local_cache_max_age_ms),
        backoff_multiplier: c.backoff_multiplier.unwrap_or(d.backoff_multiplier),
        max_recovery_timeout_ms: c.max_recovery_timeout_ms.or(d.max_recovery_timeout_ms),
        recovery_jitter: 0.0,
        probe_lease_ms: c.probe_lease_ms.or(d.probe_lease_ms),
        store_retry_after_ms: c.store_retry_after_ms.unwrap_or(d.store_retry_after_ms),
        store_failure_mode: match c.store_failure_mode.as_deref() {
            None | Some("open") => StoreFailureMode::Open,
            Some("closed") => StoreFailureMode::Closed,
            Some(other) => panic!("unknown store_failure_mode {other:?}"),
        },
    }
}

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
    permits: Vec<(String, Held)>,
    events: Vec<(String, SeenEvent)>,
}

fn fault_error(f: Fault) -> StoreError {
    let m = "injected".to_string();
    match f {
        Fault::Unavailable => StoreError::Unavailable(m),
        Fault::Timeout => StoreError::Timeout(m),
        Fault::Throttled => StoreError::Throttled(m),
        Fault::Misconfigured => StoreError::Misconfigured(m),
    }
}

fn error_kind(e: &StoreError) -> &'static str {
    match e {
        StoreError::Unavailable(_) => "unavailable",
        StoreError::Timeout(_) => "timeout",
        StoreError::Throttled(_) => "throttled",
        StoreError::Misconfigured(_) => "misconfigured",
        StoreError::Corrupt(_) => "corrupt",
    }
}

impl NativeDriver {
    fn new(scenario: &Scenario) -> NativeDriver {
        let store = MemoryStore::default();
        let clock = ManualClock::new(scenario.start_ms);
        let config = config_of(scenario);
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
        }
    }

    fn slot(&mut self, env: &str) -> &mut EnvSlot {
        self.envs.get_mut(env).expect("known environment")
    }

    /// Moves the events `env` emitted into the shared, ordered log.
    fn collect(&mut self, env: &str) {
        let drained: Vec<Event> = std::mem::take(&mut self.slot(env).host.events);
        for e in drained {
            let seen = match e {
                Event::Transition(t) => SeenEvent::Transition {
                    from: t.from_state.as_str().into(),
                    to: t.to_state.as_str().into(),
                    reason: t.reason.as_str().into(),
                    version: t.version,
                    local_only: t.local_only,
                },
                Event::CorruptRecord(_) => SeenEvent::CorruptRecord,
                Event::StoreDegraded(f) => SeenEvent::StoreDegraded {
                    error: error_kind(&f.error).into(),
                },
                Event::StoreRecovered(_) => SeenEvent::StoreRecovered,
            };
            self.events.push((env.to_string(), seen));
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
        result.map(|_| ()).map_err(|e| error_kind(&e).to_string())
    }
}

impl Driver for NativeDriver {
    fn acquire(&mut self, env: &str) -> Acquired {
        let now = self.clock.now_ms();
        let slot = self.slot(env);
        let acquired = if now < slot.lease_until_ms {
            Ok(Held::Leased)
        } else {
            let leased = std::mem::take(&mut slot.leased_successes);
            match slot.circuit.acquire(&mut slot.host, leased) {
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
                self.permits.push((env.to_string(), held));
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
        let outcome = match outcome {
            conf::Outcome::Success => Outcome::Success,
            conf::Outcome::Failure => Outcome::Failure,
            conf::Outcome::Ignored => Outcome::Ignored,
        };
        let (owner, held) = &self.permits[permit.0 as usize];
        assert_eq!(
            owner, env,
            "a permit is completed by the environment that holds it"
        );
        let held = match held {
            Held::Leased => None,
            Held::Granted(p) => Some(*p),
        };
        let slot = self.slot(env);
        if outcome == Outcome::Failure {
            slot.lease_until_ms = 0;
        }
        match held {
            None => match outcome {
                Outcome::Success => slot.leased_successes += 1,
                Outcome::Ignored => {}
                Outcome::Failure => {
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
        Info {
            state: info.state.as_str().into(),
            version: info.version,
            failure_count: info.failure_count,
            local_only: info.local_only,
            retry_after_ms: info.retry_after_ms,
            override_reason: info.override_reason,
        }
    }

    fn advance(&mut self, ms: u64) {
        self.clock.advance(ms);
    }

    fn set_store_fault(&mut self, fault: Option<Fault>) {
        self.store.set_fault(fault.map(fault_error));
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

    fn stored(&mut self) -> Option<Stored> {
        self.store.record(&self.circuit).map(|r| Stored {
            state: r.state.as_str().into(),
            version: r.version,
            trips: r.trips,
            probe_successes: r.probe_successes,
            probe_owner: r.probe_owner,
            opened_at_ms: r.opened_at_ms,
            open_until_ms: r.open_until_ms,
            closed_at_ms: r.closed_at_ms,
            failure_count: r.failure_count,
            override_reason: r.override_reason,
            override_until_ms: r.override_until_ms,
            updated_by: r.updated_by,
        })
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
