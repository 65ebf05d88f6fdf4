//! How a fleet meets an incident: in-process environments sharing one circuit on the memory
//! store, on one virtual clock, each calling 5 times per second.
//!
//! `cargo bench -p fleetbreaker --bench fleet` (`-- --seed N` to replay a run; `-- --quick`
//! for 100 environments only)
//!
//! For each fleet size it prints: how long a partial outage (30 % errors) takes to trip the
//! circuit; whether 2 % noise for 10 minutes trips it; how many calls fail fleet-wide in a hard
//! outage before every environment has stopped calling, and how long that takes; whether one
//! environment that fails every call trips it for everyone; and the store's writes (healthy,
//! during the incident, the busiest second). Figures only: nothing here passes or fails. Four
//! policies meet the same calls, side by side: the default, consecutive failures (5) counted in
//! each environment; the fleet's failure rate (0.2 of at least 100 calls in a 10 s window);
//! and each of them with `minimum_environments` 3.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fleetbreaker::{
    Breaker, CircuitState, Clock, Config, Environment, Error, FailurePolicy, FailureRate,
    ManualClock, MemoryStore, Outcome, Record, Store, StoreFuture, SwapResult, WindowCounts,
    WindowDelta,
};
use fleetbreaker_core::testing::Rng;

const CIRCUIT: &str = "payments";
const T0: u64 = 1_700_000_000_000;
/// Each environment calls every 200 ms: 5 calls per second.
const PERIOD_MS: u64 = 200;
const TICK_MS: u64 = 10;

/// Which calls fail: `(environment, ms since the incident began, rng) -> fails`.
type Downstream = dyn Fn(usize, u64, &mut Rng) -> bool;

/// The memory store, counting each item's writes per second of the virtual clock: what one
/// DynamoDB item (and so one partition) would take.
struct Counting {
    inner: MemoryStore,
    clock: ManualClock,
    /// (item, second) -> writes.
    writes: Mutex<HashMap<(String, u64), u64>>,
}

impl Counting {
    fn wrote(&self, item: String) {
        let second = self.clock.now_ms() / 1000;
        *self
            .writes
            .lock()
            .unwrap()
            .entry((item, second))
            .or_default() += 1;
    }

    /// The most writes one item took in one second, and since when the count runs.
    fn busiest_item_per_second(&self, since_s: u64) -> u64 {
        let writes = self.writes.lock().unwrap();
        let busiest = writes
            .iter()
            .filter(|((_, second), _)| *second >= since_s)
            .map(|(_, n)| *n)
            .max();
        busiest.unwrap_or(0)
    }
}

impl Store for Counting {
    fn load<'a>(&'a self, circuit: &'a str) -> StoreFuture<'a, Option<Record>> {
        self.inner.load(circuit)
    }

    fn swap<'a>(
        &'a self,
        circuit: &'a str,
        expected_version: Option<u64>,
        next: &'a Record,
    ) -> StoreFuture<'a, SwapResult> {
        Box::pin(async move {
            let result = self.inner.swap(circuit, expected_version, next).await;
            if matches!(result, Ok(SwapResult::Written)) {
                self.wrote(circuit.to_string());
            }
            result
        })
    }

    fn add_to_window<'a>(
        &'a self,
        circuit: &'a str,
        window_start_ms: u64,
        shard: u32,
        delta: &'a WindowDelta,
        expires_at_ms: u64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let result = self
                .inner
                .add_to_window(circuit, window_start_ms, shard, delta, expires_at_ms)
                .await;
            if result.is_ok() {
                self.wrote(format!("{circuit}/{window_start_ms}/{shard}"));
            }
            result
        })
    }

    fn read_windows<'a>(
        &'a self,
        circuit: &'a str,
        window_starts_ms: &'a [u64],
        shards: u32,
    ) -> StoreFuture<'a, Vec<WindowCounts>> {
        self.inner.read_windows(circuit, window_starts_ms, shards)
    }
}

struct Fleet {
    clock: ManualClock,
    store: MemoryStore,
    counting: Arc<Counting>,
    breakers: Vec<Breaker>,
    rt: tokio::runtime::Runtime,
}

