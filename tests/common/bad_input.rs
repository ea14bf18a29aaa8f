//! Helpers of the bad-input suites (`bad_input*.rs`): requests over a raw
//! TCP connection (so that path tricks reach the server exactly as
//! written), responses read whole, a snapshot of what storage holds, and a
//! fixture of repositories with blobs, manifests and tags.

// Re-exported for the suites that glob-import this module (a binary that
// does not use one would warn).
#[allow(unused_imports)]
pub use super::files_under;
use super::{client, digest, Server};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Repositories whose tag lists are compared before and after every row.
pub const REPOS: [&str; 2] = ["test/a", "test/b"];

// ---------------------------------------------------------------------------
// Raw HTTP/1.1

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn code(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v["errors"][0]["code"].as_str().map(str::to_string)
    }

    pub fn body_text(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        if s.len() > 300 {
            format!("{}...", &s[..300])
        } else {
            s.into_owned()
        }
    }
}

pub fn host_port(base: &str) -> &str {
    base.strip_prefix("http://")
        .expect("http base url")
        .trim_end_matches('/')
}

/// Sends one request with the request-target exactly as given. The body is
/// written from a second thread so that an early answer (413 before the body
/// is read) is still received.
pub fn raw(
    base: &str,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Resp {
    let hp = host_port(base);
    let mut stream = TcpStream::connect(hp).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {hp}\r\nConnection: close\r\n");
    let has_len = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len && (!body.is_empty() || matches!(method, "PUT" | "POST" | "PATCH")) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut w = stream.try_clone().expect("clone stream");
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(head.as_bytes());
        let _ = w.write_all(&body);
        let _ = w.flush();
    });
    let resp = read_response(&mut stream, method == "HEAD");
    let _ = writer.join();
    resp
}

pub fn read_response(stream: &mut TcpStream, head_only: bool) -> Resp {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        match stream.read(&mut tmp) {
            Ok(0) => panic!(
                "connection closed before a complete response head: {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) => panic!(
                "reading response failed: {e} (got so far: {:?})",
                String::from_utf8_lossy(&buf)
            ),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut rest = buf[head_end + 4..].to_vec();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        // Read to EOF (Connection: close), then decode.
        let _ = stream.read_to_end(&mut rest);
        dechunk(&rest)
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while rest.len() < len {
            match stream.read(&mut tmp) {
                Ok(0) | Err(_) => break,
                Ok(n) => rest.extend_from_slice(&tmp[..n]),
            }
        }
        rest.truncate(len);
        rest
    } else {
        let _ = stream.read_to_end(&mut rest);
        rest
    };
    Resp {
        status,
        headers,
        body,
    }
}

pub fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(p) = find(b, b"\r\n") {
        let size_str = String::from_utf8_lossy(&b[..p]);
        let size =
            usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = p + 2;
        let end = (start + size).min(b.len());
        out.extend_from_slice(&b[start..end]);
        b = &b[(end + 2).min(b.len())..];
    }
    out
}

// ---------------------------------------------------------------------------
// Storage snapshot

#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub catalog: (u16, String),
    pub tags: Vec<(String, u16, String)>,
    pub blobs: BTreeMap<String, u64>,
}

pub fn snapshot(s: &Server) -> Snapshot {
    let c = client();
    let get = |path: &str| {
        let r = c.get(format!("{}{path}", s.url())).send().expect("GET");
        let st = r.status().as_u16();
        let body = r.text().unwrap_or_default();
        // Normalise JSON so that key order or whitespace does not matter.
        let body = serde_json::from_str::<Value>(&body)
            .map(|v| v.to_string())
            .unwrap_or(body);
        (st, body)
    };
    let catalog = get("/v2/_catalog");
    let tags = REPOS
        .iter()
        .map(|r| {
            let (st, body) = get(&format!("/v2/{r}/tags/list"));
            (r.to_string(), st, body)
        })
        .collect();
    Snapshot {
        catalog,
        tags,
        blobs: files_under(&s.data_dir().join("blobs")),
    }
}

