//! Property tests: several simulated environments share one in-memory store and one clock,
//! and act in random interleavings. After every step the invariants of the shared record are
//! checked. The seed is printed; rerun one with `FLEETBREAKER_SEED=<seed>`.

use fleetbreaker_core::machine;
use fleetbreaker_core::testing::{ManualClock, MemoryStore, TestEnv};
use fleetbreaker_core::{
    Circuit, CircuitState, Config, Event, FailurePolicy, FailureRate, Outcome, Permit, PermitKind,
    StoreError,
};
use proptest::prelude::*;
use proptest::test_runner::{
    Config as RunnerConfig, RngAlgorithm, TestCaseError, TestRng, TestRunner,
};

const CIRCUIT: &str = "downstream";

#[derive(Clone, Debug)]
enum Action {
    Acquire(usize),
    /// Completes the environment's n-th call in flight (modulo), with an outcome.
    Complete(usize, usize, Outcome),
    Advance(u64),
    StoreDown(bool),
}

fn config_strategy() -> impl Strategy<Value = Config> {
    // Both policies: consecutive failures in one environment, and the fleet's failure rate.
    let policy = prop_oneof![
        (1u32..4).prop_map(FailurePolicy::ConsecutiveFailures),
        (prop_oneof![Just(0.2), Just(0.5), Just(1.0)], 1u32..12).prop_map(
            |(threshold, minimum_calls)| FailurePolicy::FailureRate(FailureRate {
                threshold,
                minimum_calls,
            })
        ),
    ];
    (
        policy,
        100u64..1000,
        1u32..4,
        0u64..300,
        50u64..600,
        prop_oneof![Just(1.0), Just(2.0)],
        // Also the path where a trip waits for other environments' reports to the window.
        1u32..3,
        500u64..5000,
    )
        .prop_map(
            |(policy, recovery, successes, cache, lease, multiplier, environments, window)| {
                Config {
                    failure_policy: policy,
                    recovery_timeout_ms: recovery,
                    success_threshold: successes,
                    local_cache_max_age_ms: cache,
                    backoff_multiplier: multiplier,
                    max_recovery_timeout_ms: Some(recovery * 4),
                    probe_lease_ms: Some(lease),
                    store_retry_after_ms: 200,
                    minimum_environments: environments,
                    window_ms: window,
                    ..Config::default()
                }
            },
        )
}

fn action_strategy(envs: usize, faults: bool) -> impl Strategy<Value = Action> {
    let outcome = prop_oneof![
        3 => Just(Outcome::Failure),
        3 => Just(Outcome::Success),
        1 => Just(Outcome::Ignored),
        1 => Just(Outcome::Slow),
    ];
    let fault_weight = if faults { 1 } else { 0 };
    prop_oneof![
        6 => (0..envs).prop_map(Action::Acquire),
        6 => (0..envs, 0usize..4, outcome).prop_map(|(e, i, o)| Action::Complete(e, i, o)),
        3 => (0u64..400).prop_map(Action::Advance),
        fault_weight => any::<bool>().prop_map(Action::StoreDown),
    ]
}

/// A call in flight, as a host holds it.
#[derive(Clone, Debug)]
enum Held {
    Leased,
    Granted {
        permit: Permit,
        /// For probes: until when the permit's lease runs, as written when it was taken.
        lease_until_ms: u64,
        /// Whether the store could be reached when it was granted (a local-only probe is not
        /// the fleet's probe).
        shared: bool,
        /// How many times the shared record had closed when it was granted. A probe still in
        /// flight when the circuit closes (a late success closed it) is from then on just a
        /// call in flight, like any call running when a circuit trips.
        closes: usize,
    },
}

struct Env {
    circuit: Circuit,
    host: TestEnv,
    lease_until_ms: u64,
    leased_successes: u32,
    in_flight: Vec<Held>,
}

