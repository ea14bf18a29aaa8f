//! Copying a whole registry to other backends (`berth migrate`): every
//! blob, verified against its digest on the way, then every metadata row.
//!
//! Blobs go first, so that a copy cut short never leaves metadata naming a
//! blob the destination lacks; a blob already at the destination with its
//! recorded size is not copied again, which is what makes a second run
//! resume the first. Rows are written in place (the same keys), so copying
//! them again changes nothing. Both registries must be opened offline: the
//! copy is a snapshot only while nothing writes.

use serde::{Deserialize, Serialize};

use berth_oci::Algorithm;
use sha2::Digest as _;

use crate::error::{Error, Result};
use crate::layout::{self, keys};
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{BlobRecord, BlobState};
use crate::Registry;

/// What a copy did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CopyReport {
    /// Blobs copied (and verified) in this run.
    pub blobs_copied: u64,
    /// Blobs already at the destination from an earlier run, with their
    /// recorded size.
    pub blobs_present: u64,
    /// Bytes copied in this run.
    pub bytes_copied: u64,
    /// Metadata rows written.
    pub rows: u64,
}

/// Tables not copied: upload sessions in flight (their chunks are not
/// copied either; clients start such uploads again) and the garbage
/// collector's lease (it belongs to the running servers).
const NOT_COPIED: [Table; 2] = [Table::Uploads, Table::Leases];

/// Rows per destination transaction.
const ROWS_PER_TX: usize = 256;

/// The destination's record of a copy into it.
#[derive(Debug, Serialize, Deserialize)]
struct CopyMarker {
    /// The source, as `metadata + objects` backend names.
    source: String,
    /// Whether the copy ran to its end.
    finished: bool,
}

impl Registry {
    /// Copies this registry into `dest` (see the module's documentation).
    /// Refused when `dest` holds a registry that is not an earlier copy;
    /// progress goes to this registry's [`Registry::progress`] (blobs,
    /// then rows).
    pub async fn copy_to(&self, dest: &Registry) -> Result<CopyReport> {
        let source = format!(
            "{} metadata + {} objects",
            self.inner.cfg.metadata.name(),
            self.inner.cfg.objects.name()
        );
        dest.claim_as_copy(&source).await?;
        let mut report = CopyReport::default();
        self.copy_blobs(dest, &mut report).await?;
        self.copy_rows(dest, &mut report).await?;
        let marker = CopyMarker {
            source,
            finished: true,
        };
        dest.meta(move |r| {
            r.db()
                .transact(|tx| meta::tx_put(tx, Table::Settings, keys::COPIED_FROM, &marker))?;
            r.db().flush()
        })
        .await?;
        Ok(report)
    }

    /// Refuses a destination that holds a registry of its own; marks it as
    /// a copy in progress otherwise.
    async fn claim_as_copy(&self, source: &str) -> Result<()> {
        let source = source.to_owned();
        self.meta(move |r| {
            let db = r.db();
            let earlier = db.get(Table::Settings, keys::COPIED_FROM)?.is_some();
            let holds = [Table::Blobs, Table::Repos, Table::Users, Table::Namespaces]
                .into_iter()
                .map(|t| db.scan_keys(t, b"", None, 1).map(|k| !k.is_empty()))
                .collect::<Result<Vec<bool>>>()?
                .contains(&true);
            if holds && !earlier {
                return Err(Error::Config {
                    what: "the destination holds a registry already (blobs, repositories or \
                           users); copy into empty backends, or into the destination of an \
                           earlier `berth migrate` to resume it"
                        .into(),
                });
            }
            let marker = CopyMarker {
                source: source.clone(),
                finished: false,
            };
            db.transact(|tx| meta::tx_put(tx, Table::Settings, keys::COPIED_FROM, &marker))?;
            db.flush()
        })
        .await
    }

