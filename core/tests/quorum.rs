//! `minimum_environments`: a trip counts for the fleet only when that many distinct
//! environments saw the failures within the window. Paths: one environment alone never trips
//! the fleet; the third of three does; a store fault lets an environment protect itself.

use fleetbreaker_core::testing::{ManualClock, MemoryStore, TestEnv};
use fleetbreaker_core::{
    Circuit, CircuitState, Config, FailurePolicy, Outcome, StoreError, WINDOW_REPORT_INTERVAL_MS,
};

const T0: u64 = 1_700_000_000_000;

fn config(minimum_environments: u32) -> Config {
    Config {
        failure_policy: FailurePolicy::ConsecutiveFailures(2),
        minimum_environments,
        window_ms: 10_000,
        ..Config::default()
    }
}

struct Env {
    circuit: Circuit,
    env: TestEnv,
    next_id: u64,
}

fn environment(store: &MemoryStore, clock: &ManualClock, id: &str, min: u32) -> Env {
    Env {
        circuit: Circuit::new("payments", config(min), id).unwrap(),
        env: TestEnv::with_clock(store.clone(), clock.clone()),
        next_id: 0,
    }
}

impl Env {
    /// One call that fails; whether it was admitted.
    fn fail(&mut self) -> bool {
        self.next_id += 1;
        match self.circuit.acquire(&mut self.env, 0, self.next_id) {
            Ok(permit) => {
                self.circuit
                    .complete(&mut self.env, permit, Outcome::Failure);
                true
            }
            Err(_) => false,
        }
    }
}

fn stored_state(store: &MemoryStore) -> CircuitState {
    store
        .record("payments")
        .map_or(CircuitState::Closed, |r| r.state)
}

#[test]
fn one_environment_failing_every_call_never_trips_the_fleet() {
    let (store, clock) = (MemoryStore::default(), ManualClock::new(T0));
    let mut bad = environment(&store, &clock, "env-bad", 3);
    // A minute of failures, five calls a second.
    for _ in 0..300 {
        assert!(
            bad.fail(),
            "the circuit stays closed for everyone, this one included"
        );
        clock.advance(200);
    }
    assert_eq!(stored_state(&store), CircuitState::Closed);
    // It reported at most once per interval, not once per failure.
    let most = 60_000 / WINDOW_REPORT_INTERVAL_MS + 1;
    assert!(
        store.window_adds() <= most,
        "{} adds, at most {most}",
        store.window_adds()
    );
}

#[test]
fn the_third_environment_to_fail_trips_the_fleet() {
    let (store, clock) = (MemoryStore::default(), ManualClock::new(T0));
    let mut fleet: Vec<Env> = (0..3)
        .map(|i| environment(&store, &clock, &format!("env-{i}"), 3))
        .collect();
    for e in &mut fleet[..2] {
        e.fail();
        e.fail();
    }
    assert_eq!(stored_state(&store), CircuitState::Closed, "two of three");
    fleet[2].fail();
    fleet[2].fail();
    assert_eq!(
        stored_state(&store),
        CircuitState::Open,
        "the third trips it"
    );
    assert_eq!(store.record("payments").unwrap().failure_count, 2);
}

#[test]
fn environments_whose_failures_are_older_than_two_windows_do_not_count() {
    let (store, clock) = (MemoryStore::default(), ManualClock::new(T0));
    let mut fleet: Vec<Env> = (0..3)
        .map(|i| environment(&store, &clock, &format!("env-{i}"), 3))
        .collect();
    for e in &mut fleet[..2] {
        e.fail();
        e.fail();
    }
    clock.advance(25_000);
    fleet[2].fail();
    fleet[2].fail();
    assert_eq!(stored_state(&store), CircuitState::Closed);
}

#[test]
fn reports_from_before_the_circuits_last_close_do_not_count_after_it() {
    let (store, clock) = (MemoryStore::default(), ManualClock::new(T0));
    let quick = |id: &str| Env {
        circuit: Circuit::new(
            "payments",
            Config {
                recovery_timeout_ms: 1_000,
                success_threshold: 1,
                window_ms: 60_000,
                ..config(2)
            },
            id,
        )
        .unwrap(),
        env: TestEnv::with_clock(store.clone(), clock.clone()),
        next_id: 0,
    };
    let (mut a, mut b) = (quick("env-a"), quick("env-b"));
    for e in [&mut a, &mut b] {
        e.fail();
        e.fail();
    }
    assert_eq!(
        stored_state(&store),
        CircuitState::Open,
        "both reported: tripped"
    );
    // Past the break and env-a's copy of the record; still in the same minute.
    clock.advance(6_000);
    let probe = a.circuit.acquire(&mut a.env, 0, 99).unwrap();
    a.circuit.complete(&mut a.env, probe, Outcome::Success);
    assert_eq!(stored_state(&store), CircuitState::Closed, "recovered");
    // Within the same minute, env-a alone fails again: env-b's report was before the close.
    a.fail();
    a.fail();
    a.fail();
    assert_eq!(stored_state(&store), CircuitState::Closed);
}

#[test]
fn with_one_environment_needed_the_trip_reads_and_writes_no_window() {
    let (store, clock) = (MemoryStore::default(), ManualClock::new(T0));
    let mut e = environment(&store, &clock, "env-1", 1);
    e.fail();
    e.fail();
    assert_eq!(stored_state(&store), CircuitState::Open);
    assert_eq!(store.window_adds(), 0);
}

#[test]
fn a_store_fault_while_counting_environments_protects_this_environment_alone() {
    let (store, clock) = (MemoryStore::default(), ManualClock::new(T0));
    let mut e = environment(&store, &clock, "env-1", 3);
    e.fail();
    store.set_fault(Some(StoreError::Unavailable("down".into())));
    e.fail();
    assert!(!e.fail(), "it decides alone and opens for itself");
    store.set_fault(None);
    assert_eq!(
        stored_state(&store),
        CircuitState::Closed,
        "the fleet's record"
    );
}
