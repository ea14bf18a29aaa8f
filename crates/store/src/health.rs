//! What monitoring asks of the store: totals of what is stored, probes of
//! the two engines for readiness, and an [`Observer`] told about events
//! (garbage-collection runs) that the front end counts. The store knows
//! nothing of how they are exported.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::gc::GcRun;
use crate::layout::{self, keys};
use crate::meta::{self, Table};
use crate::records::BlobRecord;
use crate::Registry;

/// Told about store events; every method has an empty default, so an
/// implementation names only what it cares about.
pub trait Observer: Send + Sync + 'static {
    /// A garbage-collection run started while serving has finished
    /// (`status` is `succeeded` or `failed`).
    fn gc_run_finished(&self, run: &GcRun) {
        let _ = run;
    }
}

/// Totals of what the metadata records as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageTotals {
    /// Blobs with stored bytes (layers, configs and manifests alike).
    pub blobs: u64,
    /// Their bytes, each blob once however many repositories link it.
    pub blob_bytes: u64,
    /// Manifests, counted once per repository holding them.
    pub manifests: u64,
    /// Repositories.
    pub repositories: u64,
}

/// Rows read per scan page: bounds the memory of a totals pass whatever
/// the number of blobs.
const PAGE: usize = 1024;

impl Registry {
    /// Installs the observer; only the first call takes effect (it is set
    /// once at start, before serving).
    pub fn set_observer(&self, observer: Arc<dyn Observer>) {
        let _ = self.inner.observer.set(observer);
    }

    pub(crate) fn observer(&self) -> Option<&Arc<dyn Observer>> {
        self.inner.observer.get()
    }

    /// Counts blobs, their bytes, manifests and repositories from the
    /// metadata, a page at a time on the blocking pool; the object store
    /// is not walked. A full scan: for a periodic refresh, not a request.
    pub async fn storage_totals(&self) -> Result<StorageTotals> {
        self.totals_in_pages(PAGE).await
    }

    async fn totals_in_pages(&self, page: usize) -> Result<StorageTotals> {
        self.meta(move |r| {
            let mut t = StorageTotals::default();
            let mut after: Option<Vec<u8>> = None;
            loop {
                let rows = r.db().scan(Table::Blobs, b"", after.as_deref(), page)?;
                for (_, v) in &rows {
                    let rec: BlobRecord = meta::decode(Table::Blobs, v)?;
                    t.blobs += 1;
                    t.blob_bytes += rec.size;
                }
                match rows.last() {
                    Some((k, _)) if rows.len() == page => after = Some(k.clone()),
                    _ => break,
                }
            }
            t.manifests = r.db().count(Table::Manifests, b"")? as u64;
            t.repositories = r.db().count(Table::Repos, b"")? as u64;
            Ok(t)
        })
        .await
    }

    /// A point read of the metadata (the format marker every database
    /// has): the engine answers.
    pub async fn probe_metadata(&self) -> Result<()> {
        self.meta_point(|r| r.db().get(Table::Settings, keys::FORMAT))
            .await
            .map(drop)
    }

    /// Writes, reads back and deletes a small object under a reserved
    /// prefix: the object store takes writes, reads and deletes (a local
    /// directory or a bucket alike).
    pub async fn probe_objects(&self) -> Result<()> {
        let path = layout::probe_path(&uuid::Uuid::new_v4());
        self.inner
            .objects
            .round_trip(&path, Bytes::from_static(b"berth readiness probe\n"))
            .await
    }
}

#[cfg(test)]
mod tests {
    use berth_oci::{Algorithm, Digest, RepoName};
    use futures::StreamExt;
    use sha2::{Digest as _, Sha256};

    use super::*;

    #[tokio::test]
    async fn totals_count_every_blob_across_pages_and_probes_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::StoreConfig::new(dir.path());
        cfg.gc_scheduler = false;
        let reg = Registry::open(cfg).await.unwrap();
        assert_eq!(
            reg.storage_totals().await.unwrap(),
            StorageTotals::default()
        );
        let repo: RepoName = "obs/app".parse().unwrap();
        let mut bytes = 0;
        for i in 0..5u8 {
            let data = Bytes::from(vec![i; 100 + usize::from(i)]);
            bytes += data.len() as u64;
            let d = Digest::from_raw(Algorithm::Sha256, &Sha256::digest(&data));
            let body = futures::stream::once(async move { Ok(data) }).boxed();
            reg.blob_put(&repo, &d, body, None).await.unwrap();
        }
        for page in [1, 2, 5, 1024] {
            let t = reg.totals_in_pages(page).await.unwrap();
            assert_eq!((t.blobs, t.blob_bytes), (5, bytes), "pages of {page}");
            assert_eq!((t.manifests, t.repositories), (0, 1), "pages of {page}");
        }
        reg.probe_metadata().await.unwrap();
        reg.probe_objects().await.unwrap();
        let left: Vec<_> = reg.inner.objects.list(layout::PROBE_DIR).collect().await;
        assert!(left.is_empty(), "{left:?}");
    }
}
