//! Black-box tests of garbage collection: shared base layers, multi-arch
//! indexes and referrers live and die with what holds them, and dry runs
//! report the real run and delete nothing. The other collection suites are
//! the files `gc_*.rs`.
//!
//! Storage is measured on disk: the files (and their sizes) under
//! `<data_dir>/blobs/`. Content goes in and out through `/v2` only; GC runs
//! through `POST /api/v1/gc` or the `berth gc` / `berth fsck` commands.

mod common;

use common::bytes;
use common::digest;
use common::gc::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::Duration;

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

#[track_caller]
fn assert_manifest_gone(base: &str, repo: &str, reference: &str) {
    let r = get(&format!("{base}/v2/{repo}/manifests/{reference}"));
    assert_eq!(
        r.status, 404,
        "{repo}:{reference} should be gone: {}",
        r.text
    );
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
    assert_eq!(d.status, 202, "delete image a: {}", d.text);

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
    assert_eq!(runs.status, 200, "{}", runs.text);
    let listed = runs.json["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .find(|x| x["id"] == id.as_str())
        .unwrap_or_else(|| panic!("run {id} not listed: {}", runs.text))
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
    assert_eq!(d.status, 202, "delete index: {}", d.text);
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
    assert_eq!(refs.status, 200, "{}", refs.text);
    let listed: Vec<&str> = refs.json["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![sbom.digest.as_str()], "{}", refs.text);

    let d = delete(&format!("{base}/v2/{repo}/manifests/{}", subject.digest));
    assert_eq!(d.status, 202, "delete subject: {}", d.text);
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
    assert_eq!(r.status, 204, "{}", r.text);
    // An upload session that will be idle past the TTL.
    let r = send(
        Method::POST,
        &format!("{base}/v2/dry/keep/blobs/uploads/"),
        &[],
        None,
    );
    assert_eq!(r.status, 202, "{}", r.text);
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
    assert_eq!(r.status, 202, "{}", r.text);
    let loc = abs(&base, &r.header("location").unwrap());
    thread::sleep(Duration::from_secs(2));

    let before = blobs_tree(&data);
    let dry = gc_api(&base, true, false);
    assert_eq!(blobs_tree(&data), before, "online dry run deleted files");
    let r = get(&loc);
    assert_eq!(r.status, 204, "dry run expired the session: {}", r.text);
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
    assert_eq!(r.status, 204, "{}", r.text);
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
