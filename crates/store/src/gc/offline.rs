//! The offline pass of garbage collection (`berth gc`, the registry not
//! serving): counters recomputed from the source of truth, the review queue
//! filled from a full scan, then a run with no grace period, then objects
//! without metadata.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth_oci::Digest;
use futures::StreamExt;

use super::{GcOptions, GcReport};
use crate::error::Result;
use crate::layout::{self, keys};
use crate::meta::{self, MetaDbExt, Table};
use crate::records::{BlobRecord, LinkRecord, ManifestRecord};
use crate::Registry;

impl Registry {
    /// The offline pass: a full mark-and-sweep over the metadata, with the
    /// registry not serving. Recomputes every blob's counters from the link
    /// and manifest tables, deletes what nothing needs (no grace period:
    /// nothing else is writing), expired uploads, and objects that have no
    /// metadata at all.
    pub async fn gc_offline(&self, opts: &GcOptions, upload_ttl: Duration) -> Result<GcReport> {
        let start = Instant::now();
        let dry_run = opts.dry_run;
        self.meta(move |r| {
            r.recount()?;
            if !dry_run {
                // Mark and sweep, not the review queue alone: the run below
                // queues every unneeded link and blob from a full scan
                // first, whatever the counters just recomputed made so.
                r.db()
                    .transact(|tx| tx.delete(Table::Settings, keys::GC_QUEUE_SEEDED))?;
            }
            Ok(())
        })
        .await?;
        let mut report = self.gc_run(opts, Duration::ZERO, upload_ttl).await?;
        report.orphans_removed = self.sweep_orphans(opts.dry_run).await?;
        report.duration_ms = start.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Rebuilds `links`, `refs` and the reverse indexes from the link and
    /// manifest tables, which are the source of truth. On a blocking thread
    /// (inside [`Registry::meta`]).
    pub(crate) fn recount(&self) -> Result<()> {
        let mut links: HashMap<Digest, u64> = HashMap::new();
        let mut reverse_links = Vec::new();
        for (k, _) in self.db().scan(Table::Links, b"", None, usize::MAX)? {
            let (repo, d) = keys::parse_link(&k).ok_or_else(|| meta::bad_key(Table::Links, &k))?;
            *links.entry(d.clone()).or_default() += 1;
            reverse_links.push(keys::blob_link(&d, &repo));
        }
        let mut refs: HashMap<Digest, u64> = HashMap::new();
        let mut link_refs: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut ref_keys = Vec::new();
        for (k, v) in self.db().scan(Table::Manifests, b"", None, usize::MAX)? {
            let (repo, m) =
                keys::parse_manifest(&k).ok_or_else(|| meta::bad_key(Table::Manifests, &k))?;
            let rec: ManifestRecord = meta::decode(Table::Manifests, &v)?;
            for target in rec.references() {
                if self.db().get(Table::Blobs, &keys::blob(&target))?.is_some() {
                    *refs.entry(target.clone()).or_default() += 1;
                    *link_refs.entry(keys::link(&repo, &target)).or_default() += 1;
                    ref_keys.push(keys::blob_ref(&target, &repo, &m));
                }
            }
        }
        // Replace the reverse indexes wholesale, in batches.
        for table in [Table::BlobLinks, Table::BlobRefs] {
            loop {
                let rows = self.db().scan(table, b"", None, 1000)?;
                if rows.is_empty() {
                    break;
                }
                self.db().transact(|tx| {
                    for (k, _) in &rows {
                        tx.delete(table, k)?;
                    }
                    Ok(())
                })?;
            }
        }
        for (table, keys) in [
            (Table::BlobLinks, &reverse_links),
            (Table::BlobRefs, &ref_keys),
        ] {
            for chunk in keys.chunks(1000) {
                self.db().transact(|tx| {
                    for k in chunk {
                        tx.put(table, k, b"")?;
                    }
                    Ok(())
                })?;
            }
        }
        let link_rows = self.db().scan(Table::Links, b"", None, usize::MAX)?;
        for chunk in link_rows.chunks(1000) {
            self.db().transact(|tx| {
                for (k, v) in chunk {
                    let mut link: LinkRecord = meta::decode(Table::Links, v)?;
                    let want = link_refs.get(k).copied().unwrap_or(0);
                    if link.refs != want {
                        link.refs = want;
                        meta::tx_put(tx, Table::Links, k, &link)?;
                    }
                }
                Ok(())
            })?;
        }
        let blobs = self.db().scan(Table::Blobs, b"", None, usize::MAX)?;
        for chunk in blobs.chunks(1000) {
            self.db().transact(|tx| {
                for (k, v) in chunk {
                    let mut rec: BlobRecord = meta::decode(Table::Blobs, v)?;
                    let d = keys::parse_blob(k).ok_or_else(|| meta::bad_key(Table::Blobs, k))?;
                    let (l, r) = (
                        links.get(&d).copied().unwrap_or(0),
                        refs.get(&d).copied().unwrap_or(0),
                    );
                    if rec.links != l || rec.refs != r {
                        rec.links = l;
                        rec.refs = r;
                        meta::tx_put(tx, Table::Blobs, k, &rec)?;
                    }
                }
                Ok(())
            })?;
        }
        self.db().flush()
    }

    /// Objects under `blobs/` without a record and chunks under `uploads/`
    /// of no recorded session: leftovers of crashes mid-write.
    async fn sweep_orphans(&self, dry_run: bool) -> Result<u64> {
        // The listings first, then one gate call that looks each object up.
        let mut blob_paths = Vec::new();
        let mut blobs = self.inner.objects.list(layout::BLOBS_DIR);
        while let Some(meta) = blobs.next().await {
            blob_paths.push(meta?.location);
        }
        let mut upload_paths = Vec::new();
        let mut uploads = self.inner.objects.list(layout::UPLOADS_DIR);
        while let Some(meta) = uploads.next().await {
            upload_paths.push(meta?.location);
        }
        let orphans = self
            .meta(move |r| {
                let mut orphans = Vec::new();
                for location in blob_paths {
                    let known = match layout::blob_of_path(&location) {
                        Some(d) => r.db().get(Table::Blobs, &keys::blob(&d))?.is_some(),
                        None => false,
                    };
                    if !known {
                        orphans.push(location);
                    }
                }
                for location in upload_paths {
                    let recorded = match layout::upload_of_path(&location) {
                        Some(id) => r.db().get(Table::Uploads, &keys::upload(&id))?.is_some(),
                        None => false,
                    };
                    if !recorded {
                        orphans.push(location);
                    }
                }
                Ok(orphans)
            })
            .await?;
        if !dry_run {
            self.inner.objects.delete_all(&orphans).await;
        }
        Ok(orphans.len() as u64)
    }
}
