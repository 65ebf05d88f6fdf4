//! What the breaker costs per call, and how long a process takes to its first decision.
//!
//! `cargo bench -p fleetbreaker --bench overhead`
//!
//! Prints nanoseconds per call for: a healthy call under the admission lease; acquire plus
//! complete through the component without a lease; a rejection by an open circuit; the same
//! acquire plus complete in the native core; and the cold time from process start to the first
//! decision with the precompiled component. Figures only: nothing here passes or fails.

use std::future::Future;
use std::pin::pin;
use std::process::Command;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use fleetbreaker::{Breaker, Config, FailurePolicy, MemoryStore, Outcome, SystemClock};

#[path = "../tests/support/moto.rs"]
#[allow(dead_code)]
mod moto;

#[path = "../tests/support/proxy.rs"]
#[allow(dead_code)]
mod proxy;

const ROUNDS: usize = 7;

/// Polls once: every call measured here completes without waiting (no store I/O).
fn now<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a measured call waited"),
    }
}

/// Median and best of ROUNDS runs of `iterations` calls, in ns per call.
fn measure(iterations: u64, mut body: impl FnMut()) -> (f64, f64) {
    for _ in 0..iterations / 10 {
        body();
    }
    let mut per_call: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                body();
            }
            start.elapsed().as_nanos() as f64 / iterations as f64
        })
        .collect();
    per_call.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (per_call[ROUNDS / 2], per_call[0])
}

fn config() -> Config {
    Config {
        failure_policy: FailurePolicy::ConsecutiveFailures(1_000_000),
        local_cache_max_age_ms: 3_600_000,
        ..Config::default()
    }
}

fn breaker(name: &str, config: Config) -> Breaker {
    Breaker::builder(name)
        .config(config)
        .store(MemoryStore::new())
        .clock(SystemClock)
        .build()
        .unwrap()
}

fn row(what: &str, target: &str, (median, best): (f64, f64)) {
    println!("| {what:<58} | {median:>9.1} | {best:>9.1} | {target:<12} |");
}

/// The native core over a store it never needs to touch (fresh cache), with the system clock.
struct NativeEnv(fleetbreaker_core::testing::MemoryStore);

impl fleetbreaker_core::Store for NativeEnv {
    fn load(
        &mut self,
        c: &str,
    ) -> Result<Option<fleetbreaker_core::Record>, fleetbreaker_core::StoreError> {
        self.0.load(c)
    }
    fn swap(
        &mut self,
        c: &str,
        e: Option<u64>,
        n: &fleetbreaker_core::Record,
    ) -> Result<fleetbreaker_core::SwapResult, fleetbreaker_core::StoreError> {
        self.0.swap(c, e, n)
    }
}

impl fleetbreaker_core::Clock for NativeEnv {
    fn now_ms(&mut self) -> u64 {
        use fleetbreaker::Clock;
        SystemClock.now_ms()
    }

    fn monotonic_ms(&mut self) -> u64 {
        use fleetbreaker::Clock;
        SystemClock.monotonic_ms()
    }
}

impl fleetbreaker_core::Events for NativeEnv {
    fn emit(&mut self, _: fleetbreaker_core::Event) {}
}

/// The child of the DynamoDB cold-start measure: build the client, the breaker, decide once
/// (one GetItem), and report the microseconds at each step.
fn child_dynamodb(started: Instant) {
    let endpoint = std::env::var("FLEETBREAKER_BENCH_ENDPOINT").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = moto::connect(moto::config(&endpoint, "bench")).await;
        let client_built = started.elapsed();
        let b = Breaker::builder("cold").store(store).build().unwrap();
        let permit = b.acquire().await.unwrap();
        let decided = started.elapsed();
        b.complete(permit, Outcome::Success).await;
        println!("{} {}", client_built.as_micros(), decided.as_micros());
    });
}

/// The child process of the cold-start measure: load, build, decide once, report, exit.
fn child(started: Instant) {
    let b = breaker("cold", Config::default());
    let permit = now(b.acquire()).unwrap();
    let decided = started.elapsed();
    now(b.complete(permit, Outcome::Success));
    println!("{}", decided.as_micros());
}