    /// Every blob of the `blobs` table, in key order, a page at a time.
    async fn copy_blobs(&self, dest: &Registry, report: &mut CopyReport) -> Result<()> {
        let total = self.meta(|r| r.db().count(Table::Blobs, b"")).await? as u64;
        self.inner.progress.start(total);
        let mut after: Option<Vec<u8>> = None;
        loop {
            let a = after.clone();
            let page = self
                .meta(move |r| r.db().scan(Table::Blobs, b"", a.as_deref(), ROWS_PER_TX))
                .await?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            for (k, v) in &page {
                let digest = keys::parse_blob(k).ok_or_else(|| meta::bad_key(Table::Blobs, k))?;
                let rec: BlobRecord = meta::decode(Table::Blobs, v)?;
                let path = layout::blob_path(&digest);
                if rec.state == BlobState::Deleting {
                    // Garbage collection was deleting it: its bytes may be
                    // gone; the row goes along, and the destination's next
                    // run finishes the deletion.
                    self.inner.progress.step(0);
                    continue;
                }
                if dest.inner.objects.size(&path).await? == Some(rec.size) {
                    report.blobs_present += 1;
                    self.inner.progress.step(0);
                    continue;
                }
                dest.copy_blob_from(self, &digest, rec.size).await?;
                report.blobs_copied += 1;
                report.bytes_copied += rec.size;
                self.inner.progress.step(rec.size);
            }
        }
    }

    /// Streams one blob from `source` into a staging object here, checks
    /// its size and digest, and then publishes it under its name, as a
    /// monolithic push does.
    async fn copy_blob_from(
        &self,
        source: &Registry,
        digest: &berth_oci::Digest,
        size: u64,
    ) -> Result<()> {
        let body = source
            .inner
            .objects
            .read(&layout::blob_path(digest), None)
            .await?
            .body;
        let objects = &self.inner.objects;
        let mut hasher = sha2::Sha256::new();
        let (staging, n) = objects.write_staging(body, &mut hasher).await?;
        let parts = [staging];
        let actual = match digest.algorithm() {
            Algorithm::Sha256 => berth_oci::Digest::from_raw(Algorithm::Sha256, &hasher.finalize()),
            alg => objects.hash(&parts, alg).await?.0,
        };
        if n != size || &actual != digest {
            objects.delete_all(&parts).await;
            return Err(Error::Corrupt {
                what: format!(
                    "blob {digest} in the source holds {n} bytes with digest {actual}, not the \
                     {size} bytes recorded; run `berth fsck` on the source"
                ),
            });
        }
        if !objects
            .move_parts_if_absent(&parts, &layout::blob_path(digest))
            .await?
        {
            objects.delete_all(&parts).await;
        }
        Ok(())
    }

    /// Every row of every copied table, in key order, a page per
    /// destination transaction; this database's own format marker and the
    /// copy marker stay as the destination wrote them.
    async fn copy_rows(&self, dest: &Registry, report: &mut CopyReport) -> Result<()> {
        let tables: Vec<Table> = Table::ALL
            .into_iter()
            .filter(|t| !NOT_COPIED.contains(t))
            .collect();
        let mut total = 0u64;
        for t in &tables {
            let t = *t;
            total += self.meta(move |r| r.db().count(t, b"")).await? as u64;
        }
        self.inner.progress.start(total);
        for table in tables {
            let mut after: Option<Vec<u8>> = None;
            loop {
                let a = after.clone();
                let page = self
                    .meta(move |r| r.db().scan(table, b"", a.as_deref(), ROWS_PER_TX))
                    .await?;
                let Some((last, _)) = page.last() else { break };
                after = Some(last.clone());
                let n = page.len() as u64;
                dest.meta(move |r| {
                    r.db().transact(|tx| {
                        for (k, v) in &page {
                            let own = table == Table::Settings
                                && (k.as_slice() == keys::FORMAT
                                    || k.as_slice() == keys::COPIED_FROM);
                            if !own {
                                tx.put(table, k, v)?;
                            }
                        }
                        Ok(())
                    })
                })
                .await?;
                report.rows += n;
                self.inner
                    .progress
                    .done
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
        }
        // The destination's garbage-collection queue is the source's copy:
        // a source that never filled one (a database from before it) leaves
        // the destination to fill its own from a full scan, once.
        let seeded = self
            .meta(|r| r.db().get(Table::Settings, keys::GC_QUEUE_SEEDED))
            .await?
            .is_some();
        if !seeded {
            dest.meta(|r| {
                r.db()
                    .transact(|tx| tx.delete(Table::Settings, keys::GC_QUEUE_SEEDED))
            })
            .await?;
        }
        dest.meta(|r| r.db().flush()).await
    }
}
