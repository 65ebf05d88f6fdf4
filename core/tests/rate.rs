//! The failure-rate policy: the fleet's calls and failures in a sliding window, added up from
//! the reports of the environments that see failures. Each test is a small fleet on one
//! memory store and one manual clock, its calls admitted under the lease the way a host
//! admits them. Random tests print their seed; rerun one with `FLEETBREAKER_SEED=<seed>`.

use fleetbreaker_core::testing::{ManualClock, MemoryStore, Rng, TestEnv};
use fleetbreaker_core::{
    Circuit, CircuitState, Config, Event, FailurePolicy, FailureRate, Outcome, StoreError,
    WINDOW_REPORT_INTERVAL_MS,
};

const T0: u64 = 1_700_000_000_000;
const CIRCUIT: &str = "payments";
/// Each environment calls every 200 ms.
const PERIOD_MS: u64 = 200;
const TICK_MS: u64 = 10;

fn config(threshold: f64, minimum_calls: u32, minimum_environments: u32) -> Config {
    Config {
        failure_policy: FailurePolicy::FailureRate(FailureRate {
            threshold,
            minimum_calls,
        }),
        window_ms: 10_000,
        minimum_environments,
        ..Config::default()
    }
}

fn seed() -> u64 {
    let seed = fleetbreaker_core::testing::seed();
    eprintln!("seed {seed} (rerun with FLEETBREAKER_SEED={seed})");
    seed
}

/// One environment as a host drives it: calls admitted under the lease are counted here and
/// handed over with the next call into the circuit.
struct Member {
    circuit: Circuit,
    env: TestEnv,
    lease_until_mono: Option<u64>,
    leased_successes: u32,
    next_id: u64,
}

struct Fleet {
    store: MemoryStore,
    clock: ManualClock,
    members: Vec<Member>,
    elapsed_ms: u64,
}

impl Fleet {
    fn new(n: usize, config: &Config) -> Fleet {
        let store = MemoryStore::default();
        let clock = ManualClock::new(T0);
        let members = (0..n)
            .map(|i| Member {
                circuit: Circuit::new(CIRCUIT, config.clone(), &format!("env-{i}")).unwrap(),
                env: TestEnv::with_clock(store.clone(), clock.clone()),
                lease_until_mono: None,
                leased_successes: 0,
                next_id: 0,
            })
            .collect();
        Fleet {
            store,
            clock,
            members,
            elapsed_ms: 0,
        }
    }

    fn state(&self) -> CircuitState {
        self.store
            .record(CIRCUIT)
            .map_or(CircuitState::Closed, |r| r.state)
    }

