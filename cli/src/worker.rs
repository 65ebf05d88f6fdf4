//! One process of the demo fleet: several environments (threads, each with its own component
//! instance, store client and identity) calling a simulated downstream through one circuit,
//! logging every call and event as JSON lines.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use fleetbreaker::{
    Breaker, Clock, Config, Environment, Error, Event, FailurePolicy, FailureRate, Outcome,
    SystemClock,
};
use serde::{Deserialize, Serialize};

use crate::{OperatorStore, StoreArgs};

/// What every process of a demo run does, decided by the parent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub circuit: String,
    /// Wall time at which every environment starts calling.
    pub start_ms: u64,
    pub run_ms: u64,
    /// The downstream fails from `outage_from_ms` to `outage_until_ms` after the start.
    pub outage_from_ms: u64,
    pub outage_until_ms: u64,
    /// The share of calls that fail during the outage (1: every call).
    pub error_rate: f64,
    /// Each environment calls about this often.
    pub tick_ms: u64,
    /// How long a downstream call takes.
    pub call_ms: u64,
    pub threads: usize,
    pub failure_threshold: u32,
    /// Selects the failure-rate policy instead of consecutive failures.
    pub failure_rate_threshold: Option<f64>,
    pub minimum_calls: u32,
    pub window_ms: u64,
    pub recovery_timeout_ms: u64,
    pub success_threshold: u32,
    pub local_cache_max_age_ms: u64,
    pub probe_lease_ms: u64,
    pub store_retry_after_ms: u64,
}

impl Plan {
    pub fn config(&self) -> Config {
        let failure_policy = match self.failure_rate_threshold {
            Some(threshold) => FailurePolicy::FailureRate(FailureRate {
                threshold,
                minimum_calls: self.minimum_calls,
            }),
            None => FailurePolicy::ConsecutiveFailures(self.failure_threshold),
        };
        Config {
            failure_policy,
            window_ms: self.window_ms,
            recovery_timeout_ms: self.recovery_timeout_ms,
            success_threshold: self.success_threshold,
            local_cache_max_age_ms: self.local_cache_max_age_ms,
            probe_lease_ms: Some(self.probe_lease_ms),
            store_retry_after_ms: self.store_retry_after_ms,
            ..Config::default()
        }
    }

    /// Whether the downstream is in its outage at `wall_ms`.
    pub fn in_outage(&self, wall_ms: u64) -> bool {
        let t = wall_ms.saturating_sub(self.start_ms);
        (self.outage_from_ms..self.outage_until_ms).contains(&t)
    }

    /// Whether the call `environment` makes at `wall_ms` fails: during the outage, a share
    /// `error_rate` of calls, drawn from the call itself, so the summary can tell which of the
    /// calls the breaker rejected would have failed.
    pub fn call_fails(&self, environment: &str, wall_ms: u64) -> bool {
        if !self.in_outage(wall_ms) {
            return false;
        }
        let hash = environment
            .bytes()
            .chain(wall_ms.to_le_bytes())
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let draw = (hash >> 11) as f64 / (1u64 << 53) as f64;
        draw < self.error_rate
    }