fn cold_start() -> (f64, f64, f64) {
    let exe = std::env::current_exe().unwrap();
    let mut wall = Vec::new();
    let mut inside = Vec::new();
    let mut baseline = Vec::new();
    for _ in 0..15 {
        let start = Instant::now();
        let out = Command::new(&exe)
            .env("FLEETBREAKER_BENCH_CHILD", "decide")
            .output()
            .unwrap();
        wall.push(start.elapsed());
        let text = String::from_utf8_lossy(&out.stdout);
        inside.push(Duration::from_micros(
            text.trim().parse().expect("child reports µs"),
        ));
        let start = Instant::now();
        Command::new(&exe)
            .env("FLEETBREAKER_BENCH_CHILD", "exit")
            .output()
            .unwrap();
        baseline.push(start.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    (
        median(&mut wall),
        median(&mut inside),
        median(&mut baseline),
    )
}

/// Whether moto can run here (scripts/test installs it); says `what` is skipped if not.
fn has_moto(what: &str) -> bool {
    let python = moto::python();
    let found = Command::new(&python)
        .args(["-c", "import moto.server"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("\n({what} skipped: no moto for {})", python.display());
    }
    found
}

/// The time to the first decision with the DynamoDB store, against moto on loopback (needs
/// moto: scripts/test installs it).
fn cold_start_dynamodb() {
    if !has_moto("DynamoDB cold start") {
        return;
    }
    let server = moto::Moto::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = moto::connect(moto::config(&server.endpoint(), "bench")).await;
        let _ = store.create_table().await;
    });
    let exe = std::env::current_exe().unwrap();
    let (mut client, mut decided, mut wall) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        let start = Instant::now();
        let out = Command::new(&exe)
            .env("FLEETBREAKER_BENCH_CHILD", "decide-dynamodb")
            .env("FLEETBREAKER_BENCH_ENDPOINT", server.endpoint())
            .output()
            .unwrap();
        wall.push(start.elapsed().as_secs_f64() * 1e3);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text
            .split_whitespace()
            .map(|p| p.parse::<f64>().unwrap() / 1e3);
        client.push(parts.next().expect("client time"));
        decided.push(parts.next().expect("decision time"));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!("\ncold start with the DynamoDB store (moto on loopback), median of 15 processes:");
    println!("| {:<58} | {:>9} |", "measure", "ms");
    println!("|{}|{}|", "-".repeat(60), "-".repeat(11));
    println!(
        "| {:<58} | {:>9.2} |",
        "in-process: main() to the DynamoDB client built",
        median(&mut client)
    );
    println!(
        "| {:<58} | {:>9.2} |",
        "in-process: main() to the first decision (one GetItem)",
        median(&mut decided)
    );
    println!(
        "| {:<58} | {:>9.2} |",
        "whole process: spawn to exit",
        median(&mut wall)
    );
}

/// Circuit B's decisions while circuit A's store calls take 500 ms (moto behind the test proxy,
/// which delays every request): each circuit has its own component instance, so B's rejections
/// (no store I/O while its copy of the record is fresh) do not wait for A's reads.
fn isolation_while_another_circuit_waits() {
    if !has_moto("isolation") {
        return;
    }
    let server = moto::Moto::start();
    let proxy = proxy::Proxy::start(server.port);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (latencies, refreshes) = runtime.block_on(async {
        let mut store_config = moto::config(&proxy.endpoint(), &moto::table("isolation"));
        store_config.store_timeout = Duration::from_secs(5);
        let store = moto::connect(store_config).await;
        store.create_table().await.unwrap();
        let env = fleetbreaker::Environment::builder(store).build().unwrap();
        let on = |name: &str, config: Config| {
            Breaker::builder(name)
                .config(config)
                .environment(&env)
                .build()
                .unwrap()
        };
        // A reads its record on every call (a copy is never fresh); B is open, with a copy
        // that stays fresh for the whole run.
        let a = on(
            "a",
            Config {
                local_cache_max_age_ms: 0,
                ..Config::default()
            },
        );
        let b = on(
            "b",
            Config {
                failure_policy: FailurePolicy::ConsecutiveFailures(1),
                local_cache_max_age_ms: 60_000,
                ..Config::default()
            },
        );
        b.call(async { Err::<(), ()>(()) })
            .await
            .unwrap()
            .unwrap_err();
        b.acquire().await.unwrap_err();
        proxy.set_mode(proxy::Mode::Delay(Duration::from_millis(500)));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refreshing = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut refreshes = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(p) = a.acquire().await {
                        a.complete(p, Outcome::Success).await;
                    }
                    refreshes += 1;
                }
                refreshes
            })
        };
        // B decides every millisecond for 1.5 s: through three of A's reads.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut latencies = Vec::new();
        let end = Instant::now() + Duration::from_millis(1_500);
        while Instant::now() < end {
            let start = Instant::now();
            b.acquire().await.unwrap_err();
            latencies.push(start.elapsed().as_secs_f64() * 1e3);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (latencies, refreshing.await.unwrap())
    });
    let mut sorted = latencies.clone();
    sorted.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    println!(
        "\ncircuit B's decisions while circuit A's store calls take 500 ms (moto behind a delaying \
         proxy; {} decisions of B during {} reads of A):",
        sorted.len(),
        refreshes
    );
    println!("| {:<58} | {:>9} | {:<12} |", "measure", "ms", "target");
    println!("|{}|{}|{}|", "-".repeat(60), "-".repeat(11), "-".repeat(14));
    println!(
        "| {:<58} | {:>9.3} | {:<12} |",
        "B's acquire, median",
        at(0.5),
        ""
    );
    println!(
        "| {:<58} | {:>9.3} | {:<12} |",
        "B's acquire, p99",
        at(0.99),
        "< 1 ms"
    );
    println!(
        "| {:<58} | {:>9.3} | {:<12} |",
        "B's acquire, worst",
        at(1.0),
        ""
    );
}

