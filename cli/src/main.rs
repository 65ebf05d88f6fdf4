//! `fleetbreaker`: the operator's CLI (status, force-open, force-closed, reset, watch) on a
//! DynamoDB table or a SQLite file, and the fleet demo.

mod demo;
mod duration;
mod local_server;
mod operator;
mod svg;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fleetbreaker::{DynamoDbConfig, DynamoDbStore, SqliteStore, Store};

#[derive(Parser)]
#[command(
    name = "fleetbreaker",
    version,
    about = "Operate fleet-wide circuit breakers, and watch a simulated fleet use one"
)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where the circuits are. DynamoDB by default; `--sqlite` for a SQLite file.
#[derive(Args, Clone, Debug)]
pub struct StoreArgs {
    /// The DynamoDB table.
    #[arg(
        long,
        global = true,
        env = "FLEETBREAKER_TABLE",
        default_value = "CircuitBreakerState"
    )]
    pub table: String,
    /// The AWS region (default: the standard AWS environment: AWS_REGION, the profile, ...).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// The DynamoDB endpoint, e.g. a local server (default: the standard AWS environment:
    /// AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, or AWS itself).
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
    /// The partition key attribute.
    #[arg(long, global = true, default_value = "id")]
    pub key_attr: String,
    /// Composite keys: the sort key attribute that holds the circuit name.
    #[arg(long, global = true)]
    pub sort_key_attr: Option<String>,
    /// Composite keys: the partition key value.
    #[arg(long, global = true)]
    pub static_pk_value: Option<String>,
    /// Use this SQLite file instead of DynamoDB.
    #[arg(long, global = true, conflicts_with_all = ["endpoint", "sort_key_attr"])]
    pub sqlite: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Show one circuit (with its window's counters), or every circuit in the table.
    Status {
        name: Option<String>,
        /// The circuit's `window` (its config is not in the store), for the counters shown.
        #[arg(long, default_value = "60s", value_parser = duration::parse)]
        window: Duration,
    },
    /// Reject every call to NAME, fleet-wide.
    ForceOpen(ForceArgs),
    /// Admit every call to NAME and count nothing, fleet-wide.
    ForceClosed(ForceArgs),
    /// The old name of `force-closed` (deprecated).
    #[command(hide = true)]
    ForceClose(ForceArgs),
    /// Write a fresh closed record for NAME, whatever its state.
    Reset { name: String },
    /// Print NAME's state, then every change, as it happens.
    Watch {
        name: String,
        /// How often to read the record.
        #[arg(long, default_value = "1s", value_parser = duration::parse)]
        interval: Duration,
        /// Stop after this many changes.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Create the DynamoDB table (with TTL on `expiration`), for development and tests.
    CreateTable,
    /// Write the breaker component (portable WebAssembly) and its WIT package, for embedders
    /// on a wasmtime of their own.
    Component {
        /// The folder to write `fleetbreaker.wasm` and `fleetbreaker-wit.wasm` into.
        #[arg(long, default_value = ".")]
        out_dir: std::path::PathBuf,
    },
    /// Run a simulated fleet of processes sharing one circuit, and show what the breaker did.
    Demo(demo::DemoArgs),
    #[command(hide = true)]
    DemoWorker(worker::WorkerArgs),
}

#[derive(Args)]
struct ForceArgs {
    name: String,
    /// How long the override lasts (e.g. 30s, 10m, 2h); until changed if not given.
    #[arg(long = "for", value_parser = duration::parse)]
    duration: Option<Duration>,
    /// Why, for the record and the events.
    #[arg(long, default_value = "")]
    reason: String,
}

/// The store an operator command works on.
#[derive(Clone)]
pub enum OperatorStore {
    Dynamo(Arc<DynamoDbStore>),
    Sqlite(Arc<SqliteStore>),
}

impl OperatorStore {
    /// For an operator: consistent reads and a patient deadline.
    pub async fn open(args: &StoreArgs) -> Result<OperatorStore, String> {
        OperatorStore::open_with(args, args.dynamodb_config(true)).await
    }

    /// For an environment of the fleet: the breaker's defaults (eventually consistent reads,
    /// a 1 s deadline).
    pub async fn open_for_fleet(args: &StoreArgs) -> Result<OperatorStore, String> {
        OperatorStore::open_with(args, args.dynamodb_config(false)).await
    }

    async fn open_with(args: &StoreArgs, config: DynamoDbConfig) -> Result<OperatorStore, String> {
        if let Some(path) = &args.sqlite {
            return SqliteStore::open(path)
                .map(|s| OperatorStore::Sqlite(Arc::new(s)))
                .map_err(|e| e.to_string());
        }
        DynamoDbStore::connect(config)
            .await
            .map(|s| OperatorStore::Dynamo(Arc::new(s)))
            .map_err(|e| e.to_string())
    }

    pub fn as_store(&self) -> Arc<dyn Store> {
        match self {
            OperatorStore::Dynamo(s) => s.clone(),
            OperatorStore::Sqlite(s) => s.clone(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            OperatorStore::Dynamo(s) => format!("DynamoDB table '{}'", s.table_name()),
            OperatorStore::Sqlite(s) => format!("SQLite file {}", s.path().display()),
        }
    }
}

impl StoreArgs {
    pub fn dynamodb_config(&self, operator: bool) -> DynamoDbConfig {
        let mut c = DynamoDbConfig::new(&self.table);
        c.key_attr = self.key_attr.clone();
        c.sort_key_attr = self.sort_key_attr.clone();
        c.static_pk_value = self.static_pk_value.clone();
        c.region = self.region.clone();
        c.endpoint_url = self.endpoint.clone();
        if operator {
            c.consistent_read = true;
            c.store_timeout = Duration::from_secs(5);
        }
        c
    }
}

fn write_component(out_dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    for (name, bytes) in [
        ("fleetbreaker.wasm", fleetbreaker::component_wasm()),
        ("fleetbreaker-wit.wasm", fleetbreaker::wit_package()),
    ] {
        let path = out_dir.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("{} ({} bytes)", path.display(), bytes.len());
    }
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Status { name, window } => {
                operator::status(&cli.store, name.as_deref(), window).await
            }
            Command::ForceOpen(f) => {
                operator::force(&cli.store, &f.name, true, f.duration, &f.reason).await
            }
            Command::ForceClosed(f) => {
                operator::force(&cli.store, &f.name, false, f.duration, &f.reason).await
            }
            Command::ForceClose(f) => {
                eprintln!("fleetbreaker: `force-close` is deprecated; use `force-closed`");
                operator::force(&cli.store, &f.name, false, f.duration, &f.reason).await
            }
            Command::Reset { name } => operator::reset(&cli.store, &name).await,
            Command::Watch {
                name,
                interval,
                count,
            } => operator::watch(&cli.store, &name, interval, count).await,
            Command::CreateTable => operator::create_table(&cli.store).await,
            Command::Component { out_dir } => write_component(&out_dir),
            Command::Demo(args) => demo::run(&cli.store, args).await,
            Command::DemoWorker(args) => worker::run(&cli.store, args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
