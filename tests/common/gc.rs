//! Helpers of the garbage-collection suites (`gc*.rs`): a server with a
//! `[gc]` config, whole responses, images and indexes pushed and pulled
//! back through `/v2`, the files under `<data_dir>/blobs/`, runs through
//! `POST /api/v1/gc`, and the `berth gc` / `berth fsck` commands.

// Re-exported for the suites that glob-import this module (a binary that
// does not use one would warn).
#[allow(unused_imports)]
pub use super::{blob_file, http, media::*};
use super::{digest, Server};
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

pub const SBOM_TYPE: &str = "application/spdx+json";
pub const SIG_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

// ---------------------------------------------------------------- setup ---

/// A server on its own data directory with a config file beside it.
pub struct Reg {
    pub tmp: tempfile::TempDir,
    pub server: Server,
}

impl Reg {
    /// `gc` is the body of the `[gc]` section (empty: the defaults).
    pub fn start(gc: &str) -> Reg {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config = tmp.path().join("berth.toml");
        std::fs::write(&config, format!("[gc]\n{gc}\n")).unwrap();
        let server = Server::start_in(&data, &["--config", config.to_str().unwrap()]);
        Reg { tmp, server }
    }

    pub fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    pub fn config(&self) -> PathBuf {
        self.tmp.path().join("berth.toml")
    }

    pub fn base(&self) -> String {
        self.server.url().to_string()
    }

    #[track_caller]
    pub fn stop(&mut self) {
        assert!(self.server.stop(), "berth serve did not exit cleanly");
    }
}

// ---------------------------------------------------------------- HTTP ---

// Not every suite that glob-imports this module uses each of these.
#[allow(unused_imports)]
pub use super::response::{delete, get, post_json, send_with, R};

#[track_caller]
pub fn send(method: Method, url: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> R {
    send_with(http(), method, url, headers, body).unwrap_or_else(|e| panic!("{e}"))
}

pub fn abs(base: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        loc.to_string()
    } else {
        format!("{base}{loc}")
    }
}

// ------------------------------------------------------------- content ---

pub fn config_bytes(label: &str, arch: &str) -> Vec<u8> {
    json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Labels": {"test": label}},
        "rootfs": {"type": "layers", "diff_ids": []}
    })
    .to_string()
    .into_bytes()
}

/// A manifest as pushed: where, under which reference, its bytes and the
/// blobs it needs (config first, then layers).
#[derive(Clone, Debug)]
pub struct Image {
    pub repo: String,
    /// Tag, or the digest when pushed untagged.
    pub reference: String,
    pub media_type: String,
    pub manifest: Vec<u8>,
    pub digest: String,
    pub blobs: Vec<(String, Vec<u8>)>,
}

impl Image {
    /// Files under `blobs/` this manifest and its blobs occupy.
    pub fn files(&self) -> BTreeSet<String> {
        let mut s: BTreeSet<String> = self.blobs.iter().map(|(d, _)| blob_key(d)).collect();
        s.insert(blob_key(&self.digest));
        s
    }
}

/// An image manifest over `config` (media type `config_type`) and `layers`
/// (each with its media type), plus extra top-level fields.
pub fn build_image(
    repo: &str,
    reference: Option<&str>,
    config: (&str, Vec<u8>),
    layers: Vec<(&str, Vec<u8>)>,
    extra: Value,
) -> Image {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config.0, "digest": digest(&config.1), "size": config.1.len()},
        "layers": layers
            .iter()
            .map(|(mt, l)| json!({"mediaType": mt, "digest": digest(l), "size": l.len()}))
            .collect::<Vec<_>>(),
    });
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            m[k] = v;
        }
    }
    let manifest = serde_json::to_vec(&m).unwrap();
    let d = digest(&manifest);
    let mut blobs = vec![(digest(&config.1), config.1)];
    blobs.extend(layers.into_iter().map(|(_, l)| (digest(&l), l)));
    Image {
        repo: repo.to_string(),
        reference: reference.map(str::to_string).unwrap_or_else(|| d.clone()),
        media_type: OCI_MANIFEST.to_string(),
        manifest,
        digest: d,
        blobs,
    }
}

