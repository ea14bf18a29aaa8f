//! Helpers of the token-mode black-box suites (`auth*.rs`): a `berth
//! serve` with a config file on any address, users created offline,
//! requests with credentials, the management API and the token endpoint.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::Value;

pub const ADMIN_PW: &str = "admin-password-1";
pub const PW: &str = "user-password-1";
pub const MT: &str = "application/vnd.oci.image.manifest.v1+json";

/// A `berth serve` started here, stopped (killed) on drop.
pub struct Proc {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

pub fn berth() -> Command {
    super::berth_cmd()
}

/// Starts `berth serve` on `addr` with `config` (TOML) over `dir/data`.
pub fn serve(dir: &Path, addr: &str, config: &str) -> Proc {
    serve_with(dir, addr, config, &[], &[], None)
}

/// [`serve`] with environment variables, extra arguments after `serve`, and
/// the server's log (stderr) written to `log` instead of the test's stderr.
pub fn serve_with(
    dir: &Path,
    addr: &str,
    config: &str,
    env: &[(&str, &str)],
    extra: &[&str],
    log: Option<&Path>,
) -> Proc {
    let cfg = dir.join("berth.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut cmd = berth();
    cmd.arg("serve")
        .arg("--config")
        .arg(&cfg)
        .arg("--addr")
        .arg(addr)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(extra)
        .env("RUST_LOG", "warn")
        .env_remove("BERTH_ADMIN_PASSWORD")
        .env_remove("BERTH_AUTH__MODE")
        .stdout(Stdio::piped())
        .stderr(match log {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::inherit(),
        });
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn berth");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("berth listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Proc {
        child,
        url,
        dir: dir.to_path_buf(),
    }
}

/// `berth user add NAME [--admin]` with the password on stdin.
pub fn user_add(dir: &Path, name: &str, pw: &str, admin: bool) {
    let mut cmd = berth();
    cmd.args(["user", "add", name, "--data-dir"])
        .arg(dir.join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if admin {
        cmd.arg("--admin");
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{pw}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client with a request timeout, not following redirects.
pub fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A client whose connections come from `ip` (a loopback address).
pub fn client_from(ip: &str) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .local_address(Some(ip.parse().unwrap()))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[derive(Clone, Debug)]
pub enum Cred {
    None,
    Basic(String, String),
    Bearer(String),
}

pub fn basic(u: &str, p: &str) -> Cred {
    Cred::Basic(u.into(), p.into())
}

pub fn send(c: &Client, m: Method, url: &str, cred: &Cred) -> RequestBuilder {
    let r = c.request(m, url);
    match cred {
        Cred::None => r,
        Cred::Basic(u, p) => r.basic_auth(u, Some(p)),
        Cred::Bearer(t) => r.bearer_auth(t),
    }
}

/// A management API call: status and JSON body (`null` if none).
pub fn api(
    c: &Client,
    m: Method,
    url: &str,
    path: &str,
    cred: &Cred,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = send(c, m, &format!("{url}/api/v1{path}"), cred);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().unwrap();
    let s = r.status().as_u16();
    let text = r.text().unwrap();
    (s, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `GET /auth/token` with `scope`s: status and JSON body.
pub fn get_token(c: &Client, url: &str, cred: &Cred, scopes: &[&str]) -> (u16, Value) {
    let mut q = vec![("service", "berth".to_string())];
    for s in scopes {
        q.push(("scope", s.to_string()));
    }
    let r = send(c, Method::GET, &format!("{url}/auth/token"), cred)
        .query(&q)
        .send()
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().unwrap_or(Value::Null))
}

/// A JWT's claims, decoded without verification.
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

/// Token-mode config with `extra` lines appended to `[auth]`.
pub fn token_config(extra: &str) -> String {
    format!("[auth]\nmode = \"token\"\n{extra}")
}

/// A server in token mode with an admin user, the users `users` (name,
/// password; not administrators) and `extra` config lines in `[auth]`; the
/// temporary directory lives as long as the returned value.
pub fn token_server(extra: &str, users: &[(&str, &str)]) -> (Proc, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    user_add(dir.path(), "admin", ADMIN_PW, true);
    for (u, pw) in users {
        user_add(dir.path(), u, pw, false);
    }
    let p = serve(dir.path(), "127.0.0.1:0", &token_config(extra));
    (p, dir)
}

/// The server process's resident set size, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Pushes a blob to `repo` in one request; returns its digest.
pub fn push_blob(c: &Client, url: &str, repo: &str, cred: &Cred, bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let d = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
    let r = send(
        c,
        Method::POST,
        &format!("{url}/v2/{repo}/blobs/uploads/?digest={d}"),
        cred,
    )
    .body(bytes.to_vec())
    .send()
    .unwrap();
    assert_eq!(
        r.status(),
        201,
        "blob push to {repo}: {}",
        r.text().unwrap()
    );
    d
}

/// `POST /users` as `admin`: a user `name` with `pw` (must be 201).
#[track_caller]
pub fn create_user(c: &Client, url: &str, admin: &Cred, name: &str, pw: &str) {
    let (s, v) = api(
        c,
        Method::POST,
        url,
        "/users",
        admin,
        Some(serde_json::json!({"name": name, "password": pw})),
    );
    assert_eq!(s, 201, "{v}");
}

/// `PUT /namespaces/{ns}/grants/{user}` as `admin` (must be 200).
#[track_caller]
pub fn grant(c: &Client, url: &str, admin: &Cred, ns: &str, user: &str, role: &str) {
    let (s, v) = api(
        c,
        Method::PUT,
        url,
        &format!("/namespaces/{ns}/grants/{user}"),
        admin,
        Some(serde_json::json!({ "role": role })),
    );
    assert_eq!(s, 200, "{v}");
}

/// `POST /tokens` as `admin` with `body` (must be 201): the token's id and
/// its secret.
#[track_caller]
pub fn create_scoped_token(c: &Client, url: &str, admin: &Cred, body: Value) -> (String, String) {
    let (s, v) = api(c, Method::POST, url, "/tokens", admin, Some(body));
    assert_eq!(s, 201, "{v}");
    (
        v["token"]["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    )
}
