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
        self.meta(|r| {
            let mut t = StorageTotals::default();
            let mut after: Option<Vec<u8>> = None;
            loop {
                let rows = r.db().scan(Table::Blobs, b"", after.as_deref(), PAGE)?;
                for (_, v) in &rows {
                    let rec: BlobRecord = meta::decode(Table::Blobs, v)?;
                    t.blobs += 1;
                    t.blob_bytes += rec.size;
                }
                match rows.last() {
                    Some((k, _)) if rows.len() == PAGE => after = Some(k.clone()),
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
