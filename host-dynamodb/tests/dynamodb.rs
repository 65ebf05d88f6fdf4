//! The DynamoDB store against a real DynamoDB-compatible server on loopback: the item layout,
//! keys, TTL, conflicts, corrupt items, and the breaker's behaviour when the server is killed,
//! slow, throttling or misconfigured. `scripts/test` runs them on moto's server and again on
//! dynalite (`FLEETBREAKER_DYNAMODB_SERVER=dynalite`), which validates requests as DynamoDB
//! does but returns no item with a refused write and has no TTL.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use fleetbreaker::dynamodb::{attr, record_to_item};
use fleetbreaker::{
    Breaker, CircuitState, Config, DynamoDbConfig, DynamoDbStore, Environment, Error, Event,
    FailurePolicy, ManualClock, Record, Store, StoreError, SwapResult, TransitionReason,
};
use support::moto::{self, Moto};
use support::proxy::{Mode, Proxy};

const T0: u64 = 1_700_000_000_000;

fn shared_moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(Moto::start)
}

async fn fresh_store(prefix: &str) -> DynamoDbStore {
    let store = moto::connect(moto::config(
        &shared_moto().endpoint(),
        &moto::table(prefix),
    ))
    .await;
    store.create_table().await.unwrap();
    store
}

fn config(threshold: u32) -> Config {
    Config {
        failure_policy: FailurePolicy::ConsecutiveFailures(threshold),
        recovery_timeout_ms: 1_000,
        success_threshold: 1,
        local_cache_max_age_ms: 1_000,
        store_retry_after_ms: 5_000,
        ..Config::default()
    }
}

type Events = Arc<Mutex<Vec<Event>>>;

fn breaker_on(store: impl Store, clock: &ManualClock, config: Config) -> (Breaker, Events) {
    let events: Events = Arc::default();
    let log = events.clone();
    let env = Environment::builder(store)
        .clock(clock.clone())
        .on_event(move |e| log.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    let breaker = Breaker::builder("payments")
        .config(config)
        .environment(&env)
        .build()
        .unwrap();
    (breaker, events)
}

async fn ok(b: &Breaker) -> Result<Result<(), ()>, Error> {
    b.call(async { Ok(()) }).await
}

async fn fail(b: &Breaker) -> Result<Result<(), ()>, Error> {
    b.call(async { Err(()) }).await
}

async fn raw_item(
    store: &DynamoDbStore,
    key: HashMap<String, AttributeValue>,
) -> Option<HashMap<String, AttributeValue>> {
    store
        .client()
        .get_item()
        .table_name(store.table_name())
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
}

fn key(circuit: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("id".to_string(), AttributeValue::S(circuit.into()))])
}

