//! A dry run of garbage collection names what it would delete: every
//! manifest (repository, digest, tags, why) and every blob (digest, size),
//! in `berth gc --dry-run` (text and `--json`) and through the API, where
//! the lists are paginated. Nothing is deleted.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{push_blob, Server};
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const REPO: &str = "dry/app";

/// Pushes an image under `tag`; returns (manifest digest, its size, layer
/// digest).
fn push_image(url: &str, tag: &str, seed: u64) -> (String, usize, String) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
    let layer = common::bytes(seed, 700);
    let (c, l) = (push_blob(url, REPO, &config), push_blob(url, REPO, &layer));
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l, "size": layer.len()}],
    }))
    .unwrap();
    let r = common::client()
        .put(format!("{url}/v2/{REPO}/manifests/{tag}"))
        .header("content-type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    (common::digest(&m), m.len(), l)
}

struct Fixture {
    tmp: tempfile::TempDir,
    server: Server,
    kept: (String, usize, String),
    untagged: (String, usize, String),
    orphan: (String, usize),
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = tmp.path().join("berth.toml");
    std::fs::write(&config, "[gc]\ngrace_period_secs = 0\n").unwrap();
    let server = Server::start_in(&data, &["--config", config.to_str().unwrap()]);
    let url = server.url().to_string();
    let kept = push_image(&url, "kept", 1);
    let untagged = push_image(&url, "gone", 2);
    let r = common::client()
        .delete(format!("{url}/v2/{REPO}/manifests/gone"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202, "tag delete");
    let orphan_bytes = common::bytes(3, 321);
    let orphan = push_blob(&url, REPO, &orphan_bytes);
    let r = common::client()
        .delete(format!("{url}/v2/{REPO}/blobs/{orphan}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202, "blob delete");
    Fixture {
        tmp,
        server,
        kept,
        untagged,
        orphan: (orphan, orphan_bytes.len()),
    }
}

impl Fixture {
    fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// The blobs a dry run must name, with sizes, and those it must not.
    fn check_blobs(&self, blobs: &BTreeMap<String, u64>) {
        assert_eq!(
            blobs.get(&self.orphan.0),
            Some(&(self.orphan.1 as u64)),
            "{blobs:?}"
        );
        assert_eq!(
            blobs.get(&self.untagged.2),
            Some(&700),
            "untagged image's layer: {blobs:?}"
        );
        assert_eq!(
            blobs.get(&self.untagged.0),
            Some(&(self.untagged.1 as u64)),
            "the untagged manifest's own bytes: {blobs:?}"
        );
        for keep in [&self.kept.0, &self.kept.2] {
            assert!(!blobs.contains_key(keep), "{keep} is in use: {blobs:?}");
        }
    }

    fn check_manifests(&self, manifests: &[Value]) {
        assert_eq!(manifests.len(), 1, "{manifests:?}");
        let m = &manifests[0];
        assert_eq!(m["repository"], REPO);
        assert_eq!(m["digest"], self.untagged.0.as_str());
        assert_eq!(m["tags"], json!([]));
        assert!(
            m["reason"].as_str().unwrap_or("").contains("no tag"),
            "reason: {m}"
        );
    }

    /// Nothing was deleted.
    fn check_nothing_gone(&self, url: &str) {
        let r = common::client()
            .get(format!("{url}/v2/{REPO}/manifests/{}", self.untagged.0))
            .header("accept", OCI_MANIFEST)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "a dry run deleted the untagged manifest");
        let r = common::client()
            .get(format!("{url}/v2/{REPO}/blobs/{}", self.untagged.2))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "a dry run deleted a layer");
    }
}

fn blob_map(list: &[Value]) -> BTreeMap<String, u64> {
    list.iter()
        .map(|b| {
            (
                b["digest"].as_str().unwrap().to_string(),
                b["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn online_dry_run_lists_manifests_and_blobs_page_by_page() {
    let f = fixture();
    let url = f.server.url().to_string();
    let c = common::client();
    let r = c
        .post(format!("{url}/api/v1/gc"))
        .json(&json!({"dry_run": true, "delete_untagged": true}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run: Value = c
            .get(format!("{url}/api/v1/gc/runs/{id}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if run["status"] != "running" {
            assert_eq!(run["status"], "succeeded", "{run}");
            break;
        }
        assert!(Instant::now() < deadline, "dry run never finished");
        std::thread::sleep(Duration::from_millis(50));
    }

    let m: Value = c
        .get(format!("{url}/api/v1/gc/runs/{id}/manifests"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(m["total_count"], 1);
    f.check_manifests(m["manifests"].as_array().unwrap());

    // One blob a page: walk every page.
    let mut all = Vec::new();
    let mut total = None;
    for page in 1.. {
        let r = c
            .get(format!(
                "{url}/api/v1/gc/runs/{id}/blobs?page={page}&page_size=1"
            ))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        total = Some(v["total_count"].as_u64().unwrap());
        let items = v["blobs"].as_array().unwrap().clone();
        assert!(items.len() <= 1, "page_size=1 gave {}", items.len());
        if items.is_empty() {
            break;
        }
        all.extend(items);
        assert!(page < 100, "pages never end");
    }
    assert_eq!(total, Some(all.len() as u64));
    let blobs = blob_map(&all);
    assert_eq!(blobs.len(), all.len(), "a blob listed twice");
    f.check_blobs(&blobs);
    f.check_nothing_gone(&url);

    let r = c
        .get(format!("{url}/api/v1/gc/runs/{id}/blobs?page_size=1000"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400, "page_size over 100 is refused");
    let r = c
        .get(format!(
            "{url}/api/v1/gc/runs/00000000-0000-4000-8000-000000000000/blobs"
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn offline_dry_run_names_everything_in_text_and_json() {
    let mut f = fixture();
    assert!(f.server.stop());
    let data = f.data();
    let run = |extra: &[&str]| {
        common::run_ok(
            common::berth_cmd()
                .args(["gc", "--dry-run", "--delete-untagged", "--data-dir"])
                .arg(&data)
                .args(extra),
        )
    };

    let text = run(&[]);
    assert!(
        text.contains(&format!("manifest would delete: {REPO}@{}", f.untagged.0)),
        "{text}"
    );
    for (d, size) in [
        (&f.orphan.0, f.orphan.1),
        (&f.untagged.2, 700),
        (&f.untagged.0, f.untagged.1),
    ] {
        assert!(
            text.contains(&format!("blob would delete: {d} ({size} bytes)")),
            "{d} missing from:\n{text}"
        );
    }
    assert!(!text.contains(&f.kept.2), "a used layer is listed:\n{text}");

    let v: Value = serde_json::from_str(&run(&["--json"])).unwrap();
    assert_eq!(v["dry_run"], true);
    f.check_manifests(v["manifests"].as_array().unwrap());
    let blobs = blob_map(v["blobs"].as_array().unwrap());
    f.check_blobs(&blobs);
    assert_eq!(v["blobs_deleted"], blobs.len());

    f.server = Server::start_in(&data, &[]);
    f.check_nothing_gone(f.server.url());
}
