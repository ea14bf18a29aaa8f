//! `kill -9` during a repository delete: after the restart the repository
//! is either all there or all gone (from `_catalog`, its tags, its
//! manifests and the management API), an acknowledged delete is never
//! undone, a cut-short delete finishes by itself, and `berth fsck` finds
//! nothing wrong.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const TAGS: usize = 40;

fn push_repo(url: &str, repo: &str, seed: u64) -> Vec<String> {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let shared = common::bytes(seed, 3000);
    for b in [&config[..], &shared[..]] {
        common::push_blob(url, repo, b);
    }
    let mut tags = Vec::new();
    for i in 0..TAGS {
        let own = common::bytes(seed * 1000 + i as u64, 500);
        common::push_blob(url, repo, &own);
        let layer = |b: &[u8]| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": common::digest(b), "size": b.len()});
        let m = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": common::digest(config), "size": config.len()},
            "layers": [layer(&shared), layer(&own)],
        })
        .to_string();
        let tag = format!("t{i}");
        common::put_manifest(url, repo, &tag, OCI_MANIFEST, m.as_bytes());
        tags.push(tag);
    }
    tags
}

#[derive(Debug, PartialEq)]
enum State {
    There,
    Gone,
}

/// Whether `repo` is wholly there or wholly gone; panics on anything else.
fn state(url: &str, repo: &str, tags: &[String]) -> State {
    let c = common::client();
    let catalog: Value = c
        .get(format!("{url}/v2/_catalog?n=1000"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let listed = catalog["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == repo);
    let t = c.get(format!("{url}/v2/{repo}/tags/list")).send().unwrap();
    let tag_status = t.status().as_u16();
    let tag_count = if tag_status == 200 {
        t.json::<Value>().unwrap()["tags"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0)
    } else {
        0
    };
    let (ns, name) = repo.split_once('/').unwrap();
    let api = c
        .get(format!("{url}/api/v1/namespaces/{ns}/repositories/{name}"))
        .send()
        .unwrap()
        .status()
        .as_u16();
    let served = tags
        .iter()
        .filter(|tag| {
            c.get(format!("{url}/v2/{repo}/manifests/{tag}"))
                .header("accept", OCI_MANIFEST)
                .send()
                .unwrap()
                .status()
                == 200
        })
        .count();
    let seen = format!(
        "catalog lists it: {listed}; tags/list {tag_status} with {tag_count} tags; \
         API {api}; {served} of {} tags served",
        tags.len()
    );
    if listed && tag_status == 200 && tag_count == tags.len() && api == 200 && served == tags.len()
    {
        State::There
    } else if !listed && tag_status == 404 && api == 404 && served == 0 {
        State::Gone
    } else {
        panic!("{repo} is half there after kill -9 during its deletion: {seen}");
    }
}

#[test]
fn kill9_during_repository_delete_leaves_it_all_there_or_all_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    let keep_tags = push_repo(s.url(), "crash/keep", 1);
    let mut outcomes = Vec::new();
    for (i, delay_ms) in [0u64, 1, 2, 4, 7, 12, 20, 35].into_iter().enumerate() {
        let repo = format!("crash/doomed{i}");
        let tags = push_repo(s.url(), &repo, 10 + i as u64);
        let url = s.url().to_string();
        let name = format!("doomed{i}");
        let deleter = std::thread::spawn(move || {
            common::client()
                .delete(format!("{url}/api/v1/namespaces/crash/repositories/{name}"))
                .send()
                .map(|r| r.status().as_u16())
                .ok()
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        s.crash_restart();
        let acknowledged = deleter.join().unwrap().is_some_and(|st| st < 300);

        let first = state(s.url(), &repo, &tags);
        if acknowledged {
            assert_eq!(first, State::Gone, "an acknowledged delete came back");
        }
        // A cut-short delete finishes by itself; a delete that never
        // started leaves the repository as it was.
        let deadline = Instant::now() + Duration::from_secs(20);
        let settled = loop {
            let st = state(s.url(), &repo, &tags);
            if st == State::Gone || first == State::There || Instant::now() > deadline {
                break st;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(settled, first, "{repo} changed state after the restart");
        assert_eq!(state(s.url(), "crash/keep", &keep_tags), State::There);
        outcomes.push((delay_ms, acknowledged, first));
    }
    eprintln!("kill -9 outcomes (delay ms, acknowledged, state): {outcomes:?}");
    assert!(s.stop());
    common::assert_fsck_clean(dir.path(), "after kill -9 during a repository delete");
}
