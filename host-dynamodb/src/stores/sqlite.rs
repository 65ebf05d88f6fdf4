//! The SQLite store: the same compare-and-swap across the processes of one machine (worker
//! processes of a server, local development, the demo). SQLite is compiled in.
//!
//! Each store owns a connection on a thread of its own, so a call never blocks the caller's
//! thread (or event loop) on the file lock; WAL mode and a busy timeout let several processes
//! write without losing an update. The connection and its thread belong to one process: a
//! forked child (a gunicorn or Celery worker) opens its own on first use and never touches the
//! parent's, as SQLite requires.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use fleetbreaker_core::{
    CorruptItem, Record, StoreError, Stored, StoredKind, SwapResult, WindowCounts, WindowDelta,
};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::Error;
use crate::fork::{ForkLocal, Scope};
use crate::stores::{Counters, Store, StoreFuture, StoreStats};

/// The table, one row per circuit; its columns are the record's fields.
pub const TABLE: &str = "fleetbreaker_circuits";

/// The columns after `name`: the record's fields, in [`Record::FIELDS`] order.
fn columns() -> String {
    let names: Vec<&str> = Record::FIELDS.iter().map(|(name, _)| *name).collect();
    names.join(", ")
}

/// Every circuit with a row, with its record or what is wrong with the row.
pub type Listing = Vec<(String, Result<Record, CorruptItem>)>;

enum Request {
    Load(String, oneshot::Sender<Result<Option<Record>, StoreError>>),
    List(oneshot::Sender<Result<Listing, StoreError>>),
    Remove(String, oneshot::Sender<Result<(), StoreError>>),
    Swap(
        String,
        Option<u64>,
        Box<Record>,
        oneshot::Sender<Result<SwapResult, StoreError>>,
    ),
    AddToWindow(Box<WindowAdd>, oneshot::Sender<Result<(), StoreError>>),
    ReadWindows(
        String,
        Vec<u64>,
        u32,
        oneshot::Sender<Result<Vec<WindowCounts>, StoreError>>,
    ),
}

struct WindowAdd {
    circuit: String,
    window_start_ms: u64,
    shard: u32,
    delta: WindowDelta,
    expires_at_ms: u64,
}

/// The window shards, and the environments that reported trouble in each window.
const WINDOWS: &str = "fleetbreaker_windows";
const WINDOW_ENVIRONMENTS: &str = "fleetbreaker_window_environments";

/// The SQLite store. Clones are not needed: share it in an `Arc` or an environment.
pub struct SqliteStore {
    path: PathBuf,
    store_timeout: Duration,
    /// The connection's thread in this process (or why it could not be opened here).
    requests: ForkLocal<Result<mpsc::Sender<Request>, StoreError>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, with a busy timeout of one second.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, Error> {
        SqliteStore::open_with_timeout(path, Duration::from_secs(1))
    }

    /// Opens the database at `path`; a call waits at most `store_timeout` for another
    /// process's lock.
    pub fn open_with_timeout(
        path: impl AsRef<Path>,
        store_timeout: Duration,
    ) -> Result<SqliteStore, Error> {
        let path = path.as_ref().to_path_buf();
        let counters = Arc::new(Counters::default());
        let sender = start(&path, store_timeout, &counters)?;
        crate::fork::watch();
        let requests = ForkLocal::new(Scope::Process);
        requests.get_or_init(|| Ok(sender));
        Ok(SqliteStore {
            path,
            store_timeout,
            requests,
            counters,
        })
    }

