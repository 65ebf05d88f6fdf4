//! The fleet demo: several processes of several environments share one circuit on SQLite (by
//! default) or DynamoDB, and call a downstream that fails for a while, then recovers. Prints a
//! progress line, the timeline of states and a summary, and draws `fleet-timeline.svg`.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use clap::{Args, ValueEnum};
use fleetbreaker::{Clock, DynamoDbStore, Store, SystemClock};
use serde::Serialize;

use crate::local_server::LocalServer;
use crate::worker::{CallKind, LogLine, Plan, shared_transitions};
use crate::{StoreArgs, duration, svg};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Share the circuit through DynamoDB instead of a SQLite file. Without an endpoint
    /// (--endpoint or AWS_ENDPOINT_URL_DYNAMODB), a local moto server is started.
    #[arg(long)]
    pub dynamodb: bool,
    /// Worker processes.
    #[arg(long, default_value_t = 3)]
    pub processes: usize,
    /// Environments (threads, each with its own breaker instance) per process.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// How long the fleet runs; the downstream fails from 20% to 55% of it.
    #[arg(long = "for", default_value = "10s", value_parser = duration::parse)]
    pub run: Duration,
    /// How the downstream fails: every call (hard), or 30% of them (partial).
    #[arg(long, value_enum, default_value_t = OutageKind::Hard)]
    pub outage: OutageKind,
    /// When the circuit trips: consecutive failures in one environment (the default), or
    /// the fleet's share of failed calls.
    #[arg(long, value_enum, default_value_t = PolicyKind::Consecutive)]
    pub policy: PolicyKind,
    /// Where to draw the timeline.
    #[arg(long, default_value = "fleet-timeline.svg")]
    pub svg: PathBuf,
    /// Also write every call and event, with the plan and the summary, as JSON.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutageKind {
    /// Every call fails.
    Hard,
    /// 30% of calls fail.
    Partial,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PolicyKind {
    /// 5 consecutive failures in one environment.
    Consecutive,
    /// 20% of the fleet's calls in a 5 s window, at least 100 calls.
    FailureRate,
}

/// What the run showed, in numbers.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub environments: usize,
    pub calls: u64,
    pub downstream_calls: u64,
    pub ok: u64,
    pub failed: u64,
    pub rejected: u64,
    pub probes: u64,
    pub probes_failed: u64,
    /// Calls made during the outage.
    pub outage_calls: u64,
    /// Of those, the ones that would have failed without a breaker.
    pub outage_would_fail: u64,
    /// Of those, the ones that did.
    pub outage_failures: u64,
    pub store_reads: u64,
    pub store_writes: u64,
    pub store_window_adds: u64,
    pub reads_per_1000_calls: f64,
    pub writes_per_1000_calls: f64,
    pub time_to_trip_ms: Option<u64>,
    pub time_to_close_ms: Option<u64>,
    pub max_probes_in_flight: usize,
    pub transitions: usize,
}

#[derive(Serialize)]
struct Report<'a> {
    store: String,
    plan: &'a Plan,
    summary: &'a Summary,
    lines: &'a [LogLine],
}

