//! Shared harness for black-box tests: runs the real `berth` binary as a
//! child process on a loopback port chosen by the OS, with its own data
//! directory, and stops it by PID.
#![allow(dead_code)]

pub mod auth;
pub mod authkit;
pub mod gc;
pub mod hardening;
pub mod management;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `berth serve`.
pub struct Server {
    child: Option<Child>,
    url: String,
    data_dir: PathBuf,
    extra_args: Vec<String>,
}

impl Server {
    /// Starts a server on a fresh temporary data directory.
    pub fn start() -> (Server, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Server::start_in(dir.path(), &[]);
        (s, dir)
    }

    /// Starts a server on `data_dir` with extra command-line arguments
    /// (appended after `serve`).
    pub fn start_in(data_dir: &Path, extra_args: &[&str]) -> Server {
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let (child, url) = spawn(data_dir, &extra_args);
        Server {
            child: Some(child),
            url,
            data_dir: data_dir.to_path_buf(),
            extra_args,
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// PID of the server process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops (SIGTERM) and starts again on the same data directory; the port
    /// may change.
    pub fn restart(&mut self) {
        self.stop();
        let (child, url) = spawn(&self.data_dir, &self.extra_args);
        self.child = Some(child);
        self.url = url;
    }

    /// SIGKILL and start again on the same data directory.
    pub fn crash_restart(&mut self) {
        self.kill9();
        let (child, url) = spawn(&self.data_dir, &self.extra_args);
        self.child = Some(child);
        self.url = url;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spawn(data_dir: &Path, extra_args: &[String]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .arg("--addr")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra_args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn berth");
    // The server prints exactly one line on stdout once it accepts
    // connections: "berth listening on http://ADDR".
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read listening line");
    let url = line
        .trim()
        .strip_prefix("berth listening on ")
        .unwrap_or_else(|| panic!("unexpected first stdout line from berth: {line:?}"))
        .to_string();
    (child, url)
}

/// sha256 digest string of bytes.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A blocking HTTP client that does not follow redirects.
pub fn client() -> reqwest::blocking::Client {
    install_tls_provider();
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

/// reqwest is built with rustls but no built-in crypto provider (see the
/// root Cargo.toml): install ring's once per test process.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Deterministic pseudo-random bytes (xorshift), so that content is neither
/// compressible nor periodic; the same seed gives the same bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Appends a query parameter to a URL that may already have a query.
pub fn with_param(url: &str, kv: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{kv}")
}

/// What a test does when it cannot check what it is for (a tool is
/// missing, the machine cannot mount a file system): under `CI=true` that
/// is a failure and this panics with `reason`; elsewhere it says
/// `SKIPPED: <test>: <reason>` on stderr, and the caller returns.
///
/// Use it through [`skip!`], which also returns, so that no test can end
/// early without either failing or saying so.
pub fn skip(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} cannot check what it is for, and under CI=true that fails: {reason}");
    }
    eprintln!("SKIPPED: {test}: {reason}");
}

/// `skip!("reason")`: see [`skip`]; returns from the calling test.
#[macro_export]
macro_rules! skip {
    ($($reason:tt)+) => {{
        $crate::common::skip(&format!($($reason)+));
        return;
    }};
}
