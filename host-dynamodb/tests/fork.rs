//! `fork()` after the store, or a store and a used breaker, exist: the child gets its own I/O
//! runtime, connections, SQLite thread, component instance and identity, and works; the parent
//! is untouched and works after the child is gone. As gunicorn `--preload`, uwsgi without
//! lazy-apps, Celery prefork and `multiprocessing` with fork do.
//!
//! Each case runs in a fresh process of this test binary (a forking test must not share its
//! process with other tests' threads), under a deadline: a hang is a failure, not a stuck run.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetbreaker::bridge::io_runtime;
use fleetbreaker::{
    Breaker, CircuitState, Config, DynamoDbStore, Environment, FailurePolicy, SqliteStore, Store,
};
use support::TempDir;
use support::moto::{self, Moto};

const CASE: &str = "FLEETBREAKER_FORK_CASE";
const WHERE: &str = "FLEETBREAKER_FORK_WHERE";

fn config() -> Config {
    Config {
        failure_policy: FailurePolicy::ConsecutiveFailures(2),
        local_cache_max_age_ms: 0,
        ..Config::default()
    }
}

/// Runs the named case in a child process of this binary and checks it passed in time.
fn run_case(case: &str, place: &str, extra: &[(&str, String)]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "fork_case", "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .env(WHERE, place);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{case} on {place}: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{case} on {place}: hung (killed after 90 s)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fork_with_a_used_breaker_on_sqlite() {
    let dir = TempDir::new("fork-sqlite");
    run_case(
        "breaker",
        &dir.join("circuits.db").display().to_string(),
        &[],
    );
}

#[test]
fn fork_with_only_the_store_on_sqlite() {
    let dir = TempDir::new("fork-sqlite-store");
    run_case("store", &dir.join("circuits.db").display().to_string(), &[]);
}

#[test]
fn fork_with_a_used_breaker_on_dynamodb() {
    let moto = Moto::start();
    run_case("breaker", "dynamodb", &[("MOTO_ENDPOINT", moto.endpoint())]);
}

#[test]
fn fork_with_only_the_store_on_dynamodb() {
    let moto = Moto::start();
    run_case("store", "dynamodb", &[("MOTO_ENDPOINT", moto.endpoint())]);
}

fn open_store(place: &str) -> Arc<dyn Store> {
    if place != "dynamodb" {
        return Arc::new(SqliteStore::open(place).unwrap());
    }
    let endpoint = std::env::var("MOTO_ENDPOINT").unwrap();
    // As the bindings do: the client is built on the I/O runtime.
    let store: DynamoDbStore = io_runtime().block_on(async {
        let store = moto::connect(moto::config(&endpoint, "forked")).await;
        let _ = store.create_table().await;
        store
    });
    Arc::new(store)
}

fn breaker(store: &Arc<dyn Store>) -> Breaker {
    let env = Environment::builder(store.clone()).build().unwrap();
    Breaker::builder("payments")
        .config(config())
        .environment(&env)
        .build()
        .unwrap()
}

fn call(b: &Breaker, ok: bool) -> Result<(), String> {
    io_runtime()
        .block_on(b.call(async move { if ok { Ok(()) } else { Err(()) } }))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The process a case runs in: makes what the case says, forks, checks both sides.
#[test]
fn fork_case() {
    let Ok(case) = std::env::var(CASE) else {
        return; // run only as a child of the tests above
    };
    let place = std::env::var(WHERE).unwrap();
    let store = open_store(&place);
    let before_fork = (case == "breaker").then(|| {
        let b = breaker(&store);
        call(&b, true).unwrap();
        let id = b.environment().id().to_string();
        (b, id)
    });

    // SAFETY: the child only runs this function's code and exits; it is what fork users do.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // The child: a hang here is a failure, reported by the deadline.
        unsafe { libc::alarm(60) };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let b = match &before_fork {
                Some((b, parent_id)) => {
                    assert_ne!(b.environment().id(), parent_id, "a new identity");
                    b.clone()
                }
                None => breaker(&store),
            };
            call(&b, true).unwrap();
            call(&b, false).unwrap();
            call(&b, false).unwrap();
            let info = io_runtime().block_on(b.info()).unwrap();
            assert_eq!(info.state, CircuitState::Open, "{info:?}");
            assert!(!info.local_only, "the child reached the store: {info:?}");
        }));
        unsafe { libc::_exit(if outcome.is_ok() { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed or hung: status {status:#x}"
    );
    // The parent is untouched: its own breaker (or a new one) still reaches the store, and
    // sees the trip the child wrote.
    let b = match before_fork {
        Some((b, _)) => b,
        None => breaker(&store),
    };
    let rejected = io_runtime().block_on(b.acquire());
    assert!(
        matches!(&rejected, Err(fleetbreaker::Error::Open(i)) if !i.local_only),
        "the parent still works and sees the child's trip: {rejected:?}"
    );
    io_runtime().block_on(b.reset()).unwrap();
    call(&b, true).unwrap();
}