fn record(version: u64, state: CircuitState) -> Record {
    let mut r = Record::absent(version);
    r.state = state;
    r.updated_at_ms = T0;
    r.updated_by = "tests".into();
    r.opened_at_ms = Some(T0);
    r.expires_at_ms = T0 + 3_600_000;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn window_counters_count_every_add_with_update_item_add() {
    let store: Arc<dyn Store> = Arc::new(fresh_store("windows").await);
    support::windows::window_counters_contract(vec![store]).await;
}

#[tokio::test]
async fn with_minimum_environments_one_bad_environment_never_trips_and_the_third_does() {
    let store = Arc::new(fresh_store("minimum-environments").await);
    let clock = ManualClock::new(T0);
    let quorum = Config {
        minimum_environments: 3,
        ..config(2)
    };
    let fleet: Vec<(Breaker, Events)> = (0..3)
        .map(|_| breaker_on(store.clone(), &clock, quorum.clone()))
        .collect();
    // The first environment fails every call for ten seconds: the fleet stays closed.
    for _ in 0..50 {
        assert_eq!(
            fail(&fleet[0].0).await.unwrap(),
            Err(()),
            "admitted, and failed"
        );
        clock.advance(200);
    }
    assert_eq!(
        store.load("payments").await.unwrap(),
        None,
        "no trip written"
    );
    // Two more environments see failures: the third of them trips the circuit.
    for (b, _) in &fleet[1..] {
        fail(b).await.unwrap().unwrap_err();
        fail(b).await.unwrap().unwrap_err();
    }
    let record = store.load("payments").await.unwrap().expect("the trip");
    assert_eq!(record.state, CircuitState::Open);
    assert!(matches!(ok(&fleet[2].0).await, Err(Error::Open(_))));
    // Reports went to the window at most once a second per environment, not once per call.
    let stats = store.stats();
    assert!(stats.window_adds <= 10 + 2 + 2, "{stats:?}");
    assert_eq!(stats.writes, 1, "{stats:?}");
}

#[tokio::test]
async fn failure_rate_healthy_calls_write_nothing_and_the_fleets_failures_trip_the_circuit() {
    let store = Arc::new(fresh_store("failure-rate").await);
    let clock = ManualClock::new(T0);
    let rate = Config {
        failure_policy: fleetbreaker::FailurePolicy::FailureRate(fleetbreaker::FailureRate {
            threshold: 0.5,
            minimum_calls: 10,
        }),
        window_ms: 10_000,
        ..Config::default()
    };
    let fleet: Vec<(Breaker, Events)> = (0..3)
        .map(|_| breaker_on(store.clone(), &clock, rate.clone()))
        .collect();
    for _ in 0..10 {
        for (b, _) in &fleet {
            ok(b).await.unwrap().unwrap();
        }
        clock.advance(200);
    }
    assert_eq!(store.stats().writes + store.stats().window_adds, 0);
    // Every environment fails every call: each reports at most once a second, and within a
    // few seconds the fleet's window holds half its calls failed.
    let mut rejected = false;
    for _ in 0..50 {
        for (b, _) in &fleet {
            match fail(b).await {
                Ok(_) => {}
                Err(Error::Open(_)) => rejected = true,
                Err(other) => panic!("{other}"),
            }
        }
        clock.advance(200);
    }
    assert!(rejected, "the circuit never opened");
    let record = store.load("payments").await.unwrap().expect("the trip");
    assert_eq!(record.state, CircuitState::Open);
    let stats = store.stats();
    assert_eq!(stats.writes, 1, "{stats:?}");
    assert!(stats.window_adds <= 3 * 11, "{stats:?}");
}

#[tokio::test]
async fn window_shards_carry_the_ttl_and_stay_out_of_the_circuit_list() {
    let store = fresh_store("window-items").await;
    let delta = fleetbreaker::WindowDelta {
        calls: 1,
        failures: 1,
        slow_calls: 0,
        environment: Some("env-1".into()),
    };
    store
        .add_to_window("payments", T0, 2, &delta, T0 + 20_500)
        .await
        .unwrap();
    let r = record(1, CircuitState::Closed);
    assert_eq!(
        store.swap("payments", None, &r).await.unwrap(),
        SwapResult::Written
    );
    let listed: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        listed,
        vec!["payments".to_string()],
        "window shards are not circuits"
    );
    let shard = format!("payments\u{1f}window\u{1f}{T0}\u{1f}2");
    let item = raw_item(&store, key(&shard))
        .await
        .expect("the shard's item");
    assert_eq!(
        item.get("expiration"),
        Some(&n((T0 + 20_500).div_ceil(1000)))
    );
    assert_eq!(item.get("calls"), Some(&n(1)));
    assert_eq!(
        item.get("environments"),
        Some(&AttributeValue::Ss(vec!["env-1".into()]))
    );
}

#[tokio::test]
async fn conflict_returns_the_current_record_from_all_old() {
    let store = fresh_store("conflict").await;
    let v1 = record(1, CircuitState::Open);
    assert_eq!(
        store.swap("c", None, &v1).await.unwrap(),
        SwapResult::Written
    );
    assert_eq!(
        store.load("c").await.unwrap(),
        Some(v1.clone()),
        "the record reads back whole"
    );
    let reads = store.stats().reads;
    for expected in [None, Some(0), Some(2)] {
        let other = record(expected.map_or(1, |v| v + 1), CircuitState::Closed);
        assert_eq!(
            store.swap("c", expected, &other).await.unwrap(),
            SwapResult::Conflict(Some(v1.clone())),
            "a refused swap hands back the stored record (expected {expected:?})"
        );
    }
    if shared_moto().has_all_old() {
        assert_eq!(store.stats().reads, reads, "the conflict needed no read");
    } else {
        assert_eq!(
            store.stats().reads,
            reads + 3,
            "without ALL_OLD, one strong read per conflict"
        );
    }
    assert_eq!(store.stats().conflicts, 3);
    let v2 = record(2, CircuitState::HalfOpen);
    assert_eq!(
        store.swap("c", Some(1), &v2).await.unwrap(),
        SwapResult::Written
    );
    assert_eq!(store.load("c").await.unwrap(), Some(v2));
}