pub async fn run(store_args: &StoreArgs, args: DemoArgs) -> Result<(), String> {
    if args.processes == 0 || args.threads == 0 {
        return Err("--processes and --threads must be at least 1".into());
    }
    if args.run < Duration::from_secs(3) {
        return Err("--for must be at least 3s, to leave time for an outage and a recovery".into());
    }
    // The workers' logs and, by default, the SQLite file: removed when the demo ends, however
    // it ends.
    let scratch = Scratch::new()?;
    let mut store_args = store_args.clone();
    let mut child_env: Vec<(&str, String)> = Vec::new();
    let _server;
    let store_label;
    if args.dynamodb {
        if store_args.sqlite.is_some() {
            return Err("give either --dynamodb or --sqlite".into());
        }
        let configured = store_args.endpoint.is_some()
            || ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"]
                .iter()
                .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        if !configured {
            eprintln!("starting a local DynamoDB-compatible server (moto) ...");
            let server = LocalServer::start()?;
            store_args.endpoint = Some(server.endpoint.clone());
            store_args.region.get_or_insert_with(|| "us-east-1".into());
            // A local server takes any credentials; real ones must not be sent to it.
            child_env.extend([
                ("AWS_ACCESS_KEY_ID", "local".to_string()),
                ("AWS_SECRET_ACCESS_KEY", "local".to_string()),
            ]);
            _server = Some(server);
        } else {
            _server = None;
        }
        store_label = format!(
            "DynamoDB table '{}' at {}",
            store_args.table,
            store_args
                .endpoint
                .clone()
                .or_else(|| std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok())
                .unwrap_or_else(|| "the configured endpoint".into())
        );
        ensure_table(&store_args, &child_env).await?;
    } else {
        _server = None;
        let path = store_args
            .sqlite
            .clone()
            .unwrap_or_else(|| scratch.0.join("circuits.db"));
        store_label = format!("SQLite file {}", path.display());
        store_args.sqlite = Some(path);
    }

    let run_ms = args.run.as_millis() as u64;
    let plan = Plan {
        circuit: format!("payments-{}", SystemClock.now_ms()),
        start_ms: SystemClock.now_ms() + 1_500,
        run_ms,
        outage_from_ms: run_ms / 5,
        outage_until_ms: run_ms * 55 / 100,
        error_rate: match args.outage {
            OutageKind::Hard => 1.0,
            OutageKind::Partial => 0.3,
        },
        tick_ms: 25,
        call_ms: 3,
        threads: args.threads,
        failure_threshold: 5,
        failure_rate_threshold: (args.policy == PolicyKind::FailureRate).then_some(0.2),
        minimum_calls: 100,
        window_ms: 5_000,
        recovery_timeout_ms: 1_000,
        success_threshold: 3,
        local_cache_max_age_ms: 500,
        probe_lease_ms: 1_000,
        store_retry_after_ms: 1_000,
    };
    println!(
        "{} processes x {} environments share circuit '{}' on the {store_label}.\n\
         The downstream fails {} from {:.1} s to {:.1} s. Breaker: {}, \
         break {:.1} s, close after {} probe successes, trust a read for {:.1} s.\n",
        args.processes,
        args.threads,
        plan.circuit,
        match args.outage {
            OutageKind::Hard => "every call".to_string(),
            OutageKind::Partial => format!("{:.0}% of calls", plan.error_rate * 100.0),
        },
        plan.outage_from_ms as f64 / 1e3,
        plan.outage_until_ms as f64 / 1e3,
        plan.policy_text(),
        plan.recovery_timeout_ms as f64 / 1e3,
        plan.success_threshold,
        plan.local_cache_max_age_ms as f64 / 1e3,
    );

    let logs = &scratch.0;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let plan_json = serde_json::to_string(&plan).map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    for p in 0..args.processes {
        let log = logs.join(format!("process-{p}.jsonl"));
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(store_flags(&store_args))
            .arg("demo-worker")
            .args(["--plan", &plan_json, "--process", &p.to_string(), "--log"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &child_env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start a worker: {e}"))?;
        children.push((log, child));
    }

    progress(&store_args, &child_env, &plan).await;

    let mut lines = Vec::new();
    for (log, child) in children {
        let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "a worker failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let file = std::fs::File::open(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| e.to_string())?;
            lines.push(serde_json::from_str::<LogLine>(&line).map_err(|e| format!("{e}: {line}"))?);
        }
    }

    let summary = summarize(&plan, &lines, args.processes * args.threads);
    print_timeline(&plan, &lines);
    print_summary(&plan, &summary);
    std::fs::write(&args.svg, svg::render(&plan, &lines))
        .map_err(|e| format!("{}: {e}", args.svg.display()))?;
    println!("\ntimeline drawn in {}", args.svg.display());
    if let Some(path) = &args.report {
        let report = Report {
            store: store_label,
            plan: &plan,
            summary: &summary,
            lines: &lines,
        };
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(())
}

/// A directory of the demo's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, String> {
        let dir = std::env::temp_dir().join(format!(
            "fleetbreaker-demo-{}-{}",
            std::process::id(),
            SystemClock.now_ms()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The store flags a worker needs to reach the same store.
fn store_flags(a: &StoreArgs) -> Vec<String> {
    let mut flags = vec![
        "--table".to_string(),
        a.table.clone(),
        "--key-attr".into(),
        a.key_attr.clone(),
    ];
    if let Some(p) = &a.sqlite {
        flags.extend(["--sqlite".into(), p.display().to_string()]);
    }
    for (flag, value) in [
        ("--region", &a.region),
        ("--endpoint", &a.endpoint),
        ("--sort-key-attr", &a.sort_key_attr),
        ("--static-pk-value", &a.static_pk_value),
    ] {
        if let Some(v) = value {
            flags.extend([flag.to_string(), v.clone()]);
        }
    }
    flags
}

/// The parent's own connection (for the table and the progress line), with the credentials the
/// workers get.
async fn parent_store(
    store_args: &StoreArgs,
    child_env: &[(&str, String)],
) -> Result<DynamoDbStore, String> {
    let config = store_args.dynamodb_config(true);
    let mut loader = DynamoDbStore::sdk_config_loader(&config).map_err(|e| e.to_string())?;
    if !child_env.is_empty() {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "local-server",
        ));
    }
    DynamoDbStore::with_client(aws_sdk_dynamodb::Client::new(&loader.load().await), config)
        .map_err(|e| e.to_string())
}

async fn ensure_table(store_args: &StoreArgs, child_env: &[(&str, String)]) -> Result<(), String> {
    let store = parent_store(store_args, child_env).await?;
    match store.create_table().await {
        Ok(()) => Ok(()),
        Err(e)
            if e.to_string().contains("ResourceInUse")
                || e.to_string().contains("already exists") =>
        {
            Ok(())
        }
        Err(e) => Err(format!("cannot create table '{}': {e}", store_args.table)),
    }
}

/// Shows the circuit's state while the fleet runs.
async fn progress(store_args: &StoreArgs, child_env: &[(&str, String)], plan: &Plan) {
    let store: Option<std::sync::Arc<dyn Store>> = match &store_args.sqlite {
        Some(path) => fleetbreaker::SqliteStore::open(path)
            .ok()
            .map(|s| std::sync::Arc::new(s) as _),
        None => parent_store(store_args, child_env)
            .await
            .ok()
            .map(|s| std::sync::Arc::new(s) as _),
    };
    let tty = std::io::stderr().is_terminal();
    let end = plan.start_ms + plan.run_ms + 300;
    let mut last_printed = 0;
    loop {
        let now = SystemClock.now_ms();
        if now >= end {
            break;
        }
        let state = match &store {
            Some(s) => match s.load(&plan.circuit).await {
                Ok(Some(r)) => format!("{} (version {})", r.state, r.version),
                Ok(None) => "CLOSED (no record yet)".into(),
                Err(e) => format!("unreadable: {e}"),
            },
            None => "?".into(),
        };
        let elapsed = now.saturating_sub(plan.start_ms) as f64 / 1e3;
        let downstream = if plan.in_outage(now) {
            "failing"
        } else {
            "healthy"
        };
        let line = format!(
            "  {elapsed:>5.1} s / {:.1} s   downstream {downstream:<7}   circuit {state:<28}",
            plan.run_ms as f64 / 1e3
        );
        if tty {
            eprint!("\r{line}");
            std::io::stderr().flush().ok();
        } else if now >= last_printed + 1_000 && now >= plan.start_ms {
            eprintln!("{line}");
            last_printed = now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if tty {
        eprintln!();
    }
}

pub fn summarize(plan: &Plan, lines: &[LogLine], environments: usize) -> Summary {
    let mut s = Summary {
        environments,
        ..Summary::default()
    };
    let mut probes: Vec<(u64, u64)> = Vec::new();
    for line in lines {
        match line {
            LogLine::Call {
                env,
                kind,
                at_ms,
                start_ns,
                end_ns,
            } => {
                s.calls += 1;
                if kind.reached_downstream() {
                    s.downstream_calls += 1;
                }
                match kind {
                    CallKind::Ok => s.ok += 1,
                    CallKind::Failed => s.failed += 1,
                    CallKind::Rejected => s.rejected += 1,
                    CallKind::ProbeOk => s.probes += 1,
                    CallKind::ProbeFailed => {
                        s.probes += 1;
                        s.probes_failed += 1;
                    }
                }
                if kind.is_probe() {
                    probes.push((*start_ns, *end_ns));
                }
                if plan.in_outage(*at_ms) {
                    s.outage_calls += 1;
                    if plan.call_fails(env, *at_ms) {
                        s.outage_would_fail += 1;
                    }
                    if matches!(kind, CallKind::Failed | CallKind::ProbeFailed) {
                        s.outage_failures += 1;
                    }
                }
            }
            LogLine::StoreOps {
                reads,
                writes,
                window_adds,
                ..
            } => {
                s.store_reads += reads;
                s.store_writes += writes;
                s.store_window_adds += window_adds;
            }
            _ => {}
        }
    }
    let per_1000 = |n: u64| {
        if s.calls == 0 {
            0.0
        } else {
            1000.0 * n as f64 / s.calls as f64
        }
    };
    s.reads_per_1000_calls = per_1000(s.store_reads);
    s.writes_per_1000_calls = per_1000(s.store_writes + s.store_window_adds);
    let transitions = shared_transitions(lines);
    s.transitions = transitions.len();
    let outage_start = plan.start_ms + plan.outage_from_ms;
    let outage_end = plan.start_ms + plan.outage_until_ms;
    for t in &transitions {
        if let LogLine::Transition {
            at_ms, to, reason, ..
        } = t
        {
            if s.time_to_trip_ms.is_none() && to == "OPEN" && reason == "tripped" {
                s.time_to_trip_ms = Some(at_ms.saturating_sub(outage_start));
            }
            if to == "CLOSED" && reason == "recovered" && *at_ms >= outage_end {
                s.time_to_close_ms = Some(at_ms - outage_end);
            }
        }
    }
    // The most probes whose intervals overlap, on the machine's monotonic clock.
    let mut edges: Vec<(u64, i32)> = probes
        .iter()
        .flat_map(|&(a, b)| [(a, 1), (b, -1)])
        .collect();
    edges.sort();
    let mut in_flight = 0i32;
    for (_, step) in edges {
        in_flight += step;
        s.max_probes_in_flight = s.max_probes_in_flight.max(in_flight.max(0) as usize);
    }
    s
}

fn describe_reason(reason: &str) -> &str {
    match reason {
        "tripped" => "tripped the circuit",
        "probe_started" => "took the probe permit",
        "probe_taken_over" => "took over an expired probe",
        "probe_succeeded" => "probe succeeded",
        "probe_released" => "released the probe",
        "probe_failed" => "probe failed, reopened",
        "recovered" => "closed the circuit",
        "reconciled" => "wrote a local trip",
        other => other,
    }
}

fn print_timeline(plan: &Plan, lines: &[LogLine]) {
    println!("timeline (seconds from the start):");
    for t in shared_transitions(lines) {
        if let LogLine::Transition {
            env,
            at_ms,
            from,
            to,
            reason,
            version,
            ..
        } = t
        {
            println!(
                "  {:>6.2} s  {env:<7} {:<28} {from} -> {to} (version {version})",
                at_ms.saturating_sub(plan.start_ms) as f64 / 1e3,
                describe_reason(reason)
            );
        }
    }
    let mut notices: BTreeMap<u64, String> = BTreeMap::new();
    for l in lines {
        match l {
            LogLine::Notice { env, at_ms, text } => {
                notices.insert(*at_ms, format!("{env}: {text}"));
            }
            LogLine::Transition {
                env,
                at_ms,
                from,
                to,
                local_only: true,
                ..
            } => {
                notices.insert(*at_ms, format!("{env}: {from} -> {to} locally"));
            }
            _ => {}
        }
    }
    for (at, text) in notices {
        println!(
            "  {:>6.2} s  {text}",
            at.saturating_sub(plan.start_ms) as f64 / 1e3
        );
    }
}

fn print_summary(plan: &Plan, s: &Summary) {
    let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{:.2} s", v as f64 / 1e3));
    println!("\nsummary");
    println!("  environments             {}", s.environments);
    println!("  policy                   {}", plan.policy_text());
    println!(
        "  calls                    {} ({} ok, {} failed, {} rejected, {} probes of which {} failed)",
        s.calls, s.ok, s.failed, s.rejected, s.probes, s.probes_failed
    );
    let spared = s.outage_would_fail.saturating_sub(s.outage_failures);
    println!(
        "  during the outage        {} calls, of which {} would have failed without a breaker; {} did, {} were spared ({:.0}%)",
        s.outage_calls,
        s.outage_would_fail,
        s.outage_failures,
        spared,
        if s.outage_would_fail == 0 {
            0.0
        } else {
            100.0 * spared as f64 / s.outage_would_fail as f64
        }
    );
    println!(
        "  probes in flight at once {} at most",
        s.max_probes_in_flight
    );
    println!(
        "  time to trip             {} after the downstream started failing",
        ms(s.time_to_trip_ms)
    );
    println!(
        "  time to close            {} after the downstream recovered",
        ms(s.time_to_close_ms)
    );
    println!(
        "  store operations         {} reads, {} writes of the record, {} reports to the window \
         ({:.1} reads and {:.2} writes per 1,000 calls)",
        s.store_reads,
        s.store_writes,
        s.store_window_adds,
        s.reads_per_1000_calls,
        s.writes_per_1000_calls
    );
}
