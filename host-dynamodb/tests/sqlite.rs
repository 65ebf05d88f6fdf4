//! The SQLite store: compare-and-swap semantics, corrupt rows, and several real processes
//! writing one file without losing an update.

mod support;

use std::path::Path;
use std::process::Command;

use fleetbreaker::{
    Breaker, CircuitState, Config, Error, FailurePolicy, ManualClock, Record, SqliteStore, Store,
    StoreError, SwapResult,
};
use support::TempDir;

const T0: u64 = 1_700_000_000_000;

fn temp_db(name: &str) -> TempDir {
    TempDir::new(&format!("sqlite-{name}"))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn record(version: u64, state: CircuitState) -> Record {
    let mut r = Record::absent(version);
    r.state = state;
    r.updated_at_ms = T0;
    r.updated_by = "tests".into();
    r.opened_at_ms = Some(T0);
    r.probe_owner = Some("env#1".into());
    r.expires_at_ms = T0 + 3_600_123;
    r
}

#[test]
fn swap_is_a_compare_and_swap_on_the_version() {
    let db = temp_db("cas");
    let store = SqliteStore::open(db.join("circuits.db")).unwrap();
    block_on(async {
        assert_eq!(store.load("c").await.unwrap(), None);
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
        for stale in [None, Some(0), Some(2)] {
            let other = record(9, CircuitState::Closed);
            assert_eq!(
                store.swap("c", stale, &other).await.unwrap(),
                SwapResult::Conflict(Some(v1.clone())),
                "expected {stale:?}"
            );
        }
        let v2 = record(2, CircuitState::HalfOpen);
        assert_eq!(
            store.swap("c", Some(1), &v2).await.unwrap(),
            SwapResult::Written
        );
        assert_eq!(store.load("c").await.unwrap(), Some(v2));
        assert_eq!(
            store.load("other").await.unwrap(),
            None,
            "one row per circuit"
        );
    });
}

fn write_raw(path: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn corrupt_rows_are_reported_and_replaced_by_the_next_write() {
    let cases = [
        (
            "version of the wrong type",
            "UPDATE fleetbreaker_circuits SET version = 'seven'",
            None,
        ),
        (
            "unknown state",
            "UPDATE fleetbreaker_circuits SET state = 'SIDEWAYS'",
            Some(7),
        ),
        (
            "missing version",
            "UPDATE fleetbreaker_circuits SET version = NULL",
            None,
        ),
        (
            "negative count",
            "UPDATE fleetbreaker_circuits SET trips = -1",
            Some(7),
        ),
    ];
    for (i, (what, sql, readable)) in cases.into_iter().enumerate() {
        // A file per case: the previous case's connections may still be closing.
        let db = temp_db(&format!("corrupt-{i}"));
        let path = db.join("circuits.db");
        let store = SqliteStore::open(&path).unwrap();
        block_on(store.swap("payments", None, &record(7, CircuitState::Open))).unwrap();
        write_raw(&path, sql);
        match block_on(store.load("payments")) {
            Err(StoreError::Corrupt(c)) => assert_eq!(c.version, readable, "{what}: {c:?}"),
            other => panic!("{what}: expected a corrupt row, got {other:?}"),
        }
        let b = Breaker::builder("payments")
            .config(Config {
                failure_policy: FailurePolicy::ConsecutiveFailures(1),
                ..Config::default()
            })
            .store(store)
            .clock(ManualClock::new(T0))
            .build()
            .unwrap();
        block_on(async {
            assert_eq!(
                b.call(async { Ok::<_, ()>(1) }).await.unwrap(),
                Ok(1),
                "{what}: still works"
            );
            assert_eq!(b.call(async { Err::<(), _>(()) }).await.unwrap(), Err(()));
        });
        let reread = SqliteStore::open(&path).unwrap();
        let stored = block_on(reread.load("payments"))
            .unwrap()
            .expect("replaced by a valid record");
        assert_eq!(stored.state, CircuitState::Open, "{what}");
        assert_eq!(stored.version, readable.map_or(1, |v| v + 1), "{what}");
    }
}

#[test]
fn a_file_made_with_fewer_fields_gains_the_new_columns_and_keeps_its_rows() {
    let dir = temp_db("older-file");
    let path = dir.path().join("circuits.db");
    // The table as a version that knew only the first few fields made it, with one row.
    write_raw(
        &path,
        "CREATE TABLE fleetbreaker_circuits (name TEXT PRIMARY KEY NOT NULL, state TEXT,
            version INTEGER, opened_at_ms INTEGER);
         INSERT INTO fleetbreaker_circuits VALUES ('payments', 'OPEN', 4, 1700000000000);",
    );
    let store = SqliteStore::open(&path).unwrap();
    let read = block_on(store.load("payments")).unwrap().unwrap();
    let mut want = Record::absent(4);
    want.state = CircuitState::Open;
    want.opened_at_ms = Some(T0);
    assert_eq!(read, want, "the new fields read as absent");
    let next = record(5, CircuitState::HalfOpen);
    assert_eq!(
        block_on(store.swap("payments", Some(4), &next)).unwrap(),
        SwapResult::Written
    );
    assert_eq!(block_on(store.load("payments")).unwrap(), Some(next));
}

#[test]
fn window_counters_count_every_add_from_every_connection() {
    let dir = temp_db("windows");
    let path = dir.path().join("circuits.db");
    // One connection (and thread) per adder, as separate processes have.
    let stores: Vec<std::sync::Arc<dyn Store>> = (0..4)
        .map(|_| std::sync::Arc::new(SqliteStore::open(&path).unwrap()) as _)
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread().build().unwrap();
    rt.block_on(support::windows::window_counters_contract(stores));
}

#[test]
fn window_shards_past_their_expiry_go_when_a_later_window_is_added_to() {
    let dir = temp_db("windows-expiry");
    let store = SqliteStore::open(dir.path().join("circuits.db")).unwrap();
    let delta = fleetbreaker::WindowDelta {
        calls: 3,
        failures: 1,
        slow_calls: 0,
        environment: Some("env-1".into()),
    };
    block_on(store.add_to_window("payments", T0, 0, &delta, T0 + 20_000)).unwrap();
    block_on(store.add_to_window("payments", T0 + 30_000, 0, &delta, T0 + 50_000)).unwrap();
    let read = block_on(store.read_windows("payments", &[T0, T0 + 30_000], 1)).unwrap();
    assert_eq!(
        read[0],
        fleetbreaker::WindowCounts::default(),
        "expired and gone"
    );
    assert_eq!((read[1].calls, read[1].environments.len()), (3, 1));
}

#[test]
fn an_unusable_path_is_a_clear_error() {
    let err = SqliteStore::open("/nonexistent-dir/sub/circuits.db").unwrap_err();
    assert!(
        matches!(&err, Error::Store(StoreError::Misconfigured(m)) if m.contains("/nonexistent-dir/sub/circuits.db")),
        "{err}"
    );
}

#[test]
fn many_processes_may_open_a_new_file_at_once() {
    // Every member of a fleet starting together opens the file; the one that creates it and
    // the ones setting it up at the same moment must all succeed.
    const OPENERS: usize = 8;
    for round in 0..25 {
        let db = temp_db(&format!("open-{round}"));
        let path = db.join("circuits.db");
        let barrier = std::sync::Barrier::new(OPENERS);
        let opened: Vec<Result<SqliteStore, Error>> = std::thread::scope(|s| {
            let openers: Vec<_> = (0..OPENERS)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        SqliteStore::open(&path)
                    })
                })
                .collect();
            openers.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for result in opened {
            if let Err(e) = result {
                panic!("round {round}: {e}");
            }
        }
    }
}