#[tokio::test]
async fn a_stale_environment_adopts_the_record_returned_with_its_conflict() {
    let store_config = moto::config(&shared_moto().endpoint(), &moto::table("adopt"));
    let (a_store, b_store) = (
        moto::connect(store_config.clone()).await,
        moto::connect(store_config).await,
    );
    a_store.create_table().await.unwrap();
    let clock = ManualClock::new(T0);
    // b trusts its read for 5 s: long enough to still believe the circuit is open.
    let trusting = Config {
        local_cache_max_age_ms: 5_000,
        ..config(1)
    };
    let (a, _) = breaker_on(a_store, &clock, trusting.clone());
    let b_store = Arc::new(b_store);
    let (b, events) = breaker_on(b_store.clone(), &clock, trusting);

    fail(&a).await.unwrap().unwrap_err();
    assert!(b.acquire().await.is_err(), "b reads the open record");
    clock.advance(1_000);
    let probe = a.acquire().await.unwrap();
    assert!(probe.is_probe());
    let reads = b_store.stats().reads;
    let rejected = b.acquire().await.unwrap_err();
    assert_eq!(rejected.circuit().unwrap().state, CircuitState::HalfOpen);
    assert_eq!(b_store.stats().conflicts, 1, "b's election lost");
    let extra_read = u64::from(!shared_moto().has_all_old());
    assert_eq!(
        b_store.stats().reads,
        reads + extra_read,
        "and b learnt the winner from the conflict (without a read, where ALL_OLD is known)"
    );
    assert!(
        events.lock().unwrap().is_empty(),
        "no event for a write b did not win"
    );
}

#[tokio::test]
async fn composite_keys_put_the_circuit_in_the_sort_key() {
    let table = moto::table("composite");
    let composite = |pk: &str| {
        let mut c = moto::config(&shared_moto().endpoint(), &table);
        c.key_attr = "pk".into();
        c.sort_key_attr = Some("sk".into());
        c.static_pk_value = Some(pk.into());
        c
    };
    let store = moto::connect(composite("service#checkout")).await;
    store.create_table().await.unwrap();
    let other = moto::connect(composite("service#search")).await;
    let clock = ManualClock::new(T0);
    let (b, _) = breaker_on(store, &clock, config(1));
    fail(&b).await.unwrap().unwrap_err();

    let (raw, _) = breaker_on(
        moto::connect(composite("service#checkout")).await,
        &clock,
        config(1),
    );
    assert_eq!(
        raw.info().await.unwrap().state,
        CircuitState::Open,
        "same partition, same circuit"
    );
    let (isolated, _) = breaker_on(other, &clock, config(1));
    assert_eq!(
        isolated.info().await.unwrap().state,
        CircuitState::Closed,
        "another partition value, another circuit"
    );

    let reader = moto::connect(composite("service#checkout")).await;
    let item = raw_item(
        &reader,
        HashMap::from([
            (
                "pk".to_string(),
                AttributeValue::S("service#checkout".into()),
            ),
            ("sk".to_string(), AttributeValue::S("payments".into())),
        ]),
    )
    .await
    .expect("the item is keyed by the partition value and the circuit name");
    assert_eq!(item[attr::STATE], AttributeValue::S("OPEN".into()));
    let listed = reader.list().await.unwrap();
    assert_eq!(
        listed.len(),
        1,
        "list() sees only its partition: {listed:?}"
    );
}

#[tokio::test]
async fn every_write_carries_the_ttl_attribute_in_epoch_seconds() {
    let store = fresh_store("ttl").await;
    let reader = moto::connect(moto::config(&shared_moto().endpoint(), store.table_name())).await;
    let now = fleetbreaker::Clock::now_ms(&fleetbreaker::SystemClock);
    let clock = ManualClock::new(now);
    let (b, _) = breaker_on(store, &clock, config(1));
    fail(&b).await.unwrap().unwrap_err();
    let item = raw_item(&reader, key("payments")).await.unwrap();
    let AttributeValue::N(expiration) = &item[attr::EXPIRATION] else {
        panic!("expiration must be a number: {:?}", item[attr::EXPIRATION]);
    };
    let expiration: u64 = expiration.parse().unwrap();
    let open_until = match &item[attr::OPEN_UNTIL_MS] {
        AttributeValue::N(n) => n.parse::<u64>().unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        expiration,
        (open_until + 3_600_000).div_ceil(1000),
        "an hour after the break, in seconds"
    );
    for name in [
        attr::VERSION,
        attr::TRIPS,
        attr::OPENED_AT_MS,
        attr::UPDATED_AT_MS,
        attr::FAILURE_COUNT,
    ] {
        assert!(
            matches!(item[name], AttributeValue::N(_)),
            "{name} is a number: {:?}",
            item[name]
        );
    }
    if !shared_moto().has_ttl() {
        return;
    }
    let ttl = reader
        .client()
        .describe_time_to_live()
        .table_name(reader.table_name())
        .send()
        .await
        .unwrap();
    let spec = ttl.time_to_live_description().unwrap();
    assert_eq!(
        spec.attribute_name(),
        Some(attr::EXPIRATION),
        "create_table enables TTL on expiration"
    );
}

