//! Black-box tests of what deletions and expiry give back: deleted
//! repositories and namespaces return every byte, idle upload sessions
//! expire with their data.

mod common;

use common::digest;
use common::gc::*;
use common::{bytes, with_param};
use reqwest::Method;
use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

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
    assert_eq!(r.status, 201, "{}", r.text);
    let tree1 = blobs_tree(&data);
    assert!(
        total(&tree1) > total(&tree0) + 170_000,
        "pushes did not store"
    );

    let r = delete(&api(&base, "/namespaces/gone/repositories/one"));
    assert_eq!(r.status, 204, "delete repository: {}", r.text);
    let r = delete(&api(&base, "/namespaces/dead"));
    assert_eq!(r.status, 202, "delete namespace: {}", r.text);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(&api(&base, "/namespaces/dead"));
        if r.status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "namespace dead still there after 30 s: {}",
            r.text
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
    assert_eq!(r.status, 202, "{}", r.text);
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
    assert_eq!(r.status, 202, "PATCH: {}", r.text);
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
    assert_eq!(r.status, 204, "session before expiry: {}", r.text);

    thread::sleep(Duration::from_secs(2));
    let report = gc_api(&base, false, false);
    assert!(n(&report, "uploads_expired") >= 1, "{report}");

    let left = session_chunks();
    assert!(left.is_empty(), "chunk files left behind: {left:?}");
    let r = get(&loc);
    assert_eq!(r.status, 404, "expired session: {}", r.text);
    assert_eq!(
        r.json["errors"][0]["code"], "BLOB_UPLOAD_UNKNOWN",
        "{}",
        r.text
    );
    // Finishing it now fails cleanly too.
    let r = send(
        Method::PUT,
        &with_param(&loc, &format!("digest={}", digest(&chunk))),
        &[("Content-Type", "application/octet-stream")],
        Some(Vec::new()),
    );
    assert_eq!(r.status, 404, "finishing an expired session: {}", r.text);
    assert!(
        !blob_file(&data, &digest(&chunk)).exists(),
        "expired upload became a blob"
    );
}
