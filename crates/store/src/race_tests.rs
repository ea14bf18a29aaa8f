//! Regression tests for races between concurrent store operations, made
//! deterministic with hooks that exist only in test builds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use berth_oci::{Digest, Reference, RepoName};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use tokio::sync::oneshot;

use crate::layout::keys;
use crate::meta::{MetaDbExt, Table};
use crate::records::LinkRecord;
use crate::{GcOptions, Registry, StoreConfig};

/// Points where a test stops an operation to run another one in between.
#[derive(Default)]
pub(crate) struct Hooks {
    // Why a Mutex: the test arms the hook from its task, the operation takes
    // it from another; held only to swap the Option.
    after_tag_scan: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
    panic_in_gc: AtomicBool,
    // Why a Mutex: as `after_tag_scan`.
    in_repo_purge: Mutex<Option<oneshot::Sender<()>>>,
}

impl Hooks {
    /// In `manifest_delete`, between listing the tags outside the
    /// transaction and the transaction: tells the test, waits for its go.
    pub(crate) async fn pause_after_tag_scan(&self) {
        let armed = self.after_tag_scan.lock().expect("hook lock").take();
        if let Some((scanned, go)) = armed {
            let _ = scanned.send(());
            let _ = go.await;
        }
    }

    /// In a repository purge, before any row goes: tells the test, then
    /// never continues (the test "crashes" the store there).
    pub(crate) async fn pause_in_repo_purge(&self) {
        let armed = self.in_repo_purge.lock().expect("hook lock").take();
        if let Some(reached) = armed {
            let _ = reached.send(());
            std::future::pending::<()>().await;
        }
    }

    /// In a background garbage-collection run: panics once when armed.
    pub(crate) fn maybe_panic_in_gc(&self) {
        if self.panic_in_gc.swap(false, Ordering::AcqRel) {
            panic!("injected garbage-collection panic");
        }
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub(crate) fn sha(b: &[u8]) -> Digest {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
        .parse()
        .expect("valid digest")
}

pub(crate) async fn open(dir: &std::path::Path) -> Registry {
    // A reopen right after the previous handles were dropped can find the
    // database still locked for a moment: sled's background flusher lets
    // go of the file lock on its own thread. A real restart is a new
    // process and does not wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut cfg = StoreConfig::new(dir);
        cfg.gc_scheduler = false;
        cfg.gc_grace = Duration::ZERO;
        match Registry::open(cfg).await {
            Ok(reg) => return reg,
            Err(crate::Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("open registry: {e}"),
        }
    }
}

pub(crate) async fn put_blob(reg: &Registry, repo: &RepoName, bytes: &'static [u8]) -> Digest {
    put_bytes(reg, repo, Bytes::from_static(bytes)).await
}

/// A monolithic blob push of `bytes` into `repo`; returns its digest.
pub(crate) async fn put_bytes(reg: &Registry, repo: &RepoName, bytes: Bytes) -> Digest {
    let d = sha(&bytes);
    let len = bytes.len() as u64;
    let body = futures::stream::iter([Ok(bytes)]).boxed();
    reg.blob_put(repo, &d, body, Some(len))
        .await
        .expect("blob put");
    d
}

/// Pushes a one-layer image under `tag` and returns the manifest digest
/// and the layer digest.
pub(crate) async fn push_image(reg: &Registry, repo: &RepoName, tag: &str) -> (Digest, Digest) {
    let config = put_blob(reg, repo, br#"{"architecture":"amd64","os":"linux"}"#).await;
    let layer = put_blob(reg, repo, b"layer bytes for the race tests").await;
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 37},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": 30}],
    })
    .to_string();
    let put = reg
        .manifest_put(
            repo,
            &Reference::Tag(tag.parse().expect("tag")),
            Some(OCI_MANIFEST),
            Bytes::from(m),
        )
        .await
        .expect("manifest put");
    (put.digest, layer)
}

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A manifest DELETE that lists the tags to drop, then loses the race to a
/// push giving the manifest another tag, must still drop that tag: no tag
/// may point at a deleted manifest.
#[test]
fn manifest_delete_racing_a_tag_push_leaves_no_dangling_tag() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let repo: RepoName = "race/app".parse().unwrap();
        let (m, _) = push_image(&reg, &repo, "v1").await;
        let bytes = reg
            .manifest_get(&repo, &Reference::Digest(m.clone()))
            .await
            .unwrap()
            .bytes;

        let (scanned_tx, scanned_rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel();
        *reg.inner.hooks.after_tag_scan.lock().unwrap() = Some((scanned_tx, go_rx));
        let deleter = {
            let reg = reg.clone();
            let repo = repo.clone();
            let m = m.clone();
            tokio::spawn(async move { reg.manifest_delete(&repo, &Reference::Digest(m)).await })
        };
        scanned_rx.await.expect("delete reached the hook");
        // The concurrent push: same manifest, a new tag.
        reg.manifest_put(
            &repo,
            &Reference::Tag("v2".parse().unwrap()),
            Some(OCI_MANIFEST),
            bytes,
        )
        .await
        .expect("tag push");
        go_tx.send(()).unwrap();
        deleter.await.unwrap().expect("delete");

        for t in ["v1", "v2"] {
            let tag = Reference::Tag(t.parse().unwrap());
            assert!(
                reg.manifest_head(&repo, &tag).await.is_err(),
                "tag {t} still resolves after its manifest was deleted"
            );
        }
        let tags = reg.tags(&repo, None, 100).await.unwrap().items;
        assert!(
            tags.is_empty(),
            "tags left pointing at a deleted manifest: {tags:?}"
        );
        let report = reg.fsck(false).await.expect("fsck");
        assert!(report.is_clean(), "fsck after the race: {report:?}");
    });
}