/// A plain image: config labelled `label`, the given layers.
pub fn plain_image(repo: &str, tag: Option<&str>, label: &str, layers: &[&[u8]]) -> Image {
    build_image(
        repo,
        tag,
        (OCI_CONFIG, config_bytes(label, "amd64")),
        layers.iter().map(|l| (OCI_LAYER, l.to_vec())).collect(),
        json!({}),
    )
}

pub fn push_blob_with(c: &Client, base: &str, repo: &str, data: &[u8]) -> Result<R, String> {
    send_with(
        c,
        Method::POST,
        &format!("{base}/v2/{repo}/blobs/uploads/?digest={}", digest(data)),
        &[("Content-Type", "application/octet-stream")],
        Some(data.to_vec()),
    )
}

pub fn put_manifest_with(c: &Client, base: &str, img: &Image) -> Result<R, String> {
    send_with(
        c,
        Method::PUT,
        &format!("{base}/v2/{}/manifests/{}", img.repo, img.reference),
        &[("Content-Type", img.media_type.as_str())],
        Some(img.manifest.clone()),
    )
}

/// Pushes every blob, then the manifest; all must be acknowledged.
#[track_caller]
pub fn push(base: &str, img: &Image) {
    for (d, b) in &img.blobs {
        let r = push_blob_with(http(), base, &img.repo, b).unwrap();
        assert_eq!(r.status, 201, "blob {d} to {}: {}", img.repo, r.text);
    }
    put_manifest(base, img);
}

#[track_caller]
pub fn put_manifest(base: &str, img: &Image) {
    let r = put_manifest_with(http(), base, img).unwrap();
    assert_eq!(
        r.status, 201,
        "manifest {}:{}: {}",
        img.repo, img.reference, r.text
    );
    assert_eq!(
        r.header("docker-content-digest").as_deref(),
        Some(img.digest.as_str()),
        "digest of {}:{}",
        img.repo,
        img.reference
    );
}

/// Pulls the manifest (by its reference) and every blob; checks bytes and
/// digests.
pub fn verify_pull_with(c: &Client, base: &str, img: &Image) -> Result<(), String> {
    let what = format!("{}:{}", img.repo, img.reference);
    let r = send_with(
        c,
        Method::GET,
        &format!("{base}/v2/{}/manifests/{}", img.repo, img.reference),
        &[("Accept", img.media_type.as_str())],
        None,
    )?;
    if r.status != 200 {
        return Err(format!("manifest {what}: status {}: {}", r.status, r.text));
    }
    if r.body != img.manifest {
        return Err(format!("manifest {what}: bytes differ from those pushed"));
    }
    if digest(&r.body) != img.digest
        || r.header("docker-content-digest").as_deref() != Some(img.digest.as_str())
    {
        return Err(format!(
            "manifest {what}: digest header {:?}, expected {}",
            r.header("docker-content-digest"),
            img.digest
        ));
    }
    for (d, b) in &img.blobs {
        let r = send_with(
            c,
            Method::GET,
            &format!("{base}/v2/{}/blobs/{d}", img.repo),
            &[],
            None,
        )?;
        if r.status != 200 {
            return Err(format!(
                "blob {d} of {what}: status {}: {}",
                r.status, r.text
            ));
        }
        if digest(&r.body) != *d || r.body != *b {
            return Err(format!(
                "blob {d} of {what}: {} bytes received hash to {}",
                r.body.len(),
                digest(&r.body)
            ));
        }
    }
    Ok(())
}

#[track_caller]
pub fn verify_pull(base: &str, img: &Image) {
    if let Err(e) = verify_pull_with(http(), base, img) {
        panic!("pull after GC: {e}");
    }
}