    /// Runs for `ms`, each environment calling every 200 ms; `fails(environment)` decides each
    /// call. Stops early when `stop` holds; returns the ms run.
    fn run(
        &mut self,
        ms: u64,
        mut fails: impl FnMut(usize) -> bool,
        stop: impl Fn(&Fleet) -> bool,
    ) -> u64 {
        let n = self.members.len() as u64;
        let start = self.elapsed_ms;
        while self.elapsed_ms - start < ms {
            for (i, m) in self.members.iter_mut().enumerate() {
                if (self.elapsed_ms + i as u64 * PERIOD_MS / n) % PERIOD_MS >= TICK_MS {
                    continue;
                }
                let failed = fails(i);
                let outcome = if failed {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                let now = self.clock.monotonic_ms();
                if m.lease_until_mono.is_some_and(|until| now < until) {
                    if failed {
                        let leased = std::mem::take(&mut m.leased_successes);
                        m.circuit.complete_leased(&mut m.env, leased, outcome);
                        m.lease_until_mono = None;
                    } else {
                        m.leased_successes += 1;
                    }
                    continue;
                }
                m.next_id += 1;
                let leased = std::mem::take(&mut m.leased_successes);
                m.lease_until_mono = None;
                if let Ok(permit) = m.circuit.acquire(&mut m.env, leased, m.next_id) {
                    if !failed {
                        m.lease_until_mono = permit.lease_until_ms;
                    }
                    m.circuit.complete(&mut m.env, permit, outcome);
                }
            }
            self.clock.advance(TICK_MS);
            self.elapsed_ms += TICK_MS;
            if stop(self) {
                break;
            }
        }
        self.elapsed_ms - start
    }
}

fn open(f: &Fleet) -> bool {
    f.state() == CircuitState::Open
}

#[test]
fn failure_rate_healthy_fleet_writes_and_reports_nothing() {
    let mut fleet = Fleet::new(20, &config(0.2, 100, 1));
    fleet.run(60_000, |_| false, |_| false);
    assert_eq!(fleet.store.writes(), 0);
    assert_eq!(fleet.store.window_adds(), 0);
    // At most one read per environment per cache age (5 s): 20 × 12 in a minute.
    assert!(
        fleet.store.reads() <= 20 * 13,
        "{} reads",
        fleet.store.reads()
    );
}

#[test]
fn failure_rate_partial_outage_trips_within_the_window_and_writes_once() {
    let mut rng = Rng::new(seed());
    let mut fleet = Fleet::new(20, &config(0.2, 100, 1));
    fleet.run(10_000, |_| false, |_| false);
    let took = fleet.run(60_000, |_| rng.chance(0.3), open);
    assert!(open(&fleet), "30 % errors never tripped a 0.2 threshold");
    assert!(took <= 10_000, "took {took} ms");
    assert_eq!(fleet.store.writes(), 1, "one trip, one write");
}

#[test]
fn failure_rate_noise_below_the_threshold_never_trips() {
    let mut rng = Rng::new(seed());
    let mut fleet = Fleet::new(20, &config(0.2, 100, 1));
    fleet.run(300_000, |_| rng.chance(0.05), open);
    assert_eq!(fleet.state(), CircuitState::Closed);
    assert_eq!(fleet.store.writes(), 0);
    assert!(fleet.store.window_adds() > 0, "failures were reported");
}

#[test]
fn failure_rate_hard_outage_trips_and_every_environment_stops_within_seconds() {
    let mut fleet = Fleet::new(20, &config(0.2, 100, 1));
    fleet.run(10_000, |_| false, |_| false);
    let mut stopped = [false; 20];
    fleet.run(5_000, |_| true, |_| false);
    for (i, m) in fleet.members.iter_mut().enumerate() {
        stopped[i] = m.circuit.acquire(&mut m.env, 0, 1_000_000).is_err();
    }
    assert!(stopped.iter().all(|s| *s), "{stopped:?}");
    assert_eq!(fleet.store.writes(), 1);
}

#[test]
fn failure_rate_reports_at_most_once_per_environment_per_interval() {
    let n = 10;
    let mut fleet = Fleet::new(n, &config(0.9, 1_000_000, 1));
    let before = fleet.store.window_adds();
    let ms = fleet.run(20_000, |_| true, |_| false);
    let adds = fleet.store.window_adds() - before;
    let bound = n as u64 * (ms / WINDOW_REPORT_INTERVAL_MS + 1);
    assert!(adds <= bound, "{adds} reports, at most {bound}");
    assert!(
        adds >= bound / 2,
        "{adds} reports: environments stopped reporting"
    );
    assert_eq!(
        fleet.state(),
        CircuitState::Closed,
        "minimum_calls never met"
    );
}

#[test]
fn failure_rate_one_bad_environment_trips_alone_but_not_with_minimum_environments() {
    for (minimum_environments, trips) in [(1, true), (3, false)] {
        let mut fleet = Fleet::new(10, &config(0.2, 20, minimum_environments));
        fleet.run(60_000, |i| i == 0, open);
        assert_eq!(
            open(&fleet),
            trips,
            "minimum_environments {minimum_environments}"
        );
    }
}

#[test]
fn failure_rate_store_down_each_environment_decides_on_its_own_window() {
    let mut fleet = Fleet::new(1, &config(0.5, 10, 1));
    fleet.run(1_000, |_| false, |_| false);
    fleet
        .store
        .set_fault(Some(StoreError::Unavailable("down".into())));
    fleet.run(20_000, |_| true, |_| false);
    let m = &mut fleet.members[0];
    let info = m.circuit.info(&mut m.env);
    assert!(info.local_only);
    assert_eq!(info.state, CircuitState::Open, "{info:?}");
    let events = std::mem::take(&mut m.env.events);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Transition(t) if t.local_only && t.to_state == CircuitState::Open)),
        "{events:?}"
    );
}

#[test]
fn failure_rate_failures_from_before_a_close_never_count() {
    let mut fleet = Fleet::new(4, &config(0.5, 10, 1));
    fleet.run(10_000, |_| true, open);
    assert!(open(&fleet));
    let m = &mut fleet.members[0];
    m.circuit.reset(&mut m.env).unwrap();
    // Right after the close one failure per environment: the windows before it no longer
    // count, so 4 of at least 4 × 6 calls is far from half.
    fleet.run(PERIOD_MS, |_| true, |_| false);
    assert_eq!(fleet.state(), CircuitState::Closed);
}
