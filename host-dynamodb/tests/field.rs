//! The host as it is used in the field: hooks that call breakers, callers that go away in the
//! middle of a call, a read that is slow while a trip is decided, copied identities, many
//! circuit names, breakers made and dropped, and a wall clock that steps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetbreaker::{
    Breaker, CircuitState, Config, Environment, Error, FailurePolicy, ManualClock, MemoryStore,
    Outcome, TransitionReason,
};

const T0: u64 = 1_700_000_000_000;

fn config(threshold: u32) -> Config {
    Config {
        failure_policy: FailurePolicy::ConsecutiveFailures(threshold),
        recovery_timeout_ms: 1_000,
        success_threshold: 1,
        local_cache_max_age_ms: 5_000,
        ..Config::default()
    }
}

fn environment(store: &MemoryStore, clock: &ManualClock) -> Environment {
    Environment::builder(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn on(env: &Environment, name: &str, config: Config) -> Breaker {
    Breaker::builder(name)
        .config(config)
        .environment(env)
        .build()
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

/// Waits (up to 10 s) until `done` holds, polling; for work finished in the background.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn events_of_a_call_that_waited_on_the_store_are_handed_back_not_run_on_the_io_runtime() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let env = environment(&store, &clock);
    let ran_on = Arc::new(Mutex::new(Vec::new()));
    let seen = ran_on.clone();
    let b = Breaker::builder("payments")
        .config(config(1))
        .environment(&env)
        .on_transition(move |_| seen.lock().unwrap().push(thread_name()))
        .build()
        .unwrap();
    let rt = fleetbreaker::bridge::io_runtime();
    let permit = rt.block_on(async { b.acquire().await }).unwrap();
    // The failure's write waits on a slow read first (its refresh): the call finishes on a
    // thread of the I/O runtime, as a binding's call that waits on the store does.
    store.hold_calls();
    clock.advance(6_000);
    let task = rt.spawn({
        let b = b.clone();
        async move { b.with_events().complete(permit, Outcome::Failure).await }
    });
    std::thread::sleep(Duration::from_millis(50));
    store.release_calls();
    let delivery = rt.block_on(task).unwrap();
    assert!(
        ran_on.lock().unwrap().is_empty(),
        "no hook ran inside the call: {:?}",
        ran_on.lock().unwrap()
    );
    assert_eq!(delivery.events.as_slice().len(), 1, "{:?}", delivery.events);
    delivery.events.deliver();
    assert_eq!(
        *ran_on.lock().unwrap(),
        vec![thread_name()],
        "run where delivered"
    );
}

#[test]
fn a_hook_may_call_another_breaker_on_the_same_environment_synchronously() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let env = environment(&store, &clock);
    let alerts = on(&env, "alerts", config(5));
    let seen = Arc::new(Mutex::new(None));
    let in_hook = seen.clone();
    let payments = Breaker::builder("payments")
        .config(config(1))
        .environment(&env)
        .on_transition(move |t| {
            // A nested, blocking call from inside the hook, as a binding's user makes one: it
            // needs the component and the I/O runtime, so the call that made this transition
            // must hold neither.
            let info = fleetbreaker::bridge::io_runtime().block_on(alerts.info());
            *in_hook.lock().unwrap() = Some((t.reason, info.map(|i| i.state).ok()));
        })
        .build()
        .unwrap();
    let rt = fleetbreaker::bridge::io_runtime();
    let permit = rt.block_on(payments.acquire()).unwrap();
    store.hold_calls();
    clock.advance(6_000);
    let call = rt.spawn({
        let payments = payments.clone();
        async move {
            payments
                .with_events()
                .complete(permit, Outcome::Failure)
                .await
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    store.release_calls();
    // The binding's way: wait for the call, then deliver its events on this thread.
    rt.block_on(call).unwrap().events.deliver();
    assert_eq!(
        *seen.lock().unwrap(),
        Some((TransitionReason::Tripped, Some(CircuitState::Closed)))
    );
}

#[test]
fn a_call_dropped_while_the_store_is_slow_finishes_in_the_background_and_frees_the_probe() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = events.clone();
    let env = Environment::builder(store.clone())
        .clock(clock.clone())
        .on_event(move |e| log.lock().unwrap().push((thread_name(), e.clone())))
        .build()
        .unwrap();
    let b = on(&env, "payments", config(1));
    let rt = runtime();
    rt.block_on(b.call(async { Err::<(), _>("down") }))
        .unwrap()
        .unwrap_err();
    clock.advance(6_000);
    // The caller gives up while its acquire waits on a slow read: a cancelled task, a
    // timeout around the call.
    store.hold_calls();
    let gave_up =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(50), b.acquire()).await });
    assert!(gave_up.is_err(), "the caller stopped waiting");
    store.release_calls();
    // The call went on without its caller; the probe it won is released, not held for the
    // whole lease.
    eventually("the abandoned probe permit is released", || {
        store
            .record("payments")
            .is_some_and(|r| r.state == CircuitState::HalfOpen && r.probe_owner.is_none())
    });
    let other = on(&environment(&store, &clock), "payments", config(1));
    let probe = rt
        .block_on(other.acquire())
        .expect("another environment may probe at once");
    assert!(probe.is_probe());
    // The instance survived the interruption: the same environment still decides.
    clock.advance(60_000);
    let info = rt
        .block_on(b.info())
        .expect("the component is still usable");
    assert_eq!(info.state, CircuitState::HalfOpen);
    let events = events.lock().unwrap();
    let released: Vec<&String> = events
        .iter()
        .filter_map(|(thread, e)| match e {
            fleetbreaker::Event::Transition(t) if t.reason == TransitionReason::ProbeReleased => {
                Some(thread)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        released,
        vec!["fleetbreaker-events"],
        "work nobody waits for reports on the events thread"
    );
}

#[test]
fn a_dropped_probe_permit_is_released_at_once() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let b = on(&environment(&store, &clock), "payments", config(1));
    let rt = runtime();
    rt.block_on(b.call(async { Err::<(), _>("down") }))
        .unwrap()
        .unwrap_err();
    clock.advance(1_000);
    let permit = rt.block_on(b.acquire()).unwrap();
    assert!(permit.is_probe());
    drop(permit);
    eventually("the dropped probe permit is released", || {
        store
            .record("payments")
            .is_some_and(|r| r.probe_owner.is_none())
    });
}

#[test]
fn a_lease_granted_while_a_failure_trips_the_circuit_does_not_outlive_the_trip() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let b = on(&environment(&store, &clock), "payments", config(1));
    let rt = runtime();
    // A permit granted with a lease, whose call will fail.
    let failing = rt.block_on(b.acquire()).unwrap();
    assert!(failing.lease_until_ms().is_some());
    clock.advance(6_000);
    // Another caller's acquire waits inside the component on a slow read ...
    store.hold_calls();
    let acquire = rt.spawn({
        let b = b.clone();
        async move { b.acquire().await.map(|p| p.is_leased()) }
    });
    std::thread::sleep(Duration::from_millis(50));
    // ... while the failure is reported, and trips the circuit once the read answers.
    let complete = rt.spawn({
        let b = b.clone();
        async move { b.complete(failing, Outcome::Failure).await }
    });
    std::thread::sleep(Duration::from_millis(50));
    store.release_calls();
    let admitted = rt.block_on(acquire).unwrap();
    rt.block_on(complete).unwrap();
    assert_eq!(
        admitted.map_err(|e| e.to_string()),
        Ok(false),
        "the waiting acquire was decided before the trip"
    );
    assert_eq!(store.record("payments").unwrap().state, CircuitState::Open);
    for _ in 0..3 {
        let next = rt.block_on(b.acquire());
        assert!(
            matches!(&next, Err(Error::Open(_))),
            "no call is admitted under a lease after this environment's own trip: {next:?}"
        );
    }
}

