//! Bad input gets the spec's error and changes nothing.
//!
//! A table of bad requests, each sent over a raw TCP connection so that path
//! tricks (`..`, `%2e%2e`, `//`) reach the server exactly as written (an HTTP
//! client library would normalise them away). For every row the test asserts
//! the exact status and `errors[0].code`, and that storage did not change:
//! `_catalog`, the tag lists of the test repositories, and the names and sizes
//! of every file under `<data-dir>/blobs/` (the content-addressed store; the
//! metadata database and upload staging live elsewhere and are not compared).
//! Truncated bodies are in `bad_input_truncated.rs`.

mod common;

use common::bad_input::*;
use common::{client, digest, Server};
use serde_json::{json, Value};

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