#[tokio::test]
async fn corrupt_items_are_reported_survived_and_replaced_by_the_next_write() {
    type Corruption = Box<dyn Fn(&mut HashMap<String, AttributeValue>)>;
    let cases: Vec<(&str, Option<u64>, Corruption)> = vec![
        (
            "wrong types",
            None,
            Box::new(|i| {
                i.insert(attr::VERSION.into(), AttributeValue::S("seven".into()));
            }),
        ),
        (
            "unknown state",
            Some(7),
            Box::new(|i| {
                i.insert(attr::STATE.into(), AttributeValue::S("SIDEWAYS".into()));
            }),
        ),
        (
            "missing version and an unknown state",
            None,
            Box::new(|i| {
                i.remove(attr::VERSION);
                i.insert(attr::STATE.into(), AttributeValue::S("OPENED".into()));
            }),
        ),
        (
            "number of the wrong type",
            Some(7),
            Box::new(|i| {
                i.insert(attr::TRIPS.into(), AttributeValue::Bool(true));
            }),
        ),
    ];
    for (what, readable_version, corrupt) in cases {
        let store = fresh_store("corrupt").await;
        let mut item = record_to_item(&record(7, CircuitState::Open));
        item.extend(key("payments"));
        corrupt(&mut item);
        store
            .client()
            .put_item()
            .table_name(store.table_name())
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
        let loaded = store.load("payments").await;
        match &loaded {
            Err(StoreError::Corrupt(c)) => assert_eq!(c.version, readable_version, "{what}: {c:?}"),
            other => panic!("{what}: expected a corrupt item, got {other:?}"),
        }
        let reader =
            moto::connect(moto::config(&shared_moto().endpoint(), store.table_name())).await;
        let clock = ManualClock::new(T0);
        let (b, events) = breaker_on(store, &clock, config(1));
        assert_eq!(
            ok(&b).await.unwrap(),
            Ok(()),
            "{what}: the circuit keeps working"
        );
        assert!(
            events
                .lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, Event::CorruptRecord(_))),
            "{what}: reported"
        );
        fail(&b).await.unwrap().unwrap_err();
        let item = raw_item(&reader, key("payments")).await.unwrap();
        let expected_version = readable_version.map_or(1, |v| v + 1);
        assert_eq!(
            item[attr::STATE],
            AttributeValue::S("OPEN".into()),
            "{what}: replaced"
        );
        assert_eq!(
            item[attr::VERSION],
            AttributeValue::N(expected_version.to_string()),
            "{what}"
        );
        assert!(
            b.acquire().await.is_err(),
            "{what}: the new record is in force"
        );
    }
}

#[tokio::test]
async fn killed_server_calls_flow_locally_with_bounded_delay_and_reconcile_on_restart() {
    let mut server = Moto::start();
    let port = server.port;
    let mut store_config = moto::config(&server.endpoint(), &moto::table("outage"));
    store_config.store_timeout = Duration::from_millis(500);
    let store = Arc::new(moto::connect(store_config.clone()).await);
    store.create_table().await.unwrap();
    let clock = ManualClock::new(T0);
    let (b, events) = breaker_on(
        store.clone(),
        &clock,
        Config {
            recovery_timeout_ms: 60_000,
            ..config(3)
        },
    );
    assert_eq!(ok(&b).await.unwrap(), Ok(()));

    server.kill();
    clock.advance(1_000);
    let mut slow_calls = 0;
    let mut outcomes = Vec::new();
    for i in 0..60 {
        let started = Instant::now();
        let result = if i % 2 == 0 {
            fail(&b).await
        } else {
            ok(&b).await
        };
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(900),
            "call {i} took {took:?}: bounded by store_timeout"
        );
        if took > Duration::from_millis(50) {
            slow_calls += 1;
        }
        outcomes.push(result.is_ok());
        clock.advance(250);
    }
    // 60 calls over 15 s of breaker time: the store is asked again once per 5 s, not per call.
    let attempts = store.stats().errors;
    assert!(
        (2..=4).contains(&attempts),
        "store attempts during the outage: {attempts}"
    );
    assert!(slow_calls <= 4, "{slow_calls} calls paid for the store");
    assert!(
        outcomes.iter().all(|admitted| *admitted),
        "a local streak of 3 never forms: 1 failure, 1 success"
    );

    for _ in 0..3 {
        let _ = fail(&b).await;
    }
    let info = b.info().await.unwrap();
    assert_eq!(
        (info.state, info.local_only),
        (CircuitState::Open, true),
        "tripped locally"
    );

    let _server = Moto::start_on(port);
    store.create_table().await.unwrap();
    clock.advance(5_000);
    assert!(b.acquire().await.is_err());
    let info = b.info().await.unwrap();
    assert!(!info.local_only, "the store answers again");
    let stored = store
        .load("payments")
        .await
        .unwrap()
        .expect("the local trip was written");
    assert_eq!(stored.state, CircuitState::Open);
    let events = events.lock().unwrap();
    assert!(events.iter().any(|e| matches!(e, Event::StoreRecovered(_))));
    assert!(events.iter().any(|e| matches!(e, Event::Transition(t) if t.reason == TransitionReason::Reconciled && !t.local_only)));
    let degraded = events
        .iter()
        .filter(|e| matches!(e, Event::StoreDegraded(_)))
        .count();
    assert_eq!(degraded, 1, "one report for the outage, not one per call");
}

