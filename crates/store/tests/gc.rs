//! The garbage-collection protocol of the store: what nothing needs goes
//! once it is out of the grace period, what a manifest references stays,
//! and a dry run reports exactly what the real run then does.

mod common;

use std::time::Duration;

use berth_store::{GcOptions, GcReport, Registry};
use common::*;

fn run() -> GcOptions {
    GcOptions::default()
}

fn dry() -> GcOptions {
    GcOptions {
        dry_run: true,
        ..GcOptions::default()
    }
}

/// Digests a report names, sorted.
fn digests(r: &GcReport) -> Vec<String> {
    let mut v: Vec<String> = r.blobs.iter().map(|b| b.digest.clone()).collect();
    v.sort();
    v
}

/// Whether the bytes of `d` are still stored.
async fn stored(reg: &Registry, d: &berth_oci::Digest) -> bool {
    reg.blob_bytes_stored(d)
        .await
        .expect("object store reachable")
}

#[test]
fn an_unreferenced_blob_is_kept_within_the_grace_period_and_collected_after() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("gc/app");
        let loose = put_blob(&reg, &r, &noise(1, 4_000)).await;

        let within = reg.gc_run(&run(), LONG_GRACE, LONG_TTL).await.unwrap();
        assert_eq!(within.blobs_deleted, 0, "{within:?}");
        assert!(
            has_blob(&reg, &r, &loose).await,
            "a fresh blob went within its grace period"
        );

        // Out of its grace period, the unused link goes first; that change
        // starts the blob's own grace period, after which the bytes go.
        let grace = Duration::from_millis(300);
        tokio::time::sleep(grace + Duration::from_millis(200)).await;
        let unlinked = reg.gc_run(&run(), grace, LONG_TTL).await.unwrap();
        assert!(
            !has_blob(&reg, &r, &loose).await,
            "the unused link stayed: {unlinked:?}"
        );
        assert_eq!(
            unlinked.blobs_deleted + unlinked.blobs_in_grace,
            1,
            "{unlinked:?}"
        );
        let after = if unlinked.blobs_deleted == 1 {
            unlinked
        } else {
            assert!(
                stored(&reg, &loose).await,
                "bytes went within their grace period"
            );
            tokio::time::sleep(grace + Duration::from_millis(200)).await;
            reg.gc_run(&run(), grace, LONG_TTL).await.unwrap()
        };
        assert_eq!(after.blobs_deleted, 1, "{after:?}");
        assert_eq!(after.bytes_freed, 4_000);
        assert_eq!(digests(&after), [loose.to_string()]);
        assert!(!stored(&reg, &loose).await, "the bytes are still stored");
    });
}

#[test]
fn blobs_a_tagged_manifest_references_are_kept() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("gc/app");
        let img = push_image(&reg, &r, &tag("v1"), &noise(2, 10_000)).await;
        let loose = put_blob(&reg, &r, &noise(3, 1_000)).await;

        let report = reg.gc_run(&run(), Duration::ZERO, LONG_TTL).await.unwrap();
        assert_eq!(digests(&report), [loose.to_string()], "{report:?}");
        for d in [&img.manifest, &img.config, &img.layer] {
            assert!(
                has_blob(&reg, &r, d).await,
                "{d} referenced by v1 was collected"
            );
        }
        let got = reg.manifest_get(&r, &tag("v1")).await.unwrap();
        assert_eq!(got.digest, img.manifest);
        assert_eq!(read_blob(&reg, &r, &img.layer).await, noise(2, 10_000));
    });
}

#[test]
fn a_layer_shared_with_a_live_image_survives_the_other_images_deletion() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let (a, b) = (repo("gc/a"), repo("gc/b"));
        let shared = noise(4, 20_000);
        let keep = push_image(&reg, &a, &tag("v1"), &shared).await;
        let gone = push_image(&reg, &b, &tag("v1"), &shared).await;
        assert_eq!(keep.layer, gone.layer);
        reg.manifest_delete(&b, &by_digest(&gone.manifest))
            .await
            .unwrap();

        let report = reg.gc_run(&run(), Duration::ZERO, LONG_TTL).await.unwrap();
        assert!(
            !digests(&report).contains(&keep.layer.to_string()),
            "the shared layer was collected: {report:?}"
        );
        assert!(
            !has_blob(&reg, &b, &gone.layer).await,
            "b's link to the layer stayed"
        );
        assert_eq!(read_blob(&reg, &a, &keep.layer).await, shared);
        // b's own manifest bytes (a different config) are gone.
        assert!(!stored(&reg, &gone.manifest).await);
    });
}

#[test]
fn untagged_manifests_go_only_when_asked() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("gc/app");
        let old = push_image(&reg, &r, &tag("latest"), &noise(5, 3_000)).await;
        let new = push_image(&reg, &r, &tag("latest"), &noise(6, 3_000)).await;

        let plain = reg.gc_run(&run(), Duration::ZERO, LONG_TTL).await.unwrap();
        assert!(plain.manifests_deleted.is_empty(), "{plain:?}");
        assert!(reg
            .manifest_head(&r, &by_digest(&old.manifest))
            .await
            .is_ok());

        let opts = GcOptions {
            delete_untagged: true,
            ..GcOptions::default()
        };
        let report = reg.gc_run(&opts, Duration::ZERO, LONG_TTL).await.unwrap();
        assert_eq!(
            report.manifests_deleted,
            [format!("gc/app@{}", old.manifest)]
        );
        assert!(reg
            .manifest_head(&r, &by_digest(&old.manifest))
            .await
            .is_err());
        assert!(!has_blob(&reg, &r, &old.layer).await);
        assert!(has_blob(&reg, &r, &new.layer).await);
        assert_eq!(
            reg.manifest_get(&r, &tag("latest")).await.unwrap().digest,
            new.manifest
        );
    });
}