    /// The connection's thread of this process, started on first use after a fork.
    fn requests(&self) -> Result<&mpsc::Sender<Request>, StoreError> {
        self.requests
            .get_or_init(|| {
                start(&self.path, self.store_timeout, &self.counters).map_err(|e| match e {
                    Error::Store(e) => e,
                    other => StoreError::Unavailable(other.to_string()),
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What this store has done so far.
    pub fn stats(&self) -> StoreStats {
        self.counters.stats()
    }

    /// Every circuit in the database, sorted by name (for operators).
    pub async fn list(&self) -> Result<Listing, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests()?
            .send(Request::List(reply))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

impl SqliteStore {
    /// Deletes the row of `circuit` (for operators and tests; a missing row is a closed
    /// circuit).
    pub async fn remove(&self, circuit: &str) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests()?
            .send(Request::Remove(circuit.to_string(), reply))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Opens a connection to `path` on a thread of its own; returns where to send requests.
fn start(
    path: &Path,
    store_timeout: Duration,
    counters: &Arc<Counters>,
) -> Result<mpsc::Sender<Request>, Error> {
    let conn = connect(path, store_timeout).map_err(|e| {
        Error::Store(StoreError::Misconfigured(format!(
            "cannot open SQLite database {}: {e}",
            path.display()
        )))
    })?;
    let (requests, inbox) = mpsc::channel::<Request>();
    let label = path.display().to_string();
    let counted = counters.clone();
    thread::Builder::new()
        .name("fleetbreaker-sqlite".into())
        .spawn(move || serve(conn, &label, inbox, &counted))
        .map_err(|e| Error::Component(format!("cannot start the SQLite thread: {e}")))?;
    Ok(requests)
}

fn connect(path: &Path, store_timeout: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(store_timeout)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // A fleet starting together opens one new file from many processes at once. Setting it up
    // can fail with "locked" at once, without the busy handler (SQLite refuses a lock upgrade
    // that could deadlock, and the switch to WAL needs the file to itself), so it is retried
    // until the busy timeout runs out.
    let deadline = Instant::now() + store_timeout;
    loop {
        match set_up(&conn) {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            done => return done.map(|()| conn),
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// WAL (readers go on while a writer holds the lock; a property of the file) and the table.
fn set_up(conn: &Connection) -> rusqlite::Result<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    }
    // IMMEDIATE takes the write lock first (waiting in the busy handler), so creating the
    // table never needs an upgrade.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let created = create_table(conn).and_then(|()| conn.execute_batch("COMMIT"));
    if created.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    created
}

/// The table, with a column per record field: a file made by a version with fewer fields
/// gains the new ones (absent in its rows, which is what a field's absent value is for).
fn create_table(conn: &Connection) -> rusqlite::Result<()> {
    let column = |name: &str, kind: &StoredKind| match kind {
        StoredKind::Number => format!("{name} INTEGER"),
        StoredKind::Text => format!("{name} TEXT"),
    };
    let columns: Vec<String> = Record::FIELDS.iter().map(|(n, k)| column(n, k)).collect();
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY NOT NULL, {})",
        columns.join(", ")
    ))?;
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {WINDOWS} (circuit TEXT NOT NULL, window_start_ms INTEGER NOT NULL,
            shard INTEGER NOT NULL, calls INTEGER NOT NULL, failures INTEGER NOT NULL,
            slow_calls INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL,
            PRIMARY KEY (circuit, window_start_ms, shard));
        CREATE TABLE IF NOT EXISTS {WINDOW_ENVIRONMENTS} (circuit TEXT NOT NULL,
            window_start_ms INTEGER NOT NULL, environment TEXT NOT NULL,
            expires_at_ms INTEGER NOT NULL, PRIMARY KEY (circuit, window_start_ms, environment));"
    ))?;
    let mut info = conn.prepare(&format!("PRAGMA table_info({TABLE})"))?;
    let present: Vec<String> = info
        .query_map([], |row| row.get::<_, String>(1))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, kind) in Record::FIELDS {
        if !present.iter().any(|p| p == name) {
            let added = column(name, kind);
            conn.execute_batch(&format!("ALTER TABLE {TABLE} ADD COLUMN {added}"))?;
        }
    }
    Ok(())
}

fn serve(mut conn: Connection, label: &str, inbox: mpsc::Receiver<Request>, counters: &Counters) {
    // Ends when the store (the only sender) is dropped.
    for request in inbox {
        match request {
            Request::Load(circuit, reply) => {
                let result = load(&conn, &circuit)
                    .map_err(|e| map_error(label, e))
                    .and_then(|r| r);
                match &result {
                    Ok(_) | Err(StoreError::Corrupt(_)) => counters.read(),
                    Err(_) => counters.error(),
                }
                let _ = reply.send(result);
            }
            Request::List(reply) => {
                let _ = reply.send(list(&conn).map_err(|e| map_error(label, e)));
            }
            Request::Remove(circuit, reply) => {
                let removed = conn
                    .execute(
                        &format!("DELETE FROM {TABLE} WHERE name = ?1"),
                        params![circuit],
                    )
                    .map(drop)
                    .map_err(|e| map_error(label, e));
                let _ = reply.send(removed);
            }
            Request::AddToWindow(add, reply) => {
                let result = add_to_window(&mut conn, &add).map_err(|e| map_error(label, e));
                match &result {
                    Ok(()) => counters.window_add(),
                    Err(_) => counters.error(),
                }
                let _ = reply.send(result);
            }
            Request::ReadWindows(circuit, starts, shards, reply) => {
                let result =
                    read_windows(&conn, &circuit, &starts, shards).map_err(|e| map_error(label, e));
                match &result {
                    Ok(_) => counters.read(),
                    Err(_) => counters.error(),
                }
                let _ = reply.send(result);
            }
            Request::Swap(circuit, expected, next, reply) => {
                let result =
                    swap(&mut conn, &circuit, expected, &next).map_err(|e| map_error(label, e));
                match &result {
                    Ok(SwapResult::Written) => counters.write(),
                    Ok(SwapResult::Conflict(_)) => counters.conflict(),
                    Err(_) => counters.error(),
                }
                let _ = reply.send(result);
            }
        }
    }
}

fn map_error(label: &str, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            StoreError::Timeout(format!("SQLite database {label} stayed locked: {e}"))
        }
        Some(C::ReadOnly | C::PermissionDenied | C::CannotOpen | C::NotADatabase) => {
            StoreError::Misconfigured(format!("SQLite database {label}: {e}"))
        }
        _ => StoreError::Unavailable(format!("SQLite database {label}: {e}")),
    }
}