// ---------------------------------------------------------------------------
// Fixture

pub struct Fixture {
    pub config: (String, usize),
    pub layer: (String, usize),
    pub only_b: (String, usize),
    pub manifest_a: (String, usize),
    pub manifest_b: (String, usize),
    pub layer_bytes: Vec<u8>,
}

pub fn push_blob(s: &Server, repo: &str, bytes: &[u8]) -> (String, usize) {
    let d = digest(bytes);
    let r = client()
        .post(format!("{}/v2/{repo}/blobs/uploads/?digest={d}", s.url()))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .expect("push blob");
    assert_eq!(
        r.status().as_u16(),
        201,
        "fixture: monolithic push to {repo}"
    );
    (d, bytes.len())
}

pub fn push_manifest(
    s: &Server,
    repo: &str,
    reference: &str,
    mt: &str,
    bytes: &[u8],
) -> (String, usize) {
    let r = client()
        .put(format!("{}/v2/{repo}/manifests/{reference}", s.url()))
        .header("Content-Type", mt)
        .body(bytes.to_vec())
        .send()
        .expect("push manifest");
    assert_eq!(
        r.status().as_u16(),
        201,
        "fixture: manifest push to {repo}:{reference}"
    );
    (digest(bytes), bytes.len())
}

pub fn desc(mt: &str, d: &(String, usize)) -> Value {
    json!({"mediaType": mt, "digest": d.0, "size": d.1})
}

pub fn image(config: &(String, usize), layers: &[&(String, usize)], annotation: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, config),
        "layers": layers.iter().map(|l| desc(OCI_LAYER, l)).collect::<Vec<_>>(),
        "annotations": {"test": annotation},
    }))
    .unwrap()
}

pub fn setup_fixture(s: &Server) -> Fixture {
    let config_bytes =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer_bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    let config = push_blob(s, "test/a", config_bytes);
    let layer = push_blob(s, "test/a", &layer_bytes);
    push_blob(s, "test/b", config_bytes);
    let only_b = push_blob(s, "test/b", b"this blob is linked to test/b only");
    let manifest_a = push_manifest(
        s,
        "test/a",
        "v1",
        OCI_MANIFEST,
        &image(&config, &[&layer], "a"),
    );
    let manifest_b = push_manifest(
        s,
        "test/b",
        "v1",
        OCI_MANIFEST,
        &image(&config, &[&only_b], "b"),
    );
    Fixture {
        config,
        layer,
        only_b,
        manifest_a,
        manifest_b,
        layer_bytes,
    }
}

/// Creates an upload session in test/a and returns its path (with query, if
/// the server put one in Location).
pub fn new_session(s: &Server, first_chunk: &[u8]) -> String {
    let r = raw(s.url(), "POST", "/v2/test/a/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 202, "setup: POST session: {}", r.body_text());
    let loc = location_path(r.header("Location").expect("setup: Location"));
    if !first_chunk.is_empty() {
        let r = raw(
            s.url(),
            "PATCH",
            &loc,
            &[
                ("Content-Type".into(), "application/octet-stream".into()),
                (
                    "Content-Range".into(),
                    format!("0-{}", first_chunk.len() - 1),
                ),
            ],
            first_chunk,
        );
        assert_eq!(r.status, 202, "setup: PATCH first chunk: {}", r.body_text());
        return location_path(r.header("Location").expect("setup: PATCH Location"));
    }
    loc
}

/// Path (and query) of a Location header that may be absolute.
pub fn location_path(loc: &str) -> String {
    if let Some(rest) = loc
        .strip_prefix("http://")
        .or_else(|| loc.strip_prefix("https://"))
    {
        match rest.find('/') {
            Some(i) => rest[i..].to_string(),
            None => "/".to_string(),
        }
    } else {
        loc.to_string()
    }
}