struct Fleet {
    store: MemoryStore,
    clock: ManualClock,
    envs: Vec<Env>,
    shared_events: Vec<(usize, fleetbreaker_core::Transition)>,
    store_down: bool,
    next_permit_id: u64,
}

impl Fleet {
    fn new(config: &Config, n: usize) -> Fleet {
        let store = MemoryStore::default();
        let clock = ManualClock::new(1_700_000_000_000);
        let envs = (0..n)
            .map(|i| Env {
                circuit: Circuit::new(CIRCUIT, config.clone(), &format!("env{i}")).unwrap(),
                host: TestEnv::with_clock(store.clone(), clock.clone()),
                lease_until_ms: 0,
                leased_successes: 0,
                in_flight: Vec::new(),
            })
            .collect();
        Fleet {
            store,
            clock,
            envs,
            shared_events: Vec::new(),
            store_down: false,
            next_permit_id: 0,
        }
    }

    fn drain(&mut self, i: usize) {
        for event in std::mem::take(&mut self.envs[i].host.events) {
            if let Event::Transition(t) = event
                && !t.local_only
            {
                self.shared_events.push((i, t));
            }
        }
    }

    fn closes(&self) -> usize {
        self.store
            .write_log()
            .iter()
            .filter(|(_, r)| r.state == CircuitState::Closed)
            .count()
    }

    fn live_shared_probes(&self, now: u64) -> usize {
        let closes = self.closes();
        self.envs
            .iter()
            .flat_map(|e| &e.in_flight)
            .filter(|h| {
                matches!(h, Held::Granted { permit, lease_until_ms, shared: true, closes: c }
                    if permit.kind == PermitKind::Probe && now < *lease_until_ms && *c == closes)
            })
            .count()
    }

    fn act(&mut self, action: &Action) -> Result<(), TestCaseError> {
        let now = self.clock.now_ms();
        let mono = self.clock.monotonic_ms();
        match *action {
            Action::Advance(ms) => self.clock.advance(ms),
            Action::StoreDown(down) => {
                self.store_down = down;
                self.store
                    .set_fault(down.then(|| StoreError::Unavailable("down".into())));
            }
            Action::Acquire(i) => {
                let live_before = self.live_shared_probes(now);
                let env = &mut self.envs[i];
                if mono < env.lease_until_ms {
                    env.in_flight.push(Held::Leased);
                } else {
                    let leased = std::mem::take(&mut env.leased_successes);
                    self.next_permit_id += 1;
                    let id = self.next_permit_id;
                    if let Ok(permit) = env.circuit.acquire(&mut env.host, leased, id) {
                        env.lease_until_ms = permit.lease_until_ms.unwrap_or(0);
                        let shared = !env.circuit.is_local_only();
                        let lease_until_ms = match (permit.kind, shared) {
                            (PermitKind::Probe, true) => self
                                .store
                                .record(CIRCUIT)
                                .and_then(|r| r.probe_lease_until_ms)
                                .unwrap_or(0),
                            _ => 0,
                        };
                        if permit.kind == PermitKind::Probe && shared {
                            prop_assert_eq!(
                                live_before,
                                0,
                                "a probe was granted while another probe's lease was live"
                            );
                        }
                        let closes = self
                            .store
                            .write_log()
                            .iter()
                            .filter(|(_, r)| r.state == CircuitState::Closed)
                            .count();
                        let env = &mut self.envs[i];
                        env.in_flight.push(Held::Granted {
                            closes,
                            permit,
                            lease_until_ms,
                            shared,
                        });
                    }
                }
                self.drain(i);
            }
            Action::Complete(i, n, outcome) => {
                let env = &mut self.envs[i];
                if env.in_flight.is_empty() {
                    return Ok(());
                }
                let held = env.in_flight.remove(n % env.in_flight.len());
                if matches!(outcome, Outcome::Failure | Outcome::Slow) {
                    env.lease_until_ms = 0;
                }
                match held {
                    Held::Leased => match outcome {
                        Outcome::Success => env.leased_successes += 1,
                        Outcome::Ignored => {}
                        Outcome::Failure | Outcome::Slow => {
                            let leased = std::mem::take(&mut env.leased_successes);
                            env.circuit.complete_leased(&mut env.host, leased, outcome);
                        }
                    },
                    Held::Granted { permit, .. } => {
                        env.circuit.complete(&mut env.host, permit, outcome)
                    }
                }
                self.drain(i);
            }
        }
        self.check()
    }