type Row = Vec<rusqlite::types::Value>;

fn select(conn: &Connection, circuit: &str) -> rusqlite::Result<Option<Row>> {
    conn.query_row(
        &format!("SELECT {} FROM {TABLE} WHERE name = ?1", columns()),
        params![circuit],
        |row| (0..Record::FIELDS.len()).map(|i| row.get(i)).collect(),
    )
    .optional()
}

/// The inner result is the store's answer; the outer one, SQLite's failures.
fn load(conn: &Connection, circuit: &str) -> rusqlite::Result<Result<Option<Record>, StoreError>> {
    Ok(match select(conn, circuit)? {
        None => Ok(None),
        Some(row) => row_to_record(&row).map(Some).map_err(StoreError::Corrupt),
    })
}

fn list(conn: &Connection) -> rusqlite::Result<Listing> {
    let mut statement = conn.prepare(&format!(
        "SELECT name, {} FROM {TABLE} ORDER BY name",
        columns()
    ))?;
    let rows = statement.query_map([], |row| {
        let name: String = row.get(0)?;
        let values: rusqlite::Result<Row> =
            (1..=Record::FIELDS.len()).map(|i| row.get(i)).collect();
        Ok((name, values?))
    })?;
    rows.map(|r| r.map(|(name, row)| (name, row_to_record(&row))))
        .collect()
}

fn swap(
    conn: &mut Connection,
    circuit: &str,
    expected: Option<u64>,
    next: &Record,
) -> rusqlite::Result<SwapResult> {
    // IMMEDIATE takes the write lock first, so the read and the write are one atomic step
    // across processes.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = select(&tx, circuit)?;
    let (current_version, current_record) = match &current {
        None => (None, None),
        Some(row) => match row_to_record(row) {
            // Version 0: a row without a version of ours, swapped against "none".
            Ok(r) => (Some(r.version).filter(|v| *v > 0), Some(r)),
            Err(c) => (c.version, None),
        },
    };
    if current_version != expected {
        return Ok(SwapResult::Conflict(current_record));
    }
    use rusqlite::types::Value;
    let values = next.to_stored().into_iter().map(|(_, value)| match value {
        None => Value::Null,
        // Every number the record holds is far below 2^63.
        Some(Stored::Number(n)) => Value::Integer(n as i64),
        Some(Stored::Text(t)) => Value::Text(t),
    });
    let values: Vec<Value> = std::iter::once(Value::Text(circuit.into()))
        .chain(values)
        .collect();
    let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("?{i}")).collect();
    tx.execute(
        &format!(
            "INSERT OR REPLACE INTO {TABLE} (name, {}) VALUES ({})",
            columns(),
            placeholders.join(", ")
        ),
        rusqlite::params_from_iter(values),
    )?;
    tx.commit()?;
    Ok(SwapResult::Written)
}

/// Adds to a window shard in one transaction (the lock taken first, so no add is lost across
/// processes); shards past their expiry go at the same time.
fn add_to_window(conn: &mut Connection, add: &WindowAdd) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let start = add.window_start_ms as i64;
    for table in [WINDOWS, WINDOW_ENVIRONMENTS] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE expires_at_ms < ?1"),
            params![start],
        )?;
    }
    let d = &add.delta;
    tx.execute(
        &format!(
            "INSERT INTO {WINDOWS} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
            ON CONFLICT (circuit, window_start_ms, shard) DO UPDATE SET
                calls = calls + excluded.calls, failures = failures + excluded.failures,
                slow_calls = slow_calls + excluded.slow_calls,
                expires_at_ms = MAX(expires_at_ms, excluded.expires_at_ms)"
        ),
        params![
            add.circuit,
            start,
            add.shard,
            d.calls as i64,
            d.failures as i64,
            d.slow_calls as i64,
            add.expires_at_ms as i64
        ],
    )?;
    if let Some(environment) = &d.environment {
        tx.execute(
            &format!(
                "INSERT INTO {WINDOW_ENVIRONMENTS} VALUES (?1, ?2, ?3, ?4)
                ON CONFLICT (circuit, window_start_ms, environment) DO UPDATE SET
                    expires_at_ms = MAX(expires_at_ms, excluded.expires_at_ms)"
            ),
            params![add.circuit, start, environment, add.expires_at_ms as i64],
        )?;
    }
    tx.commit()
}

