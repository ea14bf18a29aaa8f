//! The review queue: what online garbage collection looks at, instead of
//! every blob and link of the registry.
//!
//! Whenever something may have become garbage, the transaction that made it
//! so also writes a review row (`gc_queue`, keys in `crate::layout::keys`)
//! stamped with the time:
//!
//! - a link no manifest of its repository references: created by an upload
//!   (not yet used), or whose last referencing manifest went;
//! - a blob whose counters fell to zero (its last link or reference went).
//!
//! A run takes the rows older than the grace period, oldest first, a batch
//! per transaction, and re-checks each item inside that transaction: an item
//! needed again is dropped from the queue, one touched within the grace
//! period is queued again at its new time, and only a garbage item goes. So
//! a run costs what changed since the last one, not what the registry holds,
//! and a row that was not needed after all costs one read.
//!
//! Blobs go by the three-step protocol of `crate::gc`, a batch at a time:
//! one transaction marks the batch `Deleting`, one flush, the bytes go, one
//! transaction removes the records with their review rows. A marked blob's
//! row moves to the head of the queue and stays until its record is gone,
//! so a crash between the steps leaves it for the next run to finish first.
//!
//! A database from before the queue is filled once from a full scan
//! ([`Registry::seed_review_queue`]); `berth gc` (offline, mark and sweep)
//! stays the backstop after crashes and restores.

use std::collections::HashSet;
use std::time::Duration;

use berth_oci::{Digest, RepoName};
use futures::StreamExt;

use crate::error::Result;
use crate::layout::{self, keys};
use crate::meta::{self, MetaDbExt, Table, TxResult, Txn};
use crate::records::{now_millis, BlobRecord, BlobState, LinkRecord, Millis};
use crate::Registry;

use super::{GcBlob, GcReport};

/// Review rows per transaction: large enough that a run's cost is its
/// deletions, small enough that a transaction conflicting with a push
/// (PostgreSQL reruns it) repeats little work.
pub(super) const BATCH: usize = 256;

/// Blob deletions in flight at once against the object store.
const DELETES_IN_FLIGHT: usize = 16;

/// Inside a transaction: review blob `d`, unneeded since `at`.
pub(crate) fn review_blob_in_tx(tx: &dyn Txn, at: Millis, d: &Digest) -> TxResult<()> {
    tx.put(Table::GcQueue, &keys::review_blob(at, d), b"")
}

/// Inside a transaction: review the link of `d` in `repo`, unreferenced
/// since `at`.
pub(crate) fn review_link_in_tx(
    tx: &dyn Txn,
    at: Millis,
    repo: &RepoName,
    d: &Digest,
) -> TxResult<()> {
    tx.put(Table::GcQueue, &keys::review_link(at, repo, d), b"")
}

/// A review row's key, and what it names (`None`: a key that does not
/// parse).
pub(super) type Row<T> = (Vec<u8>, Option<T>);

/// The rows of one kind that are due (stamped at or before `cutoff`), at
/// most a batch, oldest first, each with what it names (`None`: a key that
/// does not parse, dropped by the caller).
fn due<T>(
    reg: &Registry,
    kind: &[u8],
    cutoff: Millis,
    parse: impl Fn(&[u8]) -> Option<(Millis, T)>,
) -> Result<Vec<Row<T>>> {
    let rows = reg.db().scan_keys(Table::GcQueue, kind, None, BATCH)?;
    let mut out = Vec::with_capacity(rows.len());
    for k in rows {
        match parse(&k) {
            Some((at, _)) if at > cutoff => break,
            Some((_, item)) => out.push((k, Some(item))),
            None => {
                tracing::warn!(key = ?String::from_utf8_lossy(&k), "dropping a malformed review row");
                out.push((k, None));
            }
        }
    }
    Ok(out)
}