    /// The breaker's failure policy, in words.
    pub fn policy_text(&self) -> String {
        match self.failure_rate_threshold {
            Some(t) => format!(
                "trip when {:.0} % of the fleet's calls in a {:.0} s window failed (at least {} calls)",
                t * 100.0,
                self.window_ms as f64 / 1e3,
                self.minimum_calls
            ),
            None => format!("trip after {} consecutive failures", self.failure_threshold),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    Ok,
    Failed,
    Rejected,
    ProbeOk,
    ProbeFailed,
}

impl CallKind {
    pub fn reached_downstream(self) -> bool {
        self != CallKind::Rejected
    }

    pub fn is_probe(self) -> bool {
        matches!(self, CallKind::ProbeOk | CallKind::ProbeFailed)
    }
}

/// One line of a worker's log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogLine {
    /// A call: the downstream call's start and end on the machine's monotonic clock (equal for
    /// a rejected call), and the wall time it was asked for.
    Call {
        env: String,
        start_ns: u64,
        end_ns: u64,
        at_ms: u64,
        kind: CallKind,
    },
    /// A transition this environment's write made (or, `local_only`, made locally).
    Transition {
        env: String,
        at_ms: u64,
        from: String,
        to: String,
        reason: String,
        version: u64,
        local_only: bool,
    },
    /// Store trouble and recovery.
    Notice {
        env: String,
        at_ms: u64,
        text: String,
    },
    /// What one environment's store client did: reads, writes of the record, and adds to
    /// the fleet's window counters.
    StoreOps {
        env: String,
        reads: u64,
        writes: u64,
        #[serde(default)]
        window_adds: u64,
    },
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The plan, as JSON.
    #[arg(long)]
    plan: String,
    /// This process's number.
    #[arg(long)]
    process: usize,
    /// Where to write the JSON lines.
    #[arg(long)]
    log: PathBuf,
}

/// The machine's monotonic clock: one clock for every process, so intervals compare.
/// The shared transitions (not the local-only ones), in version order.
pub fn shared_transitions(lines: &[LogLine]) -> Vec<&LogLine> {
    let mut t: Vec<&LogLine> = lines
        .iter()
        .filter(|l| {
            matches!(
                l,
                LogLine::Transition {
                    local_only: false,
                    ..
                }
            )
        })
        .collect();
    t.sort_by_key(|l| match l {
        LogLine::Transition { version, .. } => *version,
        _ => 0,
    });
    t
}

pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

type Log = Arc<Mutex<BufWriter<File>>>;

fn write(log: &Log, line: &LogLine) {
    let mut out = log.lock().unwrap();
    serde_json::to_writer(&mut *out, line).expect("log line");
    out.write_all(b"\n").expect("log line");
}

pub async fn run(store_args: &StoreArgs, args: WorkerArgs) -> Result<(), String> {
    let plan: Plan = serde_json::from_str(&args.plan).map_err(|e| format!("bad plan: {e}"))?;
    let log: Log = Arc::new(Mutex::new(BufWriter::new(
        File::create(&args.log).map_err(|e| format!("{}: {e}", args.log.display()))?,
    )));
    let threads: Vec<_> = (0..plan.threads)
        .map(|t| {
            let (plan, log, store_args) = (plan.clone(), log.clone(), store_args.clone());
            let env_id = format!("p{}-t{}", args.process + 1, t + 1);
            std::thread::spawn(move || {
                // Each environment is a Lambda execution environment of its own: its own
                // runtime, store client, component instance and identity.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(environment(&store_args, &plan, &env_id, &log))
            })
        })
        .collect();
    let mut first_error = None;
    for t in threads {
        if let Err(e) = t
            .join()
            .map_err(|_| "a worker thread panicked".to_string())
            .and_then(|r| r)
        {
            first_error.get_or_insert(e);
        }
    }
    log.lock().unwrap().flush().map_err(|e| e.to_string())?;
    first_error.map_or(Ok(()), Err)
}

async fn environment(
    store_args: &StoreArgs,
    plan: &Plan,
    env_id: &str,
    log: &Log,
) -> Result<(), String> {
    let store = match OperatorStore::open_for_fleet(store_args).await? {
        OperatorStore::Dynamo(s) => Store::Dynamo(s),
        OperatorStore::Sqlite(s) => Store::Sqlite(s),
    };
    let events_log = log.clone();
    let me = env_id.to_string();
    let env = Environment::builder(store.as_dyn())
        .id(env_id)
        .on_event(move |event| {
            let at_ms = SystemClock.now_ms();
            let line = match event {
                Event::Transition(t) => LogLine::Transition {
                    env: me.clone(),
                    at_ms,
                    from: t.from_state.as_str().into(),
                    to: t.to_state.as_str().into(),
                    reason: t.reason.as_str().into(),
                    version: t.version,
                    local_only: t.local_only,
                },
                Event::StoreDegraded(f) => LogLine::Notice {
                    env: me.clone(),
                    at_ms,
                    text: format!("store failed: {}", f.error),
                },
                Event::StoreRecovered(_) => LogLine::Notice {
                    env: me.clone(),
                    at_ms,
                    text: "store answers again".into(),
                },
                Event::CorruptRecord(f) => LogLine::Notice {
                    env: me.clone(),
                    at_ms,
                    text: format!("corrupt record: {}", f.error),
                },
            };
            write(&events_log, &line);
        })
        .build()
        .map_err(|e| e.to_string())?;
    let breaker = Breaker::builder(plan.circuit.clone())
        .config(plan.config())
        .environment(&env)
        .build()
        .map_err(|e| e.to_string())?;

    // Spread the environments over the tick, as unsynchronised Lambda invocations are.
    let offset = env_id
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64))
        % plan.tick_ms;
    let clock = SystemClock;
    let wait = (plan.start_ms + offset).saturating_sub(clock.now_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let end = plan.start_ms + plan.run_ms;
    let mut next = plan.start_ms + offset;
    while clock.now_ms() < end {
        let at_ms = clock.now_ms();
        // The interval is the downstream call itself: from after the permit to before the
        // outcome is reported (writing it is the breaker's business, not the downstream's).
        let (kind, start_ns, end_ns) = match breaker.acquire().await {
            Ok(permit) => {
                let probe = permit.is_probe();
                let start_ns = mono_ns();
                tokio::time::sleep(Duration::from_millis(plan.call_ms)).await;
                let failed = plan.call_fails(env_id, at_ms);
                let end_ns = mono_ns();
                let outcome = if failed {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                breaker.complete(permit, outcome).await;
                let kind = match (probe, failed) {
                    (false, false) => CallKind::Ok,
                    (false, true) => CallKind::Failed,
                    (true, false) => CallKind::ProbeOk,
                    (true, true) => CallKind::ProbeFailed,
                };
                (kind, start_ns, end_ns)
            }
            Err(Error::Open(_)) => {
                let now = mono_ns();
                (CallKind::Rejected, now, now)
            }
            Err(e) => return Err(e.to_string()),
        };
        write(
            log,
            &LogLine::Call {
                env: env_id.to_string(),
                start_ns,
                end_ns,
                at_ms,
                kind,
            },
        );
        next += plan.tick_ms;
        let now = clock.now_ms();
        if next > now {
            tokio::time::sleep(Duration::from_millis(next - now)).await;
        } else {
            next = now;
        }
    }
    let stats = store.stats();
    write(
        log,
        &LogLine::StoreOps {
            env: env_id.to_string(),
            reads: stats.reads,
            writes: stats.writes,
            window_adds: stats.window_adds,
        },
    );
    Ok(())
}

/// The worker's store, with its operation counts.
enum Store {
    Dynamo(Arc<fleetbreaker::DynamoDbStore>),
    Sqlite(Arc<fleetbreaker::SqliteStore>),
}

impl Store {
    fn as_dyn(&self) -> Arc<dyn fleetbreaker::Store> {
        match self {
            Store::Dynamo(s) => s.clone(),
            Store::Sqlite(s) => s.clone(),
        }
    }

    fn stats(&self) -> fleetbreaker::StoreStats {
        match self {
            Store::Dynamo(s) => s.stats(),
            Store::Sqlite(s) => s.stats(),
        }
    }
}