fn read_windows(
    conn: &Connection,
    circuit: &str,
    starts: &[u64],
    shards: u32,
) -> rusqlite::Result<Vec<WindowCounts>> {
    let mut sums = conn.prepare_cached(&format!(
        "SELECT TOTAL(calls), TOTAL(failures), TOTAL(slow_calls) FROM {WINDOWS}
        WHERE circuit = ?1 AND window_start_ms = ?2 AND shard < ?3"
    ))?;
    let mut environments = conn.prepare_cached(&format!(
        "SELECT environment FROM {WINDOW_ENVIRONMENTS} WHERE circuit = ?1 AND window_start_ms = ?2"
    ))?;
    starts
        .iter()
        .map(|&start| {
            let (calls, failures, slow) =
                sums.query_row(params![circuit, start as i64, shards], |r| {
                    Ok((
                        r.get::<_, f64>(0)?,
                        r.get::<_, f64>(1)?,
                        r.get::<_, f64>(2)?,
                    ))
                })?;
            let mut counts = WindowCounts::default();
            let names = environments
                .query_map(params![circuit, start as i64], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            counts.add(calls as u64, failures as u64, slow as u64, names);
            Ok(counts)
        })
        .collect()
}

/// Reads a row back; values of the wrong type make the row corrupt (SQLite stores whatever it
/// is given).
fn row_to_record(row: &Row) -> Result<Record, CorruptItem> {
    use rusqlite::types::Value;
    let version = match &row[1] {
        Value::Integer(v) if *v >= 0 => Some(*v as u64),
        _ => None,
    };
    let corrupt = |detail: String| CorruptItem { detail, version };
    let mut cells = row.iter();
    let record = Record::from_stored(|_, kind| {
        let found = match (cells.next(), kind) {
            (None | Some(Value::Null), _) => return Ok(None),
            (Some(Value::Integer(v)), StoredKind::Number) if *v >= 0 => {
                return Ok(Some(Stored::Number(*v as u64)));
            }
            (Some(Value::Text(t)), StoredKind::Text) => return Ok(Some(Stored::Text(t.clone()))),
            (Some(other), _) => ValueRef::from(other).data_type(),
        };
        Err(match kind {
            StoredKind::Number => format!("should be a non-negative integer, found {found:?}"),
            StoredKind::Text => format!("should be text, found {found:?}"),
        })
    })
    .map_err(|e| corrupt(format!("column '{}' {}", e.field, e.problem)))?;
    if version.is_none() {
        return Err(corrupt("column 'version' is empty".into()));
    }
    Ok(record)
}

fn gone() -> StoreError {
    StoreError::Unavailable("the SQLite thread has stopped".into())
}

impl Store for SqliteStore {
    fn load<'a>(&'a self, circuit: &'a str) -> StoreFuture<'a, Option<Record>> {
        let (reply, answer) = oneshot::channel();
        let requests = match self.requests() {
            Ok(r) => r,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let sent = requests.send(Request::Load(circuit.to_string(), reply));
        Box::pin(async move {
            sent.map_err(|_| gone())?;
            answer.await.map_err(|_| gone())?
        })
    }

    fn swap<'a>(
        &'a self,
        circuit: &'a str,
        expected_version: Option<u64>,
        next: &'a Record,
    ) -> StoreFuture<'a, SwapResult> {
        let (reply, answer) = oneshot::channel();
        let requests = match self.requests() {
            Ok(r) => r,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let sent = requests.send(Request::Swap(
            circuit.to_string(),
            expected_version,
            Box::new(next.clone()),
            reply,
        ));
        Box::pin(async move {
            sent.map_err(|_| gone())?;
            answer.await.map_err(|_| gone())?
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
        let add = Box::new(WindowAdd {
            circuit: circuit.to_string(),
            window_start_ms,
            shard,
            delta: delta.clone(),
            expires_at_ms,
        });
        self.ask(|reply| Request::AddToWindow(add, reply))
    }

    fn read_windows<'a>(
        &'a self,
        circuit: &'a str,
        window_starts_ms: &'a [u64],
        shards: u32,
    ) -> StoreFuture<'a, Vec<WindowCounts>> {
        let (circuit, starts) = (circuit.to_string(), window_starts_ms.to_vec());
        self.ask(|reply| Request::ReadWindows(circuit, starts, shards, reply))
    }
}

impl SqliteStore {
    /// Sends a request to the connection's thread; the future is its answer.
    fn ask<T: Send + 'static>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Request,
    ) -> StoreFuture<'static, T> {
        let (reply, answer) = oneshot::channel();
        let sent = self.requests().map(|r| r.send(request(reply)));
        Box::pin(async move {
            sent?.map_err(|_| gone())?;
            answer.await.map_err(|_| gone())?
        })
    }
}