// ------------------------------------------------------------ storage ---

/// `sha256:<hex>` -> `sha256/<hex[..2]>/<hex>`, relative to `blobs/`.
pub fn blob_key(d: &str) -> String {
    let (alg, hex) = d.split_once(':').expect("digest");
    format!("{alg}/{}/{hex}", &hex[..2])
}

/// Every file under `<data>/blobs/`, relative path -> size (see
/// [`super::files_under`]: `blobs/` must exist).
pub fn blobs_tree(data: &Path) -> BTreeMap<String, u64> {
    super::files_under(&data.join("blobs"))
}

pub fn total(tree: &BTreeMap<String, u64>) -> u64 {
    tree.values().sum()
}

// ------------------------------------------------------------------ GC ---

pub fn api(base: &str, path: &str) -> String {
    format!("{base}/api/v1{path}")
}

/// Starts an online run (waiting out a 409 from a run in progress) and
/// returns its id.
#[track_caller]
pub fn gc_start(base: &str, dry_run: bool, delete_untagged: bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = post_json(
            &api(base, "/gc"),
            &json!({"dry_run": dry_run, "delete_untagged": delete_untagged}),
        );
        if r.status == 409 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
            continue;
        }
        assert_eq!(r.status, 202, "POST /api/v1/gc: {}", r.text);
        let id = r.json["id"].as_str().expect("run id").to_string();
        assert_eq!(r.json["dry_run"], dry_run, "{}", r.text);
        assert_eq!(r.json["delete_untagged"], delete_untagged, "{}", r.text);
        return id;
    }
}

/// Polls a run until it is no longer `running`; returns it.
pub fn gc_wait_with(c: &Client, base: &str, id: &str) -> Result<Value, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = send_with(
            c,
            Method::GET,
            &api(base, &format!("/gc/runs/{id}")),
            &[],
            None,
        )?;
        if r.status != 200 {
            return Err(format!("GET run {id}: {} {}", r.status, r.text));
        }
        if r.json["status"] != "running" {
            return Ok(r.json);
        }
        if Instant::now() > deadline {
            return Err(format!("run {id} still running after 120 s"));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// One online run to completion; asserts it succeeded and returns its
/// report.
#[track_caller]
pub fn gc_api(base: &str, dry_run: bool, delete_untagged: bool) -> Value {
    let id = gc_start(base, dry_run, delete_untagged);
    let run = gc_wait_with(http(), base, &id).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run["status"], "succeeded", "GC run: {run}");
    assert_eq!(run["id"], id.as_str());
    let report = run["report"].clone();
    assert!(report.is_object(), "finished run without a report: {run}");
    assert_eq!(report["dry_run"], dry_run, "{run}");
    report
}

pub fn n(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("report field {field} missing or not a number: {v}"))
}

pub fn manifests_deleted(v: &Value) -> BTreeSet<String> {
    v["manifests_deleted"]
        .as_array()
        .unwrap_or_else(|| panic!("manifests_deleted missing: {v}"))
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

/// Runs the `berth` binary; returns (exit code, stdout, stderr).
pub fn berth(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run berth");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `berth --config C gc --data-dir D --json <extra>`; must exit 0.
#[track_caller]
pub fn offline_gc(reg: &Reg, extra: &[&str]) -> Value {
    let data = reg.data();
    let config = reg.config();
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "gc",
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = berth(&args);
    assert_eq!(code, Some(0), "berth {args:?}: stdout {out}; stderr {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("berth gc --json output {out:?}: {e}"))
}

/// `berth fsck --data-dir D --json <extra>`: (exit code, report).
pub fn fsck(data: &Path, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec!["fsck", "--data-dir", data.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    super::run_json(Command::new(env!("CARGO_BIN_EXE_berth")).args(&args))
}

pub fn problems(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .map(|a| a.iter().map(|p| p.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}
