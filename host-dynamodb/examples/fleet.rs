//! A simulated fleet sharing one circuit.
//!
//! `cargo run -p fleetbreaker --example fleet`
//!
//! Several environments (threads, each with its own instance of the breaker component) share
//! one in-memory store and call a downstream that fails for a while, then recovers. Time is
//! simulated: every tick of 100 ms each environment makes one call. The demo prints what the
//! breaker did: who tripped the circuit, who probed, when it closed, and how many calls to the
//! failing downstream were spared.

use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use fleetbreaker::{
    Breaker, Config, Environment, Error, Event, FailurePolicy, ManualClock, MemoryStore,
};

const ENVIRONMENTS: usize = 4;
const TICK_MS: u64 = 100;
const TICKS: u64 = 600;
const START_MS: u64 = 1_700_000_000_000;
/// The downstream fails from 5 s to 32 s.
const OUTAGE_MS: std::ops::Range<u64> = 5_000..32_000;

#[derive(Default, Clone, Copy)]
struct Tally {
    ok: u64,
    failed: u64,
    rejected: u64,
    probes: u64,
}

fn downstream(now_ms: u64) -> Result<&'static str, &'static str> {
    if OUTAGE_MS.contains(&(now_ms - START_MS)) {
        Err("503 Service Unavailable")
    } else {
        Ok("200 OK")
    }
}

fn main() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(START_MS);
    let config = Config {
        failure_policy: FailurePolicy::ConsecutiveFailures(5),
        recovery_timeout_ms: 10_000,
        success_threshold: 3,
        local_cache_max_age_ms: 2_000,
        probe_lease_ms: Some(2_000),
        ..Config::default()
    };
    let timeline: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let tick = Arc::new(Barrier::new(ENVIRONMENTS + 1));
    let done = Arc::new(Barrier::new(ENVIRONMENTS + 1));

    println!(
        "{ENVIRONMENTS} environments share circuit 'payments' in one store; the downstream fails \
         from {:.0} s to {:.0} s.\nconfig: trip after 5 consecutive failures, break 10 s, close \
         after 3 probe successes, trust a read for 2 s\n",
        OUTAGE_MS.start as f64 / 1e3,
        OUTAGE_MS.end as f64 / 1e3
    );

    let workers: Vec<_> = (0..ENVIRONMENTS)
        .map(|i| {
            let name = format!("env-{}", i + 1);
            let log = timeline.clone();
            let log_clock = clock.clone();
            let env = Environment::builder(store.clone())
                .clock(clock.clone())
                .id(name.clone())
                .on_event(move |event| {
                    let t = log_clock_ms(&log_clock);
                    let line = describe(event);
                    log.lock().unwrap().push((t, format!("{name:<6} {line}")));
                })
                .build()
                .unwrap();
            let breaker = Breaker::builder("payments")
                .config(config.clone())
                .environment(&env)
                .build()
                .unwrap();
            let (tick, done, clock) = (tick.clone(), done.clone(), clock.clone());
            thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let mut tally = Tally::default();
                for _ in 0..TICKS {
                    tick.wait();
                    let now = fleetbreaker::Clock::now_ms(&clock);
                    rt.block_on(async {
                        match breaker.acquire().await {
                            Ok(permit) => {
                                if permit.is_probe() {
                                    tally.probes += 1;
                                }
                                let result = downstream(now);
                                let outcome = match result {
                                    Ok(_) => {
                                        tally.ok += 1;
                                        fleetbreaker::Outcome::Success
                                    }
                                    Err(_) => {
                                        tally.failed += 1;
                                        fleetbreaker::Outcome::Failure
                                    }
                                };
                                breaker.complete(permit, outcome).await;
                            }
                            Err(Error::Open(_)) => tally.rejected += 1,
                            Err(e) => panic!("{e}"),
                        }
                    });
                    done.wait();
                }
                tally
            })
        })
        .collect();

    for _ in 0..TICKS {
        tick.wait();
        done.wait();
        clock.advance(TICK_MS);
    }
    let tallies: Vec<Tally> = workers.into_iter().map(|w| w.join().unwrap()).collect();

    println!("timeline (simulated seconds since start):");
    let mut events = timeline.lock().unwrap().clone();
    events.sort_by_key(|(t, _)| *t);
    for (t, line) in &events {
        println!("  {:>6.1} s  {line}", (*t - START_MS) as f64 / 1e3);
    }

    println!("\n| environment | ok | failed | rejected | probes |");
    println!("|---|---|---|---|---|");
    let mut total = Tally::default();
    for (i, t) in tallies.iter().enumerate() {
        println!(
            "| env-{} | {} | {} | {} | {} |",
            i + 1,
            t.ok,
            t.failed,
            t.rejected,
            t.probes
        );
        total.ok += t.ok;
        total.failed += t.failed;
        total.rejected += t.rejected;
        total.probes += t.probes;
    }
    println!(
        "| all | {} | {} | {} | {} |",
        total.ok, total.failed, total.rejected, total.probes
    );
    let outage_calls = (OUTAGE_MS.end - OUTAGE_MS.start) / TICK_MS * ENVIRONMENTS as u64;
    println!(
        "\nduring the outage the fleet would have made {outage_calls} failing calls; it made {} \
         and spared the downstream {} ({:.0}%).",
        total.failed,
        outage_calls - total.failed,
        100.0 * (outage_calls - total.failed) as f64 / outage_calls as f64
    );
    println!(
        "store: {} reads and {} writes for {} calls ({:.1} reads per 1,000 calls).",
        store.reads(),
        store.writes(),
        TICKS * ENVIRONMENTS as u64,
        1000.0 * store.reads() as f64 / (TICKS * ENVIRONMENTS as u64) as f64
    );
}

fn log_clock_ms(clock: &ManualClock) -> u64 {
    fleetbreaker::Clock::now_ms(clock)
}

fn describe(event: &Event) -> String {
    match event {
        Event::Transition(t) => {
            let what = match t.reason {
                fleetbreaker::TransitionReason::Tripped => "tripped the circuit",
                fleetbreaker::TransitionReason::ProbeStarted => "took the probe permit",
                fleetbreaker::TransitionReason::ProbeTakenOver => "took over an expired probe",
                fleetbreaker::TransitionReason::ProbeSucceeded => "probe succeeded",
                fleetbreaker::TransitionReason::ProbeFailed => "probe failed, circuit reopened",
                fleetbreaker::TransitionReason::Recovered => "closed the circuit",
                _ => t.reason.as_str(),
            };
            format!(
                "{what:<30} {} -> {} (version {})",
                t.from_state, t.to_state, t.version
            )
        }
        Event::CorruptRecord(f) => format!("found a corrupt record: {}", f.error),
        Event::StoreDegraded(f) => format!("store failed ({}); protecting locally", f.error),
        Event::StoreRecovered(_) => "store answers again".to_string(),
    }
}
