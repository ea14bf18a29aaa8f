//! Shared harness for black-box tests: runs the real `berth` binary as a
//! child process on a loopback port chosen by the OS, with its own data
//! directory, and stops it by PID; plus what many suites need (pushes
//! through `/v2`, the files under `blobs/`, `berth fsck`, racing threads,
//! and [`skip!`] for a test that cannot check what it is for).
//!
//! The submodules hold the helpers of one family of suites each (the files
//! `tests/<family>*.rs`); every test binary compiles them all, so helpers a
//! binary does not use are expected.
#![allow(dead_code)]

pub mod auth;
pub mod authkit;
pub mod bad_input;
pub mod gc;
pub mod gc_load;
pub mod hardening;
pub mod management;
pub mod metrics;
pub mod response;
pub mod webhooks;

/// Media types the suites push.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
}

#[path = "../support/pg_database.rs"]
pub mod pg_database;

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

/// With `BERTH_TEST_PG_URL` set (`tests/backends/run.sh`), the database of
/// the server on `data_dir`.
fn database_of(data_dir: &Path) -> Option<String> {
    let admin = std::env::var("BERTH_TEST_PG_URL").ok()?;
    Some(pg_database::database_for(data_dir, &admin))
}

fn spawn(data_dir: &Path, extra_args: &[String]) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    if let Some(url) = database_of(data_dir) {
        cmd.env("BERTH_METADATA__BACKEND", "postgres")
            .env("BERTH_METADATA__URL", url);
    }
    let mut child = cmd
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
#[track_caller]
pub fn skip(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} cannot check what it is for, and under CI=true that fails: {reason}");
    }
    // Straight to the process's stderr: `eprintln!` in a passing test is
    // captured by the test harness, and a skip must be seen.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {reason}");
}

/// `skip!("reason")`: see [`skip`]; returns from the calling test.
#[macro_export]
macro_rules! skip {
    ($($reason:tt)+) => {{
        $crate::common::skip(&format!($($reason)+));
        return;
    }};
}

/// One client for a whole test binary (connections are reused across
/// tests; a client per request would open a pool each time).
pub fn http() -> &'static reqwest::blocking::Client {
    static C: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    C.get_or_init(client)
}

/// Monolithic blob push (`POST ?digest=` with the body) through `c`; must
/// be acknowledged (201, the digest echoed). Returns the digest.
#[track_caller]
pub fn push_blob_with(
    c: &reqwest::blocking::Client,
    base: &str,
    repo: &str,
    data: &[u8],
) -> String {
    let d = digest(data);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .unwrap_or_else(|e| panic!("blob push of {d} to {repo}: {e}"));
    let echoed = r
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = r.status().as_u16();
    assert_eq!(
        status,
        201,
        "monolithic push of {d} to {repo}: {}",
        r.text().unwrap_or_default()
    );
    assert_eq!(
        echoed.as_deref(),
        Some(d.as_str()),
        "digest of {d} in {repo}"
    );
    d
}

/// [`push_blob_with`] through the shared client.
#[track_caller]
pub fn push_blob(base: &str, repo: &str, data: &[u8]) -> String {
    push_blob_with(http(), base, repo, data)
}

/// Puts manifest bytes under `reference` with `media_type`; must be
/// acknowledged (201). Returns the digest of the bytes.
#[track_caller]
pub fn put_manifest(
    base: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> String {
    let r = http()
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(body.to_vec())
        .send()
        .unwrap_or_else(|e| panic!("manifest push {repo}:{reference}: {e}"));
    let status = r.status().as_u16();
    assert_eq!(
        status,
        201,
        "manifest push {repo}:{reference}: {}",
        r.text().unwrap_or_default()
    );
    digest(body)
}

/// Where a data directory keeps a blob's bytes: `blobs/<alg>/<hex[..2]>/<hex>`.
pub fn blob_file(data: &Path, d: &str) -> PathBuf {
    let (alg, hex) = d.split_once(':').expect("digest");
    data.join("blobs").join(alg).join(&hex[..2]).join(hex)
}

/// Every file under `root`, relative path -> size. `root` must exist (a
/// test compares these trees, and a missing root would make the comparison
/// vacuous); a directory below it may vanish while it is walked (garbage
/// collection removes empty shards).
pub fn files_under(root: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if dir != root && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("cannot list {}: {e}", dir.display()),
        };
        for e in rd {
            let Ok(e) = e else { continue };
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue; // removed while walked
            };
            if md.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, md.len());
            }
        }
    }
    out
}

/// Every file under `<data-dir>/blobs` is `<alg>/<hex[..2]>/<hex>` and its
/// content hashes to its name: nothing partial, torn or misnamed is there,
/// and there is at least one blob to check.
#[track_caller]
pub fn assert_blob_store_consistent(dir: &Path) {
    use sha2::Digest as _;
    let root = dir.join("blobs");
    let mut stack = vec![root.clone()];
    let mut n = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let parts: Vec<&str> = rel.split('/').collect();
            assert!(
                parts.len() == 3 && parts[0] == "sha256" && parts[2].starts_with(parts[1]),
                "unexpected file blobs/{rel}"
            );
            let data = std::fs::read(&p).unwrap();
            assert_eq!(
                hex::encode(sha2::Sha256::digest(&data)),
                parts[2],
                "blobs/{rel} does not hash to its name (partial or corrupt content)"
            );
            n += 1;
        }
    }
    assert!(n > 0, "no blobs under {}", root.display());
}

/// A small deterministic generator (xorshift), so that a failing seed can
/// be replayed.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// `berth fsck --json` on a data directory no server is using must exit 0
/// (it exits non-zero on any problem); `when` says after what, for the
/// failure message.
#[track_caller]
pub fn assert_fsck_clean(data: &Path, when: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["fsck", "--json", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsck {when}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `f(0..n)` on `n` threads released together by a barrier (so that
/// the requests really race) and returns the results in index order.
pub fn all_at_once<T: Send + 'static>(
    n: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = std::sync::Arc::new(f);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (f, b) = (f.clone(), barrier.clone());
            std::thread::spawn(move || {
                b.wait();
                f(i)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("thread panicked"))
        .collect()
}

/// The `berth` binary under test, as a command to add arguments to.
pub fn berth_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth"))
}

/// Runs a `berth` command that prints JSON (`--json`): its exit code, the
/// parsed stdout (`null` when it is not JSON) and both outputs for messages.
pub fn run_json(cmd: &mut Command) -> (Option<i32>, serde_json::Value, String) {
    let out = cmd.env("RUST_LOG", "warn").output().expect("run berth");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let raw = format!(
        "stdout {stdout}; stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code(), json, raw)
}

/// Runs `cmd` to completion; it must exit 0. Returns its stdout.
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run berth");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}