const WORKER_ENV: &str = "FLEETBREAKER_SQLITE_WORKER";
const PROCESSES: u64 = 4;
const INCREMENTS: u64 = 150;

/// The child side of the multi-process test: increments the version of one record by
/// compare-and-swap, retrying on conflict, and prints how many swaps it won.
#[test]
fn sqlite_worker() {
    let Ok(path) = std::env::var(WORKER_ENV) else {
        return;
    };
    let store = SqliteStore::open(path).unwrap();
    let mut won = 0;
    block_on(async {
        while won < INCREMENTS {
            let current = store.load("counter").await.unwrap();
            let version = current.as_ref().map_or(0, |r| r.version);
            let expected = current.map(|r| r.version);
            match store
                .swap(
                    "counter",
                    expected,
                    &record(version + 1, CircuitState::Closed),
                )
                .await
            {
                Ok(SwapResult::Written) => won += 1,
                Ok(SwapResult::Conflict(_)) => {}
                // A lock held past the busy timeout is a fault the breaker rides out; here,
                // just try again.
                Err(StoreError::Timeout(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    });
    println!("\nWON={won}");
}

#[test]
fn several_processes_never_lose_an_update() {
    let db = temp_db("processes");
    let path = db.join("circuits.db");
    SqliteStore::open(&path).unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "sqlite_worker",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(WORKER_ENV, &path)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut won = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        won += text
            .lines()
            .find_map(|l| l.strip_prefix("WON="))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .expect("the worker reports its swaps");
    }
    assert_eq!(won, PROCESSES * INCREMENTS);
    let stored = block_on(SqliteStore::open(&path).unwrap().load("counter"))
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.version,
        PROCESSES * INCREMENTS,
        "every won swap is in the record: no lost update"
    );
}
