//! The counters of the garbage-collection protocol (see `crate::gc`):
//! every blob record counts the links (`links` rows) and references
//! (`blob_refs` rows) that need it, changed in the same transaction as the
//! rows themselves; and the wait for a blob that garbage collection is
//! deleting right now.

use std::time::{Duration, Instant};

use berth_oci::{Digest, RepoName};

use crate::error::{Error, Result};
use crate::layout::keys;
use crate::meta::{self, Table, TxResult, Txn};
use crate::records::{now_millis, BlobRecord, BlobState, LinkRecord};
use crate::Registry;

/// How long to wait for a concurrent deletion of a blob to finish before
/// giving up with a retryable error.
const WAIT_FOR_DELETION: Duration = Duration::from_secs(10);

/// Why a link or reference could not be made: garbage collection is deleting
/// the blob right now, or has just removed its record (step 3). Either way
/// the caller waits, then writes the bytes again.
fn gone(digest: &Digest) -> Error {
    Error::BlobBeingDeleted {
        digest: digest.clone(),
    }
}

/// Inside a transaction: adds `links`/`refs` to a blob's counters. Adding
/// to a blob that is missing or being deleted fails.
pub(crate) fn count_in_tx(tx: &dyn Txn, digest: &Digest, links: i64, refs: i64) -> TxResult<()> {
    let key = keys::blob(digest);
    let Some(mut rec) = meta::tx_get::<BlobRecord>(tx, Table::Blobs, &key)? else {
        if links > 0 || refs > 0 {
            return Err(gone(digest).into());
        }
        return Ok(());
    };
    if (links > 0 || refs > 0) && rec.state == BlobState::Deleting {
        return Err(gone(digest).into());
    }
    let needed = rec.links > 0 || rec.refs > 0;
    rec.links = (rec.links as i64 + links).max(0) as u64;
    rec.refs = (rec.refs as i64 + refs).max(0) as u64;
    rec.updated_at = now_millis();
    if needed && rec.links == 0 && rec.refs == 0 {
        // Needed by nothing from now on: garbage collection reviews it once
        // the grace period has passed.
        crate::gc::queue::review_blob_in_tx(tx, rec.updated_at, digest)?;
    }
    meta::tx_put(tx, Table::Blobs, &key, &rec)
}

/// Inside a transaction: records that `manifest` in `repo` references
/// `target` (once; repeated pushes do not count twice).
pub(crate) fn add_ref_in_tx(
    tx: &dyn Txn,
    target: &Digest,
    repo: &RepoName,
    manifest: &Digest,
) -> TxResult<()> {
    let key = keys::blob_ref(target, repo, manifest);
    if tx.get(Table::BlobRefs, &key)?.is_none() {
        // Foreign layers may have no record: nothing to count then.
        if tx.get(Table::Blobs, &keys::blob(target))?.is_some() {
            count_in_tx(tx, target, 0, 1)?;
            tx.put(Table::BlobRefs, &key, b"")?;
            link_refs_in_tx(tx, target, repo, 1)?;
        }
    }
    Ok(())
}

/// Inside a transaction: adjusts how many manifests of `repo` reference
/// the blob its link points at.
fn link_refs_in_tx(tx: &dyn Txn, target: &Digest, repo: &RepoName, delta: i64) -> TxResult<()> {
    let key = keys::link(repo, target);
    if let Some(mut link) = meta::tx_get::<LinkRecord>(tx, Table::Links, &key)? {
        let referenced = link.refs > 0;
        link.refs = (link.refs as i64 + delta).max(0) as u64;
        link.touched_at = now_millis();
        if referenced && link.refs == 0 {
            // The last manifest of the repository that referenced the blob
            // went: the link may be garbage once the grace period passed.
            crate::gc::queue::review_link_in_tx(tx, link.touched_at, repo, target)?;
        }
        meta::tx_put(tx, Table::Links, &key, &link)?;
    }
    Ok(())
}

/// Inside a transaction: the reverse of [`add_ref_in_tx`].
pub(crate) fn remove_ref_in_tx(
    tx: &dyn Txn,
    target: &Digest,
    repo: &RepoName,
    manifest: &Digest,
) -> TxResult<()> {
    let key = keys::blob_ref(target, repo, manifest);
    if tx.get(Table::BlobRefs, &key)?.is_some() {
        tx.delete(Table::BlobRefs, &key)?;
        count_in_tx(tx, target, 0, -1)?;
        link_refs_in_tx(tx, target, repo, -1)?;
    }
    Ok(())
}

impl Registry {
    /// Runs `op` again while it fails because a blob it needs is being
    /// deleted by garbage collection; the deletion finishes within moments,
    /// after which the bytes can be written again.
    pub(crate) async fn retry_while_deleting<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let start = Instant::now();
        loop {
            match op().await {
                Err(Error::BlobBeingDeleted { digest }) => {
                    if start.elapsed() > WAIT_FOR_DELETION {
                        return Err(Error::BlobBeingDeleted { digest });
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }
}