async fn through_proxy(prefix: &str, store_timeout: Duration) -> (Proxy, Arc<DynamoDbStore>) {
    let table = moto::table(prefix);
    let direct = moto::connect(moto::config(&shared_moto().endpoint(), &table)).await;
    direct.create_table().await.unwrap();
    let proxy = Proxy::start(shared_moto().port);
    let mut c = moto::config(&proxy.endpoint(), &table);
    c.store_timeout = store_timeout;
    (proxy, Arc::new(moto::connect(c).await))
}

#[tokio::test]
async fn a_slow_store_is_cut_off_at_the_deadline() {
    let (proxy, store) = through_proxy("slow", Duration::from_millis(300)).await;
    proxy.set_mode(Mode::Delay(Duration::from_secs(3)));
    let clock = ManualClock::new(T0);
    let (b, events) = breaker_on(store.clone(), &clock, config(2));
    let started = Instant::now();
    assert_eq!(
        ok(&b).await.unwrap(),
        Ok(()),
        "admitted: protection continues locally"
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(800),
        "the deadline holds: {took:?}"
    );
    let asked = proxy.operations().len();
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(ok(&b).await.unwrap(), Ok(()));
        clock.advance(100);
    }
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "no further waits before store_retry_after"
    );
    assert_eq!(
        proxy.operations().len(),
        asked,
        "no store calls while backing off"
    );
    let events = events.lock().unwrap();
    assert!(
        matches!(&events[0], Event::StoreDegraded(f) if matches!(f.error, StoreError::Timeout(_))),
        "{events:?}"
    );
}

#[tokio::test]
async fn table_administration_is_not_cut_off_at_store_timeout() {
    let proxy = Proxy::start(shared_moto().port);
    let mut c = moto::config(&proxy.endpoint(), &moto::table("admin"));
    c.store_timeout = Duration::from_millis(200);
    let store = moto::connect(c).await;
    proxy.set_mode(Mode::Delay(Duration::from_millis(500)));
    store
        .create_table()
        .await
        .expect("creating a table may take longer than a breaker's store call");
    assert!(store.list().await.unwrap().is_empty());
    assert!(proxy.operations().contains(&"CreateTable".to_string()));
    let started = Instant::now();
    assert!(
        matches!(store.load("payments").await, Err(StoreError::Timeout(_))),
        "the breaker's own calls keep store_timeout"
    );
    assert!(started.elapsed() < Duration::from_millis(450));
}

#[tokio::test]
async fn throttling_backs_off_and_never_reaches_the_caller() {
    let (proxy, store) = through_proxy("throttle", Duration::from_millis(500)).await;
    proxy.set_mode(Mode::Throttle);
    let clock = ManualClock::new(T0);
    let (b, events) = breaker_on(store.clone(), &clock, config(2));
    for _ in 0..10 {
        assert_eq!(ok(&b).await.unwrap(), Ok(()));
        clock.advance(100);
    }
    let first = proxy.operations().len();
    assert!(
        (1..=2).contains(&first),
        "one store call (with at most one SDK retry): {first}"
    );
    clock.advance(5_000);
    assert_eq!(ok(&b).await.unwrap(), Ok(()));
    assert!(
        proxy.operations().len() > first,
        "asked again after store_retry_after"
    );
    proxy.set_mode(Mode::Forward);
    clock.advance(5_000);
    fail(&b).await.unwrap().unwrap_err();
    fail(&b).await.unwrap().unwrap_err();
    assert_eq!(
        store.load("payments").await.unwrap().unwrap().state,
        CircuitState::Open,
        "back to sharing"
    );
    let degraded: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::StoreDegraded(f) => Some(f.error.clone()),
            _ => None,
        })
        .collect();
    assert!(
        matches!(degraded.as_slice(), [StoreError::Throttled(_)]),
        "{degraded:?}"
    );
}