/// `DELETE /v2/<name>/blobs/<digest>` of a layer an image still uses, then
/// the layer pushed again: the new link must count the image's reference,
/// or garbage collection drops it and the image can no longer be pulled.
#[test]
fn blob_relinked_after_delete_counts_the_manifests_referencing_it() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        let repo: RepoName = "race/relink".parse().unwrap();
        let (_, layer) = push_image(&reg, &repo, "v1").await;
        let link_key = keys::link(&repo, &layer);
        let refs = |reg: &Registry| {
            reg.db()
                .get_json::<LinkRecord>(Table::Links, &link_key)
                .unwrap()
                .map(|l| l.refs)
        };
        assert_eq!(refs(&reg), Some(1));

        reg.blob_unlink(&repo, &layer).await.expect("unlink");
        assert_eq!(refs(&reg), None);
        put_blob(&reg, &repo, b"layer bytes for the race tests").await;
        assert_eq!(refs(&reg), Some(1), "re-linked layer lost its reference");

        // Grace period zero: an unreferenced link would go now.
        reg.gc_run(
            &GcOptions::default(),
            Duration::ZERO,
            Duration::from_secs(3600),
        )
        .await
        .expect("gc");
        reg.blob_size(&repo, &layer)
            .await
            .expect("the image's layer is still served after garbage collection");
        let report = reg.fsck(false).await.expect("fsck");
        assert!(report.is_clean(), "fsck: {report:?}");
    });
}

/// A background run that panics must not leave the "running" flag set
/// (every later start refused) nor its record "running".
#[test]
fn gc_running_flag_clears_when_a_run_panics() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let reg = open(dir.path()).await;
        reg.inner.hooks.panic_in_gc.store(true, Ordering::Release);
        let run = reg
            .gc_start(GcOptions::default(), "api")
            .await
            .expect("start");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let finished = loop {
            let r = reg.gc_run_get(&run.id).await.unwrap();
            if r.status != "running" {
                break r;
            }
            assert!(std::time::Instant::now() < deadline, "run never finished");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(finished.status, "failed");
        assert!(
            finished.error.as_deref().unwrap_or("").contains("panicked"),
            "{finished:?}"
        );
        // The next run starts and succeeds.
        let mut next = None;
        while next.is_none() {
            match reg.gc_start(GcOptions::default(), "api").await {
                Ok(r) => next = Some(r),
                Err(crate::Error::GcBusy) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "garbage collection still busy after the panicked run"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("start: {e}"),
            }
        }
    });
}

/// A repository delete cut short (the store stops after the durable mark
/// and after some rows went) leaves the repository hidden, not half there;
/// on the next open the purge resumes and finishes, and nothing dangles.
#[test]
fn repository_delete_cut_short_stays_hidden_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let repo: RepoName = "race/doomed".parse().unwrap();
    let keep: RepoName = "race/keep".parse().unwrap();
    {
        let rt = rt();
        rt.block_on(async {
            let reg = open(dir.path()).await;
            push_image(&reg, &repo, "v1").await;
            push_image(&reg, &repo, "v2").await;
            push_image(&reg, &keep, "v1").await;
            let (reached_tx, reached_rx) = oneshot::channel();
            *reg.inner.hooks.in_repo_purge.lock().unwrap() = Some(reached_tx);
            let deleter = reg.clone();
            let r = repo.clone();
            tokio::spawn(async move { deleter.repository_delete(&r).await });
            reached_rx.await.expect("purge started");
            // What a crash part-way through the purge leaves: some rows
            // gone, the rest still there.
            reg.db()
                .transact(|tx| tx.delete(Table::Tags, &keys::tag(&repo, "v1")))
                .unwrap();
            reg.flush_meta().await.unwrap();
        });
        // Dropping the runtime drops the stuck purge and every handle.
    }
    rt().block_on(async {
        let reg = open(dir.path()).await;
        // Hidden from the first moment, whether or not the purge is done.
        let catalog = reg.catalog(None, 100).await.unwrap().items;
        assert!(
            !catalog.contains(&repo.to_string()),
            "half-deleted repository listed: {catalog:?}"
        );
        assert!(
            reg.manifest_head(&repo, &Reference::Tag("v2".parse().unwrap()))
                .await
                .is_err(),
            "half-deleted repository still serves a tag"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while reg
            .db()
            .get(Table::Repos, &keys::repo(&repo))
            .unwrap()
            .is_some()
        {
            assert!(std::time::Instant::now() < deadline, "purge did not resume");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            reg.catalog(None, 100).await.unwrap().items,
            vec![keep.to_string()]
        );
        reg.manifest_head(&keep, &Reference::Tag("v1".parse().unwrap()))
            .await
            .expect("the other repository is untouched");
        let report = reg.fsck(false).await.expect("fsck");
        assert!(report.is_clean(), "fsck: {report:?}");
        // The name is usable again.
        push_image(&reg, &repo, "v3").await;
    });
}
