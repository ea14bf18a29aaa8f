//! The review queue: a run reviews what the queue names and nothing else,
//! in batches; a database from before the queue is filled once; a crash
//! between the steps of a deletion is finished by the next run; the
//! offline pass still sweeps everything.

use std::time::Duration;

use berth_oci::{Digest, RepoName};
use bytes::Bytes;

use crate::layout::keys;
use crate::meta::{MetaDbExt, Table};
use crate::race_tests::{open, push_image, put_bytes, rt};
use crate::records::{BlobRecord, BlobState};
use crate::{GcOptions, Registry};

fn queued(reg: &Registry) -> usize {
    reg.db().count(Table::GcQueue, b"").unwrap()
}

async fn stored(reg: &Registry, d: &Digest) -> bool {
    reg.blob_bytes_stored(d).await.unwrap()
}

/// Removes the review rows `which` selects, as if never written; returns
/// how many.
fn drop_reviews(reg: &Registry, which: impl Fn(&[u8]) -> bool) -> usize {
    let rows = reg.db().scan_keys(Table::GcQueue, b"", None, usize::MAX);
    let rows: Vec<Vec<u8>> = rows.unwrap().into_iter().filter(|k| which(k)).collect();
    reg.db()
        .transact(|tx| {
            for k in &rows {
                tx.delete(Table::GcQueue, k)?;
            }
            Ok(())
        })
        .unwrap();
    rows.len()
}

/// Pushes `n` distinct blobs that no manifest uses.
async fn loose_blobs(reg: &Registry, repo: &RepoName, n: usize) -> Vec<Digest> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let bytes = Bytes::from(format!("loose blob number {i} of {repo}"));
        out.push(put_bytes(reg, repo, bytes).await);
    }
    out
}

/// Two runs with a pause between: the first removes unused links (which
/// queues their blobs now), the second deletes the blobs.
async fn collect(reg: &Registry) -> crate::GcReport {
    let opts = GcOptions::default();
    let first = reg.gc_run(&opts, Duration::ZERO, Duration::from_secs(3600));
    let first = first.await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut second = reg
        .gc_run(&opts, Duration::ZERO, Duration::from_secs(3600))
        .await
        .unwrap();
    second.blobs_deleted += first.blobs_deleted;
    second
}

/// More loose blobs than one batch holds all go in one run, the queue is
/// empty after it, and an unused link that no review names is left alone:
/// a run does not scan the tables.
#[test]
fn a_run_reviews_what_the_queue_names_in_batches_and_nothing_else() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let repo: RepoName = "queue/app".parse().unwrap();
        let (manifest, layer) = push_image(&reg, &repo, "v1").await;
        let loose = loose_blobs(&reg, &repo, super::queue::BATCH + 44).await;
        // One more, whose reviews are removed: only a scan could find it.
        let hidden = loose_blobs(&reg, &"queue/hidden".parse().unwrap(), 1).await;
        let n = drop_reviews(&reg, |k| {
            keys::parse_review_link(k).is_some_and(|(_, r, _)| r.as_str() == "queue/hidden")
        });
        assert_eq!(n, 1, "the hidden upload queued one review");

        let report = collect(&reg).await;
        assert_eq!(report.blobs_deleted as usize, loose.len(), "{report:?}");
        for d in &loose {
            assert!(!stored(&reg, d).await, "{d} stayed");
        }
        assert_eq!(queued(&reg), 0, "reviews left behind");
        assert!(stored(&reg, &hidden[0]).await, "a run scanned the blobs");
        // What the image uses stays.
        for d in [&manifest, &layer] {
            assert!(stored(&reg, d).await, "{d} of a tagged image went");
        }

        // The offline pass is a full mark and sweep: it finds the hidden one.
        let offline = reg
            .gc_offline(&GcOptions::default(), Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(offline.blobs_deleted, 1, "{offline:?}");
        assert!(!stored(&reg, &hidden[0]).await);
        assert!(stored(&reg, &layer).await);
        assert!(reg.fsck(false).await.unwrap().is_clean());
    });
}

/// A database written before the queue existed (no reviews, no marker) is
/// reviewed from one full scan, then marked.
#[test]
fn a_database_from_before_the_queue_is_filled_once() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let repo: RepoName = "queue/old".parse().unwrap();
        let loose = loose_blobs(&reg, &repo, 3).await;
        let n = drop_reviews(&reg, |_| true);
        assert!(n >= 3, "every upload queues its link: {n}");
        reg.db()
            .transact(|tx| tx.delete(Table::Settings, keys::GC_QUEUE_SEEDED))
            .unwrap();

        let report = collect(&reg).await;
        assert_eq!(report.blobs_deleted, 3, "{report:?}");
        for d in &loose {
            assert!(!stored(&reg, d).await);
        }
        assert!(reg
            .db()
            .get(Table::Settings, keys::GC_QUEUE_SEEDED)
            .unwrap()
            .is_some());
    });
}

/// A crash after step 1 (blob marked `Deleting`, bytes still there): the
/// review row stayed, and the next run finishes the deletion; the same
/// bytes can be pushed again afterwards.
#[test]
fn a_deletion_cut_short_by_a_crash_is_finished_by_the_next_run() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let repo: RepoName = "queue/crash".parse().unwrap();
        let d = loose_blobs(&reg, &repo, 1).await.remove(0);
        let opts = GcOptions::default();
        // Unlinked: needed by nothing, its review queued.
        reg.blob_unlink(&repo, &d).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // What step 1 leaves: the mark, the row, the bytes.
        let cutoff = crate::records::now_millis();
        let rows: Vec<super::queue::Row<Digest>> = reg
            .db()
            .scan_keys(Table::GcQueue, keys::REVIEW_BLOBS, None, 10)
            .unwrap()
            .into_iter()
            .map(|k| {
                let d = keys::parse_review_blob(&k).map(|(_, d)| d);
                (k, d)
            })
            .collect();
        assert_eq!(rows.len(), 1, "{rows:?}");
        let doomed = reg
            .db()
            .transact(|tx| super::queue::mark_blobs_in_tx(tx, &rows, cutoff))
            .unwrap();
        assert_eq!(doomed.len(), 1);
        let rec: BlobRecord = reg
            .db()
            .get_json(Table::Blobs, &keys::blob(&d))
            .unwrap()
            .unwrap();
        assert_eq!(rec.state, BlobState::Deleting);
        assert!(stored(&reg, &d).await);
        drop(reg);

        let reg = open(dir.path()).await;
        // Finished first, whatever the grace period.
        let report = reg
            .gc_run(&opts, Duration::from_secs(3600), Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(report.blobs_deleted, 1, "{report:?}");
        assert!(!stored(&reg, &d).await);
        assert!(reg
            .db()
            .get(Table::Blobs, &keys::blob(&d))
            .unwrap()
            .is_none());
        // The link's own review (queued by the upload) waits for its time.
        let blob_rows = reg.db().count(Table::GcQueue, keys::REVIEW_BLOBS).unwrap();
        assert_eq!(blob_rows, 0);
        let again = loose_blobs(&reg, &repo, 1).await.remove(0);
        assert_eq!(again, d);
        assert!(stored(&reg, &d).await);
        let rec: BlobRecord = reg
            .db()
            .get_json(Table::Blobs, &keys::blob(&d))
            .unwrap()
            .unwrap();
        assert_eq!(rec.state, BlobState::Live);
    });
}