fn main() {
    let started = Instant::now();
    match std::env::var("FLEETBREAKER_BENCH_CHILD").as_deref() {
        Ok("decide") => return child(started),
        Ok("decide-dynamodb") => return child_dynamodb(started),
        Ok("exit") => return,
        _ => {}
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }

    println!("fleetbreaker per-call overhead (ns per call, median and best of {ROUNDS} rounds)\n");
    println!(
        "| {:<58} | {:>9} | {:>9} | {:<12} |",
        "path", "median", "best", "target"
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(60),
        "-".repeat(11),
        "-".repeat(11),
        "-".repeat(14)
    );

    // 1. Healthy call under the admission lease: a clock read, a compare, an increment.
    let healthy = breaker("healthy", config());
    now(healthy.call(async { Ok::<(), ()>(()) }))
        .unwrap()
        .unwrap();
    assert!(now(healthy.acquire()).unwrap().is_leased());
    row(
        "healthy call under the admission lease (acquire+complete)",
        "<= 50 ns",
        measure(5_000_000, || {
            let p = now(healthy.acquire()).unwrap();
            now(healthy.complete(p, Outcome::Success));
        }),
    );

    // 2. Through the component without a lease: a pending failure keeps the lease off.
    let counted = breaker("counted", config());
    now(counted.call(async { Err::<(), ()>(()) }))
        .unwrap()
        .unwrap_err();
    assert!(!now(counted.acquire()).unwrap().is_leased());
    row(
        "acquire+complete through the component, no lease",
        "<= 1500 ns",
        measure(200_000, || {
            let p = now(counted.acquire()).unwrap();
            now(counted.complete(p, Outcome::Ignored));
        }),
    );

    // 3. A rejection by an open circuit (one call into the component).
    let open = breaker(
        "open",
        Config {
            failure_policy: FailurePolicy::ConsecutiveFailures(1),
            ..config()
        },
    );
    now(open.call(async { Err::<(), ()>(()) }))
        .unwrap()
        .unwrap_err();
    row(
        "rejection by an open circuit",
        "",
        measure(200_000, || {
            now(open.acquire()).unwrap_err();
        }),
    );

    // 4. The same acquire+complete natively, for reference.
    let mut env = NativeEnv(fleetbreaker_core::testing::MemoryStore::default());
    let mut circuit = fleetbreaker_core::Circuit::new("native", config(), "bench").unwrap();
    let p = circuit.acquire(&mut env, 0, 1).unwrap();
    circuit.complete(&mut env, p, fleetbreaker_core::Outcome::Failure);
    row(
        "acquire+complete in the native core, no lease (reference)",
        "",
        measure(1_000_000, || {
            let p = circuit.acquire(&mut env, 0, 2).unwrap();
            circuit.complete(&mut env, p, fleetbreaker_core::Outcome::Ignored);
        }),
    );

    let (wall, inside, baseline) = cold_start();
    println!("\ncold start, median of 15 processes (precompiled component, memory store):");
    println!("| {:<58} | {:>9} | {:<12} |", "measure", "ms", "target");
    println!("|{}|{}|{}|", "-".repeat(60), "-".repeat(11), "-".repeat(14));
    println!(
        "| {:<58} | {:>9.2} | {:<12} |",
        "in-process: main() to the first decision", inside, "<= 20 ms"
    );
    println!(
        "| {:<58} | {:>9.2} | {:<12} |",
        "whole process: spawn to exit, deciding once", wall, ""
    );
    println!(
        "| {:<58} | {:>9.2} | {:<12} |",
        "whole process: spawn to exit, doing nothing (baseline)", baseline, ""
    );
    cold_start_dynamodb();
    isolation_while_another_circuit_waits();
    println!(
        "\ncomponent: {} bytes of WebAssembly, {} bytes precompiled",
        fleetbreaker::component_wasm().len(),
        fleetbreaker::precompiled_component().len()
    );
}
