//! The fleet test: 3 processes × 4 environments (each its own component instance, store
//! client and identity) share one circuit on one DynamoDB table (moto), calling a downstream
//! that fails for a period and then recovers. Checked from the calls and events they logged:
//! one probe in flight at a time (on the machine's monotonic clock), one event per version, no
//! downstream calls while open beyond the one each environment needs to learn it, and a close
//! soon after recovery. Also the demo's default run on SQLite and its picture.

#[path = "../../host-dynamodb/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::TempDir;
use support::moto::Moto;

fn workdir(name: &str) -> TempDir {
    TempDir::new(&format!("fleet-{name}"))
}

fn run_demo(args: &[&str], dir: &Path) -> (Value, String) {
    let report = dir.join("report.json");
    let svg = dir.join("fleet-timeline.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbreaker"))
        .args(args)
        .arg("--report")
        .arg(&report)
        .arg("--svg")
        .arg(&svg)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("FLEETBREAKER_PYTHON", support::moto::python())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "the demo failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let svg = std::fs::read_to_string(&svg).unwrap();
    (report, svg)
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// The demo on moto's DynamoDB: 3 processes × 4 environments, with `extra` demo flags.
fn run_dynamodb_demo(moto: &Moto, dir: &Path, extra: &[&str]) -> (Value, String) {
    let endpoint = moto.endpoint();
    let mut args = vec![
        "--endpoint",
        &endpoint,
        "--region",
        "us-east-1",
        "--table",
        "fleet",
        "demo",
        "--dynamodb",
        "--processes",
        "3",
        "--threads",
        "4",
    ];
    args.extend_from_slice(extra);
    run_demo(&args, dir)
}

#[test]
fn a_fleet_of_processes_shares_one_circuit_on_dynamodb() {
    let moto = Moto::start();
    let dir = workdir("dynamodb");
    let (report, svg) = run_dynamodb_demo(&moto, dir.path(), &["--for", "8s"]);
    let plan = &report["plan"];
    let lines = report["lines"].as_array().unwrap();
    let calls: Vec<&Value> = lines.iter().filter(|l| l["type"] == "call").collect();
    let mut transitions: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "transition" && l["local_only"] == false)
        .collect();
    transitions.sort_by_key(|t| u(t, "version"));

    let environments: std::collections::BTreeSet<&str> =
        calls.iter().map(|c| s(c, "env")).collect();
    assert_eq!(environments.len(), 12, "3 processes × 4 environments");

    // Exactly one event per version, across every environment.
    let versions: Vec<u64> = transitions.iter().map(|t| u(t, "version")).collect();
    assert_eq!(
        versions,
        (1..=versions.len() as u64).collect::<Vec<_>>(),
        "one event per version"
    );
    let writes: u64 = lines
        .iter()
        .filter(|l| l["type"] == "store_ops")
        .map(|l| u(l, "writes"))
        .sum();
    assert_eq!(
        writes,
        versions.len() as u64,
        "every write reported once, no event without a write"
    );
    assert!(
        transitions.iter().any(|t| s(t, "reason") == "tripped"),
        "the circuit tripped"
    );

    // At most one probe in flight at any moment.
    let mut probes: Vec<(u64, u64, &str)> = calls
        .iter()
        .filter(|c| s(c, "kind").starts_with("probe"))
        .map(|c| (u(c, "start_ns"), u(c, "end_ns"), s(c, "env")))
        .collect();
    probes.sort();
    assert!(!probes.is_empty(), "the circuit was probed");
    for pair in probes.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "two probes in flight at once: {pair:?}"
        );
    }

    // No downstream call while the circuit is open, except probes, beyond the one call each
    // environment makes before it learns (its failure refreshes its copy of the record).
    let start = u(plan, "start_ms");
    let mut state_at: Vec<(u64, &str)> = vec![(0, "CLOSED")];
    for t in &transitions {
        state_at.push((u(t, "at_ms"), s(t, "to")));
    }
    let state = |at: u64| {
        state_at
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .map_or("CLOSED", |(_, s)| *s)
    };
    let mut while_open: BTreeMap<&str, u64> = BTreeMap::new();
    for c in &calls {
        let kind = s(c, "kind");
        if (kind == "ok" || kind == "failed") && state(u(c, "at_ms")) != "CLOSED" {
            *while_open.entry(s(c, "env")).or_default() += 1;
        }
    }
    let episodes = transitions
        .iter()
        .filter(|t| s(t, "reason") == "tripped")
        .count() as u64;
    println!("downstream calls while open (not probes), by environment: {while_open:?}");
    for (env, n) in &while_open {
        assert!(
            *n <= 2 * episodes,
            "{env} called the downstream {n} times while the circuit was open"
        );
    }

    // The circuit closes after recovery within recovery_timeout + success_threshold probe calls
    // + local_cache_max_age (and a second of slack for a loaded machine).
    let recovered_at = start + u(plan, "outage_until_ms");
    let closed_at = transitions
        .iter()
        .filter(|t| s(t, "to") == "CLOSED" && u(t, "at_ms") >= recovered_at)
        .map(|t| u(t, "at_ms"))
        .next()
        .expect("the circuit closed after the downstream recovered");
    let bound = u(plan, "recovery_timeout_ms")
        + u(plan, "success_threshold") * (u(plan, "tick_ms") + u(plan, "call_ms"))
        + u(plan, "local_cache_max_age_ms")
        + 1_000;
    assert!(
        closed_at - recovered_at <= bound,
        "closed {} ms after recovery (bound {bound} ms)",
        closed_at - recovered_at
    );

    let summary = &report["summary"];
    println!(
        "fleet: {} calls, {} reached the downstream, {} spared; {:.1} reads and {:.2} writes per 1,000 calls; trip after {} ms, close after {} ms",
        u(summary, "calls"),
        u(summary, "downstream_calls"),
        u(summary, "rejected"),
        summary["reads_per_1000_calls"].as_f64().unwrap(),
        summary["writes_per_1000_calls"].as_f64().unwrap(),
        u(summary, "time_to_trip_ms"),
        u(summary, "time_to_close_ms"),
    );
    check_svg(&svg, 12);
}