#[tokio::test]
async fn a_misconfigured_table_logs_one_clear_line_and_protects_locally() {
    let store = moto::connect(moto::config(&shared_moto().endpoint(), "no-such-table")).await;
    let clock = ManualClock::new(T0);
    let long_break = Config {
        recovery_timeout_ms: 60_000,
        ..config(3)
    };
    let (b, events) = breaker_on(store, &clock, long_break);
    for _ in 0..3 {
        assert_eq!(
            fail(&b).await.unwrap(),
            Err(()),
            "the call's own error reaches the caller"
        );
        clock.advance(10);
    }
    for _ in 0..30 {
        assert!(b.acquire().await.is_err(), "tripped locally");
        clock.advance(500);
    }
    let events = events.lock().unwrap();
    let degraded: Vec<&StoreError> = events
        .iter()
        .filter_map(|e| match e {
            Event::StoreDegraded(f) => Some(&f.error),
            _ => None,
        })
        .collect();
    assert_eq!(
        degraded.len(),
        1,
        "one report, not one per call: {degraded:?}"
    );
    let StoreError::Misconfigured(message) = degraded[0] else {
        panic!("{:?}", degraded[0]);
    };
    for part in [
        "no-such-table",
        "us-east-1",
        "partition key 'id' (S)",
        "ResourceNotFoundException",
    ] {
        assert!(
            message.contains(part),
            "the message names {part}: {message}"
        );
    }
}

#[tokio::test]
async fn only_get_item_and_put_item_are_called() {
    let (proxy, store) = through_proxy("iam", Duration::from_secs(1)).await;
    let clock = ManualClock::new(T0);
    let (b, _) = breaker_on(store, &clock, config(2));
    ok(&b).await.unwrap().unwrap();
    for _ in 0..2 {
        fail(&b).await.unwrap().unwrap_err();
    }
    clock.advance(1_000);
    ok(&b).await.unwrap().unwrap();
    b.force_open(Some(Duration::from_secs(60)), "drill")
        .await
        .unwrap();
    b.force_closed(None, "drill").await.unwrap();
    b.reset().await.unwrap();
    clock.advance(10_000);
    b.info().await.unwrap();
    let operations = proxy.operations();
    let kinds: std::collections::BTreeSet<&str> = operations.iter().map(String::as_str).collect();
    assert_eq!(
        kinds,
        ["GetItem", "PutItem"].into(),
        "IAM needs only these: {operations:?}"
    );
}

#[test]
fn bad_store_configuration_names_the_field() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cases: Vec<(&str, DynamoDbConfig)> = vec![
        ("table_name", DynamoDbConfig::new("")),
        ("table_name", DynamoDbConfig::new("ab")),
        ("table_name", DynamoDbConfig::new("x".repeat(256))),
        ("table_name", DynamoDbConfig::new("circuit breakers")),
        ("table_name", DynamoDbConfig::new("circuits/eu")),
        (
            "sort_key_attr",
            DynamoDbConfig {
                sort_key_attr: Some("id".into()),
                ..DynamoDbConfig::new("circuits")
            },
        ),
        (
            "store_timeout",
            DynamoDbConfig {
                store_timeout: Duration::ZERO,
                ..DynamoDbConfig::new("circuits")
            },
        ),
    ];
    for (field, config) in cases {
        let err = rt.block_on(DynamoDbStore::connect(config)).unwrap_err();
        assert!(
            matches!(&err, Error::Config(e) if e.field == field),
            "{field}: {err}"
        );
    }
    for good in ["abc", "my-table_1.v2", &"x".repeat(255)] {
        assert!(
            fleetbreaker::dynamodb::validate_table_name(good).is_ok(),
            "{good}"
        );
    }
    // As in the Powertools breaker, a partition value without a sort key is ignored (with a
    // warning), not refused.
    let ignored = DynamoDbConfig {
        static_pk_value: Some("x".into()),
        ..DynamoDbConfig::new("circuits")
    };
    assert!(ignored.validate().is_ok());
    assert_eq!(ignored.partition_value(), None);
    let composite = DynamoDbConfig {
        sort_key_attr: Some("sk".into()),
        key_attr: "pk".into(),
        ..DynamoDbConfig::new("circuits")
    };
    assert_eq!(
        composite.partition_value().as_deref(),
        Some(format!(
            "circuit_breaker#{}",
            std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default()
        ))
        .as_deref(),
        "the default partition value is the Powertools breaker's"
    );
}