#[test]
fn two_environments_with_the_same_id_cannot_both_take_the_probe() {
    // A fork or a snapshot restore copies an environment whole, identity included.
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let copy = || {
        let env = Environment::builder(store.clone())
            .clock(clock.clone())
            .id("copied")
            .build()
            .unwrap();
        on(&env, "payments", config(1))
    };
    let (a, b) = (copy(), copy());
    let rt = runtime();
    // Both walk the same path (a trips, b is rejected; then each asks once more), so a
    // counter-based token would be the same in both.
    for breaker in [&a, &b] {
        let _ = rt.block_on(breaker.call(async { Err::<(), _>("down") }));
    }
    clock.advance(1_000);
    let first = rt.block_on(a.acquire()).unwrap();
    assert!(first.is_probe());
    let second = rt.block_on(b.acquire());
    assert!(
        matches!(&second, Err(Error::Open(info)) if info.state == CircuitState::HalfOpen),
        "the copy is not admitted as the probe: {second:?}"
    );
    let owner = store.record("payments").unwrap().probe_owner.unwrap();
    assert!(owner.starts_with("copied#"), "{owner}");
}

#[test]
fn listeners_go_away_with_their_breaker() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let env = environment(&store, &clock);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    // Kept first: the circuit stays in use while the others come and go.
    let kept = Breaker::builder("payments")
        .config(config(1))
        .environment(&env)
        .on_transition(move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    for _ in 0..1_000 {
        let counted = calls.clone();
        let built = Breaker::builder("payments")
            .config(config(1))
            .environment(&env)
            .on_transition(move |_| {
                counted.fetch_add(1, Ordering::Relaxed);
            })
            .build()
            .unwrap();
        drop(built);
    }
    let clone = kept.clone();
    runtime()
        .block_on(clone.call(async { Err::<(), _>("down") }))
        .unwrap()
        .unwrap_err();
    assert_eq!(
        calls.load(Ordering::Relaxed),
        1,
        "one hook for the one live breaker"
    );
}

