//! Starts a DynamoDB-compatible server on a loopback port, and stops it on drop: moto's server
//! (`scripts/moto-server`: one request at a time, so conditional writes are atomic as in
//! DynamoDB), or dynalite when `FLEETBREAKER_DYNAMODB_SERVER=dynalite`.
//! dynalite validates requests as DynamoDB does (moto accepts some that DynamoDB refuses), but
//! has neither TTL nor `ReturnValuesOnConditionCheckFailure`.
//!
//! The Python with moto comes from `FLEETBREAKER_PYTHON`, else the venv that `scripts/test`
//! makes (`~/.cache/fleetbreaker/venv`), else `python3`. dynalite comes from
//! `FLEETBREAKER_DYNALITE`, else where `scripts/test` installs it
//! (`~/.cache/fleetbreaker/dynalite`).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleetbreaker::{DynamoDbConfig, DynamoDbStore};

/// `scripts/moto-server`.
const MOTO_SERVER: &str = include_str!("../../../scripts/moto-server");

pub struct Moto {
    /// Dropping it stops the server: the keeper thread kills the child and exits.
    stop: Option<std::sync::mpsc::Sender<()>>,
    keeper: Option<std::thread::JoinHandle<()>>,
    pub port: u16,
    pub kind: Kind,
}

/// Which DynamoDB-compatible server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Moto,
    Dynalite,
}

impl Kind {
    /// The server the environment asks for.
    pub fn chosen() -> Kind {
        match std::env::var("FLEETBREAKER_DYNAMODB_SERVER").as_deref() {
            Ok("dynalite") => Kind::Dynalite,
            Ok("moto") | Err(_) => Kind::Moto,
            Ok(other) => {
                panic!("FLEETBREAKER_DYNAMODB_SERVER must be moto or dynalite, got {other:?}")
            }
        }
    }
}

fn dynalite() -> PathBuf {
    if let Some(p) = std::env::var_os("FLEETBREAKER_DYNALITE") {
        return PathBuf::from(p);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cache/fleetbreaker/dynalite/node_modules/.bin/dynalite")
}

pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("FLEETBREAKER_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cache/fleetbreaker/venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    pub fn start() -> Moto {
        Moto::start_on(free_port())
    }

    /// Starts moto on `port` and waits until it answers.
    ///
    /// The child is spawned by a keeper thread that lives as long as this value: the kernel's
    /// parent-death signal fires when the spawning *thread* ends, and test threads end early.
    pub fn start_on(port: u16) -> Moto {
        let kind = Kind::chosen();
        let (started, ready) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let keeper = std::thread::spawn(move || {
            let mut child = match spawn(kind, port) {
                Ok(child) => child,
                Err(message) => return started.send(Err(message)).unwrap(),
            };
            let outcome = wait_ready(&mut child, port);
            let ok = outcome.is_ok();
            if ok {
                // The server logs every request to stderr; an undrained pipe fills up and
                // blocks it mid-test.
                if let Some(mut stderr) = child.stderr.take() {
                    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
                }
            }
            started.send(outcome).unwrap();
            if ok {
                let _ = stopped.recv();
            }
            let _ = child.kill();
            let _ = child.wait();
        });
        match ready.recv().unwrap() {
            Ok(()) => Moto {
                stop: Some(stop),
                keeper: Some(keeper),
                port,
                kind,
            },
            Err(message) => panic!("{message}"),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether a refused conditional write hands back the stored item.
    pub fn has_all_old(&self) -> bool {
        self.kind == Kind::Moto
    }

    /// Whether the server knows TTL.
    pub fn has_ttl(&self) -> bool {
        self.kind == Kind::Moto
    }

    /// Kills the server (its data is lost, as with a real outage of a local server).
    pub fn kill(&mut self) {
        drop(self.stop.take());
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(kind: Kind, port: u16) -> Result<Child, String> {
    let python = python();
    let mut cmd = match kind {
        Kind::Moto => {
            // moto's app with one request at a time: its conditional writes are then atomic,
            // as DynamoDB's are (moto's own threaded server lets two of them win under load).
            let mut cmd = Command::new(&python);
            cmd.args(["-c", MOTO_SERVER, "127.0.0.1", &port.to_string()]);
            cmd
        }
        Kind::Dynalite => {
            let mut cmd = Command::new(dynalite());
            // Tables are ACTIVE at once (dynalite waits 500 ms by default).
            cmd.args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--createTableMs",
                "0",
            ]);
            cmd
        }
    };
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    // The server must not outlive the test process, even if a test panics or is killed.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| match kind {
        Kind::Moto => format!(
            "cannot start moto's server with {}: {e}. These tests need a DynamoDB-compatible \
                 server: run scripts/test (it installs moto), or pip install 'moto[server]' and \
                 set FLEETBREAKER_PYTHON",
            python.display()
        ),
        Kind::Dynalite => format!(
            "cannot start dynalite ({}): {e}. Run scripts/test (it installs it), or npm install \
             dynalite and set FLEETBREAKER_DYNALITE",
            dynalite().display()
        ),
    })
}

fn wait_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).ok();
            return Err(format!(
                "the DynamoDB-compatible server exited ({status}): {err}\nThese tests need moto \
                 (or dynalite): run scripts/test, or pip install 'moto[server]' and set \
                 FLEETBREAKER_PYTHON"
            ));
        }
        if Instant::now() > deadline {
            return Err("moto's server did not start within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A store config for a table on `endpoint`, with test credentials.
pub fn config(endpoint: &str, table: &str) -> DynamoDbConfig {
    let mut c = DynamoDbConfig::new(table);
    c.region = Some("us-east-1".into());
    c.endpoint_url = Some(endpoint.to_string());
    c
}

/// Connects with static test credentials (moto accepts any).
pub async fn connect(config: DynamoDbConfig) -> DynamoDbStore {
    let sdk = DynamoDbStore::sdk_config_loader(&config)
        .unwrap()
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    DynamoDbStore::with_client(aws_sdk_dynamodb::Client::new(&sdk), config).unwrap()
}

/// A fresh table name, so tests sharing a server do not meet.
pub fn table(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