impl Registry {
    /// Fills the queue of a database from before it, once, from a full scan
    /// of links and blobs; a new database is marked at creation and never
    /// scanned.
    pub(super) async fn seed_review_queue(&self) -> Result<()> {
        self.meta(|r| {
            if r.db()
                .get(Table::Settings, keys::GC_QUEUE_SEEDED)?
                .is_some()
            {
                return Ok(());
            }
            tracing::info!("filling the garbage-collection queue from a full scan (once)");
            r.seed_table(Table::Links, |k, v| {
                let link: LinkRecord = meta::decode(Table::Links, v)?;
                let (repo, d) =
                    keys::parse_link(k).ok_or_else(|| meta::bad_key(Table::Links, k))?;
                let at = link.touched_at.max(link.created_at);
                Ok((link.refs == 0).then(|| keys::review_link(at, &repo, &d)))
            })?;
            r.seed_table(Table::Blobs, |k, v| {
                let rec: BlobRecord = meta::decode(Table::Blobs, v)?;
                let d = keys::parse_blob(k).ok_or_else(|| meta::bad_key(Table::Blobs, k))?;
                Ok(match rec.state {
                    // Left half-deleted by a crash: first in line.
                    BlobState::Deleting => Some(keys::review_blob(0, &d)),
                    _ if rec.links == 0 && rec.refs == 0 => {
                        Some(keys::review_blob(rec.updated_at, &d))
                    }
                    _ => None,
                })
            })?;
            r.db()
                .transact(|tx| tx.put(Table::Settings, keys::GC_QUEUE_SEEDED, b"{}"))?;
            r.db().flush()
        })
        .await
    }

    /// One pass of [`Registry::seed_review_queue`] over a table: the review
    /// row, if any, of each entry, written a page per transaction.
    fn seed_table(
        &self,
        table: Table,
        row: impl Fn(&[u8], &[u8]) -> Result<Option<Vec<u8>>>,
    ) -> Result<()> {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.db().scan(table, b"", after.as_deref(), 1000)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            let mut reviews = Vec::new();
            for (k, v) in &page {
                reviews.extend(row(k, v)?);
            }
            self.db().transact(|tx| {
                for k in &reviews {
                    tx.put(Table::GcQueue, k, b"")?;
                }
                Ok(())
            })?;
        }
    }

    /// Reviews the links that are due: removes those still unreferenced, not
    /// touched within the grace period and not a manifest's own (which stays
    /// while the manifest does). Returns how many went.
    pub(super) async fn review_links(&self, grace: Duration) -> Result<u64> {
        let cutoff = now_millis() - grace.as_millis() as i64;
        let mut removed = 0;
        loop {
            let (seen, gone) = self
                .meta(move |r| {
                    let rows = due(r, keys::REVIEW_LINKS, cutoff, |k| {
                        keys::parse_review_link(k).map(|(at, repo, d)| (at, (repo, d)))
                    })?;
                    if rows.is_empty() {
                        return Ok((0, 0));
                    }
                    let gone = r
                        .db()
                        .transact(|tx| review_links_in_tx(tx, &rows, cutoff))?;
                    r.db().flush()?;
                    Ok((rows.len(), gone))
                })
                .await?;
            removed += gone;
            if seen == 0 {
                return Ok(removed);
            }
        }
    }

    /// Reviews the blobs that are due and deletes those needed by nothing
    /// since before the grace period, a batch at a time; adds them to
    /// `report`.
    pub(super) async fn review_blobs(&self, grace: Duration, report: &mut GcReport) -> Result<()> {
        let cutoff = now_millis() - grace.as_millis() as i64;
        loop {
            // Step 1: mark the batch, durably.
            let (seen, doomed) = self
                .meta(move |r| {
                    let rows = due(r, keys::REVIEW_BLOBS, cutoff, keys::parse_review_blob)?;
                    if rows.is_empty() {
                        return Ok((0, Vec::new()));
                    }
                    let doomed = r.db().transact(|tx| mark_blobs_in_tx(tx, &rows, cutoff))?;
                    r.db().flush()?;
                    Ok((rows.len(), doomed))
                })
                .await?;
            if seen == 0 {
                return Ok(());
            }
            let progress = &self.inner.progress;
            progress
                .total
                .fetch_add(doomed.len() as u64, std::sync::atomic::Ordering::Relaxed);
            // Step 2: the bytes.
            futures::stream::iter(&doomed)
                .for_each_concurrent(DELETES_IN_FLIGHT, |b| async move {
                    self.inner
                        .objects
                        .delete_all(&[layout::blob_path(&b.digest)])
                        .await;
                    self.inner.manifest_cache.forget(&b.digest);
                })
                .await;
            // Step 3: the records and their review rows.
            let done: Vec<(Vec<u8>, Digest)> = doomed
                .iter()
                .map(|b| (b.row.clone(), b.digest.clone()))
                .collect();
            self.meta(move |r| {
                r.db().transact(|tx| {
                    for (row, d) in &done {
                        let key = keys::blob(d);
                        if let Some(rec) = meta::tx_get::<BlobRecord>(tx, Table::Blobs, &key)? {
                            if rec.state == BlobState::Deleting {
                                tx.delete(Table::Blobs, &key)?;
                            }
                        }
                        tx.delete(Table::GcQueue, row)?;
                    }
                    Ok(())
                })?;
                r.db().flush()
            })
            .await?;
            for b in doomed {
                progress.step(b.size);
                report.blobs_deleted += 1;
                report.bytes_freed += b.size;
                report.blobs.push(GcBlob {
                    digest: b.digest.to_string(),
                    size: b.size,
                });
            }
        }
    }

    /// Blob reviews still within their grace period, for the report.
    pub(super) async fn blob_reviews_waiting(&self) -> Result<u64> {
        self.meta(|r| Ok(r.db().count(Table::GcQueue, keys::REVIEW_BLOBS)? as u64))
            .await
    }
}

