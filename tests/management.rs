//! Black-box tests of the management API (`/api/v1`):
//! every route, pagination edges, ordering, filters, bad input, names
//! with several slashes, sizes with shared layers, deletes (last tag,
//! artifact shared by two tags, repository, namespace, namespace deleted
//! while pushes race it), registry settings, restart persistence, 405/404
//! and the OpenAPI document. Content goes in through `/v2` only.

mod common;

use common::bytes;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{digest, Server};
use reqwest::blocking::Client;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

// ---------------------------------------------------------------- HTTP ---

fn http() -> &'static Client {
    static C: OnceLock<Client> = OnceLock::new();
    C.get_or_init(common::client)
}

/// A response, read whole.
struct R {
    status: u16,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl R {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

fn send(method: Method, url: &str, body: Option<(&str, Vec<u8>)>) -> R {
    let mut b = http().request(method.clone(), url);
    if let Some((ct, bytes)) = body {
        b = b.header("Content-Type", ct).body(bytes);
    }
    let r = b.send().unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    R {
        status,
        headers,
        text,
        json,
    }
}

fn get(url: &str) -> R {
    send(Method::GET, url, None)
}

fn delete(url: &str) -> R {
    send(Method::DELETE, url, None)
}

fn post_json(url: &str, v: &Value) -> R {
    send(
        Method::POST,
        url,
        Some(("application/json", v.to_string().into_bytes())),
    )
}

fn patch_json(url: &str, v: &Value) -> R {
    send(
        Method::PATCH,
        url,
        Some(("application/json", v.to_string().into_bytes())),
    )
}

fn raw(method: Method, url: &str, body: &str) -> R {
    send(
        method,
        url,
        Some(("application/json", body.as_bytes().to_vec())),
    )
}

/// `/api/v1` + path.
fn api(base: &str, path: &str) -> String {
    format!("{base}/api/v1{path}")
}

/// Asserts a management error: status, `error.code`, a message, a details
/// object and (when given) `details.field`.
#[track_caller]
fn assert_err(r: &R, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(r.status, status, "status; body: {}", r.text);
    let e = &r.json["error"];
    assert_eq!(e["code"], code, "error code; body: {}", r.text);
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error message; body: {}",
        r.text
    );
    assert!(e["details"].is_object(), "details object; body: {}", r.text);
    if let Some(f) = field {
        assert_eq!(e["details"]["field"], f, "details.field; body: {}", r.text);
    }
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "error content type"
    );
}

#[track_caller]
fn ok(r: &R, status: u16) -> &Value {
    assert_eq!(r.status, status, "body: {}", r.text);
    &r.json
}

// ------------------------------------------------------------- content ---

/// Monolithic blob push; returns the status.
fn push_blob_status(base: &str, repo: &str, data: &[u8]) -> u16 {
    let d = digest(data);
    send(
        Method::POST,
        &format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"),
        Some(("application/octet-stream", data.to_vec())),
    )
    .status
}

#[track_caller]
fn push_blob(base: &str, repo: &str, data: &[u8]) -> String {
    let st = push_blob_status(base, repo, data);
    assert_eq!(st, 201, "blob push to {repo}");
    digest(data)
}

fn put_manifest(base: &str, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> R {
    send(
        Method::PUT,
        &format!("{base}/v2/{repo}/manifests/{reference}"),
        Some((media_type, body.to_vec())),
    )
}

/// What was pushed for one image manifest.
#[derive(Clone, Debug)]
struct Image {
    digest: String,
    manifest: Vec<u8>,
    media_type: String,
    config: (String, u64, String),
    layers: Vec<(String, u64)>,
}

impl Image {
    /// Manifest + config + layers, distinct.
    fn size(&self) -> u64 {
        let mut m: BTreeMap<&str, u64> = BTreeMap::new();
        m.insert(&self.digest, self.manifest.len() as u64);
        m.insert(&self.config.0, self.config.1);
        for (d, s) in &self.layers {
            m.insert(d, *s);
        }
        m.values().sum()
    }

    fn blobs(&self) -> Vec<(String, u64)> {
        let mut v = vec![(self.config.0.clone(), self.config.1)];
        v.extend(self.layers.iter().cloned());
        v
    }
}

fn config_bytes(tag: &str, arch: &str) -> Vec<u8> {
    json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Labels": {"test": tag}},
        "rootfs": {"type": "layers", "diff_ids": []}
    })
    .to_string()
    .into_bytes()
}

/// Builds an image manifest over `config` and `layers` without pushing.
fn image_manifest(config: &[u8], config_type: &str, layers: &[Vec<u8>], extra: Value) -> Image {
    let cfg = (digest(config), config.len() as u64, config_type.to_string());
    let ls: Vec<(String, u64)> = layers.iter().map(|l| (digest(l), l.len() as u64)).collect();
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": cfg.0, "size": cfg.1},
        "layers": ls.iter().map(|(d, s)| json!({"mediaType": OCI_LAYER, "digest": d, "size": s})).collect::<Vec<_>>(),
    });
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            m[k] = v;
        }
    }
    let manifest = serde_json::to_vec(&m).unwrap();
    Image {
        digest: digest(&manifest),
        manifest,
        media_type: OCI_MANIFEST.into(),
        config: cfg,
        layers: ls,
    }
}

/// Pushes config, layers and the manifest (under `reference`: a tag, or
/// the digest when empty).
#[track_caller]
fn push_image(base: &str, repo: &str, reference: &str, config: &[u8], layers: &[Vec<u8>]) -> Image {
    push_blob(base, repo, config);
    for l in layers {
        push_blob(base, repo, l);
    }
    let img = image_manifest(config, OCI_CONFIG, layers, json!({}));
    let reference = if reference.is_empty() {
        img.digest.clone()
    } else {
        reference.to_string()
    };
    let r = put_manifest(base, repo, &reference, OCI_MANIFEST, &img.manifest);
    assert_eq!(
        r.status, 201,
        "manifest push {repo}:{reference}: {}",
        r.text
    );
    img
}

/// A small image with its own config and one layer derived from `seed`.
#[track_caller]
fn push_simple(base: &str, repo: &str, tag: &str, seed: u64) -> Image {
    push_image(
        base,
        repo,
        tag,
        &config_bytes(&format!("{repo}-{seed}"), "amd64"),
        &[bytes(seed, 300 + seed as usize % 200)],
    )
}

/// Tags the same manifest bytes again.
#[track_caller]
fn tag_again(base: &str, repo: &str, tag: &str, img: &Image) {
    let r = put_manifest(base, repo, tag, &img.media_type, &img.manifest);
    assert_eq!(r.status, 201, "re-tag {repo}:{tag}: {}", r.text);
}

