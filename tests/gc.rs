//! Black-box tests of garbage collection and fsck :
//! shared base layers, multi-arch indexes, referrers, online GC under
//! concurrent pushes and repository deletes, deleted repositories and
//! namespaces, upload expiry, dry runs, the offline pass refusing to run
//! beside a server, the grace period, and fsck finding damage.
//!
//! Storage is measured on disk: the files (and their sizes) under
//! `<data_dir>/blobs/`. Content goes in and out through `/v2` only; GC runs
//! through `POST /api/v1/gc` or the `berth gc` / `berth fsck` commands.

mod common;

use common::{bytes, with_param};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::{digest, Server};
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const SBOM_TYPE: &str = "application/spdx+json";
const SIG_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

// ---------------------------------------------------------------- setup ---

/// A server on its own data directory with a config file beside it.
struct Reg {
    tmp: tempfile::TempDir,
    server: Server,
}

impl Reg {
    /// `gc` is the body of the `[gc]` section (empty: the defaults).
    fn start(gc: &str) -> Reg {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config = tmp.path().join("berth.toml");
        std::fs::write(&config, format!("[gc]\n{gc}\n")).unwrap();
        let server = Server::start_in(&data, &["--config", config.to_str().unwrap()]);
        Reg { tmp, server }
    }

    fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    fn config(&self) -> PathBuf {
        self.tmp.path().join("berth.toml")
    }

    fn base(&self) -> String {
        self.server.url().to_string()
    }

    #[track_caller]
    fn stop(&mut self) {
        assert!(self.server.stop(), "berth serve did not exit cleanly");
    }
}

// ---------------------------------------------------------------- HTTP ---

fn http() -> &'static Client {
    static C: OnceLock<Client> = OnceLock::new();
    C.get_or_init(common::client)
}

/// A response, read whole.
struct R {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
    json: Value,
}