#[tokio::test]
async fn healthy_calls_write_nothing_and_read_once_per_cache_age_per_environment() {
    let table = moto::table("healthy");
    let endpoint = shared_moto().endpoint();
    let creator = moto::connect(moto::config(&endpoint, &table)).await;
    creator.create_table().await.unwrap();
    let clock = ManualClock::new(T0);
    let healthy = Config {
        local_cache_max_age_ms: 500,
        ..Config::default()
    };
    let mut fleet = Vec::new();
    for _ in 0..4 {
        let store = Arc::new(moto::connect(moto::config(&endpoint, &table)).await);
        let (b, _) = breaker_on(store.clone(), &clock, healthy.clone());
        fleet.push((b, store));
    }
    // 5 s of breaker time, one call per environment every 10 ms: 2,000 calls.
    let steps = 500;
    for _ in 0..steps {
        for (b, _) in &fleet {
            assert_eq!(ok(b).await.unwrap(), Ok(()));
        }
        clock.advance(10);
    }
    let calls = steps * fleet.len() as u64;
    let reads: u64 = fleet.iter().map(|(_, s)| s.stats().reads).sum();
    let writes: u64 = fleet.iter().map(|(_, s)| s.stats().writes).sum();
    println!(
        "healthy fleet: {calls} calls, {reads} GetItem ({:.1} per 1,000 calls), {writes} PutItem",
        1000.0 * reads as f64 / calls as f64
    );
    assert_eq!(writes, 0, "a healthy circuit writes nothing");
    for (_, store) in &fleet {
        // 5 s / 0.5 s: at most one read per environment per local_cache_max_age.
        assert!(
            store.stats().reads <= 10,
            "reads per environment: {}",
            store.stats().reads
        );
    }
}

