//! Starts moto's server (`python -m moto.server`) on a loopback port, and stops it on drop.
//! The Python with moto comes from `FLEETBREAKER_PYTHON`, else the venv that `scripts/test`
//! makes (`~/.cache/fleetbreaker/venv`), else `python3`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleetbreaker::{DynamoDbConfig, DynamoDbStore};

pub struct Moto {
    /// Dropping it stops the server: the keeper thread kills the child and exits.
    stop: Option<std::sync::mpsc::Sender<()>>,
    keeper: Option<std::thread::JoinHandle<()>>,
    pub port: u16,
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
        let (started, ready) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let keeper = std::thread::spawn(move || {
            let mut child = match spawn(port) {
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
            },
            Err(message) => panic!("{message}"),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
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

fn spawn(port: u16) -> Result<Child, String> {
    let python = python();
    let mut cmd = Command::new(&python);
    cmd.args([
        "-m",
        "moto.server",
        "-H",
        "127.0.0.1",
        "-p",
        &port.to_string(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    // The server must not outlive the test process, even if a test panics or is killed.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| {
        format!(
            "cannot start moto's server with {}: {e}. These tests need a DynamoDB-compatible \
                 server: run scripts/test (it installs moto), or pip install 'moto[server]' and \
                 set FLEETBREAKER_PYTHON",
            python.display()
        )
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
                "moto's server exited ({status}) with {}: {err}\nThese tests need moto: run \
                 scripts/test, or pip install 'moto[server]' and set FLEETBREAKER_PYTHON",
                python().display()
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
