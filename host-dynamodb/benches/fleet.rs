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
//! during the incident, the busiest second). Figures only: nothing here passes or fails. Two
//! policies meet the same calls, side by side: the default, consecutive failures (5) counted in
//! each environment, and the same with `minimum_environments` 3.

use std::collections::BTreeMap;
use std::time::Instant;

use fleetbreaker::{
    Breaker, CircuitState, Config, Environment, Error, ManualClock, MemoryStore, Outcome,
};

const CIRCUIT: &str = "payments";
const T0: u64 = 1_700_000_000_000;
/// Each environment calls every 200 ms: 5 calls per second.
const PERIOD_MS: u64 = 200;
const TICK_MS: u64 = 10;

/// A small, seedable generator (xorshift64*): the run is the same for the same seed.
struct Rng(u64);

impl Rng {
    fn chance(&mut self, p: f64) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// Which calls fail: `(environment, ms since the incident began, rng) -> fails`.
type Downstream = dyn Fn(usize, u64, &mut Rng) -> bool;

struct Fleet {
    clock: ManualClock,
    store: MemoryStore,
    breakers: Vec<Breaker>,
    rt: tokio::runtime::Runtime,
}

fn fleet(environments: usize, config: &Config) -> Fleet {
    let clock = ManualClock::new(T0);
    let store = MemoryStore::new();
    let breakers = (0..environments)
        .map(|i| {
            let env = Environment::builder(store.clone())
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
}

/// Runs the fleet for `run_ms` of virtual time from now, `downstream` deciding each call.
fn run(f: &Fleet, run_ms: u64, rng: &mut Rng, downstream: &Downstream) -> Incident {
    let n = f.breakers.len();
    let mut out = Incident::default();
    let mut stopped = vec![false; n];
    let mut stopped_count = 0;
    let writes_before = f.store.writes();
    let mut writes_by_second: BTreeMap<u64, u64> = BTreeMap::new();
    let mut was_open = false;
    let mut elapsed = 0;
    while elapsed < run_ms {
        // Environments are spread evenly over the period, as independent callers are.
        for (i, b) in f.breakers.iter().enumerate() {
            if (elapsed + (i as u64 * PERIOD_MS / n as u64)) % PERIOD_MS >= TICK_MS {
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
        let writes = f.store.writes() - writes_before;
        *writes_by_second.entry(elapsed / 1000).or_default() = writes;
        f.clock.advance(TICK_MS);
        elapsed += TICK_MS;
    }
    out.writes = f.store.writes() - writes_before;
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
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let sizes: &[usize] = if args.iter().any(|a| a == "--quick") {
        &[100]
    } else {
        &[100, 1000]
    };
    println!("fleet simulation, seed {seed} (replay with -- --seed {seed})");
    let consecutive = Config::default();
    let quorum = Config {
        minimum_environments: 3,
        ..Config::default()
    };
    println!(
        "policies: consecutive failures (5) in one environment; the same with \
         minimum_environments 3 (window {} s); recovery {} s, local cache {} s; {} calls/s \
         per environment",
        quorum.window_ms / 1000,
        consecutive.recovery_timeout_ms / 1000,
        consecutive.local_cache_max_age_ms / 1000,
        1000 / PERIOD_MS
    );
    for &n in sizes {
        let started = Instant::now();
        // One generator per policy from the same seed: both meet the same calls.
        let a = figures(n, &consecutive, &mut Rng(seed));
        let b = figures(n, &quorum, &mut Rng(seed));
        println!("\n{n} environments\n");
        println!(
            "| {:<58} | {:>12} | {:>22} |",
            "figure", "consecutive", "minimum_environments 3"
        );
        println!("|{}|{}|{}|", "-".repeat(60), "-".repeat(14), "-".repeat(24));
        for ((what, x), (_, y)) in a.into_iter().zip(b) {
            println!("| {what:<58} | {x:>12} | {y:>22} |");
        }
        eprintln!("({n} environments simulated in {:.1?})", started.elapsed());
    }
}