/// Writes `item` under key `circuit` as it is, past the store: the way another tool (or an
/// older version, or a person) would.
async fn put_raw(store: &DynamoDbStore, circuit: &str, item: Vec<(&str, AttributeValue)>) {
    let mut item: HashMap<String, AttributeValue> =
        item.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    item.extend(key(circuit));
    store
        .client()
        .put_item()
        .table_name(store.table_name())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

#[tokio::test]
async fn items_written_by_the_powertools_breaker_keep_their_state_and_are_upgraded_by_the_next_write()
 {
    // Items as the Powertools circuit breaker (3.37) writes them: no version, times in epoch
    // seconds, `half_open_owner` and `probe_lease_expiry` for the probe.
    let store = fresh_store("powertools").await;
    let reader = moto::connect(moto::config(&shared_moto().endpoint(), store.table_name())).await;
    let t0_s = T0 / 1000;
    put_raw(
        &store,
        "opened",
        vec![
            ("state", s("OPEN")),
            ("failure_count", n(5)),
            ("opened_at", n(t0_s - 10)),
            ("expiration", n(t0_s + 3630)),
        ],
    )
    .await;
    put_raw(
        &store,
        "probing",
        vec![
            ("state", s("HALF_OPEN")),
            ("failure_count", n(0)),
            ("opened_at", n(t0_s - 40)),
            ("half_open_owner", s("1234#9f0c2d")),
            ("probe_lease_expiry", n(t0_s + 20)),
            ("expiration", n(t0_s + 3630)),
        ],
    )
    .await;
    put_raw(
        &store,
        "closed",
        vec![("state", s("CLOSED")), ("failure_count", n(0))],
    )
    .await;

    let store = Arc::new(store);
    let clock = ManualClock::new(T0);
    let env = Environment::builder(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let powertools_defaults = Config {
        recovery_timeout_ms: 30_000,
        ..Config::default()
    };
    let on = |name: &str| {
        Breaker::builder(name)
            .config(powertools_defaults.clone())
            .environment(&env)
            .build()
            .unwrap()
    };
    let (opened, probing, closed) = (on("opened"), on("probing"), on("closed"));

    // Open ten seconds ago with a 30 s break: still open, for 20 s more.
    let rejected = opened.acquire().await.unwrap_err();
    let info = rejected.circuit().unwrap();
    assert_eq!(
        (info.state, info.failure_count, info.retry_after_ms),
        (CircuitState::Open, 5, Some(20_000)),
        "switching the import keeps an open circuit open"
    );
    let info = probing.acquire().await.unwrap_err();
    assert_eq!(
        info.circuit().unwrap().state,
        CircuitState::HalfOpen,
        "its probe is still running, under its lease"
    );
    assert!(closed.acquire().await.is_ok());

    // The break ends: one probe, written in our format over theirs.
    clock.advance(20_000);
    let probe = opened.acquire().await.unwrap();
    assert!(probe.is_probe());
    let item = raw_item(&reader, key("opened")).await.unwrap();
    assert_eq!(
        (&item[attr::STATE], &item[attr::VERSION]),
        (&s("HALF_OPEN"), &n(1)),
        "upgraded by the next compare-and-swap"
    );
    assert!(!item.contains_key("opened_at"), "{item:?}");
    assert_eq!(item[attr::OPENED_AT_MS], n(T0 - 10_000), "same episode");
    opened.complete(probe, fleetbreaker::Outcome::Success).await;

    // The Powertools probe's lease runs out; then its permit is taken over.
    let taken = probing.acquire().await.unwrap();
    assert!(taken.is_probe());
    let item = raw_item(&reader, key("probing")).await.unwrap();
    assert_eq!(item[attr::VERSION], n(1));
}

#[tokio::test]
async fn a_version_that_is_a_number_but_not_ours_is_replaced_by_exactly_one_writer() {
    for raw in ["-1", "1.5", "18446744073709551616"] {
        let store = fresh_store("badversion").await;
        put_raw(
            &store,
            "payments",
            vec![
                ("state", s("OPEN")),
                ("version", AttributeValue::N(raw.into())),
            ],
        )
        .await;
        assert!(
            matches!(store.load("payments").await, Err(StoreError::Corrupt(ref c)) if c.version.is_none()),
            "{raw}: unreadable"
        );
        let reader =
            moto::connect(moto::config(&shared_moto().endpoint(), store.table_name())).await;
        let store = Arc::new(store);
        // Two environments that both read the corrupt item before either wrote.
        let clock = ManualClock::new(T0);
        let (a, _) = breaker_on(store.clone(), &clock, config(1));
        let (b, _) = breaker_on(store.clone(), &clock, config(1));
        assert_eq!(ok(&a).await.unwrap(), Ok(()), "{raw}: read as absent");
        assert_eq!(ok(&b).await.unwrap(), Ok(()));
        fail(&a).await.unwrap().unwrap_err();
        let item = raw_item(&reader, key("payments")).await.unwrap();
        assert_eq!(
            (&item[attr::STATE], &item[attr::VERSION]),
            (&s("OPEN"), &n(1)),
            "{raw}: replaced"
        );
        fail(&b).await.unwrap().unwrap_err();
        let item = raw_item(&reader, key("payments")).await.unwrap();
        assert_eq!(item[attr::VERSION], n(1), "{raw}: the second writer lost");
        assert!(
            a.acquire().await.is_err(),
            "{raw}: failing calls are rejected now"
        );

        // The operator's commands are the way out of a corrupt record.
        put_raw(
            &reader,
            "payments",
            vec![
                ("state", s("OPENED")),
                ("version", AttributeValue::N(raw.into())),
            ],
        )
        .await;
        let info = a.force_open(None, "incident").await.unwrap();
        assert_eq!(info.state, CircuitState::ForcedOpen, "{raw}");
        put_raw(
            &reader,
            "payments",
            vec![("version", AttributeValue::N(raw.into()))],
        )
        .await;
        let info = a.reset().await.unwrap();
        assert_eq!(info.state, CircuitState::Closed, "{raw}");
    }
}

#[tokio::test]
async fn a_write_that_landed_but_answered_too_late_is_still_reported_as_this_environments() {
    // The first attempt of the trip's PutItem lands, but its answer comes after the attempt's
    // deadline; the SDK retries, and the retry's condition fails against our own write.
    let (proxy, store) = through_proxy("late", Duration::from_millis(1_500)).await;
    let clock = ManualClock::new(T0);
    let (b, events) = breaker_on(store.clone(), &clock, config(1));
    assert_eq!(ok(&b).await.unwrap(), Ok(()));
    proxy.set_mode(Mode::LatePutAnswer(Duration::from_millis(1_000)));
    fail(&b).await.unwrap().unwrap_err();
    assert_eq!(
        proxy
            .operations()
            .iter()
            .filter(|o| *o == "PutItem")
            .count(),
        2,
        "the write was retried: {:?}",
        proxy.operations()
    );
    let stored = store.load("payments").await.unwrap().unwrap();
    assert_eq!((stored.state, stored.version), (CircuitState::Open, 1));
    let events = events.lock().unwrap();
    let tripped: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Transition(t) => Some((t.reason, t.version, t.local_only)),
            _ => None,
        })
        .collect();
    assert_eq!(
        tripped,
        vec![(TransitionReason::Tripped, 1, false)],
        "the write is reported once, as a write"
    );
}
