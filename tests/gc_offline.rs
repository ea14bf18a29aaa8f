//! Black-box tests of the offline commands and the grace period: `berth gc`
//! refuses to run beside a server, the grace period protects fresh blobs
//! nothing needs yet, and `berth fsck` finds corrupt and missing blobs.

mod common;

use common::bytes;
use common::gc::*;

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
    assert_eq!(r.status, 204, "{}", r.text);
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

/// With the default grace period an unneeded blob is not collected.
#[test]
fn grace_period_protects_fresh_unneeded_blobs() {
    let reg = Reg::start("");
    let base = reg.base();
    let data = reg.data();
    let img = plain_image("grace/app", Some("v1"), "grace", &[&bytes(80, 30_000)]);
    push(&base, &img);
    let r = delete(&api(&base, "/namespaces/grace/repositories/app"));
    assert_eq!(r.status, 204, "{}", r.text);
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