/// The real fleet on moto meets a partial outage (30 % of calls fail) twice: under the
/// failure-rate policy, which must trip while the outage lasts, writing the record once per
/// transition and reporting to the window at most once a second per environment; and, for
/// comparison on the same machine, under the default consecutive policy.
#[test]
fn a_partial_outage_trips_the_fleet_by_its_failure_rate_on_dynamodb() {
    let moto = Moto::start();
    let mut figures = Vec::new();
    for policy in ["failure-rate", "consecutive"] {
        let dir = workdir(&format!("partial-{policy}"));
        let (report, svg) = run_dynamodb_demo(
            &moto,
            dir.path(),
            &["--for", "10s", "--outage", "partial", "--policy", policy],
        );
        let plan = &report["plan"];
        let summary = &report["summary"];
        let lines = report["lines"].as_array().unwrap();
        let transitions: Vec<&Value> = lines
            .iter()
            .filter(|l| l["type"] == "transition" && l["local_only"] == false)
            .collect();
        let (outage_from, outage_until) = (
            u(plan, "start_ms") + u(plan, "outage_from_ms"),
            u(plan, "start_ms") + u(plan, "outage_until_ms"),
        );
        let first_trip = transitions
            .iter()
            .filter(|t| s(t, "reason") == "tripped")
            .map(|t| u(t, "at_ms"))
            .min();
        let stat = |key: &str| -> u64 {
            lines
                .iter()
                .filter(|l| l["type"] == "store_ops")
                .map(|l| u(l, key))
                .sum()
        };
        figures.push(format!(
            "{policy}: first trip {} after the outage began; {} of {} calls that would have failed did; {} record writes, {} window reports",
            first_trip.map_or("never".into(), |t| format!("{} ms", t.saturating_sub(outage_from))),
            u(summary, "outage_failures"),
            u(summary, "outage_would_fail"),
            stat("writes"),
            stat("window_adds"),
        ));
        if policy == "failure-rate" {
            let trip = first_trip.expect("the failure rate tripped the circuit");
            assert!(
                (outage_from..outage_until).contains(&trip),
                "tripped at {trip}, outside the outage {outage_from}..{outage_until}"
            );
            assert_eq!(
                stat("writes"),
                transitions.len() as u64,
                "one record write per transition"
            );
            let failing_s = (outage_until - outage_from).div_ceil(1_000) + 1;
            assert!(
                stat("window_adds") <= 12 * failing_s,
                "{} window reports from 12 environments in {failing_s} s of failures",
                stat("window_adds")
            );
            assert!(u(summary, "rejected") > 0, "calls were spared");
            check_svg(&svg, 12);
            assert!(svg.contains("downstream failing 30% of calls"));
        }
    }
    for f in figures {
        println!("{f}");
    }
}

/// The picture parses, has the circuit's bands and a tick per call row.
fn check_svg(svg: &str, rows: usize) {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let titles: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("title"))
        .filter_map(|n| n.text())
        .collect();
    assert!(
        titles.contains(&"OPEN") && titles.contains(&"CLOSED"),
        "state bands: {titles:?}"
    );
    let labels: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(
        labels
            .iter()
            .filter(|l| l.starts_with('p') && l.contains("-t"))
            .count(),
        rows,
        "one row per environment"
    );
    let ticks = doc.descendants().filter(|n| n.has_tag_name("line")).count();
    assert!(ticks > 100, "a tick per call: {ticks}");
}

#[test]
fn the_demo_runs_on_sqlite_by_default_and_draws_its_timeline() {
    let dir = workdir("sqlite");
    let db = dir.join("demo.db");
    let (report, svg) = run_demo(
        &[
            "--sqlite",
            db.to_str().unwrap(),
            "demo",
            "--processes",
            "2",
            "--threads",
            "2",
            "--for",
            "5s",
        ],
        dir.path(),
    );
    assert!(report["store"].as_str().unwrap().starts_with("SQLite"));
    let summary = &report["summary"];
    assert!(u(summary, "rejected") > 0, "calls were spared");
    assert_eq!(u(summary, "max_probes_in_flight"), 1);
    assert!(summary["time_to_close_ms"].is_u64(), "closed again");
    check_svg(&svg, 4);
}
