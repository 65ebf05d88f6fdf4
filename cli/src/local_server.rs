//! A local DynamoDB-compatible server for the demo: moto's server on a free loopback port, when
//! no endpoint is configured. It is stopped when the demo ends.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct LocalServer {
    child: Child,
    pub endpoint: String,
}

/// The Python with moto: `FLEETBREAKER_PYTHON`, else the venv the scripts make, else python3.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("FLEETBREAKER_PYTHON") {
        return p.into();
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let venv = std::env::var_os("FLEETBREAKER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/fleetbreaker/venv"))
        .join("bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// `scripts/moto-server`: moto's server with each request handled alone.
const MOTO_SERVER: &str = include_str!("../../scripts/moto-server");

impl LocalServer {
    pub fn start() -> Result<LocalServer, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let python = python();
        // moto's app with one request at a time, so conditional writes are atomic as in DynamoDB.
        let mut child = Command::new(&python)
            .args(["-c", MOTO_SERVER, "127.0.0.1", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start moto's server with {}: {e}; install it with pip install 'moto[server]' (scripts/demo does), or give --endpoint", python.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "moto's server exited ({status}); is moto installed for {}? pip install 'moto[server]', or give --endpoint",
                    python.display()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("moto's server did not start within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(LocalServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