    /// The invariants of the shared record and its events.
    fn check(&self) -> Result<(), TestCaseError> {
        let log = self.store.write_log();
        let mut previous_state = CircuitState::Closed;
        for (n, (_, record)) in log.iter().enumerate() {
            prop_assert_eq!(
                record.version,
                n as u64 + 1,
                "each write bumps the version by one"
            );
            let event = self
                .shared_events
                .iter()
                .filter(|(_, t)| t.version == record.version)
                .collect::<Vec<_>>();
            prop_assert_eq!(
                event.len(),
                1,
                "one event per write (version {})",
                record.version
            );
            let (_, t) = event[0];
            prop_assert_eq!(t.from_state, previous_state);
            prop_assert_eq!(t.to_state, record.state);
            prop_assert!(
                machine::is_legal(t.from_state, t.reason, t.to_state),
                "illegal transition {:?}",
                t
            );
            previous_state = record.state;
        }
        prop_assert_eq!(
            self.shared_events.len(),
            log.len(),
            "no event without a write"
        );
        Ok(())
    }

    /// The downstream recovers and the store answers: the circuit must close again.
    fn recover(&mut self, config: &Config) -> Result<(), TestCaseError> {
        self.act(&Action::StoreDown(false))?;
        for i in 0..self.envs.len() {
            while !self.envs[i].in_flight.is_empty() {
                self.act(&Action::Complete(i, 0, Outcome::Success))?;
            }
        }
        let step = config.recovery_timeout_ms * 4 + config.probe_lease() + 300;
        for round in 0..(config.success_threshold as usize + 4) * self.envs.len() * 3 {
            self.act(&Action::Advance(step))?;
            let i = round % self.envs.len();
            self.act(&Action::Acquire(i))?;
            if !self.envs[i].in_flight.is_empty() {
                self.act(&Action::Complete(i, 0, Outcome::Success))?;
            }
            let closed = self
                .store
                .record(CIRCUIT)
                .is_none_or(|r| r.state == CircuitState::Closed);
            if closed && round >= self.envs.len() {
                return Ok(());
            }
        }
        Err(TestCaseError::fail(format!(
            "the circuit did not close after recovery: {:?}",
            self.store.record(CIRCUIT)
        )))
    }
}

fn run_fleet(name: &str, faults: bool, cases: u32) {
    let seed = fleetbreaker_core::testing::seed();
    println!("{name}: seed {seed} (rerun with FLEETBREAKER_SEED={seed})");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig {
            cases,
            failure_persistence: None,
            ..RunnerConfig::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    let strategy = (config_strategy(), 2usize..5).prop_flat_map(move |(config, envs)| {
        (
            Just(config),
            Just(envs),
            prop::collection::vec(action_strategy(envs, faults), 1..250),
        )
    });
    let result = runner.run(&strategy, |(config, envs, actions)| {
        let mut fleet = Fleet::new(&config, envs);
        for action in &actions {
            fleet.act(action)?;
        }
        fleet.recover(&config)
    });
    if let Err(e) = result {
        panic!("{name} failed with seed {seed}: {e}");
    }
}

#[test]
fn fleet_keeps_one_probe_one_event_per_write_and_legal_transitions() {
    run_fleet("fleet", false, 300);
}

#[test]
fn fleet_with_store_outages_keeps_the_record_consistent_and_recovers() {
    run_fleet("fleet with outages", true, 300);
}