fn fleet(environments: usize, config: &Config) -> Fleet {
    let clock = ManualClock::new(T0);
    let store = MemoryStore::new();
    let counting = Arc::new(Counting {
        inner: store.clone(),
        clock: clock.clone(),
        writes: Mutex::default(),
    });
    let breakers = (0..environments)
        .map(|i| {
            let env = Environment::builder(counting.clone())
                .clock(clock.clone())
                .id(format!("env-{i}"))
                .build()
                .expect("an environment");
            Breaker::builder(CIRCUIT)
                .config(config.clone())
                .environment(&env)
                .build()
                .expect("a breaker")
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    Fleet {
        clock,
        store,
        counting,
        breakers,
        rt,
    }
}

#[derive(Default)]
struct Incident {
    /// From the incident's start to the first write of an open circuit.
    first_trip_ms: Option<u64>,
    trips: u64,
    /// Calls that reached the downstream and failed, before every environment had been
    /// rejected at least once.
    failed_before_all_stopped: u64,
    /// When the last environment met its first rejection.
    all_stopped_ms: Option<u64>,
    writes: u64,
    busiest_second_writes: u64,
    /// The most writes one item took in one second.
    busiest_item_writes: u64,
}

/// Whether environment `i` of `n` calls in the tick at `elapsed_ms`: environments are spread
/// evenly over the period, as independent callers are.
fn calls_now(elapsed_ms: u64, i: usize, n: usize) -> bool {
    (elapsed_ms + (i as u64 * PERIOD_MS / n as u64)) % PERIOD_MS < TICK_MS
}

/// Runs the fleet for up to `run_ms` of virtual time against a downstream that answers every
/// call, successfully, after `takes_ms`; returns when the circuit first opened (from now).
fn run_slow(f: &Fleet, run_ms: u64, takes_ms: u64) -> Option<u64> {
    let n = f.breakers.len();
    let mut in_flight: Vec<(u64, usize, fleetbreaker::Permit)> = Vec::new();
    let mut elapsed = 0;
    while elapsed < run_ms {
        for (i, b) in f.breakers.iter().enumerate() {
            if !calls_now(elapsed, i, n) {
                continue;
            }
            if let Ok(permit) = f.rt.block_on(b.acquire()) {
                in_flight.push((elapsed + takes_ms, i, permit));
            }
        }
        let (due, waiting): (Vec<_>, Vec<_>) =
            in_flight.into_iter().partition(|(at, ..)| *at <= elapsed);
        in_flight = waiting;
        for (_, i, permit) in due {
            f.rt.block_on(f.breakers[i].complete(permit, Outcome::Success));
        }
        if f.store
            .record(CIRCUIT)
            .is_some_and(|r| r.state == CircuitState::Open)
        {
            return Some(elapsed);
        }
        f.clock.advance(TICK_MS);
        elapsed += TICK_MS;
    }
    None
}

/// Runs the fleet for `run_ms` of virtual time from now, `downstream` deciding each call.
fn run(f: &Fleet, run_ms: u64, rng: &mut Rng, downstream: &Downstream) -> Incident {
    let n = f.breakers.len();
    let mut out = Incident::default();
    let mut stopped = vec![false; n];
    let mut stopped_count = 0;
    // Every write the store takes: records and the window counters.
    let writes = || f.store.writes() + f.store.window_adds();
    let writes_before = writes();
    let mut writes_by_second: BTreeMap<u64, u64> = BTreeMap::new();
    let mut was_open = false;
    let first_second = f.clock.now_ms() / 1000;
    let mut elapsed = 0;
    while elapsed < run_ms {
        for (i, b) in f.breakers.iter().enumerate() {
            if !calls_now(elapsed, i, n) {
                continue;
            }
            match f.rt.block_on(b.acquire()) {
                Ok(permit) => {
                    let fails = downstream(i, elapsed, rng);
                    if fails && stopped_count < n {
                        out.failed_before_all_stopped += 1;
                    }
                    let outcome = if fails {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    };
                    f.rt.block_on(b.complete(permit, outcome));
                }
                Err(Error::Open(_)) => {
                    if !stopped[i] {
                        stopped[i] = true;
                        stopped_count += 1;
                        if stopped_count == n {
                            out.all_stopped_ms = Some(elapsed);
                        }
                    }
                }
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        let open = f
            .store
            .record(CIRCUIT)
            .is_some_and(|r| r.state == CircuitState::Open);
        if open && !was_open {
            out.trips += 1;
            out.first_trip_ms.get_or_insert(elapsed);
        }
        was_open = open;
        let written = writes() - writes_before;
        *writes_by_second.entry(elapsed / 1000).or_default() = written;
        f.clock.advance(TICK_MS);
        elapsed += TICK_MS;
    }
    out.writes = writes() - writes_before;
    out.busiest_item_writes = f.counting.busiest_item_per_second(first_second);
    let mut last = 0;
    for total in writes_by_second.values() {
        out.busiest_second_writes = out.busiest_second_writes.max(total - last);
        last = *total;
    }
    out
}

fn seconds(ms: Option<u64>) -> String {
    ms.map_or_else(
        || "never".into(),
        |ms| format!("{:.1} s", ms as f64 / 1000.0),
    )
}

/// Every figure of one policy on a fleet of `n`, as (what, figure) rows.
fn figures(n: usize, config: &Config, rng: &mut Rng) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    // Healthy: a minute of successes.
    let f = fleet(n, config);
    let healthy = run(&f, 60_000, rng, &|_, _, _| false);
    rows.push(("writes in a healthy minute", healthy.writes.to_string()));

    // Partial outage: 30 % of calls fail, for up to two minutes.
    let partial = run(&f, 120_000, rng, &|_, _, r| r.chance(0.3));
    rows.push((
        "partial outage (30 % errors): time to trip",
        seconds(partial.first_trip_ms),
    ));

    // Low noise: 2 % errors for 10 minutes.
    let f = fleet(n, config);
    let noise = run(&f, 600_000, rng, &|_, _, r| r.chance(0.02));
    rows.push(("noise (2 % errors, 10 min): trips", noise.trips.to_string()));

    // Tolerable noise: 10 % errors, below the rate policy's threshold, for 10 minutes.
    let f = fleet(n, config);
    let noise = run(&f, 600_000, rng, &|_, _, r| r.chance(0.1));
    rows.push((
        "noise (10 % errors, 10 min): trips",
        noise.trips.to_string(),
    ));
    rows.push((
        "noise (10 % errors): busiest item's writes in a second",
        noise.busiest_item_writes.to_string(),
    ));

    // Hard outage: every call fails.
    let f = fleet(n, config);
    let _ = run(&f, 10_000, rng, &|_, _, _| false);
    let hard = run(&f, 30_000, rng, &|_, _, _| true);
    rows.push((
        "hard outage: failed calls before every environment stopped",
        hard.failed_before_all_stopped.to_string(),
    ));
    rows.push((
        "hard outage: failed calls per environment",
        format!("{:.1}", hard.failed_before_all_stopped as f64 / n as f64),
    ));
    rows.push((
        "hard outage: time until every environment stopped",
        seconds(hard.all_stopped_ms),
    ));
    rows.push(("hard outage: writes in 30 s", hard.writes.to_string()));
    rows.push((
        "hard outage: busiest second's writes (all items)",
        hard.busiest_second_writes.to_string(),
    ));
    rows.push((
        "hard outage: busiest item's writes in one second",
        hard.busiest_item_writes.to_string(),
    ));

    // A slow downstream: every call succeeds, in 800 ms, against slow_call 500 ms.
    let slow = Config {
        slow_call_ms: Some(500),
        ..config.clone()
    };
    let f = fleet(n, &slow);
    rows.push((
        "slow downstream (800 ms, slow_call 500 ms): time to trip",
        seconds(run_slow(&f, 60_000, 800)),
    ));

    // One bad environment: environment 0 fails every call, the others none.
    let f = fleet(n, config);
    let bad = run(&f, 60_000, rng, &|i, _, _| i == 0);
    rows.push((
        "one bad environment (60 s): trips for the fleet",
        bad.trips.to_string(),
    ));
    rows
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(fleetbreaker_core::testing::time_seed);
    let sizes: &[usize] = if args.iter().any(|a| a == "--quick") {
        &[100]
    } else {
        &[100, 1000]
    };
    println!("fleet simulation, seed {seed} (replay with -- --seed {seed})");
    let consecutive = Config::default();
    let rate = Config {
        failure_policy: FailurePolicy::FailureRate(FailureRate {
            threshold: 0.2,
            minimum_calls: 100,
        }),
        window_ms: 10_000,
        ..Config::default()
    };
    let policies = [
        ("consecutive", consecutive.clone()),
        (
            "consecutive, min env 3",
            Config {
                minimum_environments: 3,
                ..consecutive.clone()
            },
        ),
        ("rate", rate.clone()),
        (
            "rate, min env 3",
            Config {
                minimum_environments: 3,
                ..rate
            },
        ),
    ];
    println!(
        "policies: consecutive failures (5) in one environment; failure rate 0.2 over the \
         fleet's calls (minimum 100 calls, window 10 s); each also with minimum_environments 3 \
         (the consecutive one's window {} s); recovery {} s, local cache {} s; {} calls/s per \
         environment",
        consecutive.window_ms / 1000,
        consecutive.recovery_timeout_ms / 1000,
        consecutive.local_cache_max_age_ms / 1000,
        1000 / PERIOD_MS
    );
    for &n in sizes {
        let started = Instant::now();
        // One generator per policy from the same seed: every policy meets the same calls.
        let columns: Vec<Vec<(&str, String)>> = policies
            .iter()
            .map(|(_, config)| figures(n, config, &mut Rng::new(seed)))
            .collect();
        println!("\n{n} environments\n");
        print!("| {:<58} |", "figure");
        for (name, _) in &policies {
            print!(" {name:>22} |");
        }
        print!("\n|{}|", "-".repeat(60));
        for _ in &policies {
            print!("{}|", "-".repeat(24));
        }
        println!();
        for (row, (what, _)) in columns[0].iter().enumerate() {
            print!("| {what:<58} |");
            for column in &columns {
                print!(" {:>22} |", column[row].1);
            }
            println!();
        }
        eprintln!("({n} environments simulated in {:.1?})", started.elapsed());
    }
}
