//! The Rust API of the host: results pass through unchanged, rejections carry the circuit,
//! hooks fire once per write, bad input is refused with the field named, store faults never
//! reach a protected call, and `add_to_linker` serves any embedder.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetbreaker::{
    Breaker, CircuitState, Config, Environment, Error, FailurePolicy, ManualClock, MemoryStore,
    Outcome, StoreError, Transition, TransitionReason,
};

const T0: u64 = 1_700_000_000_000;

fn config(threshold: u32) -> Config {
    Config {
        failure_policy: FailurePolicy::ConsecutiveFailures(threshold),
        recovery_timeout_ms: 1_000,
        success_threshold: 1,
        ..Config::default()
    }
}

fn breaker(store: &MemoryStore, clock: &ManualClock, threshold: u32) -> Breaker {
    Breaker::builder("payments")
        .config(config(threshold))
        .store(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[derive(Debug, PartialEq)]
struct DownstreamError(&'static str);

#[tokio::test]
async fn call_returns_the_protected_result_unchanged() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let b = breaker(&store, &clock, 3);
    let ok = b
        .call(async { Ok::<_, DownstreamError>(vec![1, 2, 3]) })
        .await
        .unwrap();
    assert_eq!(ok, Ok(vec![1, 2, 3]));
    let err = b
        .call(async { Err::<u8, _>(DownstreamError("boom")) })
        .await
        .unwrap();
    assert_eq!(err, Err(DownstreamError("boom")));
}

#[tokio::test]
async fn open_circuit_rejects_without_running_the_call() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let b = breaker(&store, &clock, 2);
    for _ in 0..2 {
        let _ = b
            .call(async { Err::<(), _>(DownstreamError("down")) })
            .await
            .unwrap();
    }
    let ran = AtomicUsize::new(0);
    clock.advance(400);
    let rejected = b
        .call(async {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok::<(), DownstreamError>(())
        })
        .await
        .unwrap_err();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a rejected call is not run");
    let info = rejected
        .circuit()
        .expect("the rejection carries the circuit");
    assert_eq!(info.name, "payments");
    assert_eq!(info.state, CircuitState::Open);
    assert_eq!(info.retry_after_ms, Some(600));
    assert_eq!(info.failure_count, 2);
    assert_eq!(
        rejected.to_string(),
        "circuit 'payments' is OPEN; retry after 600 ms"
    );
}

#[tokio::test]
async fn call_with_classifies_the_outcome() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let b = breaker(&store, &clock, 1);
    // A "not found" says nothing about the downstream's health: ignored, so no trip.
    let r = b
        .call_with(async { Err::<(), _>(DownstreamError("404")) }, |_| {
            Outcome::Ignored
        })
        .await
        .unwrap();
    assert_eq!(r, Err(DownstreamError("404")));
    assert_eq!(b.info().await.unwrap().state, CircuitState::Closed);
    // A success that carries a failure (an error status in an Ok body) can count.
    let r = b
        .call_with(async { 503u16 }, |status| {
            if *status >= 500 {
                Outcome::Failure
            } else {
                Outcome::Success
            }
        })
        .await;
    assert_eq!(r.unwrap(), 503);
    assert_eq!(b.info().await.unwrap().state, CircuitState::Open);
}

#[tokio::test]
async fn on_transition_fires_once_per_write_in_the_writing_environment_only() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let seen: Arc<Mutex<Vec<(String, Transition)>>> = Arc::default();
    let make = |who: &'static str| {
        let seen = seen.clone();
        Breaker::builder("payments")
            .config(config(1))
            .store(store.clone())
            .clock(clock.clone())
            .on_transition(move |t| seen.lock().unwrap().push((who.to_string(), t.clone())))
            .build()
            .unwrap()
    };
    let (a, b) = (make("a"), make("b"));
    let _ = a.call(async { Err::<(), _>(()) }).await.unwrap();
    let _ = b.call(async { Err::<(), _>(()) }).await; // b learns it is open: no write, no event
    clock.advance(1_000);
    let _ = b.call(async { Ok::<(), ()>(()) }).await.unwrap();
    let seen = seen.lock().unwrap();
    let summary: Vec<(&str, TransitionReason, u64)> = seen
        .iter()
        .map(|(who, t)| (who.as_str(), t.reason, t.version))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("a", TransitionReason::Tripped, 1),
            ("b", TransitionReason::ProbeStarted, 2),
            ("b", TransitionReason::Recovered, 3),
        ]
    );
    assert_eq!(store.writes(), 3);
}

#[tokio::test]
async fn a_panicking_hook_is_logged_and_ignored() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let b = Breaker::builder("payments")
        .config(config(1))
        .store(store.clone())
        .clock(clock)
        .on_transition(|_| panic!("metrics backend down"))
        .build()
        .unwrap();
    let r = b
        .call(async { Err::<(), _>(DownstreamError("x")) })
        .await
        .unwrap();
    assert_eq!(
        r,
        Err(DownstreamError("x")),
        "the call's own error still reaches the caller"
    );
    assert_eq!(store.record("payments").unwrap().state, CircuitState::Open);
}

