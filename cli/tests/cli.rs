//! The operator CLI against a DynamoDB-compatible server (moto) and a SQLite file.

#[path = "../../host-dynamodb/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};

use support::TempDir;
use support::moto::Moto;

/// The CLI pointed at `table` on `moto`, with test credentials.
fn command(moto: &Moto, table: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fleetbreaker"));
    c.args([
        "--endpoint",
        &moto.endpoint(),
        "--region",
        "us-east-1",
        "--table",
        table,
    ])
    .args(args)
    .env("AWS_ACCESS_KEY_ID", "testing")
    .env("AWS_SECRET_ACCESS_KEY", "testing");
    c
}

fn cli(moto: &Moto, table: &str, args: &[&str]) -> Output {
    command(moto, table, args).output().unwrap()
}

/// The CLI on the SQLite file `db`.
fn on_sqlite(db: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetbreaker"))
        .arg("--sqlite")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn err(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn operator_commands_on_dynamodb() {
    let moto = Moto::start();
    let t = "ops";
    assert!(ok(&cli(&moto, t, &["create-table"])).contains("created table 'ops'"));
    assert!(ok(&cli(&moto, t, &["status"])).contains("no circuits"));

    let missing = err(&cli(&moto, t, &["status", "payments"]));
    assert!(
        missing.contains("circuit 'payments' has no record"),
        "{missing}"
    );
    let missing = err(&cli(&moto, t, &["reset", "payments"]));
    assert!(missing.contains("has no record"), "{missing}");

    let forced = ok(&cli(
        &moto,
        t,
        &[
            "force-open",
            "payments",
            "--for",
            "10m",
            "--reason",
            "deploy",
        ],
    ));
    assert!(
        forced.contains("FORCED_OPEN") && forced.contains("\"deploy\""),
        "{forced}"
    );
    assert!(
        forced.contains("in 10.0 min") || forced.contains("in 9.9 min"),
        "{forced}"
    );
    let one = ok(&cli(&moto, t, &["status", "payments"]));
    assert!(one.contains("state            FORCED_OPEN"), "{one}");
    assert!(
        one.contains("by operator-"),
        "the audit fields name the operator: {one}"
    );
    let all = ok(&cli(&moto, t, &["status"]));
    assert!(
        all.lines()
            .any(|l| l.starts_with("payments") && l.contains("FORCED_OPEN")),
        "{all}"
    );

    // watch prints the current state, then each change; --count 1 stops after one change.
    let mut watcher = command(
        &moto,
        t,
        &["watch", "payments", "--interval", "100ms", "--count", "1"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    // Change the state only once the watcher has printed the current one.
    let mut stdout = BufReader::new(watcher.stdout.take().unwrap());
    let mut watched = String::new();
    while !watched.contains(" version ") {
        assert_ne!(
            stdout.read_line(&mut watched).unwrap(),
            0,
            "watch ended early: {watched}"
        );
    }
    ok(&cli(
        &moto,
        t,
        &["force-closed", "payments", "--reason", "ship it"],
    ));
    stdout.read_to_string(&mut watched).unwrap();
    assert!(watcher.wait().unwrap().success(), "{watched}");
    let changes: Vec<&str> = watched
        .lines()
        .filter(|l| l.contains(" version "))
        .collect();
    assert_eq!(changes.len(), 2, "the state, then one change: {watched}");
    assert!(
        changes[0].contains("FORCED_OPEN") && changes[1].contains("FORCED_CLOSED"),
        "{watched}"
    );

    let reset = ok(&cli(&moto, t, &["reset", "payments"]));
    assert!(
        reset.contains("state            CLOSED") && reset.contains("version          3"),
        "{reset}"
    );
}

#[test]
fn the_standard_aws_environment_gives_the_endpoint_and_region() {
    let moto = Moto::start();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbreaker"))
        .args(["--table", "from-env", "create-table"])
        .env("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint())
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert!(ok(&out).contains("created table 'from-env'"));
    let listed = Command::new(env!("CARGO_BIN_EXE_fleetbreaker"))
        .args([
            "--endpoint",
            &moto.endpoint(),
            "--region",
            "eu-west-1",
            "--table",
            "from-env",
            "status",
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert!(
        ok(&listed).contains("no circuits"),
        "the table is where the environment said"
    );
}

#[test]
fn errors_name_what_is_wrong() {
    let moto = Moto::start();
    let unknown = err(&cli(&moto, "no-such-table", &["status", "payments"]));
    assert!(
        unknown.contains("no-such-table") && unknown.contains("ResourceNotFoundException"),
        "{unknown}"
    );
    let bad = err(&cli(
        &moto,
        "t",
        &["force-open", "x", "--for", "10 minutes"],
    ));
    assert!(bad.contains("unknown unit"), "{bad}");
}

#[test]
fn operator_commands_on_sqlite() {
    let dir = TempDir::new("cli");
    let db = dir.join("circuits.db");
    let run = |args: &[&str]| on_sqlite(&db, args);
    ok(&run(&["force-open", "search", "--reason", "reindex"]));
    let all = ok(&run(&["status"]));
    assert!(
        all.lines()
            .any(|l| l.starts_with("search") && l.contains("FORCED_OPEN")),
        "{all}"
    );
    assert!(ok(&run(&["reset", "search"])).contains("CLOSED"));
    // `force-closed`, the API's name; `force-close`, its old name, still works and says so.
    assert!(ok(&run(&["force-closed", "search", "--reason", "ship it"])).contains("FORCED_CLOSED"));
    let old = run(&["force-close", "search", "--reason", "ship it"]);
    assert!(ok(&old).contains("FORCED_CLOSED"));
    assert!(String::from_utf8_lossy(&old.stderr).contains("deprecated; use `force-closed`"));
    let help = ok(&run(&["--help"]));
    assert!(
        help.contains("force-closed") && !help.contains("force-close "),
        "{help}"
    );
}

#[test]
fn status_shows_the_window_environments_report_to_before_any_trip() {
    use fleetbreaker::{Clock, SqliteStore, Store, SystemClock, WindowDelta};
    let dir = TempDir::new("cli-window");
    let db = dir.join("circuits.db");
    let store = SqliteStore::open(&db).unwrap();
    let now = SystemClock.now_ms();
    let start = now - now % 60_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (shard, environment) in [(1, "env-a"), (5, "env-b")] {
        let delta = WindowDelta {
            calls: 0,
            failures: 5,
            slow_calls: 0,
            environment: Some(environment.into()),
        };
        rt.block_on(store.add_to_window("payments", start, shard, &delta, start + 180_000))
            .unwrap();
    }
    let out = on_sqlite(&db, &["status", "payments", "--window", "60s"]);
    let shown = ok(&out);
    assert!(shown.contains("CLOSED (no record)"), "{shown}");
    // In this window, or the one before if a minute turned meanwhile.
    assert!(
        shown.contains("10 failures, 0 slow, 2 environments reporting (env-a, env-b)"),
        "{shown}"
    );
    // A circuit nobody reported for still has no record to show.
    let missing = on_sqlite(&db, &["status", "orders"]);
    assert!(err(&missing).contains("has no record"));
}

#[test]
fn operator_commands_replace_a_corrupt_record_and_names_are_printed_escaped() {
    let dir = TempDir::new("cli-corrupt");
    let db = dir.join("circuits.db");
    let run = |args: &[&str]| on_sqlite(&db, args);
    ok(&run(&["create-table"]));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let table = fleetbreaker::sqlite::TABLE;
    conn.execute(
        &format!("INSERT INTO {table} (name, state, version) VALUES ('search', 'OPENED', 4)"),
        [],
    )
    .unwrap();
    conn.execute(
        &format!(
            "INSERT INTO {table} (name, state, version) VALUES ('tenant\x1b[31mred', 'OPEN', -1)"
        ),
        [],
    )
    .unwrap();
    // The commands that get an operator out of a corrupt record must not refuse it.
    let forced = ok(&run(&["force-open", "search", "--reason", "corrupt"]));
    assert!(forced.contains("FORCED_OPEN"), "{forced}");
    let reset = ok(&run(&["reset", "search"]));
    assert!(reset.contains("CLOSED"), "{reset}");
    let refused = run(&["reset", "tenant\x1b[31mred"]);
    assert!(
        !refused.status.success(),
        "a name with control characters is refused"
    );
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("control characters"), "{message}");
    assert!(!message.contains('\x1b'), "and not echoed raw: {message:?}");
    let all = ok(&run(&["status"]));
    assert!(
        !all.contains('\x1b'),
        "no raw control character reaches the terminal: {all:?}"
    );
    assert!(all.contains("tenant\\u{1b}[31mred"), "{all}");
}

/// Whether `needle` occurs in `bytes` (names in a WebAssembly binary are plain UTF-8).
fn contains(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn component_command_writes_the_component_and_its_wit_package() {
    let dir = TempDir::new("component-out");
    let out = Command::new(env!("CARGO_BIN_EXE_fleetbreaker"))
        .args(["component", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    ok(&out);
    let component = std::fs::read(dir.join("fleetbreaker.wasm")).unwrap();
    assert_eq!(
        component,
        fleetbreaker::component_wasm(),
        "the portable component is the one the library embeds"
    );
    let wit = std::fs::read(dir.join("fleetbreaker-wit.wasm")).unwrap();
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&wit)
        .expect("the WIT package is a valid component");
    for name in ["store", "clock", "events", "breaker", "types"] {
        let interface = format!("fleetbreaker:breaker/{name}@0.1.0");
        assert!(
            contains(&wit, &interface),
            "the WIT package lacks {interface}"
        );
    }
    assert!(
        contains(&wit, "circuit-record"),
        "the WIT package carries its types"
    );
}
