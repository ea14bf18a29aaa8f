//! Helpers of the hardening tests: servers with a config, raw requests
//! that stall, response heads, small images, garbage-collection runs.

// Re-exported for the suites that glob-import this module (a binary that
// does not use one would warn).
#[allow(unused_imports)]
pub use super::blob_file;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const MT: &str = "application/vnd.oci.image.manifest.v1+json";
pub const ADMIN_PW: &str = "admin-password-1";

pub fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Starts `berth serve` with `config` (TOML) on a fresh directory.
pub fn serve(config: &str) -> (super::Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("berth.toml");
    std::fs::write(&cfg, config).unwrap();
    let s = super::Server::start_in(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    (s, dir)
}

/// `berth user add admin --admin` on `data`, before the server starts.
pub fn add_admin(data: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["user", "add", "admin", "--admin", "--data-dir"])
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{ADMIN_PW}\n").as_bytes())
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
}

/// A token-mode server with an administrator `admin`.
pub fn serve_token(extra: &str) -> (super::Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    add_admin(&dir.path().join("data"));
    let cfg = dir.path().join("berth.toml");
    std::fs::write(
        &cfg,
        format!("[auth]\nmode = \"token\"\nmax_failed_logins = 1000\n{extra}"),
    )
    .unwrap();
    let s = super::Server::start_in(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    (s, dir)
}

/// Reads a response head: until the blank line, the connection closes, or
/// `wait` passes.
pub fn read_head(s: &mut TcpStream, wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    while Instant::now() < deadline && !out.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the server closes the connection within `wait`.
pub fn closes_within(s: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Sends a request head and the first `sent` bytes of a body that declares
/// `declared` bytes, then stalls.
pub fn stalled(
    a: &str,
    method: &str,
    path: &str,
    headers: &str,
    declared: usize,
    sent: usize,
) -> TcpStream {
    let mut s = TcpStream::connect(a).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {declared}\r\n\r\n"
    )
    .unwrap();
    s.write_all(&vec![b'{'; sent]).unwrap();
    s
}

pub fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Pushes a config and a layer to `repo`; returns their digests and sizes.
pub fn push_blobs(
    c: &reqwest::blocking::Client,
    url: &str,
    repo: &str,
    salt: &str,
) -> [(String, usize); 2] {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","salt":"{salt}"}}"#).into_bytes();
    let layer = format!("layer of {salt}").into_bytes();
    for b in [&config, &layer] {
        let r = c
            .post(format!(
                "{url}/v2/{repo}/blobs/uploads/?digest={}",
                super::digest(b)
            ))
            .body(b.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    [
        (super::digest(&config), config.len()),
        (super::digest(&layer), layer.len()),
    ]
}

pub fn image(
    blobs: &[(String, usize); 2],
    media_type: &str,
    config_mt: &str,
    layer_mt: &str,
) -> String {
    json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_mt, "digest": blobs[0].0, "size": blobs[0].1},
        "layers": [{"mediaType": layer_mt, "digest": blobs[1].0, "size": blobs[1].1}],
    })
    .to_string()
}

pub const CONFIG_MT: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MT: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub fn base64_basic(u: &str, p: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
}

/// A client bound to `ip` (a loopback address), so that tests can be
/// several anonymous clients at once. Raw connections ([`stalled`]) come
/// from 127.0.0.1.
pub fn client_from(ip: &str) -> reqwest::blocking::Client {
    super::install_tls_provider();
    reqwest::blocking::Client::builder()
        .local_address(Some(ip.parse().unwrap()))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Pushes an image `repo:tag` as `user` (Basic), with blobs unique to
/// `salt`; returns the manifest digest.
pub fn push_image_as(
    c: &reqwest::blocking::Client,
    url: &str,
    repo: &str,
    tag: &str,
    salt: &str,
    user: (&str, &str),
) -> String {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","salt":"{salt}"}}"#).into_bytes();
    let layer = super::bytes(
        salt.len() as u64 * 7919 + salt.as_bytes()[0] as u64,
        3000 + salt.len(),
    );
    for b in [&config, &layer] {
        let r = c
            .post(format!(
                "{url}/v2/{repo}/blobs/uploads/?digest={}",
                super::digest(b)
            ))
            .basic_auth(user.0, Some(user.1))
            .body(b.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "blob to {repo}");
    }
    let m = json!({
        "schemaVersion": 2, "mediaType": MT,
        "config": {"mediaType": CONFIG_MT, "digest": super::digest(&config), "size": config.len()},
        "layers": [{"mediaType": LAYER_MT, "digest": super::digest(&layer), "size": layer.len()}],
    })
    .to_string();
    let r = c
        .put(format!("{url}/v2/{repo}/manifests/{tag}"))
        .basic_auth(user.0, Some(user.1))
        .header("content-type", MT)
        .body(m.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "manifest to {repo}: {}", r.text().unwrap());
    super::digest(m.as_bytes())
}

/// Runs garbage collection through the API and waits for its report.
pub fn gc_run(c: &reqwest::blocking::Client, url: &str) -> Value {
    let r = c
        .post(format!("{url}/api/v1/gc"))
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
    let id = r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = c
            .get(format!("{url}/api/v1/gc/runs/{id}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if v["finished_at"].is_string() {
            return v["report"].clone();
        }
        assert!(Instant::now() < deadline, "gc did not finish: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