/// The link reviews `rows`, in one transaction; returns how many links went.
fn review_links_in_tx(
    tx: &dyn Txn,
    rows: &[Row<(RepoName, Digest)>],
    cutoff: Millis,
) -> TxResult<u64> {
    let mut gone = 0;
    for (row, item) in rows {
        tx.delete(Table::GcQueue, row)?;
        let Some((repo, d)) = item else { continue };
        let key = keys::link(repo, d);
        let Some(link) = meta::tx_get::<LinkRecord>(tx, Table::Links, &key)? else {
            continue;
        };
        if link.refs > 0 {
            // Referenced again; the drop that unreferences it queues it anew.
            continue;
        }
        let last = link.touched_at.max(link.created_at);
        if last > cutoff {
            review_link_in_tx(tx, last, repo, d)?;
            continue;
        }
        if tx
            .get(Table::Manifests, &keys::manifest(repo, d))?
            .is_some()
        {
            continue;
        }
        tx.delete(Table::Links, &key)?;
        tx.delete(Table::BlobLinks, &keys::blob_link(d, repo))?;
        // Queues the blob's own review when this was what it needed last.
        crate::blobs::counters::count_in_tx(tx, d, -1, 0)?;
        gone += 1;
    }
    Ok(gone)
}

/// A blob a batch is deleting, with its review row.
pub(super) struct Doomed {
    row: Vec<u8>,
    digest: Digest,
    size: u64,
}

/// Step 1 of the protocol for the blob reviews `rows`, in one transaction:
/// marks every blob needed by nothing since before `cutoff` `Deleting`
/// (its row moved to the head of the queue, where step 3 removes it) and
/// drops or re-stamps the other rows.
pub(super) fn mark_blobs_in_tx(
    tx: &dyn Txn,
    rows: &[Row<Digest>],
    cutoff: Millis,
) -> TxResult<Vec<Doomed>> {
    let mut doomed = Vec::new();
    let mut seen = HashSet::new();
    for (row, d) in rows {
        let Some(d) = d else {
            tx.delete(Table::GcQueue, row)?;
            continue;
        };
        let key = keys::blob(d);
        let Some(mut rec) = meta::tx_get::<BlobRecord>(tx, Table::Blobs, &key)? else {
            tx.delete(Table::GcQueue, row)?;
            continue;
        };
        if !seen.insert(d.clone()) {
            // Queued twice; the first row carries it.
            tx.delete(Table::GcQueue, row)?;
            continue;
        }
        if rec.state != BlobState::Deleting {
            if rec.links > 0 || rec.refs > 0 {
                tx.delete(Table::GcQueue, row)?;
                continue;
            }
            if rec.updated_at > cutoff {
                tx.delete(Table::GcQueue, row)?;
                review_blob_in_tx(tx, rec.updated_at, d)?;
                continue;
            }
            rec.state = BlobState::Deleting;
            meta::tx_put(tx, Table::Blobs, &key, &rec)?;
            // First in line from now on, whatever a later run's grace
            // period: pushes of these bytes wait until the deletion ends.
            tx.delete(Table::GcQueue, row)?;
            let first = keys::review_blob(0, d);
            tx.put(Table::GcQueue, &first, b"")?;
            doomed.push(Doomed {
                row: first,
                digest: d.clone(),
                size: rec.size,
            });
            continue;
        }
        doomed.push(Doomed {
            row: row.clone(),
            digest: d.clone(),
            size: rec.size,
        });
    }
    Ok(doomed)
}