impl R {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

fn send_with(
    c: &Client,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<R, String> {
    let mut b = c.request(method.clone(), url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    if let Some(body) = body {
        b = b.body(body);
    }
    let r = b.send().map_err(|e| format!("{method} {url}: {e}"))?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r
        .bytes()
        .map_err(|e| format!("{method} {url}: reading body: {e}"))?
        .to_vec();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(R {
        status,
        headers,
        body,
        json,
    })
}

#[track_caller]
fn send(method: Method, url: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> R {
    send_with(http(), method, url, headers, body).unwrap_or_else(|e| panic!("{e}"))
}

#[track_caller]
fn get(url: &str) -> R {
    send(Method::GET, url, &[], None)
}

#[track_caller]
fn delete(url: &str) -> R {
    send(Method::DELETE, url, &[], None)
}

#[track_caller]
fn post_json(url: &str, v: &Value) -> R {
    send(
        Method::POST,
        url,
        &[("Content-Type", "application/json")],
        Some(v.to_string().into_bytes()),
    )
}

fn abs(base: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        loc.to_string()
    } else {
        format!("{base}{loc}")
    }
}

// ------------------------------------------------------------- content ---

fn config_bytes(label: &str, arch: &str) -> Vec<u8> {
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
struct Image {
    repo: String,
    /// Tag, or the digest when pushed untagged.
    reference: String,
    media_type: String,
    manifest: Vec<u8>,
    digest: String,
    blobs: Vec<(String, Vec<u8>)>,
}

impl Image {
    /// Files under `blobs/` this manifest and its blobs occupy.
    fn files(&self) -> BTreeSet<String> {
        let mut s: BTreeSet<String> = self.blobs.iter().map(|(d, _)| blob_key(d)).collect();
        s.insert(blob_key(&self.digest));
        s
    }
}

/// An image manifest over `config` (media type `config_type`) and `layers`
/// (each with its media type), plus extra top-level fields.
fn build_image(
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
fn plain_image(repo: &str, tag: Option<&str>, label: &str, layers: &[&[u8]]) -> Image {
    build_image(
        repo,
        tag,
        (OCI_CONFIG, config_bytes(label, "amd64")),
        layers.iter().map(|l| (OCI_LAYER, l.to_vec())).collect(),
        json!({}),
    )
}

fn push_blob_with(c: &Client, base: &str, repo: &str, data: &[u8]) -> Result<R, String> {
    send_with(
        c,
        Method::POST,
        &format!("{base}/v2/{repo}/blobs/uploads/?digest={}", digest(data)),
        &[("Content-Type", "application/octet-stream")],
        Some(data.to_vec()),
    )
}

fn put_manifest_with(c: &Client, base: &str, img: &Image) -> Result<R, String> {
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
fn push(base: &str, img: &Image) {
    for (d, b) in &img.blobs {
        let r = push_blob_with(http(), base, &img.repo, b).unwrap();
        assert_eq!(r.status, 201, "blob {d} to {}: {}", img.repo, r.text());
    }
    put_manifest(base, img);
}

#[track_caller]
fn put_manifest(base: &str, img: &Image) {
    let r = put_manifest_with(http(), base, img).unwrap();
    assert_eq!(
        r.status,
        201,
        "manifest {}:{}: {}",
        img.repo,
        img.reference,
        r.text()
    );
    assert_eq!(
        r.header("docker-content-digest").as_deref(),
        Some(img.digest.as_str()),
        "digest of {}:{}",
        img.repo,
        img.reference
    );
}

/// An index over `children` (each an image of the same repository).
fn build_index(repo: &str, tag: &str, children: &[(&Image, &str)]) -> Image {
    let m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(c, arch)| json!({
            "mediaType": c.media_type,
            "digest": c.digest,
            "size": c.manifest.len(),
            "platform": {"architecture": arch, "os": "linux"},
        })).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec(&m).unwrap();
    Image {
        repo: repo.to_string(),
        reference: tag.to_string(),
        media_type: OCI_INDEX.to_string(),
        digest: digest(&manifest),
        manifest,
        blobs: Vec::new(),
    }
}

/// Pulls the manifest (by its reference) and every blob; checks bytes and
/// digests.
fn verify_pull_with(c: &Client, base: &str, img: &Image) -> Result<(), String> {
    let what = format!("{}:{}", img.repo, img.reference);
    let r = send_with(
        c,
        Method::GET,
        &format!("{base}/v2/{}/manifests/{}", img.repo, img.reference),
        &[("Accept", img.media_type.as_str())],
        None,
    )?;
    if r.status != 200 {
        return Err(format!(
            "manifest {what}: status {}: {}",
            r.status,
            r.text()
        ));
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
                r.status,
                r.text()
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
fn verify_pull(base: &str, img: &Image) {
    if let Err(e) = verify_pull_with(http(), base, img) {
        panic!("pull after GC: {e}");
    }
}

#[track_caller]
fn assert_manifest_gone(base: &str, repo: &str, reference: &str) {
    let r = get(&format!("{base}/v2/{repo}/manifests/{reference}"));
    assert_eq!(
        r.status,
        404,
        "{repo}:{reference} should be gone: {}",
        r.text()
    );
}

// ------------------------------------------------------------ storage ---

/// `sha256:<hex>` -> `sha256/<hex[..2]>/<hex>`, relative to `blobs/`.
fn blob_key(d: &str) -> String {
    let (alg, hex) = d.split_once(':').expect("digest");
    format!("{alg}/{}/{hex}", &hex[..2])
}

fn blob_file(data: &Path, d: &str) -> PathBuf {
    data.join("blobs").join(blob_key(d))
}

/// Every file under `<data>/blobs/`, relative path -> size. The tests call
/// it after pushing, so `blobs/` itself must exist (a missing one means the
/// layout moved and every comparison would be vacuous); a directory below
/// it may vanish while it is walked (a collection removes empty shards).
fn blobs_tree(data: &Path) -> BTreeMap<String, u64> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if dir != root && e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => panic!("cannot list {}: {e}", dir.display()),
        };
        for e in rd {
            let e = e.unwrap();
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
                out.insert(rel, e.metadata().unwrap().len());
            }
        }
    }
    let mut out = BTreeMap::new();
    let root = data.join("blobs");
    walk(&root, &root, &mut out);
    out
}

fn total(tree: &BTreeMap<String, u64>) -> u64 {
    tree.values().sum()
}

/// `after` is `before` without exactly `removed` (which must all have been
/// in `before`).
#[track_caller]
fn assert_removed_exactly(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    removed: &BTreeSet<String>,
    what: &str,
) {
    for f in removed {
        assert!(before.contains_key(f), "{what}: {f} was never on disk");
    }
    let kept_wrongly: Vec<&String> = removed.iter().filter(|f| after.contains_key(*f)).collect();
    let lost_wrongly: Vec<&String> = before
        .keys()
        .filter(|f| !removed.contains(*f) && !after.contains_key(*f))
        .collect();
    let appeared: Vec<&String> = after.keys().filter(|f| !before.contains_key(*f)).collect();
    assert!(
        kept_wrongly.is_empty() && lost_wrongly.is_empty() && appeared.is_empty(),
        "{what}: blobs/ should have lost exactly {} files; still there: {kept_wrongly:?}; \
         wrongly deleted: {lost_wrongly:?}; new: {appeared:?}",
        removed.len()
    );
    for (f, s) in after {
        assert_eq!(before[f], *s, "{what}: size of {f} changed");
    }
}

fn size_of(tree: &BTreeMap<String, u64>, files: &BTreeSet<String>) -> u64 {
    files.iter().map(|f| tree[f]).sum()
}

// ------------------------------------------------------------------ GC ---

fn api(base: &str, path: &str) -> String {
    format!("{base}/api/v1{path}")
}

/// Starts an online run (waiting out a 409 from a run in progress) and
/// returns its id.
#[track_caller]
fn gc_start(base: &str, dry_run: bool, delete_untagged: bool) -> String {
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
        assert_eq!(r.status, 202, "POST /api/v1/gc: {}", r.text());
        let id = r.json["id"].as_str().expect("run id").to_string();
        assert_eq!(r.json["dry_run"], dry_run, "{}", r.text());
        assert_eq!(r.json["delete_untagged"], delete_untagged, "{}", r.text());
        return id;
    }
}

/// Polls a run until it is no longer `running`; returns it.
fn gc_wait_with(c: &Client, base: &str, id: &str) -> Result<Value, String> {
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
            return Err(format!("GET run {id}: {} {}", r.status, r.text()));
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
fn gc_api(base: &str, dry_run: bool, delete_untagged: bool) -> Value {
    let id = gc_start(base, dry_run, delete_untagged);
    let run = gc_wait_with(http(), base, &id).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run["status"], "succeeded", "GC run: {run}");
    assert_eq!(run["id"], id.as_str());
    let report = run["report"].clone();
    assert!(report.is_object(), "finished run without a report: {run}");
    assert_eq!(report["dry_run"], dry_run, "{run}");
    report
}

fn n(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("report field {field} missing or not a number: {v}"))
}

fn manifests_deleted(v: &Value) -> BTreeSet<String> {
    v["manifests_deleted"]
        .as_array()
        .unwrap_or_else(|| panic!("manifests_deleted missing: {v}"))
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

/// Runs the `berth` binary; returns (exit code, stdout, stderr).
fn berth(args: &[&str]) -> (Option<i32>, String, String) {
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
fn offline_gc(reg: &Reg, extra: &[&str]) -> Value {
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
fn fsck(data: &Path, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec!["fsck", "--data-dir", data.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = berth(&args);
    let v = serde_json::from_str(&out).unwrap_or(Value::Null);
    (code, v, format!("stdout {out}; stderr {err}"))
}

fn problems(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .map(|a| a.iter().map(|p| p.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- tests ---

/// Two images share a base layer; one is deleted; online GC frees exactly
/// its unique layer, config and manifest, and the other pulls intact.
#[test]
fn shared_base_layer_survives_and_only_unique_bytes_are_freed() {
    let reg = Reg::start("grace_period_secs = 0");
    let base = reg.base();
    let data = reg.data();
    let base_layer = bytes(1, 200_000);
    let a = plain_image(
        "shop/app",
        Some("a"),
        "image-a",
        &[&base_layer, &bytes(2, 50_000)],
    );
    let b = plain_image(
        "shop/app",
        Some("b"),
        "image-b",
        &[&base_layer, &bytes(3, 70_000)],
    );
    push(&base, &a);
    push(&base, &b);

    // Nothing is garbage yet.
    let before = blobs_tree(&data);
    assert_eq!(
        before.len(),
        7,
        "3 layers, 2 configs, 2 manifests: {before:?}"
    );
    let r = gc_api(&base, false, false);
    assert_eq!(n(&r, "blobs_deleted"), 0, "{r}");
    assert_eq!(n(&r, "bytes_freed"), 0, "{r}");
    assert_eq!(blobs_tree(&data), before);

    let d = delete(&format!("{base}/v2/shop/app/manifests/{}", a.digest));
    assert_eq!(d.status, 202, "delete image a: {}", d.text());

    let unique: BTreeSet<String> = [
        blob_key(&a.digest),
        blob_key(&a.blobs[0].0),
        blob_key(&a.blobs[2].0),
    ]
    .into();
    let unique_bytes = (a.manifest.len() + a.blobs[0].1.len() + a.blobs[2].1.len()) as u64;
    assert_eq!(size_of(&before, &unique), unique_bytes);

    let id = gc_start(&base, false, false);
    let run = gc_wait_with(http(), &base, &id).unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    let r = &run["report"];
    let after = blobs_tree(&data);
    assert_eq!(
        n(r, "bytes_freed"),
        unique_bytes,
        "bytes_freed must be exactly image a's manifest + config + unique layer; report {r}; \
         blobs/ after: {after:?}"
    );
    assert_eq!(n(r, "blobs_deleted"), 3, "{r}");
    assert_removed_exactly(&before, &after, &unique, "after deleting image a");
    assert_eq!(total(&before) - total(&after), unique_bytes);

    // The run is listed.
    let runs = get(&api(&base, "/gc/runs"));
    assert_eq!(runs.status, 200, "{}", runs.text());
    let listed = runs.json["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .find(|x| x["id"] == id.as_str())
        .unwrap_or_else(|| panic!("run {id} not listed: {}", runs.text()))
        .clone();
    assert_eq!(listed["status"], "succeeded");
    assert_eq!(listed["report"]["bytes_freed"], unique_bytes);

    verify_pull(&base, &b);
    assert_manifest_gone(&base, "shop/app", "a");
    assert_manifest_gone(&base, "shop/app", &a.digest);
}

/// A multi-arch index keeps its untagged children through GC with
/// delete_untagged; once the index is deleted, the offline pass frees the
/// children, their configs and layers, but not a layer a tagged image uses.
#[test]
fn multi_arch_index_children_live_and_die_with_the_index() {
    let mut reg = Reg::start("grace_period_secs = 0");
    let base = reg.base();
    let data = reg.data();
    let repo = "multi/app";
    let common_layer = bytes(10, 120_000);
    let shared_between_children = bytes(13, 30_000);
    let child = |arch: &str, own: Vec<u8>| {
        build_image(
            repo,
            None,
            (OCI_CONFIG, config_bytes("child", arch)),
            vec![
                (OCI_LAYER, common_layer.clone()),
                (OCI_LAYER, own),
                (OCI_LAYER, shared_between_children.clone()),
            ],
            json!({}),
        )
    };
    let amd = child("amd64", bytes(11, 40_000));
    let arm = child("arm64", bytes(12, 45_000));
    // A tagged image in the same repository using the common layer.
    let keeper = plain_image(repo, Some("keeper"), "keeper", &[&common_layer]);
    push(&base, &keeper);
    push(&base, &amd);
    push(&base, &arm);
    let index = build_index(repo, "v1", &[(&amd, "amd64"), (&arm, "arm64")]);
    put_manifest(&base, &index);

    let before = blobs_tree(&data);
    let r = gc_api(&base, false, true);
    assert_eq!(
        manifests_deleted(&r),
        BTreeSet::new(),
        "children of a tagged index are not untagged garbage: {r}"
    );
    assert_eq!(n(&r, "blobs_deleted"), 0, "{r}");
    assert_eq!(
        blobs_tree(&data),
        before,
        "GC with delete_untagged deleted files"
    );
    verify_pull(&base, &index);
    for c in [&amd, &arm, &keeper] {
        verify_pull(&base, c);
    }

    let d = delete(&format!("{base}/v2/{repo}/manifests/{}", index.digest));
    assert_eq!(d.status, 202, "delete index: {}", d.text());
    reg.stop();

    let r = offline_gc(&reg, &["--delete-untagged"]);
    let expected_manifests: BTreeSet<String> = [
        format!("{repo}@{}", amd.digest),
        format!("{repo}@{}", arm.digest),
    ]
    .into();
    assert_eq!(manifests_deleted(&r), expected_manifests, "report {r}");
    let mut gone: BTreeSet<String> = amd.files();
    gone.extend(arm.files());
    gone.insert(blob_key(&index.digest));
    gone.remove(&blob_key(&digest(&common_layer)));
    // index, 2 child manifests, 2 configs, 2 own layers, 1 shared layer.
    assert_eq!(gone.len(), 8);
    let after = blobs_tree(&data);
    assert_eq!(
        n(&r, "bytes_freed"),
        size_of(&before, &gone),
        "offline report {r}; blobs/ after: {after:?}"
    );
    assert_eq!(n(&r, "blobs_deleted"), gone.len() as u64, "{r}");
    assert_removed_exactly(&before, &after, &gone, "after deleting the index");

    reg.server.restart();
    let base = reg.base();
    verify_pull(&base, &keeper);
    assert_manifest_gone(&base, repo, "v1");
    assert_manifest_gone(&base, repo, &amd.digest);
    assert_manifest_gone(&base, repo, &arm.digest);
}

/// An SBOM referring to an image, and a signature referring to the SBOM,
/// both untagged, survive GC with delete_untagged while the image exists
/// and go (with their blobs) once it is deleted.
#[test]
fn referrers_live_and_die_with_their_subject() {
    let reg = Reg::start("grace_period_secs = 0");
    let base = reg.base();
    let data = reg.data();
    let repo = "sig/app";
    let base_layer = bytes(20, 80_000);
    let bystander = plain_image("sig/other", Some("v1"), "bystander", &[&base_layer]);
    push(&base, &bystander);
    let subject = plain_image(
        repo,
        Some("v1"),
        "subject",
        &[&base_layer, &bytes(21, 20_000)],
    );
    push(&base, &subject);
    let descriptor = |img: &Image| json!({"mediaType": img.media_type, "digest": img.digest, "size": img.manifest.len()});
    let sbom = build_image(
        repo,
        None,
        (OCI_EMPTY, b"{}".to_vec()),
        vec![(
            SBOM_TYPE,
            br#"{"spdxVersion":"SPDX-2.3","name":"subject"}"#.to_vec(),
        )],
        json!({"artifactType": SBOM_TYPE, "subject": descriptor(&subject)}),
    );
    push(&base, &sbom);
    let sig = build_image(
        repo,
        None,
        (OCI_EMPTY, b"{}".to_vec()),
        vec![(SIG_TYPE, bytes(22, 512))],
        json!({"artifactType": SIG_TYPE, "subject": descriptor(&sbom)}),
    );
    push(&base, &sig);

    let before = blobs_tree(&data);
    let r = gc_api(&base, false, true);
    assert_eq!(
        manifests_deleted(&r),
        BTreeSet::new(),
        "referrers of a kept subject are kept: {r}"
    );
    assert_eq!(n(&r, "blobs_deleted"), 0, "{r}");
    assert_eq!(blobs_tree(&data), before);
    for img in [&subject, &sbom, &sig, &bystander] {
        verify_pull(&base, img);
    }
    let refs = get(&format!("{base}/v2/{repo}/referrers/{}", subject.digest));
    assert_eq!(refs.status, 200, "{}", refs.text());
    let listed: Vec<&str> = refs.json["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![sbom.digest.as_str()], "{}", refs.text());

    let d = delete(&format!("{base}/v2/{repo}/manifests/{}", subject.digest));
    assert_eq!(d.status, 202, "delete subject: {}", d.text());
    let r = gc_api(&base, false, true);
    let expected: BTreeSet<String> = [
        format!("{repo}@{}", sbom.digest),
        format!("{repo}@{}", sig.digest),
    ]
    .into();
    assert_eq!(
        manifests_deleted(&r),
        expected,
        "referrers whose subject is gone are garbage: {r}"
    );
    let mut gone = subject.files();
    gone.extend(sbom.files());
    gone.extend(sig.files());
    gone.remove(&blob_key(&digest(&base_layer)));
    let after = blobs_tree(&data);
    assert_removed_exactly(&before, &after, &gone, "after deleting the subject");
    assert_eq!(after, blobs_tree(&data));
    assert_eq!(n(&r, "bytes_freed"), size_of(&before, &gone), "{r}");
    assert_eq!(n(&r, "blobs_deleted"), gone.len() as u64, "{r}");
    for img in [&sbom, &sig] {
        assert_manifest_gone(&base, repo, &img.digest);
    }
    verify_pull(&base, &bystander);
}

// ----------------------------------------------------- online, loaded ---

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the load test saw.
#[derive(Default)]
struct Log {
    /// Acknowledged (201) images.
    acked: Vec<Image>,
    /// Repositories whose rounds are complete and not deleted.
    live: Vec<String>,
    /// Repositories deleted through the management API.
    deleted: BTreeSet<String>,
    /// Non-success answers to pushes, by status (retried or given up).
    refusals: BTreeMap<u16, u64>,
    /// Examples of those answers.
    refusal_examples: Vec<String>,
    /// Things that must not happen.
    errors: Vec<String>,
    /// Finished GC runs: (status, report).
    runs: Vec<Value>,
    gc_conflicts: u64,
}

fn note_refusal(log: &Mutex<Log>, what: &str, r: &R) {
    let mut l = log.lock().unwrap();
    *l.refusals.entry(r.status).or_default() += 1;
    if l.refusal_examples.len() < 20 {
        l.refusal_examples
            .push(format!("{what}: {} {}", r.status, r.text()));
    }
    if r.status >= 500 && r.status != 503 {
        l.errors.push(format!("{what}: {} {}", r.status, r.text()));
    }
}

/// Pushes one blob, sometimes by mounting it (no `from`, as containerd
/// does), retrying refusals; returns whether it got a 201.
fn load_push_blob(
    c: &Client,
    base: &str,
    repo: &str,
    data: &[u8],
    mount: bool,
    log: &Mutex<Log>,
) -> bool {
    let d = digest(data);
    for _ in 0..40 {
        let r = if mount {
            let r = send_with(
                c,
                Method::POST,
                &format!("{base}/v2/{repo}/blobs/uploads/?mount={d}"),
                &[],
                None,
            );
            match r {
                Ok(r) if r.status == 202 => {
                    let loc = abs(base, &r.header("location").unwrap_or_default());
                    send_with(
                        c,
                        Method::PUT,
                        &with_param(&loc, &format!("digest={d}")),
                        &[("Content-Type", "application/octet-stream")],
                        Some(data.to_vec()),
                    )
                }
                other => other,
            }
        } else {
            push_blob_with(c, base, repo, data)
        };
        match r {
            Ok(r) if r.status == 201 => return true,
            Ok(r) => note_refusal(log, &format!("blob {d} to {repo}"), &r),
            Err(e) => log.lock().unwrap().errors.push(e),
        }
        thread::sleep(Duration::from_millis(25));
    }
    false
}

fn pusher(
    t: u64,
    base: String,
    deadline: Instant,
    shared_base: Arc<Vec<u8>>,
    log: Arc<Mutex<Log>>,
) {
    let c = common::client();
    let mut rng = Rng(0x1234_5678 + t * 0x9E37_79B9);
    let mut round = 0u64;
    while Instant::now() < deadline {
        let repo = format!("load/t{t}-r{round}");
        for i in 0..2u64 {
            // Medium layers come in a few variants: each is held by few
            // repositories, so deletes make it unneeded while other threads
            // keep uploading the same bytes.
            let variant = bytes(5_000 + rng.below(24), 16 * 1024);
            let unique = bytes(1_000_000 + t * 100_000 + round * 10 + i, 4096);
            let img = plain_image(
                &repo,
                Some(&format!("v{i}")),
                &format!("{repo}-{i}"),
                &[&shared_base, &variant, &unique],
            );
            let mut ok = true;
            for (k, (_, b)) in img.blobs.iter().enumerate() {
                let mount = k > 0 && k < 3 && rng.below(2) == 0;
                if !load_push_blob(&c, &base, &repo, b, mount, &log) {
                    ok = false;
                    break;
                }
            }
            if !ok {
                continue;
            }
            match put_manifest_with(&c, &base, &img) {
                Ok(r) if r.status == 201 => {
                    if r.header("docker-content-digest").as_deref() != Some(img.digest.as_str()) {
                        log.lock()
                            .unwrap()
                            .errors
                            .push(format!("{repo}: wrong digest header on 201"));
                    }
                    log.lock().unwrap().acked.push(img);
                }
                Ok(r) => note_refusal(&log, &format!("manifest {repo}:v{i}"), &r),
                Err(e) => log.lock().unwrap().errors.push(e),
            }
        }
        log.lock().unwrap().live.push(repo);
        // Delete an earlier repository (of any thread) now and then, more
        // often as they pile up.
        let victim = {
            let mut l = log.lock().unwrap();
            if !l.live.is_empty() && (l.live.len() > 48 || rng.below(3) == 0) {
                let i = rng.below(l.live.len() as u64) as usize;
                let v = l.live.swap_remove(i);
                l.deleted.insert(v.clone());
                Some(v)
            } else {
                None
            }
        };
        if let Some(v) = victim {
            let name = v.strip_prefix("load/").unwrap();
            match send_with(
                &c,
                Method::DELETE,
                &format!("{base}/api/v1/namespaces/load/repositories/{name}"),
                &[],
                None,
            ) {
                Ok(r) if r.status == 204 => {}
                Ok(r) => log.lock().unwrap().errors.push(format!(
                    "DELETE repository {v}: {} {}",
                    r.status,
                    r.text()
                )),
                Err(e) => log.lock().unwrap().errors.push(e),
            }
        }
        round += 1;
    }
}

/// Online GC with grace 0 running back to back while 8 threads push and
/// delete repositories for 30 s: every acknowledged image of a surviving
/// repository pulls with verified digests, and fsck is clean.
#[test]
fn online_gc_under_concurrent_pushes_and_deletes() {
    let mut reg = Reg::start("grace_period_secs = 0");
    let base = reg.base();
    let log = Arc::new(Mutex::new(Log::default()));
    let shared_base = Arc::new(bytes(99, 64 * 1024));
    let deadline = Instant::now() + Duration::from_secs(30);
    let stop = Arc::new(AtomicBool::new(false));

    let gc = {
        let (base, log, stop) = (base.clone(), log.clone(), stop.clone());
        thread::spawn(move || {
            let c = common::client();
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let body = json!({"delete_untagged": k % 2 == 0}).to_string();
                let r = send_with(
                    &c,
                    Method::POST,
                    &format!("{base}/api/v1/gc"),
                    &[("Content-Type", "application/json")],
                    Some(body.into_bytes()),
                );
                match r {
                    Ok(r) if r.status == 202 => {
                        let id = r.json["id"].as_str().unwrap_or_default().to_string();
                        match gc_wait_with(&c, &base, &id) {
                            Ok(run) => {
                                let mut l = log.lock().unwrap();
                                if run["status"] != "succeeded" {
                                    l.errors.push(format!("GC run did not succeed: {run}"));
                                }
                                l.runs.push(run);
                            }
                            Err(e) => log.lock().unwrap().errors.push(e),
                        }
                    }
                    Ok(r) if r.status == 409 => {
                        log.lock().unwrap().gc_conflicts += 1;
                        thread::sleep(Duration::from_millis(10));
                    }
                    Ok(r) => log.lock().unwrap().errors.push(format!(
                        "POST /api/v1/gc: {} {}",
                        r.status,
                        r.text()
                    )),
                    Err(e) => log.lock().unwrap().errors.push(e),
                }
            }
        })
    };
    let pushers: Vec<_> = (0..8u64)
        .map(|t| {
            let (base, log, shared_base) = (base.clone(), log.clone(), shared_base.clone());
            thread::spawn(move || pusher(t, base, deadline, shared_base, log))
        })
        .collect();
    for p in pushers {
        p.join().expect("pusher panicked");
    }
    stop.store(true, Ordering::Relaxed);
    gc.join().expect("gc thread panicked");

    let log = Arc::try_unwrap(log).ok().unwrap().into_inner().unwrap();
    let freed: u64 = log
        .runs
        .iter()
        .filter_map(|r| r["report"]["bytes_freed"].as_u64())
        .sum();
    let blobs_deleted: u64 = log
        .runs
        .iter()
        .filter_map(|r| r["report"]["blobs_deleted"].as_u64())
        .sum();
    eprintln!(
        "load: {} images acknowledged, {} repositories deleted, {} GC runs ({} blobs, {freed} bytes freed, \
         {} conflicts), refusals {:?}, e.g. {:#?}",
        log.acked.len(),
        log.deleted.len(),
        log.runs.len(),
        blobs_deleted,
        log.gc_conflicts,
        log.refusals,
        log.refusal_examples
    );
    assert!(
        log.errors.is_empty(),
        "errors under load: {:#?}",
        log.errors
    );
    assert!(
        log.acked.len() >= 80,
        "too few pushes to mean anything: {}",
        log.acked.len()
    );
    assert!(
        log.deleted.len() >= 10,
        "too few deletes: {}",
        log.deleted.len()
    );
    assert!(log.runs.len() >= 3, "too few GC runs: {}", log.runs.len());
    assert!(blobs_deleted > 0, "GC never deleted anything under load");

    let c = common::client();
    let mut failures = Vec::new();
    let mut verified = 0;
    for img in log.acked.iter().filter(|i| !log.deleted.contains(&i.repo)) {
        match verify_pull_with(&c, &base, img) {
            Ok(()) => verified += 1,
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} acknowledged images in surviving repositories do not pull: {:#?}",
        failures.len(),
        verified + failures.len(),
        failures
    );
    assert!(verified >= 20, "only {verified} images verified");

    reg.stop();
    let (code, report, raw) = fsck(&reg.data(), &[]);
    assert_eq!(code, Some(0), "fsck after the load: {raw}");
    assert!(problems(&report).is_empty(), "fsck problems: {raw}");
    assert!(n(&report, "blobs_checked") > 0, "{raw}");
}

// ---------------------------------------------------------- deletions ---

/// A deleted repository and a deleted namespace leave blobs/ exactly as it
/// was before they were pushed, and the offline pass finds nothing more.
#[test]
fn deleted_repository_and_namespace_give_back_every_byte() {
    let mut reg = Reg::start("grace_period_secs = 0");
    let base = reg.base();
    let data = reg.data();
    let base_layer = bytes(30, 100_000);
    let keep = plain_image(
        "keep/app",
        Some("v1"),
        "keep",
        &[&base_layer, &bytes(31, 10_000)],
    );
    push(&base, &keep);
    let tree0 = blobs_tree(&data);

    let one = plain_image(
        "gone/one",
        Some("v1"),
        "one",
        &[&base_layer, &bytes(32, 60_000)],
    );
    push(&base, &one);
    // The same layer twice under two tags, and an untagged manifest.
    let one_b = plain_image(
        "gone/one",
        None,
        "one-b",
        &[&bytes(32, 60_000), &bytes(33, 5_000)],
    );
    push(&base, &one_b);
    let dead_a = plain_image(
        "dead/a",
        Some("v1"),
        "dead-a",
        &[&base_layer, &bytes(34, 70_000)],
    );
    let dead_b = plain_image(
        "dead/b/deeper",
        Some("v1"),
        "dead-b",
        &[&bytes(34, 70_000), &bytes(35, 30_000)],
    );
    push(&base, &dead_a);
    push(&base, &dead_b);
    // A blob pushed but never referenced by a manifest.
    let r = push_blob_with(http(), &base, "dead/a", &bytes(36, 9_000)).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let tree1 = blobs_tree(&data);
    assert!(
        total(&tree1) > total(&tree0) + 170_000,
        "pushes did not store"
    );

    let r = delete(&api(&base, "/namespaces/gone/repositories/one"));
    assert_eq!(r.status, 204, "delete repository: {}", r.text());
    let r = delete(&api(&base, "/namespaces/dead"));
    assert_eq!(r.status, 202, "delete namespace: {}", r.text());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(&api(&base, "/namespaces/dead"));
        if r.status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "namespace dead still there after 30 s: {}",
            r.text()
        );
        thread::sleep(Duration::from_millis(50));
    }

    let r = gc_api(&base, false, false);
    let tree2 = blobs_tree(&data);
    let expected_gone: BTreeSet<String> = tree1
        .keys()
        .filter(|k| !tree0.contains_key(*k))
        .cloned()
        .collect();
    assert_eq!(
        n(&r, "bytes_freed"),
        total(&tree1) - total(&tree0),
        "GC report {r}"
    );
    assert_eq!(n(&r, "blobs_deleted"), expected_gone.len() as u64, "{r}");
    assert_eq!(
        tree2, tree0,
        "blobs/ after deleting the repository and the namespace (total {} bytes, before the pushes {})",
        total(&tree2),
        total(&tree0)
    );
    verify_pull(&base, &keep);

    reg.stop();
    let r = offline_gc(&reg, &[]);
    assert_eq!(n(&r, "blobs_deleted"), 0, "offline pass found more: {r}");
    assert_eq!(n(&r, "bytes_freed"), 0, "{r}");
    assert_eq!(n(&r, "orphans_removed"), 0, "{r}");
    assert_eq!(n(&r, "uploads_expired"), 0, "{r}");
    assert_eq!(manifests_deleted(&r), BTreeSet::new(), "{r}");
    assert_eq!(blobs_tree(&data), tree0);
    reg.server.restart();
    verify_pull(&reg.base(), &keep);
}

// ------------------------------------------------------------ uploads ---

/// An upload session idle past upload_ttl_secs is removed by GC with its
/// chunk files.
#[test]
fn idle_upload_sessions_expire_with_their_data() {
    let reg = Reg::start("upload_ttl_secs = 1");
    let base = reg.base();
    let data = reg.data();
    let r = send(
        Method::POST,
        &format!("{base}/v2/up/app/blobs/uploads/"),
        &[],
        None,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = abs(&base, &r.header("location").expect("Location"));
    let id = loc
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let chunk = bytes(40, 10_000);
    let r = send(
        Method::PATCH,
        &loc,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", &format!("0-{}", chunk.len() - 1)),
        ],
        Some(chunk.clone()),
    );
    assert_eq!(r.status, 202, "PATCH: {}", r.text());
    let loc = abs(&base, &r.header("location").expect("Location"));
    // Chunks are flat files `uploads/<id>.<n>`.
    let session_chunks = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(data.join("uploads"))
            .map(|rd| {
                rd.map(|e| e.unwrap().path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with(&format!("{id}.")))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        session_chunks().len(),
        1,
        "one chunk file expected for {id}"
    );
    let r = get(&loc);
    assert_eq!(r.status, 204, "session before expiry: {}", r.text());

    thread::sleep(Duration::from_secs(2));
    let report = gc_api(&base, false, false);
    assert!(n(&report, "uploads_expired") >= 1, "{report}");

    let left = session_chunks();
    assert!(left.is_empty(), "chunk files left behind: {left:?}");
    let r = get(&loc);
    assert_eq!(r.status, 404, "expired session: {}", r.text());
    assert_eq!(
        r.json["errors"][0]["code"],
        "BLOB_UPLOAD_UNKNOWN",
        "{}",
        r.text()
    );
    // Finishing it now fails cleanly too.
    let r = send(
        Method::PUT,
        &with_param(&loc, &format!("digest={}", digest(&chunk))),
        &[("Content-Type", "application/octet-stream")],
        Some(Vec::new()),
    );
    assert_eq!(r.status, 404, "finishing an expired session: {}", r.text());
    assert!(
        !blob_file(&data, &digest(&chunk)).exists(),
        "expired upload became a blob"
    );
}

// ------------------------------------------------------------ dry run ---

fn same_numbers(dry: &Value, real: &Value, what: &str) {
    for f in ["blobs_deleted", "bytes_freed", "uploads_expired"] {
        assert_eq!(
            n(dry, f),
            n(real, f),
            "{what}: {f} of the dry run {dry} vs the real run {real}"
        );
    }
    assert_eq!(
        manifests_deleted(dry),
        manifests_deleted(real),
        "{what}: manifests_deleted; dry {dry}, real {real}"
    );
}

/// A dry run (online and offline) reports exactly what the real run that
/// follows deletes, and deletes nothing itself.
#[test]
fn dry_run_reports_the_real_run_and_deletes_nothing() {
    let mut reg = Reg::start("grace_period_secs = 0\nupload_ttl_secs = 1");
    let base = reg.base();
    let data = reg.data();
    let base_layer = bytes(50, 50_000);
    let keep = plain_image("dry/keep", Some("v1"), "keep", &[&base_layer]);
    push(&base, &keep);
    let x = plain_image("dry/x", Some("v1"), "x", &[&base_layer, &bytes(51, 20_000)]);
    push(&base, &x);
    let r = delete(&api(&base, "/namespaces/dry/repositories/x"));
    assert_eq!(r.status, 204, "{}", r.text());
    // An upload session that will be idle past the TTL.
    let r = send(
        Method::POST,
        &format!("{base}/v2/dry/keep/blobs/uploads/"),
        &[],
        None,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = abs(&base, &r.header("location").unwrap());
    let r = send(
        Method::PATCH,
        &loc,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", "0-999"),
        ],
        Some(bytes(52, 1000)),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = abs(&base, &r.header("location").unwrap());
    thread::sleep(Duration::from_secs(2));

    let before = blobs_tree(&data);
    let dry = gc_api(&base, true, false);
    assert_eq!(blobs_tree(&data), before, "online dry run deleted files");
    let r = get(&loc);
    assert_eq!(r.status, 204, "dry run expired the session: {}", r.text());
    verify_pull(&base, &keep);
    let real = gc_api(&base, false, false);
    same_numbers(&dry, &real, "online");
    let x_files: BTreeSet<String> = x
        .files()
        .into_iter()
        .filter(|f| *f != blob_key(&digest(&base_layer)))
        .collect();
    assert_eq!(
        n(&real, "bytes_freed"),
        size_of(&before, &x_files),
        "{real}"
    );
    assert_eq!(n(&real, "uploads_expired"), 1, "{real}");
    assert_removed_exactly(&before, &blobs_tree(&data), &x_files, "online real run");

    // Offline: more garbage, then --dry-run and the real pass.
    let y = plain_image("dry/y", Some("v1"), "y", &[&base_layer, &bytes(53, 25_000)]);
    push(&base, &y);
    let r = delete(&api(&base, "/namespaces/dry/repositories/y"));
    assert_eq!(r.status, 204, "{}", r.text());
    reg.stop();
    let before = blobs_tree(&data);
    let dry = offline_gc(&reg, &["--dry-run"]);
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(blobs_tree(&data), before, "offline dry run deleted files");
    let real = offline_gc(&reg, &[]);
    assert_eq!(real["dry_run"], false, "{real}");
    same_numbers(&dry, &real, "offline");
    assert_eq!(n(&dry, "orphans_removed"), n(&real, "orphans_removed"));
    let y_files: BTreeSet<String> = y
        .files()
        .into_iter()
        .filter(|f| *f != blob_key(&digest(&base_layer)))
        .collect();
    assert_eq!(
        n(&real, "bytes_freed"),
        size_of(&before, &y_files),
        "{real}"
    );
    assert_removed_exactly(&before, &blobs_tree(&data), &y_files, "offline real run");
    reg.server.restart();
    verify_pull(&reg.base(), &keep);
}

/// With delete_untagged, the dry run's numbers also include what the
/// untagged manifests alone hold: an operator reads the dry run to know
/// what the real run will free.
#[test]
fn dry_run_with_delete_untagged_predicts_the_real_run() {
    let mut reg = Reg::start("grace_period_secs = 0");
    let base = reg.base();
    let data = reg.data();
    let base_layer = bytes(60, 40_000);
    let keep = plain_image("dru/app", Some("v1"), "keep", &[&base_layer]);
    push(&base, &keep);
    let loose = plain_image("dru/app", None, "loose", &[&base_layer, &bytes(61, 15_000)]);
    push(&base, &loose);

    let before = blobs_tree(&data);
    let dry = gc_api(&base, true, true);
    assert_eq!(blobs_tree(&data), before, "dry run deleted files");
    verify_pull(&base, &loose);
    let real = gc_api(&base, false, true);
    let expected: BTreeSet<String> = [format!("dru/app@{}", loose.digest)].into();
    assert_eq!(manifests_deleted(&real), expected, "{real}");
    same_numbers(&dry, &real, "online, delete_untagged");

    let loose2 = plain_image(
        "dru/app",
        None,
        "loose2",
        &[&base_layer, &bytes(62, 15_000)],
    );
    push(&base, &loose2);
    reg.stop();
    let before = blobs_tree(&data);
    let dry = offline_gc(&reg, &["--dry-run", "--delete-untagged"]);
    assert_eq!(blobs_tree(&data), before, "offline dry run deleted files");
    let real = offline_gc(&reg, &["--delete-untagged"]);
    let expected: BTreeSet<String> = [format!("dru/app@{}", loose2.digest)].into();
    assert_eq!(manifests_deleted(&real), expected, "{real}");
    same_numbers(&dry, &real, "offline, --delete-untagged");
}

// --------------------------------------------- offline beside a server ---

/// `berth gc` (and `berth fsck`) on a data directory a server holds refuse
/// with a message naming `berth serve`, and delete nothing.
#[test]
fn offline_gc_refuses_while_the_server_runs() {
    let reg = Reg::start("grace_period_secs = 0");
    let base = reg.base();
    let data = reg.data();
    let keep = plain_image("busy/keep", Some("v1"), "keep", &[&bytes(70, 20_000)]);
    push(&base, &keep);
    let junk = plain_image("busy/junk", Some("v1"), "junk", &[&bytes(71, 20_000)]);
    push(&base, &junk);
    let r = delete(&api(&base, "/namespaces/busy/repositories/junk"));
    assert_eq!(r.status, 204, "{}", r.text());
    let before = blobs_tree(&data);

    let config = reg.config();
    let d = data.to_str().unwrap();
    for args in [
        vec!["gc", "--data-dir", d],
        vec!["gc", "--data-dir", d, "--json", "--delete-untagged"],
        vec!["--config", config.to_str().unwrap(), "gc", "--data-dir", d],
        vec!["fsck", "--data-dir", d, "--repair"],
    ] {
        let (code, out, err) = berth(&args);
        assert!(
            code.is_some() && code != Some(0),
            "berth {args:?} beside a running server exited {code:?}; stdout {out}; stderr {err}"
        );
        assert!(
            err.contains("berth serve"),
            "berth {args:?}: the message should name the running server; stderr {err:?}"
        );
        assert!(!err.contains("panicked"), "berth {args:?} panicked: {err}");
        assert_eq!(blobs_tree(&data), before, "berth {args:?} deleted files");
    }
    verify_pull(&base, &keep);
    // The server is unharmed and its own GC still works.
    let r = gc_api(&base, false, false);
    assert_eq!(
        n(&r, "blobs_deleted"),
        3,
        "junk's manifest, config, layer: {r}"
    );
}

// -------------------------------------------------------------- grace ---

/// With the default grace period an unneeded blob is not collected.
#[test]
fn grace_period_protects_fresh_unneeded_blobs() {
    let reg = Reg::start("");
    let base = reg.base();
    let data = reg.data();
    let img = plain_image("grace/app", Some("v1"), "grace", &[&bytes(80, 30_000)]);
    push(&base, &img);
    let r = delete(&api(&base, "/namespaces/grace/repositories/app"));
    assert_eq!(r.status, 204, "{}", r.text());
    let before = blobs_tree(&data);
    assert_eq!(before.len(), 3);

    let r = gc_api(&base, false, true);
    assert!(n(&r, "blobs_in_grace") >= 3, "{r}");
    assert_eq!(n(&r, "blobs_deleted"), 0, "{r}");
    assert_eq!(n(&r, "bytes_freed"), 0, "{r}");
    assert_eq!(
        blobs_tree(&data),
        before,
        "blobs within the grace period deleted"
    );
    for f in img.files() {
        assert!(data.join("blobs").join(&f).exists(), "{f} deleted");
    }
}

// --------------------------------------------------------------- fsck ---

/// fsck is clean on intact data, finds a corrupted blob (exit 2, names it)
/// and a missing one; --repair never deletes referenced blob data.
#[test]
fn fsck_finds_corrupt_and_missing_blobs() {
    let mut reg = Reg::start("");
    let base = reg.base();
    let data = reg.data();
    let img = plain_image(
        "fsck/app",
        Some("v1"),
        "fsck",
        &[&bytes(90, 40_000), &bytes(91, 20_000)],
    );
    push(&base, &img);
    reg.stop();

    let (code, r, raw) = fsck(&data, &[]);
    assert_eq!(code, Some(0), "fsck of intact data: {raw}");
    assert!(problems(&r).is_empty(), "{raw}");
    assert!(n(&r, "blobs_checked") >= 4, "{raw}");
    assert!(n(&r, "manifests_checked") >= 1, "{raw}");

    // Same length, different bytes.
    let (layer, layer_bytes) = img.blobs[1].clone();
    let path = blob_file(&data, &layer);
    let mut bad = layer_bytes.clone();
    bad[100] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    let (code, r, raw) = fsck(&data, &[]);
    assert_eq!(code, Some(2), "fsck of a corrupted blob: {raw}");
    assert!(
        problems(&r).iter().any(|p| p.contains(&layer)),
        "problems should name {layer}: {raw}"
    );
    let tree = blobs_tree(&data);
    let (code, r, raw) = fsck(&data, &["--repair"]);
    assert_eq!(
        code,
        Some(2),
        "a corrupted blob cannot be repaired from here: {raw}"
    );
    assert!(problems(&r).iter().any(|p| p.contains(&layer)), "{raw}");
    assert_eq!(blobs_tree(&data), tree, "--repair removed blob data");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bad,
        "--repair rewrote the blob"
    );
    std::fs::write(&path, &layer_bytes).unwrap();
    let (code, _, raw) = fsck(&data, &[]);
    assert_eq!(code, Some(0), "fsck after restoring the blob: {raw}");

    // A missing config.
    let (config, _) = img.blobs[0].clone();
    std::fs::remove_file(blob_file(&data, &config)).unwrap();
    let (code, r, raw) = fsck(&data, &[]);
    assert_eq!(code, Some(2), "fsck of a missing blob: {raw}");
    assert!(
        problems(&r).iter().any(|p| p.contains(&config)),
        "problems should name {config}: {raw}"
    );
    let tree = blobs_tree(&data);
    let (code, r, raw) = fsck(&data, &["--repair"]);
    assert_eq!(
        code,
        Some(2),
        "missing bytes cannot be repaired from here: {raw}"
    );
    assert!(problems(&r).iter().any(|p| p.contains(&config)), "{raw}");
    assert_eq!(blobs_tree(&data), tree, "--repair removed blob data");
    for (d, b) in img.blobs.iter().skip(1) {
        assert_eq!(
            &std::fs::read(blob_file(&data, d)).unwrap(),
            b,
            "{d} after --repair"
        );
    }
    assert_eq!(
        std::fs::read(blob_file(&data, &img.digest)).unwrap(),
        img.manifest,
        "manifest after --repair"
    );
}