#[test]
fn invalid_configuration_is_refused_naming_the_field() {
    let cases: Vec<(&str, Config)> = vec![
        (
            "failure_policy.consecutive_failures",
            Config {
                failure_policy: FailurePolicy::ConsecutiveFailures(0),
                ..Config::default()
            },
        ),
        (
            "recovery_timeout_ms",
            Config {
                recovery_timeout_ms: 0,
                ..Config::default()
            },
        ),
        (
            "success_threshold",
            Config {
                success_threshold: 0,
                ..Config::default()
            },
        ),
        (
            "backoff_multiplier",
            Config {
                backoff_multiplier: 0.0,
                ..Config::default()
            },
        ),
        (
            "recovery_jitter",
            Config {
                recovery_jitter: 2.0,
                ..Config::default()
            },
        ),
    ];
    for (field, config) in cases {
        let err = Breaker::builder("payments")
            .config(config)
            .store(MemoryStore::new())
            .build()
            .err()
            .expect("refused");
        match &err {
            Error::Config(e) => assert_eq!(e.field, field),
            other => panic!("expected a config error, got {other}"),
        }
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[test]
fn bad_names_are_refused() {
    for name in [String::new(), "x".repeat(1025)] {
        let err = Breaker::builder(name)
            .store(MemoryStore::new())
            .build()
            .err()
            .unwrap();
        assert!(
            matches!(&err, Error::Config(e) if e.field == "name"),
            "{err}"
        );
    }
    let err = Breaker::builder("x").build().err().unwrap();
    assert!(
        matches!(&err, Error::Config(e) if e.field == "store"),
        "{err}"
    );
}

#[tokio::test]
async fn breakers_sharing_a_name_in_one_environment_share_the_circuit() {
    let store = MemoryStore::new();
    let env = Environment::builder(store.clone())
        .clock(ManualClock::new(T0))
        .build()
        .unwrap();
    let one = Breaker::builder("payments")
        .config(config(2))
        .environment(&env)
        .build()
        .unwrap();
    let two = Breaker::builder("payments")
        .config(config(2))
        .environment(&env)
        .build()
        .unwrap();
    let _ = one.call(async { Err::<(), _>(()) }).await.unwrap();
    let _ = two.call(async { Err::<(), _>(()) }).await.unwrap();
    assert!(
        one.acquire().await.is_err(),
        "two failures through two handles trip one circuit"
    );
    assert_eq!(store.reads(), 1, "one environment reads the record once");

    let err = Breaker::builder("payments")
        .config(config(3))
        .environment(&env)
        .build()
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::Config(e) if e.field == "config"),
        "{err}"
    );
}

#[test]
fn a_circuit_keeps_its_first_breaker_s_attachment_while_it_is_in_use() {
    let env = Environment::builder(MemoryStore::new()).build().unwrap();
    let build = |note: &'static str| {
        Breaker::builder("payments")
            .environment(&env)
            .attachment(Arc::new(note))
            .build()
            .unwrap()
    };
    let shown = |b: &Breaker| *b.attachment().unwrap().downcast_ref::<&str>().unwrap();
    let first = build("first");
    let second = build("second");
    assert_eq!(shown(&second), "first", "the circuit's, not this breaker's");
    assert!(
        Breaker::builder("other")
            .environment(&env)
            .build()
            .unwrap()
            .attachment()
            .is_none()
    );
    drop((first, second));
    assert_eq!(
        shown(&build("again")),
        "again",
        "a circuit released and made again"
    );
}

#[tokio::test]
async fn store_faults_never_reach_the_protected_call() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    store.set_fault(Some(StoreError::Unavailable("connection refused".into())));
    let b = breaker(&store, &clock, 2);
    let r = b
        .call(async { Ok::<_, DownstreamError>("fine") })
        .await
        .unwrap();
    assert_eq!(r, Ok("fine"));
    let r = b
        .call(async { Err::<(), _>(DownstreamError("down")) })
        .await
        .unwrap();
    assert_eq!(r, Err(DownstreamError("down")));
    let r = b
        .call(async { Err::<(), _>(DownstreamError("down")) })
        .await
        .unwrap();
    assert_eq!(
        r,
        Err(DownstreamError("down")),
        "the tripping failure reaches its caller"
    );
    let info = b.acquire().await.unwrap_err();
    let info = info.circuit().unwrap();
    assert!(info.local_only, "protected locally while the store is down");
    assert_eq!(info.state, CircuitState::Open);
}

