//! Security hardening, black-box: media types a manifest may carry, the
//! explicit caller, stalled and oversized bodies, per-client upload shares,
//! the manifest-bytes budget, upload sessions per repository, what the
//! management API shows a scoped caller, cross-namespace references and
//! request heads at the size limit. Each test is named after the finding it
//! pins.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const MT: &str = "application/vnd.oci.image.manifest.v1+json";
const ADMIN_PW: &str = "admin-password-1";

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Starts `berth serve` with `config` (TOML) on a fresh directory.
fn serve(config: &str) -> (common::Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("berth.toml");
    std::fs::write(&cfg, config).unwrap();
    let s = common::Server::start_in(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    (s, dir)
}

/// `berth user add admin --admin` on `data`, before the server starts.
fn add_admin(data: &Path) {
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
fn serve_token(extra: &str) -> (common::Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    add_admin(&dir.path().join("data"));
    let cfg = dir.path().join("berth.toml");
    std::fs::write(
        &cfg,
        format!("[auth]\nmode = \"token\"\nmax_failed_logins = 1000\n{extra}"),
    )
    .unwrap();
    let s = common::Server::start_in(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    (s, dir)
}

/// Reads a response head: until the blank line, the connection closes, or
/// `wait` passes.
fn read_head(s: &mut TcpStream, wait: Duration) -> String {
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
fn closes_within(s: &mut TcpStream, wait: Duration) -> bool {
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
fn stalled(
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

fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Pushes a config and a layer to `repo`; returns their digests and sizes.
fn push_blobs(
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
                common::digest(b)
            ))
            .body(b.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    [
        (common::digest(&config), config.len()),
        (common::digest(&layer), layer.len()),
    ]
}

fn image(
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

const CONFIG_MT: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_MT: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

#[test]
fn manifest_media_type_with_control_character_is_refused_and_nothing_stored() {
    let (server, _dir) = common::Server::start();
    let url = server.url();
    let c = common::client();
    let blobs = push_blobs(&c, url, "mt/app", "mt");
    let bad = "application/vnd.oci.image.manifest.v1+json\u{1}x";
    let cases: Vec<(&str, String, Option<&[u8]>)> = vec![
        ("mediaType with a control character", image(&blobs, bad, CONFIG_MT, LAYER_MT), None),
        ("unknown type with a newline", image(&blobs, "application/x-thing\nx", CONFIG_MT, LAYER_MT), None),
        ("config mediaType", image(&blobs, MT, "application/vnd.oci.image.config.v1+json\u{7f}", LAYER_MT), None),
        ("layer mediaType", image(&blobs, MT, CONFIG_MT, "not a media type"), None),
        (
            "artifactType",
            json!({"schemaVersion": 2, "mediaType": MT, "artifactType": "application/x\u{1}",
                   "config": {"mediaType": CONFIG_MT, "digest": blobs[0].0, "size": blobs[0].1}, "layers": []})
            .to_string(),
            None,
        ),
        (
            "Content-Type with obs-text",
            image(&blobs, "application/vnd.example.thing.v1+json", CONFIG_MT, LAYER_MT).replace(
                "\"mediaType\":\"application/vnd.example.thing.v1+json\",",
                "",
            ),
            Some(b"application/vnd.example.thing.v1+json\xff"),
        ),
        ("Content-Type with a space", image(&blobs, MT, CONFIG_MT, LAYER_MT), Some(b"application/vnd.oci.image.manifest.v1+json; charset")),
    ];
    for (what, body, ct) in cases {
        let digest = common::digest(body.as_bytes());
        let mut r = c
            .put(format!("{url}/v2/mt/app/manifests/{digest}"))
            .body(body);
        if let Some(ct) = ct {
            r = r.header(
                "content-type",
                reqwest::header::HeaderValue::from_bytes(ct).unwrap(),
            );
        }
        let r = r.send().unwrap();
        assert_eq!(r.status(), 400, "{what}: pushed anyway");
        let e: Value = r.json().unwrap();
        assert_eq!(e["errors"][0]["code"], "MANIFEST_INVALID", "{what}: {e}");
        let r = c
            .get(format!("{url}/v2/mt/app/manifests/{digest}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 404, "{what}: stored although refused");
    }
    // A valid unknown media type, with parameters in Content-Type, is still
    // stored and served as pushed; the server survived all of the above.
    let body = image(
        &blobs,
        "application/vnd.example.thing.v1+json",
        CONFIG_MT,
        LAYER_MT,
    );
    let r = c
        .put(format!("{url}/v2/mt/app/manifests/ok"))
        .header(
            "content-type",
            "application/vnd.example.thing.v1+json; charset=utf-8",
        )
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let r = c
        .get(format!("{url}/v2/mt/app/manifests/ok"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.example.thing.v1+json"
    );
    assert_eq!(r.text().unwrap(), body);
}

/// The server's sources: every handler gets its caller as a parameter, and
/// nothing outside the authentication module makes an all-powerful one.
#[test]
fn authorisation_has_no_open_default_when_the_caller_is_missing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/server/src");
    let mut files = vec![];
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    assert!(
        files.len() > 5,
        "sources not found under {}",
        root.display()
    );
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.strip_prefix(&root).unwrap().display().to_string();
        assert!(
            !text.contains("get::<Caller>") && !text.contains("get::<auth::Caller>"),
            "{name} looks the caller up in the request extensions"
        );
        if name != "auth.rs" {
            assert!(
                !text.contains("Caller::open("),
                "{name} builds an open caller (every right) itself"
            );
        }
    }
}

#[test]
fn stalled_request_body_gets_408_and_its_connection_closed() {
    let (server, _dir) = serve("[server]\nbody_read_timeout_secs = 1\n");
    let a = addr(server.url());
    let c = common::client();
    let r = c
        .post(format!("{}/v2/stall/app/blobs/uploads/", server.url()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    // A blob chunk, a manifest and a management body, each declaring more
    // than it sends.
    let mut conns = vec![
        stalled(&a, "PATCH", &loc, "", 1 << 20, 100),
        stalled(
            &a,
            "PUT",
            "/v2/stall/app/manifests/v1",
            &format!("Content-Type: {MT}\r\n"),
            4000,
            100,
        ),
        stalled(
            &a,
            "POST",
            "/api/v1/namespaces",
            "Content-Type: application/json\r\n",
            4000,
            100,
        ),
    ];
    let start = Instant::now();
    for (i, s) in conns.iter_mut().enumerate() {
        let head = read_head(s, Duration::from_secs(10));
        assert_eq!(
            status_of(&head),
            408,
            "request {i}: {head:?} after {:?}",
            start.elapsed()
        );
        assert!(
            closes_within(s, Duration::from_secs(5)),
            "request {i}: connection kept open"
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "took {:?}",
        start.elapsed()
    );
    // The upload session is intact: it still accepts its chunk.
    let r = c
        .patch(format!("{}{loc}", server.url()))
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[test]
fn anonymous_callers_are_refused_before_their_body_is_read() {
    let (server, _dir) = serve_token("[server]\nbody_read_timeout_secs = 30\n");
    let a = addr(server.url());
    // Declared 1 MiB, sent 100 bytes: the answer must come from the head
    // alone, long before the body read timeout.
    for (method, path) in [
        ("POST", "/api/v1/users"),
        ("POST", "/api/v1/namespaces"),
        ("PUT", "/api/v1/namespaces/x/retention"),
        ("PATCH", "/api/v1/registry"),
        ("POST", "/v2/priv/app/blobs/uploads/"),
        ("PUT", "/v2/priv/app/manifests/v1"),
    ] {
        let start = Instant::now();
        let mut s = stalled(
            &a,
            method,
            path,
            "Content-Type: application/json\r\n",
            1 << 20,
            100,
        );
        let head = read_head(&mut s, Duration::from_secs(10));
        assert_eq!(status_of(&head), 401, "{method} {path}: {head:?}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{method} {path}: took {:?}",
            start.elapsed()
        );
        assert!(
            closes_within(&mut s, Duration::from_secs(5)),
            "{method} {path}: connection kept open"
        );
    }
    // The token form is small: a declared megabyte is refused at once.
    let start = Instant::now();
    let mut s = stalled(
        &a,
        "POST",
        "/auth/token",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        1 << 20,
        100,
    );
    let head = read_head(&mut s, Duration::from_secs(10));
    assert_eq!(status_of(&head), 413, "{head:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    // So is a management body over its cap, even from an administrator.
    let auth = base64_basic("admin", ADMIN_PW);
    let mut s = stalled(
        &a,
        "POST",
        "/api/v1/namespaces",
        &format!("Authorization: Basic {auth}\r\n"),
        2 << 20,
        100,
    );
    let head = read_head(&mut s, Duration::from_secs(10));
    assert_eq!(status_of(&head), 413, "{head:?}");
}

fn base64_basic(u: &str, p: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
}

/// A client bound to `ip` (a loopback address), so that tests can be
/// several anonymous clients at once. Raw connections ([`stalled`]) come
/// from 127.0.0.1.
fn client_from(ip: &str) -> reqwest::blocking::Client {
    common::install_tls_provider();
    reqwest::blocking::Client::builder()
        .local_address(Some(ip.parse().unwrap()))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[test]
fn one_client_cannot_take_every_upload_place() {
    let (server, _dir) = serve(
        "[server]\nmax_concurrent_uploads = 8\nmax_concurrent_uploads_per_client = 2\nbody_read_timeout_secs = 2\n",
    );
    let url = server.url().to_string();
    let a = addr(&url);
    let me = client_from("127.0.0.1");
    let other = client_from("127.0.0.2");
    let session = |c: &reqwest::blocking::Client| {
        let r = c
            .post(format!("{url}/v2/share/app/blobs/uploads/"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
        r.headers()["location"].to_str().unwrap().to_string()
    };
    let mine: Vec<String> = (0..3).map(|_| session(&me)).collect();
    let theirs = session(&other);
    // Two stalled chunks from 127.0.0.1 use its whole share.
    let mut slow: Vec<TcpStream> = mine[..2]
        .iter()
        .map(|loc| stalled(&a, "PATCH", loc, "", 1000, 1))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = me
        .patch(format!("{url}{}", mine[2]))
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status(), 429, "a third upload of the same client");
    assert_eq!(r.headers()["retry-after"], "1");
    let e: Value = r.json().unwrap();
    assert_eq!(e["errors"][0]["code"], "TOOMANYREQUESTS");
    assert!(
        e["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("max_concurrent_uploads_per_client"),
        "{e}"
    );
    // Another client still uploads.
    let r = other
        .patch(format!("{url}{theirs}"))
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    // The stalled bodies are dropped after the body read timeout, which
    // gives the places back.
    for s in &mut slow {
        let head = read_head(s, Duration::from_secs(10));
        assert_eq!(status_of(&head), 408, "{head:?}");
    }
    let r = me
        .patch(format!("{url}{}", mine[2]))
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[test]
fn manifest_bytes_in_flight_are_bounded() {
    let (server, _dir) = serve("[server]\nmax_manifest_bytes_in_flight = 16384\n");
    let url = server.url().to_string();
    let a = addr(&url);
    let c = common::client();
    let blobs = push_blobs(&c, &url, "budget/app", "budget");
    let body = image(&blobs, MT, CONFIG_MT, LAYER_MT);
    // Two stalled 6000-byte manifests take 12000 of the 16384 bytes.
    let mut slow: Vec<TcpStream> = (0..2)
        .map(|i| {
            stalled(
                &a,
                "PUT",
                &format!("/v2/budget/app/manifests/s{i}"),
                &format!("Content-Type: {MT}\r\n"),
                6000,
                10,
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let padded = format!("{}{}", body, " ".repeat(6000 - body.len()));
    let r = c
        .put(format!("{url}/v2/budget/app/manifests/third"))
        .header("content-type", MT)
        .body(padded.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 429, "a manifest past the budget");
    assert_eq!(r.headers()["retry-after"], "1");
    // A small one still fits.
    let r = c
        .put(format!("{url}/v2/budget/app/manifests/small"))
        .header("content-type", MT)
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    drop(slow.drain(..));
    std::thread::sleep(Duration::from_millis(300));
    let r = c
        .put(format!("{url}/v2/budget/app/manifests/third"))
        .header("content-type", MT)
        .body(padded)
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        201,
        "the budget is given back when the stalled pushes go"
    );
}

#[test]
fn request_head_over_max_header_bytes_gets_431_at_the_limit() {
    let (server, _dir) = serve("[server]\nmax_header_bytes = 65536\n");
    let a = addr(server.url());
    let send = |size: usize| {
        let fixed = "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n".len();
        let head = format!(
            "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(size - fixed)
        );
        assert_eq!(head.len(), size);
        let mut s = TcpStream::connect(&a).unwrap();
        let _ = s.write_all(head.as_bytes());
        read_head(&mut s, Duration::from_secs(10))
    };
    for size in [65537, 70_000, 114 << 10] {
        let head = send(size);
        assert!(
            head.starts_with("HTTP/1.1 431"),
            "a {size}-byte head answered {head:?}"
        );
    }
    let head = send(65536);
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "a head at the limit answered {head:?}"
    );
}

#[test]
fn upload_sessions_per_repository_are_limited_and_freed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("berth.toml");
    std::fs::write(
        &cfg,
        "[storage]\nmax_open_uploads_per_repository = 3\n[gc]\nupload_ttl_secs = 2\n",
    )
    .unwrap();
    let mut server = common::Server::start_in(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let c = common::client();
    let start = |url: &str, repo: &str| {
        c.post(format!("{url}/v2/{repo}/blobs/uploads/"))
            .send()
            .unwrap()
    };
    let url = server.url().to_string();
    let open: Vec<String> = (0..3)
        .map(|_| {
            let r = start(&url, "sess/app");
            assert_eq!(r.status(), 202);
            r.headers()["location"].to_str().unwrap().to_string()
        })
        .collect();
    let refused = |url: &str| {
        let r = start(url, "sess/app");
        assert_eq!(r.status(), 429, "a session past the limit");
        let e: Value = r.json().unwrap();
        assert_eq!(e["errors"][0]["code"], "TOOMANYREQUESTS");
        let detail = e["errors"][0]["detail"].as_str().unwrap().to_string();
        assert!(
            detail.contains("finish or cancel") && detail.contains("expire after 2 s"),
            "{detail}"
        );
    };
    refused(&url);
    // Other repositories have their own limit.
    assert_eq!(start(&url, "sess/other").status(), 202);
    // A cancelled session frees its place; so does a finished one.
    let r = c.delete(format!("{url}{}", open[0])).send().unwrap();
    assert_eq!(r.status(), 204);
    let again = start(&url, "sess/app");
    assert_eq!(again.status(), 202);
    refused(&url);
    let d = common::digest(b"done");
    let r = c
        .put(common::with_param(
            &format!("{url}{}", open[1]),
            &format!("digest={d}"),
        ))
        .body("done")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(start(&url, "sess/app").status(), 202);
    // The count survives a restart: it comes from the recorded sessions.
    server.restart();
    let url = server.url().to_string();
    refused(&url);
    // Expired sessions free their places too.
    std::thread::sleep(Duration::from_millis(2500));
    let report = gc_run(&c, &url);
    assert!(report["uploads_expired"].as_u64().unwrap() >= 3, "{report}");
    for _ in 0..3 {
        assert_eq!(start(&url, "sess/app").status(), 202);
    }
    refused(&url);
}

/// Pushes an image `repo:tag` as `user` (Basic), with blobs unique to
/// `salt`; returns the manifest digest.
fn push_image_as(
    c: &reqwest::blocking::Client,
    url: &str,
    repo: &str,
    tag: &str,
    salt: &str,
    user: (&str, &str),
) -> String {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","salt":"{salt}"}}"#).into_bytes();
    let layer = common::bytes(
        salt.len() as u64 * 7919 + salt.as_bytes()[0] as u64,
        3000 + salt.len(),
    );
    for b in [&config, &layer] {
        let r = c
            .post(format!(
                "{url}/v2/{repo}/blobs/uploads/?digest={}",
                common::digest(b)
            ))
            .basic_auth(user.0, Some(user.1))
            .body(b.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "blob to {repo}");
    }
    let m = json!({
        "schemaVersion": 2, "mediaType": MT,
        "config": {"mediaType": CONFIG_MT, "digest": common::digest(&config), "size": config.len()},
        "layers": [{"mediaType": LAYER_MT, "digest": common::digest(&layer), "size": layer.len()}],
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
    common::digest(m.as_bytes())
}

#[test]
fn scoped_token_sees_nothing_outside_its_scope_in_the_management_api() {
    let (server, _dir) = serve_token("");
    let url = server.url().to_string();
    let c = common::client();
    let admin = ("admin", ADMIN_PW);
    let r = c
        .post(format!("{url}/api/v1/namespaces"))
        .basic_auth(admin.0, Some(admin.1))
        .json(&json!({"name": "priv", "is_public": false}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    for (repo, salts) in [("priv/app", ["a1", "a2"]), ("priv/hidden", ["h1", "h2"])] {
        for (i, salt) in salts.iter().enumerate() {
            push_image_as(&c, &url, repo, &format!("v{i}"), salt, admin);
        }
    }
    let r = c
        .put(format!("{url}/api/v1/namespaces/priv/retention"))
        .basic_auth(admin.0, Some(admin.1))
        .json(&json!({"policies": [{"repositories": "*", "keep_last": 1}]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let r = c
        .post(format!("{url}/api/v1/tokens"))
        .basic_auth(admin.0, Some(admin.1))
        .json(&json!({"name": "ci", "scopes": [{"repository": "priv/app", "actions": ["pull"]}]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let secret = r.json::<Value>().unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |path: &str| {
        let r = c
            .get(format!("{url}/api/v1{path}"))
            .basic_auth("ci", Some(&secret))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().unwrap())
    };
    let admin_view: Value = c
        .get(format!("{url}/api/v1/namespaces/priv"))
        .basic_auth(admin.0, Some(admin.1))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(admin_view["image_count"], 2);
    let app: Value = serde_json::from_str(&get("/namespaces/priv/repositories/app").1).unwrap();

    // Figures: only the repository in scope counts.
    let (s, ns) = get("/namespaces/priv");
    assert_eq!(s, 200, "{ns}");
    let ns: Value = serde_json::from_str(&ns).unwrap();
    assert_eq!(ns["image_count"], 1, "{ns}");
    assert_eq!(ns["size"], app["repository"]["size"], "{ns} vs {app}");
    assert!(ns["size"].as_u64().unwrap() < admin_view["size"].as_u64().unwrap());
    let (_, list) = get("/namespaces");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["namespaces"][0]["image_count"], 1, "{list}");
    assert_eq!(
        list["namespaces"][0]["size"], app["repository"]["size"],
        "{list}"
    );

    // The retention preview names nothing of priv/hidden.
    let (s, preview) = get("/namespaces/priv/retention/preview");
    assert_eq!(s, 200, "{preview}");
    assert!(!preview.contains("hidden"), "{preview}");
    assert!(preview.contains("priv/app"), "{preview}");

    // A hidden repository answers exactly like a missing one.
    for suffix in ["", "/tags", "/artifacts", "/tags/v0"] {
        let hidden = get(&format!("/namespaces/priv/repositories/hidden{suffix}"));
        let missing = get(&format!("/namespaces/priv/repositories/nothere{suffix}"));
        assert_eq!(hidden.0, 404, "hidden{suffix}: {}", hidden.1);
        assert_eq!(
            hidden.1.replace("hidden", "NAME"),
            missing.1.replace("nothere", "NAME"),
            "hidden{suffix} differs from a missing repository"
        );
    }
}

/// Runs garbage collection through the API and waits for its report.
fn gc_run(c: &reqwest::blocking::Client, url: &str) -> Value {
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

fn blob_file(data: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    data.join("blobs/sha256").join(&hex[..2]).join(hex)
}

#[test]
fn manifest_of_unknown_type_cannot_keep_another_namespaces_blob_alive() {
    let (server, dir) = serve("[gc]\ngrace_period_secs = 0\n");
    let url = server.url().to_string();
    let data = dir.path().join("data");
    let c = common::client();
    let secret = push_blobs(&c, &url, "secret/vault", "vault");
    let r = c
        .put(format!("{url}/v2/secret/vault/manifests/v1"))
        .header("content-type", MT)
        .body(image(&secret, MT, CONFIG_MT, LAYER_MT))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let own = push_blobs(&c, &url, "priv/app", "own");
    // Names the vault's layer and config next to its own blob.
    let holder = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.example.holder.v1+json",
        "config": {"mediaType": CONFIG_MT, "digest": secret[0].0, "size": secret[0].1},
        "layers": [
            {"mediaType": LAYER_MT, "digest": secret[1].0, "size": secret[1].1},
            {"mediaType": LAYER_MT, "digest": own[1].0, "size": own[1].1},
        ],
    })
    .to_string();
    let r = c
        .put(format!("{url}/v2/priv/app/manifests/holder"))
        .body(holder.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    assert!(blob_file(&data, &secret[1].0).exists());

    let r = c
        .delete(format!("{url}/api/v1/namespaces/secret"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    while c
        .get(format!("{url}/api/v1/namespaces/secret"))
        .send()
        .unwrap()
        .status()
        != 404
    {
        assert!(Instant::now() < deadline, "namespace secret not deleted");
        std::thread::sleep(Duration::from_millis(50));
    }
    gc_run(&c, &url);
    for (what, d) in [("layer", &secret[1].0), ("config", &secret[0].0)] {
        assert!(
            !blob_file(&data, d).exists(),
            "the vault's {what} is still on disk, kept alive by priv/app's manifest"
        );
    }
    // What priv/app holds itself stays, and the manifest is served as pushed.
    assert!(
        blob_file(&data, &own[1].0).exists(),
        "priv/app's own layer was collected"
    );
    let r = c
        .get(format!("{url}/v2/priv/app/manifests/holder"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), holder);
    let r = c
        .get(format!("{url}/v2/priv/app/blobs/{}", secret[1].0))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}