fn catalog(base: &str) -> Vec<String> {
    let r = get(&format!("{base}/v2/_catalog?n=1000"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[track_caller]
fn assert_v2_name_unknown(base: &str, repo: &str) {
    let r = get(&format!("{base}/v2/{repo}/tags/list"));
    assert_eq!(r.status, 404, "tags list of {repo}: {}", r.text);
    assert_eq!(
        r.json["errors"][0]["code"], "NAME_UNKNOWN",
        "tags list of {repo}: {}",
        r.text
    );
}

// ----------------------------------------------------------- checking ---

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Parses an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`)
/// into milliseconds since the epoch; panics on anything else.
#[track_caller]
fn ts(v: &Value) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp expected, got {v}"));
    let b = s.as_bytes();
    let bad = || -> ! { panic!("not an RFC 3339 timestamp: {s:?}") };
    let num = |r: std::ops::Range<usize>| -> i64 {
        if r.end > b.len() || !b[r.clone()].iter().all(u8::is_ascii_digit) {
            bad()
        }
        s[r].parse().unwrap()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        bad()
    }
    if b[13] != b':' || b[16] != b':' {
        bad()
    }
    let (y, mo, d, h, mi, se) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        bad()
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            bad()
        }
        let f = format!("{:0<3}", &s[start..i]);
        frac_ms = f[..3].parse().unwrap();
    }
    let offset_min = match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(c @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3) * 60 + num(i + 4..i + 6);
            if *c == b'+' {
                m
            } else {
                -m
            }
        }
        _ => bad(),
    };
    // Days from civil (Howard Hinnant).
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + h * 3600 + mi * 60 + se) - offset_min * 60) * 1000 + frac_ms
}

#[track_caller]
fn assert_uuid(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("uuid expected: {v}"));
    let ok = s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    assert!(ok, "not a UUID: {s:?}");
}

#[track_caller]
fn assert_between(t: i64, lo: i64, hi: i64, what: &str) {
    // The server stores milliseconds; allow a little clock slack.
    assert!(
        t >= lo - 1000 && t <= hi + 1000,
        "{what}: {t} not within [{lo}, {hi}]"
    );
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} array expected: {list}"))
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

fn host(base: &str) -> String {
    base.trim_start_matches("http://").to_string()
}

/// Polls `f` until it returns Some or `secs` pass.
fn wait_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Every repository of a namespace, through all pages.
#[track_caller]
fn all_repositories(base: &str, ns: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for page in 1.. {
        let r = get(&api(
            base,
            &format!("/namespaces/{ns}/repositories?page={page}&page_size=100"),
        ));
        let v = ok(&r, 200);
        let got = names(v, "repositories");
        if got.is_empty() {
            assert_eq!(v["total_count"], out.len(), "total_count of {ns}");
            break;
        }
        out.extend(got);
    }
    out
}

#[track_caller]
fn create_ns(base: &str, name: &str, project: &str) -> Value {
    let r = post_json(
        &api(base, "/namespaces"),
        &json!({"name": name, "project_id": project}),
    );
    ok(&r, 201).clone()
}

// -------------------------------------------------------------- tests ---

#[test]
fn openapi_document_is_3_1_and_lists_every_route() {
    let (s, _d) = Server::start();
    let r = get(&api(s.url(), "/openapi.json"));
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    let doc: Value = serde_json::from_str(&r.text).expect("openapi.json is JSON");
    let v = doc["openapi"].as_str().expect("openapi version string");
    assert!(v.starts_with("3.1."), "openapi version {v}");
    assert!(doc["info"]["title"].is_string());
    let p = "/api/v1/namespaces/{namespace}/repositories/{repository}";
    let want: Vec<(String, &[&str])> = vec![
        ("/api/v1/registry".into(), &["get", "patch"]),
        ("/api/v1/namespaces".into(), &["get", "post"]),
        (
            "/api/v1/namespaces/{namespace}".into(),
            &["get", "patch", "delete"],
        ),
        (
            "/api/v1/namespaces/{namespace}/repositories".into(),
            &["get"],
        ),
        (p.into(), &["get", "delete"]),
        (format!("{p}/artifacts"), &["get"]),
        (format!("{p}/artifacts/{{digest}}"), &["get", "delete"]),
        (format!("{p}/delete-request"), &["delete"]),
        (format!("{p}/tags"), &["get"]),
        (format!("{p}/tags/{{tag}}"), &["get", "delete"]),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in &want {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from openapi.json"));
        for m in *methods {
            let op = &item[*m];
            assert!(op.is_object(), "{m} {path} missing");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{m} {path} has no responses"
            );
            // Every {param} of the template is declared as a path parameter.
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            for seg in path.split('/') {
                if let Some(name) = seg.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
                    assert!(
                        declared.contains(name),
                        "{m} {path} does not declare path parameter {name}"
                    );
                }
            }
        }
        // No method the server does not serve.
        for m in ["get", "put", "post", "patch", "delete"] {
            if !methods.contains(&m) {
                assert!(
                    item.get(m).is_none(),
                    "{m} {path} documented but not served"
                );
            }
        }
    }
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for s in ["Namespace", "ErrorBody", "RegistrySettings", "Artifact"] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
}

#[test]
fn wrong_method_is_405_with_allow_and_unknown_path_is_404() {
    let (s, _d) = Server::start();
    let b = s.url();
    push_simple(b, "acme/web", "1", 1);
    let d = digest(b"x");
    let cases: Vec<(Method, String, &[&str])> = vec![
        (Method::PUT, "/namespaces".into(), &["GET", "POST"]),
        (Method::DELETE, "/namespaces".into(), &["GET", "POST"]),
        (Method::POST, "/registry".into(), &["GET", "PATCH"]),
        (Method::DELETE, "/openapi.json".into(), &["GET"]),
        (
            Method::POST,
            "/namespaces/acme".into(),
            &["GET", "PATCH", "DELETE"],
        ),
        (
            Method::POST,
            "/namespaces/acme/repositories".into(),
            &["GET"],
        ),
        (
            Method::PUT,
            "/namespaces/acme/repositories/web".into(),
            &["GET", "DELETE"],
        ),
        (
            Method::DELETE,
            "/namespaces/acme/repositories/web/tags".into(),
            &["GET"],
        ),
        (
            Method::PUT,
            "/namespaces/acme/repositories/web/tags/1".into(),
            &["GET", "DELETE"],
        ),
        (
            Method::POST,
            "/namespaces/acme/repositories/web/artifacts".into(),
            &["GET"],
        ),
        (
            Method::PATCH,
            format!("/namespaces/acme/repositories/web/artifacts/{d}"),
            &["GET", "DELETE"],
        ),
        (
            Method::GET,
            format!("/namespaces/acme/repositories/web/delete-request?digest={d}"),
            &["DELETE"],
        ),
    ];
    for (m, path, allow) in cases {
        let r = send(m.clone(), &api(b, &path), None);
        assert_err(&r, 405, "method_not_allowed", None);
        let got: BTreeSet<String> = r
            .header("allow")
            .unwrap_or_else(|| panic!("{m} {path}: no Allow header"))
            .split(',')
            .map(|x| x.trim().to_string())
            .collect();
        let want: BTreeSet<String> = allow.iter().map(|x| x.to_string()).collect();
        assert_eq!(got, want, "Allow of {m} {path}");
    }
    for path in [
        "",
        "/",
        "/nothing",
        "/namespaces/acme/wat",
        "/registry/x",
        "/openapi.yaml",
    ] {
        let r = get(&format!("{b}/api/v1{path}"));
        assert_err(&r, 404, "not_found", None);
    }
    // Nothing changed.
    assert_eq!(catalog(b), vec!["acme/web"]);
}

#[test]
fn namespace_create_get_update_delete() {
    let (s, _d) = Server::start();
    let b = s.url();
    let before = now_ms();
    let r = post_json(
        &api(b, "/namespaces"),
        &json!({"name": "team-one", "description": "first team", "project_id": "p-42", "is_public": true}),
    );
    let after = now_ms();
    let n = ok(&r, 201).clone();
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    assert_uuid(&n["id"]);
    assert_eq!(n["name"], "team-one");
    assert_eq!(n["description"], "first team");
    assert_eq!(n["project_id"], "p-42");
    assert_eq!(n["is_public"], true);
    assert_eq!(n["status"], "ready");
    assert!(n["status_message"].is_string());
    assert_eq!(n["endpoint"], format!("{}/team-one", host(b)));
    assert_eq!(n["size"], 0);
    assert_eq!(n["image_count"], 0);
    assert_eq!(n["region"], "local");
    let created = ts(&n["created_at"]);
    assert_between(created, before, after, "created_at");
    assert!(ts(&n["updated_at"]) >= created);

    // Defaults: private, empty description and project.
    let m = create_ns(b, "team-two", "");
    assert_eq!(m["is_public"], false);
    assert_eq!(m["description"], "");
    assert_ne!(m["id"], n["id"], "ids are unique");

    // get
    let g = get(&api(b, "/namespaces/team-one"));
    assert_eq!(ok(&g, 200), &n, "GET returns what POST returned");
    assert_err(&get(&api(b, "/namespaces/nope")), 404, "not_found", None);

    // duplicate
    let dup = post_json(&api(b, "/namespaces"), &json!({"name": "team-one"}));
    assert_err(&dup, 409, "conflict", None);

    // invalid names
    let long = "x".repeat(256);
    for bad in [
        "Team",
        "a/b",
        "-lead",
        "trail-",
        "a..b",
        "",
        "with space",
        "ünï",
        long.as_str(),
    ] {
        let r = post_json(&api(b, "/namespaces"), &json!({"name": bad}));
        assert_err(&r, 400, "invalid_argument", Some("name"));
    }
    // unknown field, wrong type, missing name, not JSON
    let r = post_json(
        &api(b, "/namespaces"),
        &json!({"name": "team-three", "colour": "red"}),
    );
    assert_err(&r, 400, "invalid_argument", None);
    let r = post_json(
        &api(b, "/namespaces"),
        &json!({"name": "team-three", "is_public": "yes"}),
    );
    assert_err(&r, 400, "invalid_argument", None);
    let r = post_json(&api(b, "/namespaces"), &json!({"description": "x"}));
    assert_err(&r, 400, "invalid_argument", None);
    let r = raw(Method::POST, &api(b, "/namespaces"), "{not json");
    assert_err(&r, 400, "invalid_argument", None);
    // Field limits and body size.
    let r = post_json(
        &api(b, "/namespaces"),
        &json!({"name": "team-three", "description": "d".repeat(4097)}),
    );
    assert_err(&r, 400, "invalid_argument", Some("description"));
    let r = post_json(
        &api(b, "/namespaces"),
        &json!({"name": "team-three", "project_id": "p".repeat(257)}),
    );
    assert_err(&r, 400, "invalid_argument", Some("project_id"));
    let r = post_json(
        &api(b, "/namespaces"),
        &json!({"name": "team-three", "description": "d".repeat(2 << 20)}),
    );
    assert_err(&r, 413, "payload_too_large", None);
    assert_err(
        &get(&api(b, "/namespaces/team-three")),
        404,
        "not_found",
        None,
    );

    // update
    thread::sleep(Duration::from_millis(5));
    let r = patch_json(
        &api(b, "/namespaces/team-one"),
        &json!({"description": "renamed team", "is_public": false}),
    );
    let u = ok(&r, 200).clone();
    assert_eq!(u["description"], "renamed team");
    assert_eq!(u["is_public"], false);
    assert_eq!(u["id"], n["id"]);
    assert_eq!(u["name"], "team-one");
    assert_eq!(u["project_id"], "p-42", "project_id is not updatable");
    assert_eq!(u["created_at"], n["created_at"]);
    assert!(
        ts(&u["updated_at"]) > ts(&n["updated_at"]),
        "updated_at moves on update"
    );
    // Partial update keeps the other field.
    let u2 = patch_json(&api(b, "/namespaces/team-one"), &json!({"is_public": true}));
    assert_eq!(ok(&u2, 200)["description"], "renamed team");
    assert_eq!(u2.json["is_public"], true);
    assert_eq!(get(&api(b, "/namespaces/team-one")).json, u2.json);
    // Only description and is_public may change.
    for body in [
        json!({"name": "other"}),
        json!({"project_id": "p-1"}),
        json!({"status": "locked"}),
        json!({"is_public": "no"}),
    ] {
        let r = patch_json(&api(b, "/namespaces/team-one"), &body);
        assert_err(&r, 400, "invalid_argument", None);
    }
    assert_eq!(get(&api(b, "/namespaces/team-one")).json, u2.json);
    assert_err(
        &patch_json(&api(b, "/namespaces/nope"), &json!({"description": "x"})),
        404,
        "not_found",
        None,
    );

    // delete
    let r = delete(&api(b, "/namespaces/team-two"));
    let dn = ok(&r, 202);
    assert_eq!(dn["name"], "team-two");
    assert_eq!(dn["status"], "deleting");
    assert_eq!(dn["id"], m["id"]);
    let gone = wait_for(5, || {
        (get(&api(b, "/namespaces/team-two")).status == 404).then_some(())
    });
    assert!(gone.is_some(), "deleted namespace still there after 5 s");
    let list = get(&api(b, "/namespaces"));
    assert_eq!(names(ok(&list, 200), "namespaces"), vec!["team-one"]);
    assert_eq!(list.json["total_count"], 1);
    assert_err(&delete(&api(b, "/namespaces/nope")), 404, "not_found", None);
    // The name is free again.
    let again = create_ns(b, "team-two", "");
    assert_ne!(again["id"], m["id"]);
}

#[test]
fn namespace_list_pagination_edges() {
    let (s, _d) = Server::start();
    let b = s.url();
    let all = ["ns-a", "ns-b", "ns-c", "ns-d", "ns-e"];
    for n in all {
        create_ns(b, n, "p");
        thread::sleep(Duration::from_millis(3));
    }
    let page = |q: &str| {
        let r = get(&api(b, &format!("/namespaces?{q}")));
        let v = ok(&r, 200).clone();
        (names(&v, "namespaces"), v["total_count"].as_u64().unwrap())
    };
    assert_eq!(page(""), (all.map(String::from).to_vec(), 5));
    assert_eq!(
        page("page=1&page_size=2"),
        (vec!["ns-a".into(), "ns-b".into()], 5)
    );
    assert_eq!(
        page("page=2&page_size=2"),
        (vec!["ns-c".into(), "ns-d".into()], 5)
    );
    assert_eq!(
        page("page=3&page_size=2"),
        (vec!["ns-e".into()], 5),
        "last page"
    );
    assert_eq!(
        page("page=4&page_size=2"),
        (vec![], 5),
        "beyond the last page"
    );
    assert_eq!(page("page=1000000&page_size=100"), (vec![], 5));
    assert_eq!(page("page_size=1"), (vec!["ns-a".into()], 5));
    assert_eq!(page("page=5&page_size=1"), (vec!["ns-e".into()], 5));
    assert_eq!(page("page_size=100").0.len(), 5);
    assert_eq!(
        page("page=2").0,
        Vec::<String>::new(),
        "default page size 20"
    );
    for (q, field) in [
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("page_size=abc", "page_size"),
        ("page_size=-1", "page_size"),
        ("page_size=", "page_size"),
        ("page_size=1.5", "page_size"),
        ("page=0", "page"),
        ("page=abc", "page"),
        ("page=-1", "page"),
        ("page=0&page_size=5", "page"),
    ] {
        let r = get(&api(b, &format!("/namespaces?{q}")));
        assert_err(&r, 400, "invalid_argument", Some(field));
        let msg = r.json["error"]["message"].as_str().unwrap();
        assert!(msg.contains(field), "{q}: message names {field}: {msg}");
    }
}

#[test]
fn namespace_list_order_and_filters() {
    let (s, _d) = Server::start();
    let b = s.url();
    // Created in this order, distinct milliseconds.
    let created = ["zeta", "alpha", "mid", "beta"];
    let projects = ["p1", "p2", "p1", "p3"];
    for (n, p) in created.iter().zip(projects) {
        create_ns(b, n, p);
        thread::sleep(Duration::from_millis(5));
    }
    let list = |q: &str| {
        let r = get(&api(b, &format!("/namespaces?{q}")));
        let v = ok(&r, 200).clone();
        (
            names(&v, "namespaces"),
            v["total_count"].as_u64().unwrap(),
            v,
        )
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(list("").0, s(&created), "default is created_at_asc");
    assert_eq!(list("order_by=created_at_asc").0, s(&created));
    assert_eq!(
        list("order_by=created_at_desc").0,
        s(&["beta", "mid", "alpha", "zeta"])
    );
    assert_eq!(
        list("order_by=name_asc").0,
        s(&["alpha", "beta", "mid", "zeta"])
    );
    assert_eq!(
        list("order_by=name_desc").0,
        s(&["zeta", "mid", "beta", "alpha"])
    );
    // All are ready: equal statuses, ties broken by name.
    let (asc, _, v) = list("order_by=status_asc");
    assert!(v["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["status"] == "ready"));
    assert_eq!(asc, s(&["alpha", "beta", "mid", "zeta"]));
    assert_eq!(
        list("order_by=status_desc").0,
        s(&["alpha", "beta", "mid", "zeta"])
    );
    // Ordering applies before pagination.
    assert_eq!(
        list("order_by=name_desc&page=2&page_size=3").0,
        s(&["alpha"])
    );
    for bad in ["name", "NAME_ASC", "size_asc", "", "name_asc;drop"] {
        let r = get(&api(b, &format!("/namespaces?order_by={bad}")));
        assert_err(&r, 400, "invalid_argument", Some("order_by"));
    }
    // Filters: name is exact, project_id exact, combined with pagination.
    assert_eq!(list("name=mid").0, s(&["mid"]));
    assert_eq!(list("name=mid").1, 1);
    assert_eq!(list("name=mi").0, Vec::<String>::new(), "exact, not prefix");
    assert_eq!(list("name=nope").1, 0);
    assert_eq!(list("project_id=p1").0, s(&["zeta", "mid"]));
    assert_eq!(
        list("project_id=p1&order_by=name_asc").0,
        s(&["mid", "zeta"])
    );
    let (p, total, _) = list("project_id=p1&page=2&page_size=1");
    assert_eq!((p, total), (s(&["mid"]), 2));
    assert_eq!(list("project_id=p3&name=beta").0, s(&["beta"]));
    assert_eq!(list("project_id=p3&name=alpha").1, 0);
    assert_eq!(list("project_id=zzz").1, 0);
}

#[test]
fn first_push_creates_namespace_and_repository_with_sizes_and_times() {
    let (s, _d) = Server::start();
    let b = s.url();
    assert_err(&get(&api(b, "/namespaces/acme")), 404, "not_found", None);
    let t0 = now_ms();
    let img = push_image(
        b,
        "acme/web",
        "1",
        &config_bytes("web", "amd64"),
        &[bytes(1, 2000), bytes(2, 700)],
    );
    let t1 = now_ms();
    let size = img.size();
    assert_eq!(size, img.manifest.len() as u64 + img.config.1 + 2700);

    let n = get(&api(b, "/namespaces/acme"));
    let n = ok(&n, 200);
    assert_uuid(&n["id"]);
    assert_eq!(n["name"], "acme");
    assert_eq!(n["is_public"], false, "created by push: private");
    assert_eq!(n["status"], "ready");
    assert_eq!(n["image_count"], 1);
    assert_eq!(n["size"], size);
    assert_eq!(n["endpoint"], format!("{}/acme", host(b)));
    assert_between(ts(&n["created_at"]), t0, t1, "namespace created_at");

    // The namespace a push created is a real one: its name is taken.
    let dup = post_json(&api(b, "/namespaces"), &json!({"name": "acme"}));
    assert_err(&dup, 409, "conflict", None);

    let r = get(&api(b, "/namespaces/acme/repositories"));
    let l = ok(&r, 200);
    assert_eq!(l["total_count"], 1);
    let repo = &l["repositories"][0];
    assert_eq!(repo["name"], "acme/web");
    assert_eq!(repo["namespace"], "acme");
    assert_eq!(repo["tag_count"], 1);
    assert_eq!(repo["artifact_count"], 1);
    assert_eq!(repo["size"], size);
    assert_eq!(repo["latest_tag"], "1");
    assert_between(ts(&repo["last_push"]), t0, t1, "last_push");
    assert_between(ts(&repo["created_at"]), t0, t1, "repo created_at");
    assert!(repo["last_pull"].is_null(), "never pulled: {repo}");
    let detail = get(&api(b, "/namespaces/acme/repositories/web"));
    let a = &ok(&detail, 200)["artifacts"][0];
    assert!(a["last_pull"].is_null());

    // A manifest pull shows up as last_pull within a few seconds.
    let tp = now_ms();
    let r = get(&format!("{b}/v2/acme/web/manifests/1"));
    assert_eq!(r.status, 200);
    let seen = wait_for(5, || {
        let d = get(&api(b, "/namespaces/acme/repositories/web")).json;
        (!d["repository"]["last_pull"].is_null() && !d["artifacts"][0]["last_pull"].is_null())
            .then_some(d)
    })
    .expect("last_pull not recorded within 5 s of a manifest GET");
    let tq = now_ms();
    assert_between(
        ts(&seen["repository"]["last_pull"]),
        tp,
        tq,
        "repo last_pull",
    );
    assert_between(
        ts(&seen["artifacts"][0]["last_pull"]),
        tp,
        tq,
        "artifact last_pull",
    );
    // Pulls do not count as pushes.
    assert_eq!(seen["repository"]["last_push"], repo["last_push"]);

    // A second push updates last_push and latest_tag.
    thread::sleep(Duration::from_millis(5));
    let t2 = now_ms();
    push_simple(b, "acme/web", "2", 9);
    let r = get(&api(b, "/namespaces/acme/repositories/web"));
    let d = ok(&r, 200);
    assert_eq!(d["repository"]["latest_tag"], "2");
    assert_between(ts(&d["repository"]["last_push"]), t2, now_ms(), "last_push");
    assert!(ts(&d["repository"]["last_push"]) > ts(&repo["last_push"]));
}

#[test]
fn repository_detail_tags_artifacts_index_and_artifact_type() {
    let (s, _d) = Server::start();
    let b = s.url();
    let repo = "acme/app";
    let one = push_image(
        b,
        repo,
        "v1",
        &config_bytes("one", "amd64"),
        &[bytes(11, 1000), bytes(12, 400)],
    );
    thread::sleep(Duration::from_millis(5));
    let two = push_image(
        b,
        repo,
        "v2",
        &config_bytes("two", "amd64"),
        &[bytes(21, 900)],
    );
    tag_again(b, repo, "latest", &two);
    thread::sleep(Duration::from_millis(5));

    // An index over two platform images pushed by digest.
    let amd = push_image(
        b,
        repo,
        "",
        &config_bytes("amd", "amd64"),
        &[bytes(31, 500)],
    );
    let arm = push_image(
        b,
        repo,
        "",
        &config_bytes("arm", "arm64"),
        &[bytes(32, 600)],
    );
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd.digest, "size": amd.manifest.len(),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": arm.digest, "size": arm.manifest.len(),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]
    }))
    .unwrap();
    let index_digest = digest(&index);
    let r = put_manifest(b, repo, "multi", OCI_INDEX, &index);
    assert_eq!(r.status, 201, "{}", r.text);
    thread::sleep(Duration::from_millis(5));

    // An OCI artifact with an artifactType and the empty config.
    push_blob(b, repo, b"{}");
    let sbom_layer = bytes(41, 250);
    push_blob(b, repo, &sbom_layer);
    let sbom = image_manifest(
        b"{}",
        OCI_EMPTY,
        &[sbom_layer],
        json!({"artifactType": "application/vnd.example.sbom.v1+json"}),
    );
    let r = put_manifest(b, repo, "sbom", OCI_MANIFEST, &sbom.manifest);
    assert_eq!(r.status, 201, "{}", r.text);

    // Expected numbers.
    let index_size = index.len() as u64 + amd.size() + arm.size();
    let mut distinct: BTreeMap<String, u64> = BTreeMap::new();
    for img in [&one, &two, &amd, &arm, &sbom] {
        distinct.insert(img.digest.clone(), img.manifest.len() as u64);
        for (d, s) in img.blobs() {
            distinct.insert(d, s);
        }
    }
    distinct.insert(index_digest.clone(), index.len() as u64);
    let total: u64 = distinct.values().sum();

    let r = get(&api(b, "/namespaces/acme/repositories/app"));
    let d = ok(&r, 200).clone();
    let summary = &d["repository"];
    assert_eq!(summary["name"], repo);
    assert_eq!(summary["tag_count"], 5);
    assert_eq!(summary["artifact_count"], 6);
    assert_eq!(summary["size"], total);
    assert_eq!(summary["latest_tag"], "sbom");

    // Tags: lexical, with digests and times.
    let tags: Vec<(String, String)> = d["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            ts(&t["pushed_at"]);
            (
                t["name"].as_str().unwrap().to_string(),
                t["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        tags,
        vec![
            ("latest".to_string(), two.digest.clone()),
            ("multi".to_string(), index_digest.clone()),
            ("sbom".to_string(), sbom.digest.clone()),
            ("v1".to_string(), one.digest.clone()),
            ("v2".to_string(), two.digest.clone()),
        ]
    );

    // Artifacts, most recently pushed first.
    let arts = d["artifacts"].as_array().unwrap().clone();
    let order: Vec<&str> = arts.iter().map(|a| a["digest"].as_str().unwrap()).collect();
    assert_eq!(order.len(), 6);
    assert_eq!(order[0], sbom.digest);
    assert_eq!(order[1], index_digest);
    assert_eq!(
        order[2..4].iter().copied().collect::<BTreeSet<_>>(),
        [amd.digest.as_str(), arm.digest.as_str()]
            .into_iter()
            .collect()
    );
    assert_eq!(order[4], two.digest);
    assert_eq!(order[5], one.digest);
    let by = |dg: &str| arts.iter().find(|a| a["digest"] == dg).unwrap().clone();

    for (img, tags) in [
        (&one, vec!["v1"]),
        (&two, vec!["latest", "v2"]),
        (&amd, vec![]),
        (&arm, vec![]),
    ] {
        let a = by(&img.digest);
        assert_eq!(a["media_type"], OCI_MANIFEST);
        assert_eq!(a["artifact_type"], OCI_CONFIG, "falls back to config type");
        assert_eq!(a["size"], img.size(), "artifact size of {}", img.digest);
        assert_eq!(a["tags"], json!(tags));
        assert_eq!(a["platforms"], json!([]));
        ts(&a["pushed_at"]);
        let layers: Vec<(String, String, u64)> = a["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["digest"].as_str().unwrap().into(),
                    l["media_type"].as_str().unwrap().into(),
                    l["size"].as_u64().unwrap(),
                )
            })
            .collect();
        // The config is apart (`config`, `image_id`), not the first layer.
        assert_eq!(a["config"]["digest"], img.config.0.as_str());
        assert_eq!(a["image_id"], img.config.0.as_str());
        let want: Vec<(String, String, u64)> = img
            .layers
            .iter()
            .map(|(d, s)| (d.clone(), OCI_LAYER.to_string(), *s))
            .collect();
        assert_eq!(layers, want, "layers of {}", img.digest);
    }
    let ix = by(&index_digest);
    assert_eq!(ix["media_type"], OCI_INDEX);
    assert_eq!(ix["tags"], json!(["multi"]));
    assert_eq!(ix["size"], index_size, "index size = index + children");
    assert_eq!(
        ix["platforms"],
        json!([
            {"os": "linux", "architecture": "amd64", "variant": null},
            {"os": "linux", "architecture": "arm64", "variant": "v8"},
        ])
    );
    let sb = by(&sbom.digest);
    assert_eq!(sb["artifact_type"], "application/vnd.example.sbom.v1+json");
    assert_eq!(sb["size"], sbom.size());
    assert_eq!(sb["config"]["media_type"], OCI_EMPTY);

    // Size breakdown: per artifact, total counts shared blobs once.
    let sbk = &d["size_breakdown"];
    assert_eq!(sbk["total"], total);
    let per: BTreeMap<String, u64> = sbk["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["digest"].as_str().unwrap().to_string(),
                a["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: BTreeMap<String, u64> = [
        (one.digest.clone(), one.size()),
        (two.digest.clone(), two.size()),
        (amd.digest.clone(), amd.size()),
        (arm.digest.clone(), arm.size()),
        (index_digest.clone(), index_size),
        (sbom.digest.clone(), sbom.size()),
    ]
    .into_iter()
    .collect();
    assert_eq!(per, want);
    assert!(
        per.values().sum::<u64>() > total,
        "children counted once in total"
    );

    // Artifact list, paginated, same order and content.
    let al = get(&api(b, "/namespaces/acme/repositories/app/artifacts"));
    assert_eq!(ok(&al, 200)["total_count"], 6);
    assert_eq!(al.json["artifacts"], json!(arts));
    let p2 = get(&api(
        b,
        "/namespaces/acme/repositories/app/artifacts?page=2&page_size=1",
    ));
    assert_eq!(ok(&p2, 200)["artifacts"], json!([arts[1].clone()]));
    assert_eq!(p2.json["total_count"], 6);
    let p9 = get(&api(
        b,
        "/namespaces/acme/repositories/app/artifacts?page=4&page_size=2",
    ));
    assert_eq!(ok(&p9, 200)["artifacts"], json!([]));
    assert_eq!(p9.json["total_count"], 6);

    // One artifact by digest (raw colon and %3A).
    for dg in [one.digest.clone(), one.digest.replace(':', "%3A")] {
        let r = get(&api(
            b,
            &format!("/namespaces/acme/repositories/app/artifacts/{dg}"),
        ));
        assert_eq!(ok(&r, 200), &by(&one.digest));
    }
    let missing = digest(b"no such manifest");
    assert_err(
        &get(&api(
            b,
            &format!("/namespaces/acme/repositories/app/artifacts/{missing}"),
        )),
        404,
        "not_found",
        None,
    );
    // A blob (config) is not an artifact.
    assert_err(
        &get(&api(
            b,
            &format!(
                "/namespaces/acme/repositories/app/artifacts/{}",
                one.config.0
            ),
        )),
        404,
        "not_found",
        None,
    );
    for bad in ["sha256:xyz", "notadigest", "sha256:ABC"] {
        let r = get(&api(
            b,
            &format!("/namespaces/acme/repositories/app/artifacts/{bad}"),
        ));
        assert_err(&r, 400, "invalid_argument", Some("digest"));
    }

    // Tags list, paginated; one tag.
    let tl = get(&api(b, "/namespaces/acme/repositories/app/tags"));
    assert_eq!(ok(&tl, 200)["total_count"], 5);
    assert_eq!(tl.json["tags"], d["tags"]);
    let tp = get(&api(
        b,
        "/namespaces/acme/repositories/app/tags?page=3&page_size=2",
    ));
    assert_eq!(names(ok(&tp, 200), "tags"), vec!["v2"]);
    assert_eq!(tp.json["total_count"], 5);
    let t = get(&api(b, "/namespaces/acme/repositories/app/tags/v1"));
    assert_eq!(ok(&t, 200)["digest"], one.digest);
    assert_eq!(t.json["name"], "v1");
    assert_eq!(t.json, d["tags"][3]);
    assert_err(
        &get(&api(b, "/namespaces/acme/repositories/app/tags/v9")),
        404,
        "not_found",
        None,
    );
    assert_err(
        &get(&api(b, "/namespaces/acme/repositories/app/tags/-bad")),
        400,
        "invalid_argument",
        Some("tag"),
    );

    // Pagination errors on every list.
    for list in [
        "repositories",
        "repositories/app/artifacts",
        "repositories/app/tags",
    ] {
        for (q, field) in [
            ("page_size=0", "page_size"),
            ("page_size=101", "page_size"),
            ("page_size=abc", "page_size"),
            ("page=0", "page"),
        ] {
            let r = get(&api(b, &format!("/namespaces/acme/{list}?{q}")));
            assert_err(&r, 400, "invalid_argument", Some(field));
        }
        let r = get(&api(b, &format!("/namespaces/acme/{list}?page_size=100")));
        assert_eq!(r.status, 200, "{list}: {}", r.text);
    }

    // 404s: unknown namespace, unknown repository.
    for path in [
        "/namespaces/nope/repositories",
        "/namespaces/nope/repositories/app",
        "/namespaces/acme/repositories/nope",
        "/namespaces/acme/repositories/nope/tags",
        "/namespaces/acme/repositories/nope/artifacts",
        "/namespaces/acme/repositories/nope/tags/v1",
    ] {
        assert_err(&get(&api(b, path)), 404, "not_found", None);
    }
}

#[test]
fn repository_list_order_by_every_value() {
    let (s, _d) = Server::start();
    let b = s.url();
    // Created b, a, c with sizes big, small, medium.
    push_image(
        b,
        "ord/b",
        "1",
        &config_bytes("b", "amd64"),
        &[bytes(1, 3000)],
    );
    thread::sleep(Duration::from_millis(5));
    push_image(
        b,
        "ord/a",
        "1",
        &config_bytes("a", "amd64"),
        &[bytes(2, 100)],
    );
    thread::sleep(Duration::from_millis(5));
    push_image(
        b,
        "ord/c",
        "1",
        &config_bytes("c", "amd64"),
        &[bytes(3, 1500)],
    );
    thread::sleep(Duration::from_millis(5));
    // b is pushed to again: latest last_push, still first created.
    push_image(
        b,
        "ord/b",
        "2",
        &config_bytes("b2", "amd64"),
        &[bytes(4, 10)],
    );
    let list = |q: &str| {
        let r = get(&api(b, &format!("/namespaces/ord/repositories?{q}")));
        names(ok(&r, 200), "repositories")
    };
    let v = |x: &[&str]| x.iter().map(|n| format!("ord/{n}")).collect::<Vec<_>>();
    assert_eq!(list(""), v(&["a", "b", "c"]), "default name_asc");
    assert_eq!(list("order_by=name_asc"), v(&["a", "b", "c"]));
    assert_eq!(list("order_by=name_desc"), v(&["c", "b", "a"]));
    assert_eq!(list("order_by=created_at_asc"), v(&["b", "a", "c"]));
    assert_eq!(list("order_by=created_at_desc"), v(&["c", "a", "b"]));
    assert_eq!(list("order_by=last_push_asc"), v(&["a", "c", "b"]));
    assert_eq!(list("order_by=last_push_desc"), v(&["b", "c", "a"]));
    assert_eq!(list("order_by=size_asc"), v(&["a", "c", "b"]));
    assert_eq!(list("order_by=size_desc"), v(&["b", "c", "a"]));
    assert_eq!(list("order_by=size_desc&page=2&page_size=2"), v(&["a"]));
    let r = get(&api(b, "/namespaces/ord/repositories?page=3&page_size=1"));
    assert_eq!(names(ok(&r, 200), "repositories"), v(&["c"]));
    assert_eq!(r.json["total_count"], 3);
    let r = get(&api(b, "/namespaces/ord/repositories?page=4&page_size=1"));
    assert_eq!(names(ok(&r, 200), "repositories"), Vec::<String>::new());
    assert_eq!(r.json["total_count"], 3);
    for bad in ["status_asc", "size", "x"] {
        let r = get(&api(
            b,
            &format!("/namespaces/ord/repositories?order_by={bad}"),
        ));
        assert_err(&r, 400, "invalid_argument", Some("order_by"));
    }
    // Namespace created empty through the API: an empty list.
    create_ns(b, "empty", "");
    let r = get(&api(b, "/namespaces/empty/repositories"));
    assert_eq!(ok(&r, 200)["repositories"], json!([]));
    assert_eq!(r.json["total_count"], 0);
}

#[test]
fn names_with_several_slashes_raw_encoded_and_full() {
    let (s, _d) = Server::start();
    let b = s.url();
    let img = push_simple(b, "acme/team/sub/app", "1", 5);
    // A repository whose last component is a route keyword.
    let kw = push_simple(b, "acme/lib/tags", "t", 6);
    // A single-component repository: its own namespace.
    let solo = push_simple(b, "solo", "1", 7);

    let r = get(&api(b, "/namespaces/acme/repositories"));
    assert_eq!(
        names(ok(&r, 200), "repositories"),
        vec!["acme/lib/tags", "acme/team/sub/app"]
    );
    assert_eq!(get(&api(b, "/namespaces/acme")).json["image_count"], 2);

    let forms = [
        "team/sub/app",
        "team%2Fsub%2Fapp",
        "team%2fsub%2fapp",
        "team/sub%2Fapp",
        "acme/team/sub/app",
        "acme%2Fteam%2Fsub%2Fapp",
    ];
    for f in forms {
        let base = format!("/namespaces/acme/repositories/{f}");
        let r = get(&api(b, &base));
        assert_eq!(
            ok(&r, 200)["repository"]["name"],
            "acme/team/sub/app",
            "form {f}"
        );
        assert_eq!(r.json["repository"]["tag_count"], 1, "form {f}");
        let r = get(&api(b, &format!("{base}/tags")));
        assert_eq!(names(ok(&r, 200), "tags"), vec!["1"], "form {f}");
        let r = get(&api(b, &format!("{base}/tags/1")));
        assert_eq!(ok(&r, 200)["digest"], img.digest, "form {f}");
        let r = get(&api(b, &format!("{base}/artifacts")));
        assert_eq!(
            ok(&r, 200)["artifacts"][0]["digest"],
            img.digest,
            "form {f}"
        );
        let r = get(&api(b, &format!("{base}/artifacts/{}", img.digest)));
        assert_eq!(ok(&r, 200)["size"], img.size(), "form {f}");
    }
    // Encoded slashes keep a keyword component in the name.
    let r = get(&api(b, "/namespaces/acme/repositories/lib%2Ftags"));
    assert_eq!(ok(&r, 200)["repository"]["name"], "acme/lib/tags");
    let r = get(&api(b, "/namespaces/acme/repositories/lib%2Ftags/tags"));
    assert_eq!(names(ok(&r, 200), "tags"), vec!["t"]);
    let r = get(&api(b, "/namespaces/acme/repositories/lib%2Ftags/tags/t"));
    assert_eq!(ok(&r, 200)["digest"], kw.digest);
    // A partial name is not a repository.
    for f in ["team", "team/sub", "sub/app", "app", "team%2Fsub"] {
        assert_err(
            &get(&api(b, &format!("/namespaces/acme/repositories/{f}"))),
            404,
            "not_found",
            None,
        );
    }
    // The repository is not reachable through another namespace.
    create_ns(b, "other", "");
    assert_err(
        &get(&api(b, "/namespaces/other/repositories/acme/team/sub/app")),
        404,
        "not_found",
        None,
    );

    // Single component.
    let r = get(&api(b, "/namespaces/solo"));
    assert_eq!(ok(&r, 200)["image_count"], 1);
    assert_eq!(r.json["size"], solo.size());
    let r = get(&api(b, "/namespaces/solo/repositories"));
    assert_eq!(names(ok(&r, 200), "repositories"), vec!["solo"]);
    let r = get(&api(b, "/namespaces/solo/repositories/solo"));
    assert_eq!(ok(&r, 200)["repository"]["name"], "solo");

    // Deleting through the encoded form.
    let r = delete(&api(b, "/namespaces/acme/repositories/team%2Fsub%2Fapp"));
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(catalog(b), vec!["acme/lib/tags", "solo"]);
    assert_v2_name_unknown(b, "acme/team/sub/app");
    let r = delete(&api(b, "/namespaces/acme/repositories/lib%2Ftags"));
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(catalog(b), vec!["solo"]);
}

#[test]
fn size_accounting_counts_shared_layers_once() {
    let (s, _d) = Server::start();
    let b = s.url();
    let base_layer = bytes(100, 4000);
    let a = push_image(
        b,
        "acme/s1",
        "a",
        &config_bytes("a", "amd64"),
        &[base_layer.clone(), bytes(101, 300)],
    );
    let bb = push_image(
        b,
        "acme/s1",
        "b",
        &config_bytes("b", "amd64"),
        &[base_layer.clone(), bytes(102, 500)],
    );
    let base_len = base_layer.len() as u64;
    let s1 = a.size() + bb.size() - base_len;
    let r = get(&api(b, "/namespaces/acme/repositories/s1"));
    let d = ok(&r, 200);
    assert_eq!(d["repository"]["size"], s1, "shared base layer once");
    assert_eq!(d["size_breakdown"]["total"], s1);
    let per: Vec<u64> = d["size_breakdown"]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["size"].as_u64().unwrap())
        .collect();
    assert_eq!(per.iter().sum::<u64>(), a.size() + bb.size());
    let n = get(&api(b, "/namespaces/acme"));
    assert_eq!(ok(&n, 200)["size"], s1);

    // A second repository with the same base layer and one own layer.
    let c = push_image(
        b,
        "acme/s2",
        "c",
        &config_bytes("c", "amd64"),
        &[base_layer.clone(), bytes(103, 700)],
    );
    let r = get(&api(b, "/namespaces/acme/repositories/s2"));
    assert_eq!(ok(&r, 200)["repository"]["size"], c.size());
    let n = get(&api(b, "/namespaces/acme"));
    assert_eq!(ok(&n, 200)["image_count"], 2);
    assert_eq!(
        n.json["size"],
        s1 + c.size() - base_len,
        "namespace: a layer shared by two repositories counts once"
    );
    // The same manifest in two repositories counts once for the namespace.
    push_blob(b, "acme/s3", &config_bytes("a", "amd64"));
    push_blob(b, "acme/s3", &base_layer);
    push_blob(b, "acme/s3", &bytes(101, 300));
    tag_again(b, "acme/s3", "copy", &a);
    let r = get(&api(b, "/namespaces/acme/repositories/s3"));
    assert_eq!(ok(&r, 200)["repository"]["size"], a.size());
    let n = get(&api(b, "/namespaces/acme"));
    assert_eq!(n.json["size"], s1 + c.size() - base_len);
    assert_eq!(n.json["image_count"], 3);

    // Another namespace with the same base layer: its own figure.
    let o = push_image(
        b,
        "other/x",
        "1",
        &config_bytes("o", "amd64"),
        std::slice::from_ref(&base_layer),
    );
    let n = get(&api(b, "/namespaces/other"));
    assert_eq!(ok(&n, 200)["size"], o.size());
    let n = get(&api(b, "/namespaces/acme"));
    assert_eq!(n.json["size"], s1 + c.size() - base_len, "unchanged");

    // List shows the same figures.
    let r = get(&api(b, "/namespaces?order_by=name_asc"));
    let sizes: Vec<u64> = ok(&r, 200)["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, vec![s1 + c.size() - base_len, o.size()]);
    let r = get(&api(b, "/namespaces/acme/repositories"));
    let sizes: Vec<u64> = ok(&r, 200)["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, vec![s1, c.size(), a.size()]);
}

#[test]
fn deleting_the_last_tag_keeps_the_artifact() {
    let (s, _d) = Server::start();
    let b = s.url();
    let img = push_simple(b, "acme/t", "only", 3);
    let r = delete(&api(b, "/namespaces/acme/repositories/t/tags/only"));
    assert_eq!(r.status, 204, "{}", r.text);
    let r = get(&api(b, "/namespaces/acme/repositories/t"));
    let d = ok(&r, 200);
    assert_eq!(d["repository"]["tag_count"], 0);
    assert_eq!(d["repository"]["artifact_count"], 1);
    assert!(d["repository"]["latest_tag"].is_null());
    assert_eq!(d["tags"], json!([]));
    assert_eq!(d["artifacts"][0]["digest"], img.digest);
    assert_eq!(d["artifacts"][0]["tags"], json!([]));
    assert_eq!(d["repository"]["size"], img.size());
    let r = get(&api(b, "/namespaces/acme/repositories/t/tags"));
    assert_eq!(ok(&r, 200)["total_count"], 0);
    // /v2: the digest still resolves, the tag does not; the repository stays.
    assert_eq!(
        get(&format!("{b}/v2/acme/t/manifests/{}", img.digest)).status,
        200
    );
    let r = get(&format!("{b}/v2/acme/t/manifests/only"));
    assert_eq!(r.status, 404);
    assert_eq!(r.json["errors"][0]["code"], "MANIFEST_UNKNOWN");
    let r = get(&format!("{b}/v2/acme/t/tags/list"));
    assert_eq!(r.status, 200);
    assert!(r.json["tags"].as_array().is_none_or(|t| t.is_empty()));
    assert_eq!(catalog(b), vec!["acme/t"]);
    // Again: 404.
    assert_err(
        &delete(&api(b, "/namespaces/acme/repositories/t/tags/only")),
        404,
        "not_found",
        None,
    );
    assert_err(
        &delete(&api(b, "/namespaces/acme/repositories/t/tags/.bad")),
        400,
        "invalid_argument",
        Some("tag"),
    );
    // Deleting a tag leaves a second tag of the same manifest.
    tag_again(b, "acme/t", "x", &img);
    tag_again(b, "acme/t", "y", &img);
    assert_eq!(
        delete(&api(b, "/namespaces/acme/repositories/t/tags/x")).status,
        204
    );
    let r = get(&api(b, "/namespaces/acme/repositories/t/tags"));
    assert_eq!(names(ok(&r, 200), "tags"), vec!["y"]);
    assert_eq!(get(&format!("{b}/v2/acme/t/manifests/y")).status, 200);
}

/// Deletes the artifact `x` that tags `a` and `b` point at, with `how`,
/// and checks that only it and its tags went.
fn shared_artifact_delete(how: &str) {
    let (s, _d) = Server::start();
    let b = s.url();
    let repo = "acme/d";
    let x_config = config_bytes("x", "amd64");
    let x_layers = [bytes(1, 800)];
    let x = push_image(b, repo, "a", &x_config, &x_layers);
    tag_again(b, repo, "b", &x);
    let y = push_simple(b, repo, "c", 2);
    let z = push_simple(b, repo, "", 4); // untagged
                                         // The same manifest in another repository.
    let other = push_image(b, "acme/keep", "a", &x_config, &x_layers);
    assert_eq!(other.digest, x.digest);

    let path = match how {
        "delete-request" => format!(
            "/namespaces/acme/repositories/d/delete-request?digest={}",
            x.digest
        ),
        _ => format!("/namespaces/acme/repositories/d/artifacts/{}", x.digest),
    };
    let r = delete(&api(b, &path));
    assert_eq!(r.status, 204, "{how}: {}", r.text);

    let r = get(&api(b, "/namespaces/acme/repositories/d"));
    let d = ok(&r, 200);
    assert_eq!(names(d, "tags"), vec!["c"], "{how}");
    let arts: BTreeSet<String> = d["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        arts,
        [y.digest.clone(), z.digest.clone()].into_iter().collect()
    );
    assert_eq!(d["repository"]["tag_count"], 1);
    assert_eq!(d["repository"]["artifact_count"], 2);
    assert_eq!(d["repository"]["latest_tag"], "c");
    for tag in ["a", "b"] {
        let r = get(&format!("{b}/v2/{repo}/manifests/{tag}"));
        assert_eq!(r.status, 404, "{how}: tag {tag} still resolves");
    }
    assert_eq!(
        get(&format!("{b}/v2/{repo}/manifests/{}", x.digest)).status,
        404
    );
    assert_eq!(get(&format!("{b}/v2/{repo}/manifests/c")).status, 200);
    assert_eq!(
        get(&format!("{b}/v2/{repo}/manifests/{}", z.digest)).status,
        200
    );
    let r = get(&format!("{b}/v2/{repo}/tags/list"));
    assert_eq!(r.json["tags"], json!(["c"]));
    // The same manifest in another repository is untouched.
    assert_eq!(get(&format!("{b}/v2/acme/keep/manifests/a")).status, 200);
    let r = get(&api(b, "/namespaces/acme/repositories/keep"));
    assert_eq!(names(ok(&r, 200), "tags"), vec!["a"]);

    // Again: 404; bad or missing digest: 400.
    assert_err(&delete(&api(b, &path)), 404, "not_found", None);
    let r = delete(&api(b, "/namespaces/acme/repositories/d/delete-request"));
    assert_err(&r, 400, "invalid_argument", Some("digest"));
    let r = delete(&api(
        b,
        "/namespaces/acme/repositories/d/delete-request?digest=sha256:zz",
    ));
    assert_err(&r, 400, "invalid_argument", Some("digest"));
    let r = delete(&api(b, "/namespaces/acme/repositories/d/artifacts/latest"));
    assert_err(&r, 400, "invalid_argument", Some("digest"));
    let r = delete(&api(
        b,
        &format!("/namespaces/acme/repositories/nope/artifacts/{}", y.digest),
    ));
    assert_err(&r, 404, "not_found", None);
    // Nothing else changed.
    let r = get(&api(b, "/namespaces/acme/repositories/d"));
    assert_eq!(r.json["repository"]["artifact_count"], 2);
}

#[test]
fn deleting_an_artifact_with_two_tags_via_delete_request() {
    shared_artifact_delete("delete-request");
}

#[test]
fn deleting_an_artifact_with_two_tags_via_rest_form() {
    shared_artifact_delete("rest");
}

#[test]
fn artifact_delete_shrinks_repository_and_namespace_size() {
    // Sizes describe what the remaining artifacts hold: once an artifact is
    // deleted, its own manifest, config and layers no longer count (layers
    // it shares with remaining artifacts still do, once).
    let (s, _d) = Server::start();
    let b = s.url();
    let base_layer = bytes(500, 3000);
    let x = push_image(
        b,
        "acme/sz",
        "x",
        &config_bytes("x", "amd64"),
        &[base_layer.clone(), bytes(501, 2000)],
    );
    let y = push_image(
        b,
        "acme/sz",
        "y",
        &config_bytes("y", "amd64"),
        &[base_layer.clone(), bytes(502, 100)],
    );
    let both = x.size() + y.size() - base_layer.len() as u64;
    let r = get(&api(b, "/namespaces/acme/repositories/sz"));
    assert_eq!(ok(&r, 200)["repository"]["size"], both);
    let r = delete(&api(
        b,
        &format!("/namespaces/acme/repositories/sz/artifacts/{}", x.digest),
    ));
    assert_eq!(r.status, 204, "{}", r.text);
    let r = get(&api(b, "/namespaces/acme/repositories/sz"));
    let d = ok(&r, 200);
    assert_eq!(d["repository"]["artifact_count"], 1);
    assert_eq!(
        d["size_breakdown"]["artifacts"],
        json!([{"digest": y.digest, "size": y.size()}])
    );
    assert_eq!(
        (
            d["repository"]["size"].as_u64(),
            d["size_breakdown"]["total"].as_u64(),
            get(&api(b, "/namespaces/acme")).json["size"].as_u64(),
        ),
        (Some(y.size()), Some(y.size()), Some(y.size())),
        "(repository size, size_breakdown.total, namespace size) after deleting \
         artifact {} ({} bytes, {} of them its own); before: {both}",
        x.digest,
        x.size(),
        both - y.size()
    );
}

#[test]
fn repository_delete_removes_it_from_api_catalog_and_v2() {
    let (s, _d) = Server::start();
    let b = s.url();
    let r1 = push_simple(b, "acme/r1", "1", 1);
    push_simple(b, "acme/r1", "2", 2);
    let r2 = push_simple(b, "acme/r2", "1", 3);
    assert_eq!(catalog(b), vec!["acme/r1", "acme/r2"]);
    let r = delete(&api(b, "/namespaces/acme/repositories/r1"));
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert_err(
        &get(&api(b, "/namespaces/acme/repositories/r1")),
        404,
        "not_found",
        None,
    );
    assert_err(
        &get(&api(b, "/namespaces/acme/repositories/r1/tags")),
        404,
        "not_found",
        None,
    );
    let r = get(&api(b, "/namespaces/acme/repositories"));
    assert_eq!(names(ok(&r, 200), "repositories"), vec!["acme/r2"]);
    assert_eq!(r.json["total_count"], 1);
    assert_eq!(catalog(b), vec!["acme/r2"]);
    assert_v2_name_unknown(b, "acme/r1");
    assert_eq!(
        get(&format!("{b}/v2/acme/r1/manifests/{}", r1.digest)).status,
        404
    );
    assert_eq!(
        get(&format!("{b}/v2/acme/r1/blobs/{}", r1.layers[0].0)).status,
        404,
        "blobs of a deleted repository are no longer served from it"
    );
    let n = get(&api(b, "/namespaces/acme"));
    assert_eq!(ok(&n, 200)["image_count"], 1);
    assert_eq!(n.json["size"], r2.size());
    assert_err(
        &delete(&api(b, "/namespaces/acme/repositories/r1")),
        404,
        "not_found",
        None,
    );
    // A new push re-creates it, fresh.
    let again = push_simple(b, "acme/r1", "3", 4);
    let r = get(&api(b, "/namespaces/acme/repositories/r1"));
    let d = ok(&r, 200);
    assert_eq!(names(d, "tags"), vec!["3"]);
    assert_eq!(d["repository"]["artifact_count"], 1);
    assert_eq!(d["repository"]["size"], again.size());
    assert!(d["repository"]["last_pull"].is_null());
}

#[test]
fn namespace_delete_hides_repositories_at_once_then_goes() {
    let (s, _d) = Server::start();
    let b = s.url();
    let mut imgs = Vec::new();
    for i in 0..6 {
        imgs.push(push_simple(b, &format!("acme/r{i}"), "1", i));
    }
    push_simple(b, "acme/deep/er", "1", 50);
    let keep = push_simple(b, "other/x", "1", 60);
    let old = get(&api(b, "/namespaces/acme")).json;
    assert_eq!(old["image_count"], 7);

    let r = delete(&api(b, "/namespaces/acme"));
    let dn = ok(&r, 202).clone();
    assert_eq!(dn["status"], "deleting");
    assert_eq!(dn["name"], "acme");
    assert_eq!(dn["id"], old["id"]);
    // At once: nothing of acme is visible any more.
    let r = get(&api(b, "/namespaces/acme/repositories"));
    match r.status {
        200 => {
            assert_eq!(r.json["repositories"], json!([]), "{}", r.text);
            assert_eq!(r.json["total_count"], 0);
        }
        404 => assert_err(&r, 404, "not_found", None),
        _ => panic!(
            "repositories of a deleted namespace: {} {}",
            r.status, r.text
        ),
    }
    let n = get(&api(b, "/namespaces/acme"));
    match n.status {
        200 => {
            assert_eq!(n.json["status"], "deleting");
            assert_eq!(n.json["image_count"], 0);
        }
        404 => {}
        st => panic!("namespace during deletion: {st} {}", n.text),
    }
    assert_err(
        &get(&api(b, "/namespaces/acme/repositories/r0")),
        404,
        "not_found",
        None,
    );
    assert_eq!(catalog(b), vec!["other/x"]);
    for i in 0..6 {
        assert_v2_name_unknown(b, &format!("acme/r{i}"));
        let r = get(&format!("{b}/v2/acme/r{i}/manifests/1"));
        assert_eq!(r.status, 404);
    }
    assert_v2_name_unknown(b, "acme/deep/er");
    // Then the namespace goes; meanwhile _catalog never shows its
    // repositories again.
    let mut leaked = Vec::new();
    let gone = wait_for(5, || {
        let c = catalog(b);
        if c.iter().any(|n| n.starts_with("acme/")) {
            leaked.push(c);
        }
        (get(&api(b, "/namespaces/acme")).status == 404).then_some(())
    });
    assert!(gone.is_some(), "namespace still there 5 s after DELETE");
    assert!(
        leaked.is_empty(),
        "_catalog listed repositories of the namespace being deleted: {leaked:?}"
    );
    let l = get(&api(b, "/namespaces"));
    assert_eq!(names(&l.json, "namespaces"), vec!["other"]);
    assert_eq!(catalog(b), vec!["other/x"]);
    // Other namespaces untouched.
    assert_eq!(get(&api(b, "/namespaces/other")).json["size"], keep.size());
    assert_eq!(get(&format!("{b}/v2/other/x/manifests/1")).status, 200);

    // A new push re-creates it, fresh and private: once the namespace is
    // reported gone, pushes to it are accepted.
    let probe = config_bytes("acme/r0-99", "amd64"); // push_simple's config
    let r = send(
        Method::POST,
        &format!("{b}/v2/acme/r0/blobs/uploads/?digest={}", digest(&probe)),
        Some(("application/octet-stream", probe.clone())),
    );
    assert_eq!(
        r.status, 201,
        "blob push right after GET /api/v1/namespaces/acme answered 404: {}",
        r.text
    );
    let img = push_simple(b, "acme/r0", "new", 99);
    let n = get(&api(b, "/namespaces/acme"));
    let n = ok(&n, 200);
    assert_ne!(n["id"], old["id"]);
    assert_eq!(n["status"], "ready");
    assert_eq!(n["image_count"], 1);
    assert_eq!(n["size"], img.size());
    let r = get(&api(b, "/namespaces/acme/repositories/r0"));
    assert_eq!(names(ok(&r, 200), "tags"), vec!["new"]);
    assert_eq!(catalog(b), vec!["acme/r0", "other/x"]);
    assert_eq!(get(&format!("{b}/v2/acme/r0/manifests/1")).status, 404);
}

/// One push attempt during the race.
#[derive(Debug)]
struct Attempt {
    repo: String,
    statuses: Vec<u16>,
    manifest_sent: Instant,
    manifest_status: Option<u16>,
    first_5xx: Option<String>,
    img: Image,
}

#[test]
fn push_racing_namespace_deletion_never_leaves_a_half_deleted_namespace() {
    let (s, _d) = Server::start();
    let b = s.url().to_string();
    // Enough repositories that the deletion takes a moment.
    for i in 0..30 {
        push_simple(&b, &format!("racy/pre{i}"), "1", 1000 + i);
    }
    const THREADS: usize = 4;
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let stop_at = Arc::new(OnceLock::<Instant>::new());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let b = b.clone();
            let barrier = barrier.clone();
            let stop_at = stop_at.clone();
            thread::spawn(move || {
                barrier.wait();
                let mut out = Vec::new();
                let mut i = 0u64;
                loop {
                    if stop_at.get().is_some_and(|s| Instant::now() > *s) {
                        break;
                    }
                    let repo = format!("racy/t{t}-{i}");
                    let seed = 10_000 + t as u64 * 1000 + i;
                    let config = config_bytes(&repo, "amd64");
                    let layer = bytes(seed, 200);
                    let img = image_manifest(
                        &config,
                        OCI_CONFIG,
                        std::slice::from_ref(&layer),
                        json!({}),
                    );
                    let mut statuses = Vec::new();
                    let mut first_5xx = None;
                    for data in [&config, &layer] {
                        let d = digest(data);
                        let r = send(
                            Method::POST,
                            &format!("{b}/v2/{repo}/blobs/uploads/?digest={d}"),
                            Some(("application/octet-stream", data.to_vec())),
                        );
                        if r.status >= 500 && first_5xx.is_none() {
                            first_5xx = Some(format!("POST blob upload: {} {}", r.status, r.text));
                        }
                        statuses.push(r.status);
                    }
                    let manifest_sent = Instant::now();
                    let mut manifest_status = None;
                    if statuses.iter().all(|s| *s == 201) {
                        let r = put_manifest(&b, &repo, "1", OCI_MANIFEST, &img.manifest);
                        if r.status >= 500 && first_5xx.is_none() {
                            first_5xx = Some(format!("PUT manifest: {} {}", r.status, r.text));
                        }
                        statuses.push(r.status);
                        manifest_status = Some(r.status);
                    }
                    out.push(Attempt {
                        repo,
                        statuses,
                        manifest_sent,
                        manifest_status,
                        first_5xx,
                        img,
                    });
                    i += 1;
                }
                out
            })
        })
        .collect();
    barrier.wait();
    thread::sleep(Duration::from_millis(150));
    let r = delete(&api(&b, "/namespaces/racy"));
    let deleted_at = Instant::now();
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["status"], "deleting");
    let _ = stop_at.set(Instant::now() + Duration::from_millis(700));
    let attempts: Vec<Attempt> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("push thread"))
        .collect();

    // Wait for the deletion to finish (or a fresh namespace to be ready).
    let settled = wait_for(5, || {
        let r = get(&api(&b, "/namespaces/racy"));
        (r.status == 404 || r.json["status"] == "ready").then_some(r)
    })
    .expect("namespace still deleting 5 s after DELETE");

    // Every response was a clean one: success or a client error, no 5xx.
    let server_errors: Vec<(&str, &str)> = attempts
        .iter()
        .filter_map(|a| Some((a.repo.as_str(), a.first_5xx.as_deref()?)))
        .collect();

    let cat: BTreeSet<String> = catalog(&b)
        .into_iter()
        .filter(|n| n.starts_with("racy/"))
        .collect();
    assert!(
        cat.iter().all(|n| !n.starts_with("racy/pre")),
        "repositories from before the deletion survived: {cat:?}"
    );
    if settled.status == 404 {
        assert!(cat.is_empty(), "repositories without a namespace: {cat:?}");
    } else {
        // A fresh namespace: ready, and the API and _catalog agree.
        let api_names = all_repositories(&b, "racy");
        assert_eq!(api_names, cat, "API and _catalog disagree");
        assert_eq!(settled.json["image_count"], cat.len());
    }
    // Whatever is visible is whole: its tag resolves, its blobs are served.
    for name in &cat {
        if let Some(a) = attempts.iter().find(|a| &a.repo == name) {
            if a.manifest_status == Some(201) {
                let r = get(&format!("{b}/v2/{name}/manifests/1"));
                assert_eq!(r.status, 200, "{name}: tag does not resolve");
                assert_eq!(r.text.as_bytes(), a.img.manifest.as_slice());
                for (d, _) in a.img.blobs() {
                    assert_eq!(
                        get(&format!("{b}/v2/{name}/blobs/{d}")).status,
                        200,
                        "{name}: blob {d} missing"
                    );
                }
            }
        }
    }
    // A push that started after the DELETE was answered and succeeded
    // went into a fresh namespace and stays visible.
    for a in &attempts {
        if a.manifest_status == Some(201) && a.manifest_sent > deleted_at {
            // Lost only if the server let it write into the namespace
            // while it was being deleted.
            assert!(
                cat.contains(&a.repo),
                "{}: push acknowledged after the DELETE, then lost",
                a.repo
            );
        }
    }
    // A failed manifest push stored no tag.
    for a in &attempts {
        if a.manifest_status.is_some_and(|s| s != 201) && cat.contains(&a.repo) {
            let r = get(&format!("{b}/v2/{}/manifests/1", a.repo));
            assert_eq!(r.status, 404, "{}: failed push left a tag", a.repo);
        }
    }
    // After the deletion a push works and the namespace is ready.
    push_simple(&b, "racy/after", "1", 5);
    let n = get(&api(&b, "/namespaces/racy"));
    assert_eq!(ok(&n, 200)["status"], "ready");
    assert!(catalog(&b).contains(&"racy/after".to_string()));
    let outcomes: BTreeMap<Vec<u16>, usize> = attempts.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.statuses.clone()).or_default() += 1;
        m
    });
    assert!(
        server_errors.is_empty(),
        "{} pushes racing the namespace deletion got server errors (want a clean 4xx), \
         first: {:?}; all outcomes (statuses -> count): {outcomes:?}",
        server_errors.len(),
        server_errors.first()
    );
    eprintln!("race outcomes (statuses -> count): {outcomes:?}");
}

#[test]
fn push_into_a_namespace_being_deleted_is_refused_cleanly() {
    // An upload session opened before the deletion and finished while it is
    // in progress or after it must either fail with a client error and leave
    // nothing, or succeed into a fresh namespace.
    let (s, _d) = Server::start();
    let b = s.url();
    for i in 0..20 {
        push_simple(b, &format!("gone/pre{i}"), "1", 200 + i);
    }
    let layer = bytes(7, 5000);
    let r = http()
        .post(format!("{b}/v2/gone/late/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let loc = if loc.starts_with("http") {
        loc
    } else {
        format!("{b}{loc}")
    };
    let r = delete(&api(b, "/namespaces/gone"));
    assert_eq!(r.status, 202);
    // Straight away, while the purge may still run.
    let sep = if loc.contains('?') { '&' } else { '?' };
    let put = send(
        Method::PUT,
        &format!("{loc}{sep}digest={}", digest(&layer)),
        Some(("application/octet-stream", layer.clone())),
    );
    let blob_now = push_blob_status(b, "gone/now", &bytes(8, 100));
    eprintln!(
        "during deletion: session PUT {} {}, monolithic POST {blob_now}",
        put.status, put.text
    );
    assert!(
        put.status < 500 && blob_now < 500,
        "push during namespace deletion: session PUT {} {}, monolithic POST {blob_now}",
        put.status,
        put.text
    );
    wait_for(5, || {
        let r = get(&api(b, "/namespaces/gone"));
        (r.status == 404 || r.json["status"] == "ready").then_some(())
    })
    .expect("deletion did not finish");
    let cat = catalog(b);
    assert!(
        cat.iter().all(|n| !n.starts_with("gone/pre")),
        "old repositories visible: {cat:?}"
    );
    let ns = get(&api(b, "/namespaces/gone"));
    for n in cat.iter().filter(|n| n.starts_with("gone/")) {
        assert_eq!(ns.status, 200, "{n} visible without its namespace");
        assert_eq!(ns.json["status"], "ready");
    }
}

#[test]
fn registry_settings_get_patch_and_validation() {
    let (s, _d) = Server::start();
    let b = s.url();
    let url = api(b, "/registry");
    let r = get(&url);
    assert_eq!(
        ok(&r, 200),
        &json!({
            "name": "berth",
            "region": "local",
            "garbage_collection_schedule": null,
            "api_subnet_allow_list": [],
            "features": {"vulnerability_scanning": {"enabled": false}},
        })
    );

    // Schedule.
    let r = patch_json(
        &url,
        &json!({"garbage_collection_schedule": {"days": ["monday", "friday"], "time": "03:30"}}),
    );
    assert_eq!(
        ok(&r, 200)["garbage_collection_schedule"],
        json!({"days": ["monday", "friday"], "time": "03:30"})
    );
    assert_eq!(r.json["name"], "berth", "other fields unchanged");
    assert_eq!(get(&url).json, r.json);
    for (days, time, field) in [
        (json!([]), "03:30", "garbage_collection_schedule.days"),
        (
            json!(["funday"]),
            "03:30",
            "garbage_collection_schedule.days",
        ),
        (
            json!(["Monday"]),
            "03:30",
            "garbage_collection_schedule.days",
        ),
        (
            json!(["monday"]),
            "24:00",
            "garbage_collection_schedule.time",
        ),
        (
            json!(["monday"]),
            "23:60",
            "garbage_collection_schedule.time",
        ),
        (
            json!(["monday"]),
            "3:30",
            "garbage_collection_schedule.time",
        ),
        (
            json!(["monday"]),
            "0330",
            "garbage_collection_schedule.time",
        ),
        (
            json!(["monday"]),
            "03:30:00",
            "garbage_collection_schedule.time",
        ),
        (
            json!(["monday"]),
            "+3:30",
            "garbage_collection_schedule.time",
        ),
        (json!(["monday"]), "", "garbage_collection_schedule.time"),
    ] {
        let r = patch_json(
            &url,
            &json!({"garbage_collection_schedule": {"days": days, "time": time}}),
        );
        assert_err(&r, 400, "invalid_argument", Some(field));
    }
    for body in [
        json!({"garbage_collection_schedule": {"days": ["monday"]}}),
        json!({"garbage_collection_schedule": {"days": ["monday"], "time": "01:00", "tz": "UTC"}}),
        json!({"garbage_collection_schedule": "daily"}),
    ] {
        assert_err(&patch_json(&url, &body), 400, "invalid_argument", None);
    }
    // Edge times are fine.
    for t in ["00:00", "23:59"] {
        let r = patch_json(
            &url,
            &json!({"garbage_collection_schedule": {"days": ["sunday"], "time": t}}),
        );
        assert_eq!(ok(&r, 200)["garbage_collection_schedule"]["time"], t);
    }
    let all_days = json!([
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday"
    ]);
    let r = patch_json(
        &url,
        &json!({"garbage_collection_schedule": {"days": all_days, "time": "12:00"}}),
    );
    assert_eq!(ok(&r, 200)["garbage_collection_schedule"]["days"], all_days);
    // null switches it off.
    let r = patch_json(&url, &json!({"garbage_collection_schedule": null}));
    assert!(ok(&r, 200)["garbage_collection_schedule"].is_null());
    assert!(get(&url).json["garbage_collection_schedule"].is_null());

    // Allow-list: IPv4 and IPv6 CIDRs (loopback included so that the
    // access-control issue does not lock this test out).
    let list = json!([
        "127.0.0.0/8",
        "10.0.0.0/8",
        "192.168.1.0/24",
        "172.16.0.0/12",
        "::1/128",
        "2001:db8::/32",
        "fe80::/10",
    ]);
    let r = patch_json(&url, &json!({"api_subnet_allow_list": list}));
    assert_eq!(ok(&r, 200)["api_subnet_allow_list"], list);
    assert_eq!(get(&url).json["api_subnet_allow_list"], list);
    let mut many: Vec<String> = vec!["127.0.0.0/8".into(), "::1/128".into()];
    many.extend((0..23).map(|i| format!("10.{i}.0.0/16")));
    assert_eq!(many.len(), 25);
    let r = patch_json(&url, &json!({"api_subnet_allow_list": many}));
    assert_eq!(ok(&r, 200)["api_subnet_allow_list"], json!(many));
    many.push("10.99.0.0/16".into());
    let r = patch_json(&url, &json!({"api_subnet_allow_list": many}));
    assert_err(&r, 400, "invalid_argument", Some("api_subnet_allow_list"));
    assert_eq!(
        get(&url).json["api_subnet_allow_list"]
            .as_array()
            .unwrap()
            .len(),
        25,
        "a rejected PATCH changes nothing"
    );
    for bad in [
        "10.0.0.0/33",
        "10.0.0.0/",
        "10.0.0/8",
        "300.0.0.0/8",
        "not-a-cidr",
        "2001:db8::/129",
        "2001:db8::g/32",
        "10.0.0.0/-1",
        "10.0.0.0/8/8",
        " 10.0.0.0/8",
        "",
    ] {
        let r = patch_json(
            &url,
            &json!({"api_subnet_allow_list": ["127.0.0.0/8", bad]}),
        );
        assert_err(&r, 400, "invalid_argument", Some("api_subnet_allow_list"));
    }
    let r = patch_json(&url, &json!({"api_subnet_allow_list": []}));
    assert_eq!(ok(&r, 200)["api_subnet_allow_list"], json!([]));

    // Features.
    let r = patch_json(
        &url,
        &json!({"features": {"vulnerability_scanning": {"enabled": true}}}),
    );
    assert_eq!(
        ok(&r, 200)["features"]["vulnerability_scanning"]["enabled"],
        true
    );
    assert_eq!(
        get(&url).json["features"]["vulnerability_scanning"]["enabled"],
        true
    );
    for body in [
        json!({"features": {"vulnerability_scanning": {"enabled": "yes"}}}),
        json!({"features": {"vulnerability_scanning": {"enabled": true, "x": 1}}}),
        json!({"features": {"telepathy": {"enabled": true}}}),
    ] {
        assert_err(&patch_json(&url, &body), 400, "invalid_argument", None);
    }

    // Name and region; the region shows on namespaces.
    let r = patch_json(
        &url,
        &json!({"name": "prod registry", "region": "eu-west-1"}),
    );
    assert_eq!(ok(&r, 200)["name"], "prod registry");
    assert_eq!(r.json["region"], "eu-west-1");
    push_simple(b, "acme/web", "1", 1);
    assert_eq!(get(&api(b, "/namespaces/acme")).json["region"], "eu-west-1");
    assert_eq!(
        get(&api(b, "/namespaces")).json["namespaces"][0]["region"],
        "eu-west-1"
    );
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"region": ""}), "region"),
    ] {
        assert_err(
            &patch_json(&url, &body),
            400,
            "invalid_argument",
            Some(field),
        );
    }

    // Unknown fields and bad bodies.
    let before = get(&url).json;
    for body in [
        r#"{"colour": "blue"}"#,
        r#"{"name": "x", "extra": true}"#,
        r#"{"api_subnet_allow_list": "10.0.0.0/8"}"#,
        r#"not json"#,
        r#"42"#,
    ] {
        let r = raw(Method::PATCH, &url, body);
        assert_eq!(r.status, 400, "PATCH /registry {body}: {}", r.text);
        assert_err(&r, 400, "invalid_argument", None);
    }
    assert_eq!(get(&url).json, before, "rejected PATCHes change nothing");
    // Empty object: nothing changes.
    let r = patch_json(&url, &json!({}));
    assert_eq!(ok(&r, 200), &before);
}

#[test]
fn json_array_bodies_are_rejected_not_read_positionally() {
    // Bodies are JSON objects with named fields; an array must not be
    // mapped onto the fields by position (serde's default for structs).
    let (s, _d) = Server::start();
    let b = s.url();
    create_ns(b, "acme", "");
    let before_ns = get(&api(b, "/namespaces/acme")).json;
    let before_reg = get(&api(b, "/registry")).json;
    let cases = [
        (Method::POST, "/namespaces", r#"["evil"]"#),
        (
            Method::POST,
            "/namespaces",
            r#"["evil2", "desc", "proj", true]"#,
        ),
        (Method::PATCH, "/namespaces/acme", r#"["changed", true]"#),
        (Method::PATCH, "/registry", r#"[]"#),
        (Method::PATCH, "/registry", r#"["renamed"]"#),
    ];
    let mut accepted = Vec::new();
    for (m, path, body) in cases {
        let r = raw(m.clone(), &api(b, path), body);
        if r.status != 400 || r.json["error"]["code"] != "invalid_argument" {
            accepted.push(format!(
                "{m} /api/v1{path} {body} -> {} {}",
                r.status, r.text
            ));
        }
    }
    let l = get(&api(b, "/namespaces"));
    assert!(
        accepted.is_empty(),
        "array bodies accepted:\n{}\nnamespaces now: {:?}",
        accepted.join("\n"),
        names(&l.json, "namespaces")
    );
    assert_eq!(names(&l.json, "namespaces"), vec!["acme"]);
    assert_eq!(get(&api(b, "/namespaces/acme")).json, before_ns);
    assert_eq!(get(&api(b, "/registry")).json, before_reg);
}

#[test]
fn everything_survives_a_restart() {
    let (mut s, _d) = Server::start();
    let b = s.url().to_string();
    let ns = post_json(
        &api(&b, "/namespaces"),
        &json!({"name": "kept", "description": "d", "project_id": "p", "is_public": true}),
    );
    let ns = ok(&ns, 201).clone();
    let settings = json!({
        "name": "persisted",
        "region": "r1",
        "garbage_collection_schedule": {"days": ["tuesday"], "time": "04:15"},
        "api_subnet_allow_list": ["127.0.0.0/8", "::1/128", "10.0.0.0/8"],
        "features": {"vulnerability_scanning": {"enabled": true}},
    });
    let r = patch_json(&api(&b, "/registry"), &settings);
    assert_eq!(ok(&r, 200), &settings);
    let img = push_simple(&b, "acme/team/web", "1", 1);
    push_simple(&b, "acme/gone", "1", 2);
    assert_eq!(
        delete(&api(&b, "/namespaces/acme/repositories/gone")).status,
        204
    );
    let before_repo = get(&api(&b, "/namespaces/acme/repositories/team/web")).json;
    // Pull, then stop at once: the pull time must not be lost on a clean stop.
    let tp = now_ms();
    assert_eq!(
        get(&format!("{b}/v2/acme/team/web/manifests/1")).status,
        200
    );
    let tq = now_ms();

    s.restart();
    let b = s.url().to_string();
    let got = get(&api(&b, "/namespaces/kept"));
    let mut want = ns.clone();
    want["endpoint"] = json!(format!("{}/kept", host(&b)));
    want["region"] = json!("r1");
    assert_eq!(ok(&got, 200), &want, "namespace after restart");
    assert_eq!(get(&api(&b, "/registry")).json, settings);
    let r = get(&api(&b, "/namespaces/acme/repositories/team/web"));
    let d = ok(&r, 200).clone();
    assert_eq!(d["repository"]["name"], "acme/team/web");
    assert_eq!(d["repository"]["size"], img.size());
    assert_eq!(
        d["repository"]["last_push"],
        before_repo["repository"]["last_push"]
    );
    assert_eq!(
        d["repository"]["created_at"],
        before_repo["repository"]["created_at"]
    );
    assert_eq!(d["tags"], before_repo["tags"]);
    assert_eq!(d["artifacts"][0]["digest"], img.digest);
    assert_between(
        ts(&d["repository"]["last_pull"]),
        tp,
        tq,
        "repo last_pull after a clean restart",
    );
    assert_between(
        ts(&d["artifacts"][0]["last_pull"]),
        tp,
        tq,
        "artifact last_pull after a clean restart",
    );
    assert_err(
        &get(&api(&b, "/namespaces/acme/repositories/gone")),
        404,
        "not_found",
        None,
    );
    assert_eq!(catalog(&b), vec!["acme/team/web"]);
    let l = get(&api(&b, "/namespaces?order_by=name_asc"));
    assert_eq!(names(&l.json, "namespaces"), vec!["acme", "kept"]);

    // Acknowledged management writes survive kill -9 too.
    let r = patch_json(
        &api(&b, "/namespaces/kept"),
        &json!({"description": "after"}),
    );
    assert_eq!(r.status, 200);
    create_ns(&b, "fresh", "q");
    let r = patch_json(&api(&b, "/registry"), &json!({"region": "r2"}));
    assert_eq!(r.status, 200);
    s.crash_restart();
    let b = s.url().to_string();
    assert_eq!(
        get(&api(&b, "/namespaces/kept")).json["description"],
        "after"
    );
    assert_eq!(get(&api(&b, "/namespaces/fresh")).json["project_id"], "q");
    assert_eq!(get(&api(&b, "/registry")).json["region"], "r2");
    let d2 = get(&api(&b, "/namespaces/acme/repositories/team/web")).json;
    assert_eq!(d2["repository"]["last_pull"], d["repository"]["last_pull"]);
}

#[test]
fn namespace_deletion_survives_a_restart() {
    // Deleting a namespace and stopping right away: after the restart the
    // namespace's repositories are still gone and the deletion completes.
    let (mut s, _d) = Server::start();
    let b = s.url().to_string();
    for i in 0..5 {
        push_simple(&b, &format!("tmp/r{i}"), "1", i);
    }
    push_simple(&b, "stay/x", "1", 9);
    assert_eq!(delete(&api(&b, "/namespaces/tmp")).status, 202);
    s.crash_restart();
    let b = s.url().to_string();
    let cat = catalog(&b);
    if cat != vec!["stay/x"] {
        thread::sleep(Duration::from_millis(500));
        panic!(
            "after DELETE /namespaces/tmp (202) and kill -9: _catalog {cat:?}; \
             half a second later: _catalog {:?}, GET /api/v1/namespaces/tmp {} {}, \
             GET /api/v1/namespaces/tmp/repositories {} {}",
            catalog(&b),
            get(&api(&b, "/namespaces/tmp")).status,
            get(&api(&b, "/namespaces/tmp")).text,
            get(&api(&b, "/namespaces/tmp/repositories")).status,
            get(&api(&b, "/namespaces/tmp/repositories")).text,
        );
    }
    wait_for(5, || {
        (get(&api(&b, "/namespaces/tmp")).status == 404).then_some(())
    })
    .expect("namespace deletion did not complete after restart");
    assert_v2_name_unknown(&b, "tmp/r0");
    let l = get(&api(&b, "/namespaces"));
    assert_eq!(names(&l.json, "namespaces"), vec!["stay"]);
}
