//! Helpers of the webhook suites (`webhooks*.rs`): a receiver on loopback
//! that collects deliveries and can answer, fail, hang or be down; the
//! signature check; and a server with fast retries.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::Value;

use super::Server;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200.
    Ok,
    /// This status.
    Status(u16),
    /// Reads the request and never answers.
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
    /// The mode it was answered in.
    pub answered: Mode,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
    /// A header.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// A receiver on 127.0.0.1.
pub struct Receiver {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    got: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on a free port.
    pub fn start(mode: Mode) -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let mut r = Receiver {
            port: l.local_addr().unwrap().port(),
            mode: Arc::new(Mutex::new(mode)),
            got: Arc::default(),
            stop: Arc::default(),
            thread: None,
        };
        r.serve(l);
        r
    }

    /// `http://127.0.0.1:<port>/hook`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Changes how later requests are answered.
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Those answered 200.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.answered == Mode::Ok)
            .collect()
    }

    /// Stops listening: connections are refused until [`Receiver::resume`].
    pub fn down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    /// Listens again on the same port.
    pub fn resume(&mut self) {
        self.stop.store(false, Ordering::SeqCst);
        let l = TcpListener::bind(("127.0.0.1", self.port)).expect("bind receiver again");
        self.serve(l);
    }

    fn serve(&mut self, l: TcpListener) {
        let (mode, got, stop) = (self.mode.clone(), self.got.clone(), self.stop.clone());
        self.thread = Some(thread::spawn(move || {
            for conn in l.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (mode, got, stop) = (mode.clone(), got.clone(), stop.clone());
                thread::spawn(move || handle(conn, mode, got, stop));
            }
        }));
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

fn handle(
    mut conn: TcpStream,
    mode: Arc<Mutex<Mode>>,
    got: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut headers = BTreeMap::new();
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf[head_end..head_end + len].to_vec();
    let m = *mode.lock().unwrap();
    got.lock().unwrap().push(Received {
        headers,
        body,
        answered: m,
    });
    let status = match m {
        Mode::Ok => 200,
        Mode::Status(s) => s,
        Mode::Hang => {
            while !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(50));
            }
            return;
        }
    };
    let _ = conn.write_all(
        format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes(),
    );
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`, computed here
/// independently of the server.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

/// Writes a configuration with fast webhook retries and returns the
/// arguments that load it.
pub fn fast_config(dir: &Path, extra: &str) -> Vec<String> {
    let path = dir.join("webhooks.toml");
    std::fs::write(
        &path,
        format!(
            "[webhooks]\ntimeout_secs = 2\nretry_initial_ms = 100\nretry_max_secs = 1\n\
             poll_interval_ms = 100\n{extra}\n"
        ),
    )
    .unwrap();
    vec!["--config".into(), path.to_str().unwrap().to_string()]
}

/// A server on `data` with [`fast_config`].
pub fn fast_server(cfg_dir: &Path, data: &Path, extra: &str) -> Server {
    let args = fast_config(cfg_dir, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_in(data, &args)
}