#[test]
fn circuits_are_released_with_their_last_breaker() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let env = environment(&store, &clock);
    let rt = runtime();
    let keep = on(&env, "kept", config(3));
    for i in 0..20_000 {
        let b = on(&env, &format!("tenant-{i}"), config(3));
        if i % 1_000 == 0 {
            rt.block_on(b.call(async { Ok::<_, ()>(()) }))
                .unwrap()
                .unwrap();
        }
    }
    assert_eq!(
        env.circuits_in_use(),
        1,
        "only the kept breaker's circuit is held"
    );
    assert_eq!(
        rt.block_on(env.component_circuits()),
        1,
        "and the component holds only its state"
    );
    rt.block_on(keep.call(async { Ok::<_, ()>(()) }))
        .unwrap()
        .unwrap();
    // A name used again after its release is a fresh circuit with the new configuration.
    let again = on(&env, "tenant-7", config(9));
    assert_eq!(again.config().failure_threshold(), 9);
}

#[test]
fn a_breaker_without_a_config_takes_the_circuits() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let env = environment(&store, &clock);
    let configured = on(&env, "payments", config(2));
    let reader = Breaker::builder("payments")
        .environment(&env)
        .build()
        .expect("no config: the circuit's own");
    assert_eq!(reader.config(), configured.config());
    let conflicting = Breaker::builder("payments")
        .config(config(7))
        .environment(&env)
        .build();
    assert!(
        matches!(&conflicting, Err(Error::Config(e)) if e.field == "config"),
        "an explicit, different config is still refused"
    );
    let fresh = Breaker::builder("other").environment(&env).build().unwrap();
    assert_eq!(fresh.config(), &Config::default());
}

#[test]
fn a_wall_clock_stepped_back_does_not_stretch_the_copy_or_the_lease() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let b = on(&environment(&store, &clock), "payments", config(5));
    let operator = on(&environment(&store, &clock), "payments", config(5));
    let rt = runtime();
    rt.block_on(b.call(async { Ok::<_, ()>(()) }))
        .unwrap()
        .unwrap();
    // The host's clock steps back an hour; an operator forces the circuit open.
    clock.step_wall(-3_600_000);
    rt.block_on(operator.force_open(None, "incident")).unwrap();
    // Within local_cache_max_age (5 s on the monotonic clock) every call is rejected, not an
    // hour later.
    clock.advance(5_000);
    let rejected = rt.block_on(b.acquire());
    assert!(
        matches!(&rejected, Err(Error::Open(i)) if i.state == CircuitState::ForcedOpen),
        "{rejected:?}"
    );
}

/// A memory store whose calls for one circuit wait until it is opened, as if that circuit's
/// item sat on a slow partition; it says when such a call is waiting.
#[derive(Clone)]
struct SlowFor {
    inner: MemoryStore,
    circuit: &'static str,
    open: Arc<tokio::sync::watch::Sender<bool>>,
    waiting: Arc<tokio::sync::Notify>,
}

impl SlowFor {
    fn new(circuit: &'static str) -> SlowFor {
        SlowFor {
            inner: MemoryStore::new(),
            circuit,
            open: Arc::new(tokio::sync::watch::channel(true).0),
            waiting: Arc::new(tokio::sync::Notify::new()),
        }
    }

    async fn pass(&self, circuit: &str) {
        if circuit != self.circuit {
            return;
        }
        let mut open = self.open.subscribe();
        if !*open.borrow() {
            self.waiting.notify_one();
            let _ = open.wait_for(|o| *o).await;
        }
    }
}

impl fleetbreaker::Store for SlowFor {
    fn load<'a>(
        &'a self,
        circuit: &'a str,
    ) -> fleetbreaker::StoreFuture<'a, Option<fleetbreaker::Record>> {
        Box::pin(async move {
            self.pass(circuit).await;
            self.inner.load(circuit).await
        })
    }

    fn swap<'a>(
        &'a self,
        circuit: &'a str,
        expected_version: Option<u64>,
        next: &'a fleetbreaker::Record,
    ) -> fleetbreaker::StoreFuture<'a, fleetbreaker::SwapResult> {
        Box::pin(async move {
            self.pass(circuit).await;
            self.inner.swap(circuit, expected_version, next).await
        })
    }
}

#[test]
fn a_circuit_waiting_on_the_store_does_not_hold_up_another_circuits_decisions() {
    let clock = ManualClock::new(T0);
    let store = SlowFor::new("slow");
    let env = Environment::builder(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let (slow, other) = (on(&env, "slow", config(1)), on(&env, "other", config(1)));
    let rt = runtime();
    // `other` is open: its rejections come from the component, with no store I/O while its
    // copy of the record is fresh.
    rt.block_on(other.call(async { Err::<(), _>("down") }))
        .unwrap()
        .unwrap_err();
    // `slow` reads its record, and the store keeps it waiting.
    store.open.send_replace(false);
    let waiting = store.waiting.notified();
    let slow_call = rt.spawn(async move { slow.acquire().await.map(drop) });
    rt.block_on(waiting);
    let decided =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), other.acquire()).await });
    let rejected = decided.expect("`other` was held up by `slow`'s store call");
    assert!(
        matches!(rejected, Err(Error::Open(_))),
        "the open circuit rejects: {rejected:?}"
    );
    store.open.send_replace(true);
    rt.block_on(slow_call)
        .unwrap()
        .expect("`slow` is admitted once its read answers");
}
