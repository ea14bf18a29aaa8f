//! The consistency check of the store: a clean store reports nothing, and
//! damage to the blob bytes is found, what metadata can repair is repaired,
//! and pushing the content again makes the store clean.
//!
//! The damage is done to the files of the local object store (the bytes,
//! not the metadata), so these tests hold for any metadata engine.

mod common;

use common::*;

#[test]
fn a_clean_store_reports_nothing() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let (a, b) = (repo("fsck/a"), repo("fsck/b"));
        push_image(&reg, &a, &tag("v1"), &noise(1, 3_000)).await;
        push_image(&reg, &b, &tag("v1"), &noise(1, 3_000)).await;
        put_blob(&reg, &a, b"loose").await;
        let upload = reg.upload_start(&a).await.unwrap();
        reg.upload_append(&a, &upload.id, None, body(b"partial"), None)
            .await
            .unwrap();
        for repair in [false, true] {
            let r = reg.fsck(repair).await.unwrap();
            assert!(r.is_clean(), "{r:?}");
            assert!(r.problems.is_empty() && r.repairs.is_empty(), "{r:?}");
            // Two configs, one shared layer, two manifests, the loose blob.
            assert_eq!(r.blobs_checked, 6, "{r:?}");
            assert_eq!(r.manifests_checked, 2, "{r:?}");
        }
    });
}

#[test]
fn a_missing_blob_file_is_found_its_links_repaired_and_a_push_restores_it() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open_fs(dir.path()).await;
        let r = repo("fsck/app");
        let layer = noise(2, 5_000);
        let img = push_image(&reg, &r, &tag("v1"), &layer).await;
        let file = blob_file(dir.path(), &img.layer);
        assert!(file.is_file(), "the layer is not at {}", file.display());
        std::fs::remove_file(&file).unwrap();

        let found = reg.fsck(false).await.unwrap();
        assert!(!found.is_clean());
        let about_layer: Vec<_> = found
            .problems
            .iter()
            .filter(|p| p.contains(&img.layer.to_string()))
            .collect();
        assert!(
            about_layer.iter().any(|p| p.contains("missing")),
            "{found:?}"
        );
        assert!(
            found.repairs.is_empty(),
            "fsck without repair repaired: {found:?}"
        );
        // Checking changes nothing.
        assert_eq!(reg.fsck(false).await.unwrap().problems, found.problems);

        let repaired = reg.fsck(true).await.unwrap();
        assert!(
            repaired.repairs.iter().any(|p| p.contains("dangling")),
            "the link to the missing blob stayed: {repaired:?}"
        );
        // What only the content can repair is still reported.
        assert!(
            repaired
                .problems
                .iter()
                .any(|p| p.contains(&img.layer.to_string())),
            "{repaired:?}"
        );
        assert!(
            !has_blob(&reg, &r, &img.layer).await,
            "the repository still serves a blob whose bytes are gone"
        );

        put_blob(&reg, &r, &layer).await;
        assert!(file.is_file(), "pushing again did not restore the bytes");
        let after = reg.fsck(false).await.unwrap();
        assert!(after.is_clean(), "{after:?}");
        assert_eq!(read_blob(&reg, &r, &img.layer).await, layer);
    });
}

#[test]
fn corrupt_blob_bytes_are_found_and_not_repaired_away() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open_fs(dir.path()).await;
        let r = repo("fsck/app");
        let img = push_image(&reg, &r, &tag("v1"), &noise(3, 4_000)).await;
        let file = blob_file(dir.path(), &img.layer);
        std::fs::write(&file, noise(99, 4_000)).unwrap();

        let found = reg.fsck(false).await.unwrap();
        assert!(
            found
                .problems
                .iter()
                .any(|p| p.contains(&img.layer.to_string()) && p.contains("hashes to")),
            "{found:?}"
        );
        let repaired = reg.fsck(true).await.unwrap();
        assert!(
            !repaired.is_clean(),
            "repair hid corrupt bytes it cannot restore: {repaired:?}"
        );
        // A truncated blob is reported by its size.
        std::fs::write(&file, b"short").unwrap();
        let short = reg.fsck(false).await.unwrap();
        assert!(
            short
                .problems
                .iter()
                .any(|p| p.contains(&img.layer.to_string()) && p.contains("5 bytes stored")),
            "{short:?}"
        );
    });
}

#[test]
fn a_clean_report_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let reg = open(dir.path()).await;
        push_image(&reg, &repo("fsck/app"), &tag("v1"), &noise(4, 2_000)).await;
    });
    rt().block_on(async {
        let reg = open(dir.path()).await;
        let r = reg.fsck(false).await.unwrap();
        assert!(r.is_clean(), "{r:?}");
        assert_eq!((r.blobs_checked, r.manifests_checked), (3, 1));
    });
}