#[test]
fn a_dry_run_reports_what_the_real_run_then_deletes() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("gc/app");
        let _keep = push_image(&reg, &r, &tag("keep"), &noise(7, 5_000)).await;
        let old = push_image(&reg, &r, &tag("moved"), &noise(8, 6_000)).await;
        let _new = push_image(&reg, &r, &tag("moved"), &noise(9, 7_000)).await;
        let gone = push_image(&reg, &r, &tag("gone"), &noise(10, 8_000)).await;
        reg.manifest_delete(&r, &by_digest(&gone.manifest))
            .await
            .unwrap();
        put_blob(&reg, &r, &noise(11, 900)).await;

        for opts in [
            GcOptions::default(),
            GcOptions {
                delete_untagged: true,
                ..GcOptions::default()
            },
        ] {
            let d = GcOptions {
                dry_run: true,
                ..opts.clone()
            };
            let predicted = reg.gc_run(&d, Duration::ZERO, LONG_TTL).await.unwrap();
            assert!(predicted.dry_run);
            assert!(!predicted.blobs.is_empty(), "nothing to collect: {opts:?}");
            // A dry run deletes nothing: running it again predicts the same.
            let again = reg.gc_run(&d, Duration::ZERO, LONG_TTL).await.unwrap();
            assert_eq!(digests(&again), digests(&predicted));
            for b in &predicted.blobs {
                assert!(
                    stored(&reg, &b.digest.parse().unwrap()).await,
                    "dry run deleted {b:?}"
                );
            }

            let real = reg.gc_run(&opts, Duration::ZERO, LONG_TTL).await.unwrap();
            assert!(!real.dry_run);
            assert_eq!(digests(&real), digests(&predicted), "{opts:?}");
            assert_eq!(real.blobs_deleted, predicted.blobs_deleted);
            assert_eq!(real.bytes_freed, predicted.bytes_freed);
            assert_eq!(real.manifests_deleted, predicted.manifests_deleted);
            for b in &real.blobs {
                assert!(!stored(&reg, &b.digest.parse().unwrap()).await, "{b:?}");
            }
        }
        // The second pass (untagged) found the moved tag's old image.
        assert!(reg
            .manifest_head(&r, &by_digest(&old.manifest))
            .await
            .is_err());
        // Nothing is left to do.
        let after = reg.gc_run(&dry(), Duration::ZERO, LONG_TTL).await.unwrap();
        assert_eq!(after.blobs_deleted, 0, "{after:?}");
    });
}

#[test]
fn the_offline_pass_collects_what_the_online_one_would_and_keeps_live_images() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("gc/app");
        let keep = push_image(&reg, &r, &tag("v1"), &noise(12, 2_000)).await;
        let loose = put_blob(&reg, &r, &noise(13, 1_500)).await;
        let predicted = reg.gc_offline(&dry(), LONG_TTL).await.unwrap();
        assert_eq!(digests(&predicted), [loose.to_string()], "{predicted:?}");
        assert!(
            has_blob(&reg, &r, &loose).await,
            "the offline dry run deleted"
        );
        let real = reg.gc_offline(&run(), LONG_TTL).await.unwrap();
        assert_eq!(digests(&real), digests(&predicted));
        assert!(!stored(&reg, &loose).await);
        assert_eq!(read_blob(&reg, &r, &keep.layer).await, noise(12, 2_000));
        assert!(reg.fsck(false).await.unwrap().is_clean());
    });
}

#[test]
fn expired_upload_sessions_are_removed() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let r = repo("gc/app");
        let s = reg.upload_start(&r).await.unwrap();
        reg.upload_append(&r, &s.id, None, body(&noise(14, 1_000)), None)
            .await
            .unwrap();
        let kept = reg.gc_run(&run(), LONG_GRACE, LONG_TTL).await.unwrap();
        assert_eq!(kept.uploads_expired, 0);
        assert_eq!(reg.upload_status(&r, &s.id).await.unwrap().size, 1_000);

        let ttl = Duration::from_millis(200);
        tokio::time::sleep(ttl + Duration::from_millis(200)).await;
        let dry_run = reg.gc_run(&dry(), LONG_GRACE, ttl).await.unwrap();
        assert_eq!(dry_run.uploads_expired, 1);
        assert!(
            reg.upload_status(&r, &s.id).await.is_ok(),
            "a dry run expired a session"
        );
        let report = reg.gc_run(&run(), LONG_GRACE, ttl).await.unwrap();
        assert_eq!(report.uploads_expired, 1);
        assert!(matches!(
            reg.upload_status(&r, &s.id).await,
            Err(berth_store::Error::UploadUnknown { .. })
        ));
    });
}
