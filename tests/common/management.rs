//! Helpers of the management API suites (`management*.rs`): whole
//! responses, error checks, images pushed through `/v2`, timestamps, UUIDs
//! and paging through every repository of a namespace.

use super::bytes;
use super::digest;
// Re-exported for the suites that glob-import this module (a binary that
// does not use one would warn).
#[allow(unused_imports)]
pub use super::{http, media::*, push_blob};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------- HTTP ---

// Not every suite that glob-imports this module uses each of these.
#[allow(unused_imports)]
pub use super::response::{delete, get, post_json, R};

#[track_caller]
pub fn send(method: Method, url: &str, body: Option<(&str, Vec<u8>)>) -> R {
    let (headers, body): (Vec<(&str, &str)>, _) = match body {
        Some((ct, bytes)) => (vec![("Content-Type", ct)], Some(bytes)),
        None => (vec![], None),
    };
    super::response::send_with(http(), method, url, &headers, body)
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn patch_json(url: &str, v: &Value) -> R {
    send(
        Method::PATCH,
        url,
        Some(("application/json", v.to_string().into_bytes())),
    )
}

pub fn raw(method: Method, url: &str, body: &str) -> R {
    send(
        method,
        url,
        Some(("application/json", body.as_bytes().to_vec())),
    )
}

/// `/api/v1` + path.
pub fn api(base: &str, path: &str) -> String {
    format!("{base}/api/v1{path}")
}

/// Asserts a management error: status, `error.code`, a message, a details
/// object and (when given) `details.field`.
#[track_caller]
pub fn assert_err(r: &R, status: u16, code: &str, field: Option<&str>) {
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
pub fn ok(r: &R, status: u16) -> &Value {
    assert_eq!(r.status, status, "body: {}", r.text);
    &r.json
}

// ------------------------------------------------------------- content ---

/// Monolithic blob push; returns the status.
pub fn push_blob_status(base: &str, repo: &str, data: &[u8]) -> u16 {
    let d = digest(data);
    send(
        Method::POST,
        &format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"),
        Some(("application/octet-stream", data.to_vec())),
    )
    .status
}

pub fn put_manifest(base: &str, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> R {
    send(
        Method::PUT,
        &format!("{base}/v2/{repo}/manifests/{reference}"),
        Some((media_type, body.to_vec())),
    )
}

/// What was pushed for one image manifest.
#[derive(Clone, Debug)]
pub struct Image {
    pub digest: String,
    pub manifest: Vec<u8>,
    pub media_type: String,
    pub config: (String, u64, String),
    pub layers: Vec<(String, u64)>,
}

impl Image {
    /// Manifest + config + layers, distinct.
    pub fn size(&self) -> u64 {
        let mut m: BTreeMap<&str, u64> = BTreeMap::new();
        m.insert(&self.digest, self.manifest.len() as u64);
        m.insert(&self.config.0, self.config.1);
        for (d, s) in &self.layers {
            m.insert(d, *s);
        }
        m.values().sum()
    }

    pub fn blobs(&self) -> Vec<(String, u64)> {
        let mut v = vec![(self.config.0.clone(), self.config.1)];
        v.extend(self.layers.iter().cloned());
        v
    }
}

pub fn config_bytes(tag: &str, arch: &str) -> Vec<u8> {
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
pub fn image_manifest(config: &[u8], config_type: &str, layers: &[Vec<u8>], extra: Value) -> Image {
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
pub fn push_image(
    base: &str,
    repo: &str,
    reference: &str,
    config: &[u8],
    layers: &[Vec<u8>],
) -> Image {
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
pub fn push_simple(base: &str, repo: &str, tag: &str, seed: u64) -> Image {
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
pub fn tag_again(base: &str, repo: &str, tag: &str, img: &Image) {
    let r = put_manifest(base, repo, tag, &img.media_type, &img.manifest);
    assert_eq!(r.status, 201, "re-tag {repo}:{tag}: {}", r.text);
}

pub fn catalog(base: &str) -> Vec<String> {
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
pub fn assert_v2_name_unknown(base: &str, repo: &str) {
    let r = get(&format!("{base}/v2/{repo}/tags/list"));
    assert_eq!(r.status, 404, "tags list of {repo}: {}", r.text);
    assert_eq!(
        r.json["errors"][0]["code"], "NAME_UNKNOWN",
        "tags list of {repo}: {}",
        r.text
    );
}

// ----------------------------------------------------------- checking ---

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Parses an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`)
/// into milliseconds since the epoch; panics on anything else.
#[track_caller]
pub fn ts(v: &Value) -> i64 {
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
pub fn assert_uuid(v: &Value) {
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
pub fn assert_between(t: i64, lo: i64, hi: i64, what: &str) {
    // The server stores milliseconds; allow a little clock slack.
    assert!(
        t >= lo - 1000 && t <= hi + 1000,
        "{what}: {t} not within [{lo}, {hi}]"
    );
}

pub fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} array expected: {list}"))
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

pub fn host(base: &str) -> String {
    base.trim_start_matches("http://").to_string()
}

/// Polls `f` until it returns Some or `secs` pass.
pub fn wait_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
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

#[track_caller]
pub fn create_ns(base: &str, name: &str, project: &str) -> Value {
    let r = post_json(
        &api(base, "/namespaces"),
        &json!({"name": name, "project_id": project}),
    );
    ok(&r, 201).clone()
}
