//! Bad input gets the spec's error and changes nothing.
//!
//! A table of bad requests, each sent over a raw TCP connection so that path
//! tricks (`..`, `%2e%2e`, `//`) reach the server exactly as written (an HTTP
//! client library would normalise them away). For every row the test asserts
//! the exact status and `errors[0].code`, and that storage did not change:
//! `_catalog`, the tag lists of the test repositories, and the names and sizes
//! of every file under `<data-dir>/blobs/` (the content-addressed store; the
//! metadata database and upload staging live elsewhere and are not compared).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::{client, digest, Server};
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Repositories whose tag lists are compared before and after every row.
const REPOS: [&str; 2] = ["test/a", "test/b"];

// ---------------------------------------------------------------------------
// Raw HTTP/1.1

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn code(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v["errors"][0]["code"].as_str().map(str::to_string)
    }

    fn body_text(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        if s.len() > 300 {
            format!("{}...", &s[..300])
        } else {
            s.into_owned()
        }
    }
}

fn host_port(base: &str) -> &str {
    base.strip_prefix("http://")
        .expect("http base url")
        .trim_end_matches('/')
}

/// Sends one request with the request-target exactly as given. The body is
/// written from a second thread so that an early answer (413 before the body
/// is read) is still received.
fn raw(base: &str, method: &str, target: &str, headers: &[(String, String)], body: &[u8]) -> Resp {
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

fn read_response(stream: &mut TcpStream, head_only: bool) -> Resp {
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

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
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
struct Snapshot {
    catalog: (u16, String),
    tags: Vec<(String, u16, String)>,
    blobs: BTreeMap<String, u64>,
}

fn files_under(root: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
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

fn snapshot(s: &Server) -> Snapshot {
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

struct Fixture {
    config: (String, usize),
    layer: (String, usize),
    only_b: (String, usize),
    manifest_a: (String, usize),
    manifest_b: (String, usize),
    layer_bytes: Vec<u8>,
}

fn push_blob(s: &Server, repo: &str, bytes: &[u8]) -> (String, usize) {
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

fn push_manifest(
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

fn desc(mt: &str, d: &(String, usize)) -> Value {
    json!({"mediaType": mt, "digest": d.0, "size": d.1})
}

fn image(config: &(String, usize), layers: &[&(String, usize)], annotation: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, config),
        "layers": layers.iter().map(|l| desc(OCI_LAYER, l)).collect::<Vec<_>>(),
        "annotations": {"test": annotation},
    }))
    .unwrap()
}

fn setup_fixture(s: &Server) -> Fixture {
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

// ---------------------------------------------------------------------------
// Rows

#[derive(Clone)]
enum Setup {
    None,
    /// A fresh upload session in test/a, optionally with a first chunk.
    Session(Vec<u8>),
    /// A session in test/a that was created and then deleted.
    DeletedSession,
}

struct Row {
    name: String,
    setup: Setup,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// Digests that must be neither a blob nor a manifest in any test repo
    /// afterwards.
    absent: Vec<String>,
}

fn row(
    name: &str,
    method: &'static str,
    path: impl Into<String>,
    status: u16,
    code: &'static str,
) -> Row {
    Row {
        name: name.to_string(),
        setup: Setup::None,
        method,
        path: path.into(),
        headers: Vec::new(),
        body: Vec::new(),
        status,
        code,
        absent: Vec::new(),
    }
}

impl Row {
    fn body(mut self, b: impl Into<Vec<u8>>) -> Row {
        self.body = b.into();
        self
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Row {
        self.headers.push((k.to_string(), v.into()));
        self
    }
    fn octet(self) -> Row {
        self.header("Content-Type", "application/octet-stream")
    }
    fn manifest(self, mt: &str, b: impl Into<Vec<u8>>) -> Row {
        self.header("Content-Type", mt).body(b)
    }
    fn session(mut self, first_chunk: &[u8]) -> Row {
        self.setup = Setup::Session(first_chunk.to_vec());
        self
    }
    fn deleted_session(mut self) -> Row {
        self.setup = Setup::DeletedSession;
        self
    }
    fn absent(mut self, d: impl Into<String>) -> Row {
        self.absent.push(d.into());
        self
    }
}

const ZERO_UUID: &str = "00000000-0000-4000-8000-000000000000";

fn rows(f: &Fixture) -> Vec<Row> {
    let l = &f.layer.0;
    let hex = l.strip_prefix("sha256:").unwrap();
    let long_name = "a".repeat(256);
    let max_name = format!("{}/{}", "b".repeat(127), "c".repeat(127)); // 255 chars, valid
    let good = b"some bytes that will never be stored".to_vec();
    let good_d = digest(&good);
    let big: Vec<u8> = (0..1000u32).map(|i| (i % 13) as u8 + b'a').collect();
    let big_d = digest(&big);
    let prefix = b"abcd".to_vec();
    let sha512_d = {
        use sha2::Digest as _;
        format!(
            "sha512:{}",
            hex::encode(sha2::Sha512::digest(b"not the body"))
        )
    };
    let unknown = digest(b"a blob nobody pushed");

    let valid_other = image(&f.config, &[&f.layer], "not pushed anywhere");
    let valid_other_d = digest(&valid_other);

    let mut huge: Value = serde_json::from_slice(&image(&f.config, &[&f.layer], "huge")).unwrap();
    huge["annotations"]["padding"] = Value::String("x".repeat(4 * 1024 * 1024 + 1024));
    let huge = serde_json::to_vec(&huge).unwrap();
    let huge_d = digest(&huge);

    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let nested_in_obj = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[],"x":{nested}}}"#,
        desc(OCI_CONFIG, &f.config)
    );

    let m = |v: Value| serde_json::to_vec(&v).unwrap();

    vec![
        // ---- repository names and path tricks
        row("dot-dot segment in name", "GET", "/v2/../x/manifests/latest", 400, "NAME_INVALID"),
        row("%2e%2e segment in name", "GET", "/v2/a/%2e%2e/b/tags/list", 400, "NAME_INVALID"),
        row("%2e%2e segments before blobs", "GET", format!("/v2/%2e%2e/%2e%2e/etc/blobs/{l}"), 400, "NAME_INVALID"),
        row("dot-dot in name of monolithic push", "POST", format!("/v2/test/../a/blobs/uploads/?digest={good_d}"), 400, "NAME_INVALID")
            .octet()
            .body(good.clone())
            .absent(&good_d),
        row("upper-case name", "GET", "/v2/A/tags/list", 400, "NAME_INVALID"),
        row("upper-case component", "GET", "/v2/test/A/manifests/v1", 400, "NAME_INVALID"),
        row("name of 256 characters", "GET", format!("/v2/{long_name}/tags/list"), 400, "NAME_INVALID"),
        row("manifest push to 256-character name", "PUT", format!("/v2/{long_name}/manifests/v1"), 400, "NAME_INVALID")
            .manifest(OCI_MANIFEST, valid_other.clone())
            .absent(&valid_other_d),
        row("name of 255 characters is valid but unknown", "GET", format!("/v2/{max_name}/tags/list"), 404, "NAME_UNKNOWN"),
        row("unknown repository", "GET", "/v2/test/nope/tags/list", 404, "NAME_UNKNOWN"),
        row("double slash inside name", "GET", "/v2/test//a/tags/list", 400, "NAME_INVALID"),
        row("double slash before name", "GET", "/v2//test/a/tags/list", 400, "NAME_INVALID"),
        row("double slash after name", "POST", "/v2/test/a//blobs/uploads/", 400, "NAME_INVALID"),
        row("component starting with separator", "POST", "/v2/test/-a/blobs/uploads/", 400, "NAME_INVALID"),
        row("two dots inside component", "POST", format!("/v2/test/a..b/blobs/uploads/?digest={good_d}"), 400, "NAME_INVALID")
            .octet()
            .body(good.clone())
            .absent(&good_d),
        row("three underscores", "GET", "/v2/test/a___b/tags/list", 400, "NAME_INVALID"),
        row("percent-encoded space in name", "GET", "/v2/test/a%20b/tags/list", 400, "NAME_INVALID"),
        // ---- digests in paths and queries
        row("malformed blob digest", "GET", "/v2/test/a/blobs/sha256:zz", 400, "DIGEST_INVALID"),
        row("short sha256 hex", "GET", format!("/v2/test/a/blobs/sha256:{}", &hex[..63]), 400, "DIGEST_INVALID"),
        row("upper-case sha256 hex", "GET", format!("/v2/test/a/blobs/sha256:{}", hex.to_uppercase()), 400, "DIGEST_INVALID"),
        row("unsupported algorithm md5", "GET", "/v2/test/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", 400, "DIGEST_INVALID"),
        row("delete blob with malformed digest", "DELETE", "/v2/test/a/blobs/sha256:..%2F..%2Fmeta", 400, "DIGEST_INVALID"),
        // A reference that is neither a digest nor a tag names no manifest:
        // 404 on reads and deletes, as the OCI conformance suite expects.
        row("manifest by malformed digest", "GET", "/v2/test/a/manifests/sha256:zz", 404, "MANIFEST_UNKNOWN"),
        row("delete manifest by malformed digest", "DELETE", format!("/v2/test/a/manifests/sha256:{}", &hex[..10]), 404, "MANIFEST_UNKNOWN"),
        row("manifest PUT by malformed digest", "PUT", format!("/v2/test/a/manifests/sha256:{}", &hex[..10]), 400, "DIGEST_INVALID")
            .manifest(OCI_MANIFEST, valid_other.clone())
            .absent(&valid_other_d),
        row("referrers of malformed digest", "GET", "/v2/test/a/referrers/sha256:zz", 400, "DIGEST_INVALID"),
        row("monolithic push with malformed ?digest=", "POST", "/v2/test/a/blobs/uploads/?digest=sha256:zz", 400, "DIGEST_INVALID")
            .octet()
            .body(good.clone())
            .absent(&good_d),
        row("monolithic push with unsupported algorithm", "POST", "/v2/test/a/blobs/uploads/?digest=sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709", 400, "DIGEST_INVALID")
            .octet()
            .body(good.clone())
            .absent(&good_d),
        row("mount with malformed ?mount=", "POST", "/v2/test/a/blobs/uploads/?mount=sha256:zz&from=test/b", 400, "DIGEST_INVALID"),
        row("mount with unsupported algorithm", "POST", "/v2/test/a/blobs/uploads/?mount=md5:d41d8cd98f00b204e9800998ecf8427e&from=test/b", 400, "DIGEST_INVALID"),
        row("finish session with malformed ?digest=", "PUT", "{upload}?digest=sha256:XYZ", 400, "DIGEST_INVALID")
            .session(&prefix)
            .absent(digest(&prefix)),
        // ---- blob uploads
        row("monolithic push, digest mismatch", "POST", format!("/v2/test/a/blobs/uploads/?digest={good_d}"), 400, "DIGEST_INVALID")
            .octet()
            .body(b"other bytes".to_vec())
            .absent(&good_d)
            .absent(digest(b"other bytes")),
        row("monolithic push, sha512 digest mismatch", "POST", format!("/v2/test/a/blobs/uploads/?digest={sha512_d}"), 400, "DIGEST_INVALID")
            .octet()
            .body(good.clone())
            .absent(&sha512_d)
            .absent(&good_d),
        row("monolithic push, body shorter than the digest describes", "POST", format!("/v2/test/a/blobs/uploads/?digest={big_d}"), 400, "DIGEST_INVALID")
            .octet()
            .body(big[..500].to_vec())
            .absent(&big_d)
            .absent(digest(&big[..500])),
        row("monolithic push, empty body", "POST", format!("/v2/test/a/blobs/uploads/?digest={big_d}"), 400, "DIGEST_INVALID")
            .octet()
            .absent(&big_d),
        row("finish session, digest mismatch", "PUT", format!("{{upload}}?digest={good_d}"), 400, "DIGEST_INVALID")
            .session(&prefix)
            .octet()
            .body(b"efgh".to_vec())
            .absent(&good_d)
            .absent(digest(b"abcdefgh")),
        row("finish session, final chunk shorter than the digest describes", "PUT", format!("{{upload}}?digest={}", digest(b"abcdefghij")), 400, "DIGEST_INVALID")
            .session(&prefix)
            .octet()
            .body(b"efg".to_vec())
            .absent(digest(b"abcdefghij"))
            .absent(digest(b"abcdefg")),
        row("finish session without final chunk, digest of more bytes", "PUT", format!("{{upload}}?digest={}", digest(b"abcdefgh")), 400, "DIGEST_INVALID")
            .session(&prefix)
            .absent(digest(b"abcdefgh"))
            .absent(digest(&prefix)),
        row("PATCH leaving a gap", "PATCH", "{upload}", 416, "BLOB_UPLOAD_INVALID")
            .session(&prefix)
            .octet()
            .header("Content-Range", "5-8")
            .body(b"efgh".to_vec()),
        row("PATCH repeating the first chunk", "PATCH", "{upload}", 416, "BLOB_UPLOAD_INVALID")
            .session(&prefix)
            .octet()
            .header("Content-Range", "0-3")
            .body(b"abcd".to_vec()),
        row("first PATCH not starting at 0", "PATCH", "{upload}", 416, "BLOB_UPLOAD_INVALID")
            .session(b"")
            .octet()
            .header("Content-Range", "1-4")
            .body(b"abcd".to_vec()),
        // Not in the contract: Berth answers every unusable Content-Range with 416.
        row("PATCH with malformed Content-Range", "PATCH", "{upload}", 416, "BLOB_UPLOAD_INVALID")
            .session(b"")
            .octet()
            .header("Content-Range", "garbage")
            .body(b"abcd".to_vec()),
        // Spec: SIZE_INVALID = "provided length did not match content length";
        // distribution answers this case with 400 SIZE_INVALID as well.
        row("PATCH whose Content-Range length differs from the body", "PATCH", "{upload}", 400, "SIZE_INVALID")
            .session(b"")
            .octet()
            .header("Content-Range", "0-99")
            .body(b"abcd".to_vec()),
        row("PUT finishing an empty session without digest", "PUT", "{upload}", 400, "DIGEST_INVALID").session(b""),
        row("PUT finishing a session without digest", "PUT", "{upload}", 400, "DIGEST_INVALID")
            .session(&prefix)
            .octet()
            .body(b"efgh".to_vec())
            .absent(digest(b"abcdefgh")),
        row("GET unknown upload uuid", "GET", format!("/v2/test/a/blobs/uploads/{ZERO_UUID}"), 404, "BLOB_UPLOAD_UNKNOWN"),
        row("PATCH garbage upload uuid", "PATCH", "/v2/test/a/blobs/uploads/not-a-uuid!", 404, "BLOB_UPLOAD_UNKNOWN")
            .octet()
            .body(b"abcd".to_vec()),
        row("PUT garbage upload uuid", "PUT", format!("/v2/test/a/blobs/uploads/garbage?digest={good_d}"), 404, "BLOB_UPLOAD_UNKNOWN")
            .octet()
            .body(good.clone())
            .absent(&good_d),
        row("DELETE unknown upload uuid", "DELETE", format!("/v2/test/a/blobs/uploads/{ZERO_UUID}"), 404, "BLOB_UPLOAD_UNKNOWN"),
        row("GET session under another repository", "GET", "/v2/test/b/blobs/uploads/{uuid}", 404, "BLOB_UPLOAD_UNKNOWN").session(&prefix),
        row("PATCH session under another repository", "PATCH", "/v2/test/b/blobs/uploads/{uuid}", 404, "BLOB_UPLOAD_UNKNOWN")
            .session(&prefix)
            .octet()
            .header("Content-Range", "4-7")
            .body(b"efgh".to_vec()),
        row("PUT session under another repository", "PUT", format!("/v2/test/b/blobs/uploads/{{uuid}}?digest={}", digest(&prefix)), 404, "BLOB_UPLOAD_UNKNOWN")
            .session(&prefix)
            .absent(digest(&prefix)),
        row("DELETE session under another repository", "DELETE", "/v2/test/b/blobs/uploads/{uuid}", 404, "BLOB_UPLOAD_UNKNOWN").session(&prefix),
        row("PATCH a deleted session", "PATCH", "{upload}", 404, "BLOB_UPLOAD_UNKNOWN")
            .deleted_session()
            .octet()
            .body(b"abcd".to_vec()),
        row("PUT a deleted session", "PUT", format!("{{upload}}?digest={}", digest(b"abcd")), 404, "BLOB_UPLOAD_UNKNOWN")
            .deleted_session()
            .octet()
            .body(b"abcd".to_vec())
            .absent(digest(b"abcd")),
        // ---- blob reads
        row("unsatisfiable Range", "GET", format!("/v2/test/a/blobs/{l}"), 416, "BLOB_UPLOAD_INVALID").header("Range", format!("bytes={}-{}", f.layer.1 + 10, f.layer.1 + 20)),
        row("blob linked to another repository only", "GET", format!("/v2/test/a/blobs/{}", f.only_b.0), 404, "BLOB_UNKNOWN"),
        row("blob nobody pushed", "GET", format!("/v2/test/a/blobs/{unknown}"), 404, "BLOB_UNKNOWN"),
        // ---- manifests
        row("manifest: invalid JSON", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_INVALID").manifest(OCI_MANIFEST, b"{\"schemaVersion\": 2,".to_vec()),
        row("manifest: empty body", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_INVALID").manifest(OCI_MANIFEST, Vec::new()),
        row("manifest: JSON array instead of object", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_INVALID").manifest(OCI_MANIFEST, b"[]".to_vec()),
        row("manifest: schemaVersion 1", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_INVALID").manifest(
            OCI_MANIFEST,
            m(json!({"schemaVersion": 1, "mediaType": OCI_MANIFEST, "config": desc(OCI_CONFIG, &f.config), "layers": [desc(OCI_LAYER, &f.layer)]})),
        ),
        row("manifest: schemaVersion 3", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_INVALID").manifest(
            OCI_MANIFEST,
            m(json!({"schemaVersion": 3, "mediaType": OCI_MANIFEST, "config": desc(OCI_CONFIG, &f.config), "layers": [desc(OCI_LAYER, &f.layer)]})),
        ),
        row("manifest: mediaType differs from Content-Type", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_INVALID")
            .manifest(DOCKER_MANIFEST, image(&f.config, &[&f.layer], "mismatch")),
        row("manifest: layer descriptor with malformed digest", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_INVALID").manifest(
            OCI_MANIFEST,
            m(json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(OCI_CONFIG, &f.config), "layers": [{"mediaType": OCI_LAYER, "digest": "sha256:nothex", "size": 3}]})),
        ),
        row("manifest: negative layer size", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_INVALID").manifest(
            OCI_MANIFEST,
            m(json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(OCI_CONFIG, &f.config), "layers": [{"mediaType": OCI_LAYER, "digest": f.layer.0, "size": -1}]})),
        ),
        row("manifest: unknown layer", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_BLOB_UNKNOWN")
            .manifest(OCI_MANIFEST, image(&f.config, &[&(unknown.clone(), 20)], "unknown layer")),
        row("manifest: unknown config", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_BLOB_UNKNOWN")
            .manifest(OCI_MANIFEST, image(&(unknown.clone(), 20), &[&f.layer], "unknown config")),
        row("manifest: layer linked to another repository only", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_BLOB_UNKNOWN")
            .manifest(OCI_MANIFEST, image(&f.config, &[&f.only_b], "foreign layer")),
        row("index: unknown child", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_BLOB_UNKNOWN").manifest(
            OCI_INDEX,
            m(json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc(OCI_MANIFEST, &(unknown.clone(), 300))]})),
        ),
        row("index: child in another repository only", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_BLOB_UNKNOWN").manifest(
            OCI_INDEX,
            m(json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc(OCI_MANIFEST, &f.manifest_b), desc(OCI_MANIFEST, &f.manifest_a)]})),
        ),
        row("manifest over 4 MiB", "PUT", "/v2/test/a/manifests/v2", 413, "SIZE_INVALID")
            .manifest(OCI_MANIFEST, huge)
            .absent(&huge_d),
        row("manifest: 100k nested arrays", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_INVALID").manifest(OCI_MANIFEST, nested.into_bytes()),
        row("manifest: 100k nested arrays inside a valid-looking manifest", "PUT", "/v2/test/a/manifests/v2", 400, "MANIFEST_INVALID")
            .manifest(OCI_MANIFEST, nested_in_obj.into_bytes()),
        row("manifest PUT by digest with other content", "PUT", format!("/v2/test/a/manifests/{good_d}"), 400, "DIGEST_INVALID")
            .manifest(OCI_MANIFEST, valid_other.clone())
            .absent(&valid_other_d)
            .absent(&good_d),
        row("manifest PUT by digest of an existing manifest with other content", "PUT", format!("/v2/test/a/manifests/{}", f.manifest_a.0), 400, "DIGEST_INVALID")
            .manifest(OCI_MANIFEST, valid_other.clone())
            .absent(&valid_other_d),
        row("invalid tag: leading dash", "PUT", "/v2/test/a/manifests/-bad", 400, "MANIFEST_INVALID")
            .manifest(OCI_MANIFEST, valid_other.clone())
            .absent(&valid_other_d),
        row("invalid tag: leading dot", "PUT", "/v2/test/a/manifests/.bad", 400, "MANIFEST_INVALID")
            .manifest(OCI_MANIFEST, valid_other.clone())
            .absent(&valid_other_d),
        row("invalid tag: dot-dot", "PUT", "/v2/test/a/manifests/..", 400, "MANIFEST_INVALID")
            .manifest(OCI_MANIFEST, valid_other.clone())
            .absent(&valid_other_d),
        row("invalid tag: 129 characters", "PUT", format!("/v2/test/a/manifests/{}", "t".repeat(129)), 400, "MANIFEST_INVALID")
            .manifest(OCI_MANIFEST, valid_other.clone())
            .absent(&valid_other_d),
        row("invalid tag: encoded slash", "PUT", "/v2/test/a/manifests/a%2Fb", 400, "MANIFEST_INVALID")
            .manifest(OCI_MANIFEST, valid_other.clone())
            .absent(&valid_other_d),
        row("invalid tag: plus sign", "PUT", "/v2/test/a/manifests/v1+x", 400, "MANIFEST_INVALID")
            .manifest(OCI_MANIFEST, valid_other.clone())
            .absent(&valid_other_d),
        row("invalid tag on GET", "GET", "/v2/test/a/manifests/-v1", 404, "MANIFEST_UNKNOWN"),
        row("conformance suite's invalid manifest name on GET", "GET", "/v2/test/a/manifests/.INVALID_MANIFEST_NAME", 404, "MANIFEST_UNKNOWN"),
        row("invalid tag on DELETE", "DELETE", "/v2/test/a/manifests/.INVALID_MANIFEST_NAME", 404, "MANIFEST_UNKNOWN"),
        row("invalid tag on GET of an unknown repository", "GET", "/v2/test/nope/manifests/-v1", 404, "MANIFEST_UNKNOWN"),
        row("unknown tag", "GET", "/v2/test/a/manifests/nope", 404, "MANIFEST_UNKNOWN"),
        // ---- wrong methods on known routes
        row("PATCH on a manifest", "PATCH", "/v2/test/a/manifests/v1", 405, "UNSUPPORTED").body(b"{}".to_vec()),
        row("POST on tags/list", "POST", "/v2/test/a/tags/list", 405, "UNSUPPORTED"),
        row("DELETE on _catalog", "DELETE", "/v2/_catalog", 405, "UNSUPPORTED"),
    ]
}

