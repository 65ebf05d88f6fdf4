//! A small HTTP/1.1 proxy on loopback between the SDK and moto, for fault tests: it forwards
//! requests, or delays them, or answers `ThrottlingException` itself; and it records which
//! DynamoDB operations were asked for (`X-Amz-Target`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Forward,
    /// Waits this long before forwarding.
    Delay(Duration),
    /// Answers every request with HTTP 400 `ThrottlingException`.
    Throttle,
    /// Forwards every request at once, but holds the answer to the next `PutItem` this long
    /// (then forwards as usual): the write lands while its caller has given up on it.
    LatePutAnswer(Duration),
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    operations: Vec<String>,
}

pub struct Proxy {
    pub port: u16,
    state: Arc<Mutex<State>>,
    /// Dropping it stops the proxy's thread.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Proxy {
    /// A proxy to `upstream_port`, served by a thread of its own (usable from sync and async
    /// tests alike).
    pub fn start(upstream_port: u16) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            mode: Some(Mode::Forward),
            operations: Vec::new(),
        }));
        let shared = state.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                let accept = async {
                    loop {
                        let Ok((client, _)) = listener.accept().await else {
                            return;
                        };
                        let state = shared.clone();
                        tokio::spawn(async move {
                            let _ = serve(client, upstream_port, state).await;
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Proxy {
            port,
            state,
            _stop: stop,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = Some(mode);
    }

    /// The operations asked for so far (`GetItem`, `PutItem`, ...), in order.
    pub fn operations(&self) -> Vec<String> {
        self.state.lock().unwrap().operations.clone()
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().operations.clear();
    }
}

/// Reads one HTTP message (head and `Content-Length` body) from `stream`.
async fn read_message(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap_or(0))
                .unwrap_or(0);
            let total = end + 4 + length;
            while buf.len() < total {
                let mut chunk = [0u8; 16384];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let message = buf[..total].to_vec();
            buf.drain(..total);
            return Ok(Some(message));
        }
        let mut chunk = [0u8; 16384];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn operation(request: &[u8]) -> String {
    let head = String::from_utf8_lossy(request);
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-amz-target")
                .then(|| value.trim().to_string())
        })
        .map(|t| t.rsplit('.').next().unwrap_or_default().to_string())
        .unwrap_or_default()
}

async fn serve(
    mut client: TcpStream,
    upstream_port: u16,
    state: Arc<Mutex<State>>,
) -> std::io::Result<()> {
    let mut upstream: Option<TcpStream> = None;
    let (mut from_client, mut from_upstream) = (Vec::new(), Vec::new());
    while let Some(request) = read_message(&mut client, &mut from_client).await? {
        let mode = {
            let mut s = state.lock().unwrap();
            s.operations.push(operation(&request));
            s.mode.unwrap_or(Mode::Forward)
        };
        match mode {
            Mode::Throttle => {
                let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
                let response = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\n\
                     x-amzn-errortype: ThrottlingException\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                client.write_all(response.as_bytes()).await?;
                continue;
            }
            Mode::Delay(d) => tokio::time::sleep(d).await,
            Mode::Forward | Mode::LatePutAnswer(_) => {}
        }
        let late = match mode {
            Mode::LatePutAnswer(d) if operation(&request) == "PutItem" => {
                state.lock().unwrap().mode = Some(Mode::Forward);
                Some(d)
            }
            _ => None,
        };
        if upstream.is_none() {
            upstream = Some(TcpStream::connect(("127.0.0.1", upstream_port)).await?);
        }
        let up = upstream.as_mut().unwrap();
        up.write_all(&request).await?;
        match read_message(up, &mut from_upstream).await? {
            Some(response) => {
                if let Some(d) = late {
                    tokio::time::sleep(d).await;
                }
                client.write_all(&response).await?
            }
            None => return Ok(()),
        }
    }
    Ok(())
}