#[tokio::test]
async fn operator_actions_report_store_faults_and_durations_are_checked() {
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let b = breaker(&store, &clock, 2);
    let info = b
        .force_open(Some(Duration::from_secs(600)), "deploy")
        .await
        .unwrap();
    assert_eq!(info.state, CircuitState::ForcedOpen);
    assert_eq!(info.override_until_ms, Some(T0 + 600_000));
    store.set_fault(Some(StoreError::Throttled("slow down".into())));
    let err = b.reset().await.unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::Throttled(_))),
        "{err}"
    );
    let err = b
        .force_closed(Some(Duration::from_secs(11 * 366 * 24 * 3600)), "")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(e) if e.field == "duration"),
        "{err}"
    );
}

#[test]
fn concurrent_callers_never_both_probe() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let (store, clock) = (MemoryStore::new(), ManualClock::new(T0));
    let b = breaker(&store, &clock, 1);
    rt.block_on(async {
        let _ = b.call(async { Err::<(), _>(()) }).await.unwrap();
    });
    clock.advance(1_000);
    let probes = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (b, probes) = (b.clone(), probes.clone());
            rt.spawn(async move {
                let permit = b.acquire().await.ok()?;
                if permit.is_probe() {
                    probes.fetch_add(1, Ordering::SeqCst);
                }
                // Nobody completes: the permit stays held, so a second probe would be a bug.
                Some(permit)
            })
        })
        .collect();
    let held: Vec<_> = rt.block_on(async {
        let mut held = Vec::new();
        for t in tasks {
            held.push(t.await.unwrap());
        }
        held
    });
    assert_eq!(probes.load(Ordering::SeqCst), 1);
    drop(held);
}

#[tokio::test]
async fn add_to_linker_serves_an_embedders_own_store() {
    use fleetbreaker::{HostCtx, SystemClock};
    use wasmtime::component::{Component, Linker, Val};

    struct MyState {
        breaker: HostCtx,
    }
    let mut config = wasmtime::Config::new();
    config.concurrency_support(false).gc_support(false);
    let engine = wasmtime::Engine::new(&config).unwrap();
    // SAFETY: this crate's own precompiled output, for an engine configured the same way.
    let component =
        unsafe { Component::deserialize(&engine, fleetbreaker::precompiled_component()) }.unwrap();
    let mut linker = Linker::<MyState>::new(&engine);
    fleetbreaker::add_to_linker(&mut linker, |s| &mut s.breaker).unwrap();
    let memory = MemoryStore::new();
    let mut store = wasmtime::Store::new(
        &engine,
        MyState {
            breaker: HostCtx::new(Arc::new(memory.clone()), Arc::new(SystemClock)),
        },
    );
    let instance = linker
        .instantiate_async(&mut store, &component)
        .await
        .unwrap();
    let api = instance
        .get_export_index(&mut store, None, "fleetbreaker:breaker/breaker@0.1.0")
        .unwrap();
    let func = |store: &mut wasmtime::Store<MyState>, name: &str| {
        let index = instance
            .get_export_index(&mut *store, Some(&api), name)
            .unwrap();
        instance.get_func(&mut *store, index).unwrap()
    };
    let create = func(&mut store, "[static]circuit.create");
    let config = Val::Record(vec![
        (
            "failure-policy".into(),
            Val::Variant("consecutive-failures".into(), Some(Box::new(Val::U32(1)))),
        ),
        ("recovery-timeout-ms".into(), Val::U64(30_000)),
        ("success-threshold".into(), Val::U32(1)),
        ("local-cache-max-age-ms".into(), Val::U64(5_000)),
        ("backoff-multiplier".into(), Val::Float64(1.0)),
        ("max-recovery-timeout-ms".into(), Val::Option(None)),
        ("recovery-jitter".into(), Val::Float64(0.0)),
        ("probe-lease-ms".into(), Val::Option(None)),
        ("store-retry-after-ms".into(), Val::U64(5_000)),
        ("store-failure-mode".into(), Val::Enum("open".into())),
        ("minimum-environments".into(), Val::U32(1)),
        ("window-ms".into(), Val::U64(60_000)),
        ("slow-call-ms".into(), Val::Option(None)),
    ]);
    let mut out = [Val::Bool(false)];
    create
        .call_async(
            &mut store,
            &[
                Val::String("embedded".into()),
                config,
                Val::String("embedder-1".into()),
            ],
            &mut out,
        )
        .await
        .unwrap();
    let circuit = match &out[0] {
        Val::Result(Ok(Some(v))) => match **v {
            Val::Resource(r) => r,
            ref other => panic!("{other:?}"),
        },
        other => panic!("create failed: {other:?}"),
    };
    let acquire = func(&mut store, "[method]circuit.acquire");
    acquire
        .call_async(
            &mut store,
            &[Val::Resource(circuit), Val::U32(0), Val::U64(42)],
            &mut out,
        )
        .await
        .unwrap();
    assert!(
        matches!(&out[0], Val::Result(Ok(Some(_)))),
        "admitted: {:?}",
        out[0]
    );
    assert_eq!(
        memory.reads(),
        1,
        "the component read the record through the embedder's store"
    );
}