/// Creates an upload session in test/a and returns its path (with query, if
/// the server put one in Location).
fn new_session(s: &Server, first_chunk: &[u8]) -> String {
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
fn location_path(loc: &str) -> String {
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

fn expand(path: &str, session: &str) -> String {
    let (sess_path, sess_query) = match session.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (session, None),
    };
    let uuid = sess_path.rsplit('/').next().unwrap_or_default();
    let mut out = path.replace("{uuid}", uuid);
    if let Some(q) = sess_query {
        out = if out.contains("{upload}?") {
            out.replace("{upload}?", &format!("{sess_path}?{q}&"))
        } else {
            out.replace("{upload}", session)
        };
    }
    out.replace("{upload}", sess_path)
}

#[test]
fn bad_requests_get_the_spec_error_and_change_nothing() {
    let (s, _dir) = Server::start();
    let f = setup_fixture(&s);

    // The fixture's bytes must be in <data-dir>/blobs/, or comparing that
    // tree proves nothing.
    let tree = files_under(&s.data_dir().join("blobs"));
    for d in [&f.config.0, &f.layer.0, &f.only_b.0, &f.manifest_a.0] {
        let hex = d.strip_prefix("sha256:").unwrap();
        assert!(
            tree.keys().any(|k| k.ends_with(hex)),
            "{d} not found under {}/blobs: {tree:?}",
            s.data_dir().display()
        );
    }

    let rows = rows(&f);
    assert!(rows.len() >= 40);
    let mut failures = Vec::new();
    for r in &rows {
        let session = match &r.setup {
            Setup::None => String::new(),
            Setup::Session(chunk) => new_session(&s, chunk),
            Setup::DeletedSession => {
                let p = new_session(&s, b"");
                let d = raw(s.url(), "DELETE", &p, &[], b"");
                assert_eq!(d.status, 204, "setup: DELETE session: {}", d.body_text());
                p
            }
        };
        let path = expand(&r.path, &session);
        let before = snapshot(&s);
        let resp = raw(s.url(), r.method, &path, &r.headers, &r.body);
        let after = snapshot(&s);

        let mut problems = Vec::new();
        let code = resp.code();
        if resp.status != r.status || code.as_deref() != Some(r.code) {
            problems.push(format!(
                "expected {} {}, got {} {:?}; body: {}",
                r.status,
                r.code,
                resp.status,
                code,
                resp.body_text()
            ));
        }
        if before != after {
            if before.catalog != after.catalog {
                problems.push(format!(
                    "_catalog changed: {:?} -> {:?}",
                    before.catalog, after.catalog
                ));
            }
            if before.tags != after.tags {
                problems.push(format!(
                    "tag lists changed: {:?} -> {:?}",
                    before.tags, after.tags
                ));
            }
            if before.blobs != after.blobs {
                let added: Vec<_> = after
                    .blobs
                    .iter()
                    .filter(|(k, v)| before.blobs.get(*k) != Some(v))
                    .collect();
                let removed: Vec<_> = before
                    .blobs
                    .iter()
                    .filter(|(k, v)| after.blobs.get(*k) != Some(v))
                    .collect();
                problems.push(format!(
                    "blobs/ changed: added/changed {added:?}, removed {removed:?}"
                ));
            }
        }
        let c = client();
        for d in &r.absent {
            for repo in REPOS {
                for kind in ["blobs", "manifests"] {
                    let st = c
                        .get(format!("{}/v2/{repo}/{kind}/{d}", s.url()))
                        .send()
                        .expect("GET")
                        .status()
                        .as_u16();
                    if st != 404 {
                        problems.push(format!("GET /v2/{repo}/{kind}/{d} -> {st}, expected 404"));
                    }
                }
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "[{}] {} {}\n    {}",
                r.name,
                r.method,
                if path.len() > 160 {
                    format!("{}...", &path[..160])
                } else {
                    path.clone()
                },
                problems.join("\n    ")
            ));
        }
    }

    // The fixture is intact afterwards.
    let c = client();
    let body = c
        .get(format!("{}/v2/test/a/blobs/{}", s.url(), f.layer.0))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(
        body.as_ref(),
        f.layer_bytes.as_slice(),
        "fixture layer changed"
    );

    assert!(
        failures.is_empty(),
        "{} of {} bad-input rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// A request whose body ends before its Content-Length (the client went
/// away) stores nothing; a session that received a truncated PATCH can be
/// resumed from the offset it reports and still yields a correct blob.
#[test]
fn truncated_bodies_store_nothing() {
    let (s, _dir) = Server::start();
    let _fixture = setup_fixture(&s);
    let blob: Vec<u8> = (0..100_000u32).map(|i| (i % 97) as u8).collect();
    let d = digest(&blob);

    // Monolithic push: declares 100000 bytes, sends 40000, closes.
    let before = snapshot(&s);
    let hdrs = vec![
        (
            "Content-Type".to_string(),
            "application/octet-stream".to_string(),
        ),
        ("Content-Length".to_string(), blob.len().to_string()),
    ];
    let target = format!("/v2/test/a/blobs/uploads/?digest={d}");
    let hp = host_port(s.url()).to_string();
    {
        // The server may answer with an error or just close: either is fine.
        let mut st = TcpStream::connect(&hp).unwrap();
        st.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut head = format!("POST {target} HTTP/1.1\r\nHost: {hp}\r\nConnection: close\r\n");
        for (k, v) in &hdrs {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        st.write_all(head.as_bytes()).unwrap();
        st.write_all(&blob[..40_000]).unwrap();
        st.shutdown(Shutdown::Write).unwrap();
        let mut sink = Vec::new();
        let _ = st.read_to_end(&mut sink);
        let text = String::from_utf8_lossy(&sink);
        assert!(
            !text.starts_with("HTTP/1.1 2") && !text.starts_with("HTTP/1.0 2"),
            "truncated monolithic push was acknowledged: {text}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        before,
        snapshot(&s),
        "truncated monolithic push changed storage"
    );
    let c = client();
    let st = c
        .head(format!("{}/v2/test/a/blobs/{d}", s.url()))
        .send()
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(st, 404, "truncated monolithic push made the blob visible");

    // Chunked session: first chunk ok, second chunk truncated.
    let sess = new_session(&s, &blob[..10_000]);
    {
        let mut st = TcpStream::connect(&hp).unwrap();
        st.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "PATCH {sess} HTTP/1.1\r\nHost: {hp}\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Range: 10000-59999\r\nContent-Length: 50000\r\n\r\n"
        );
        st.write_all(head.as_bytes()).unwrap();
        st.write_all(&blob[10_000..30_000]).unwrap();
        st.shutdown(Shutdown::Write).unwrap();
        let mut sink = Vec::new();
        let _ = st.read_to_end(&mut sink);
        let text = String::from_utf8_lossy(&sink);
        assert!(
            !text.starts_with("HTTP/1.1 2") && !text.starts_with("HTTP/1.0 2"),
            "truncated PATCH was acknowledged: {text}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        before.blobs,
        snapshot(&s).blobs,
        "truncated PATCH changed blobs/"
    );
    // Resume from whatever the session reports.
    let g = raw(s.url(), "GET", &sess, &[], b"");
    assert_eq!(
        g.status,
        204,
        "GET session after truncated PATCH: {}",
        g.body_text()
    );
    let range = g.header("Range").expect("Range on GET session").to_string();
    let end: usize = range
        .strip_prefix("0-")
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("bad Range {range:?}"));
    let next = end + 1;
    assert!(
        (10_000..=30_000).contains(&next),
        "session reports {next} bytes after a 10000-byte chunk and a truncated 20000-byte one"
    );
    let sess = g.header("Location").map(location_path).unwrap_or(sess);
    let sep = if sess.contains('?') { '&' } else { '?' };
    let r = raw(
        s.url(),
        "PUT",
        &format!("{sess}{sep}digest={d}"),
        &[("Content-Type".into(), "application/octet-stream".into())],
        &blob[next..],
    );
    assert_eq!(
        r.status,
        201,
        "finishing the resumed session: {}",
        r.body_text()
    );
    let got = c
        .get(format!("{}/v2/test/a/blobs/{d}", s.url()))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(
        got.as_ref() == blob.as_slice(),
        "resumed blob differs from what was sent"
    );
}
