//! Blobs: content-addressed bytes, the links that let a repository serve
//! them, and upload sessions that become blobs.
//!
//! Tables owned (keys in `crate::layout::keys`): `blobs` (one record per
//! stored blob, with the link and reference counters garbage collection
//! reads), `links` and their reverse `blob_links`, `blob_refs` (which
//! manifests reference a blob; written by the manifest part through
//! [`counters`]), and `uploads`.

pub(crate) mod counters;
pub(crate) mod uploads;

use berth_oci::{ByteRange, Digest, RepoName};

use crate::error::{Error, Result};
use crate::layout::{self, keys};
use crate::meta::{self, MetaDbExt, Table};
use crate::objects::BlobRead;
use crate::records::{self, BlobRecord, BlobState, LinkRecord};
use crate::Registry;

impl Registry {
    /// Size of a blob the repository may serve.
    pub async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        let (repo, digest) = (repo.clone(), digest.clone());
        self.meta_point(move |r| r.blob_size_blocking(&repo, &digest))
            .await
    }

    /// Whether the object store holds bytes for `digest`, whatever the
    /// metadata says (repositories hide blobs they do not link): what
    /// `berth fsck` and the tests look at to see that bytes are really
    /// there, or really gone.
    pub async fn blob_bytes_stored(&self, digest: &Digest) -> Result<bool> {
        self.inner
            .objects
            .exists(&crate::layout::blob_path(digest))
            .await
    }

    /// [`Registry::blob_size`] on a blocking thread.
    fn blob_size_blocking(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        let unknown = || Error::BlobUnknown {
            repo: repo.to_string(),
            digest: digest.clone(),
        };
        if self.inner.deleting.hides(repo)
            || self
                .db()
                .get(Table::Links, &keys::link(repo, digest))?
                .is_none()
        {
            return Err(unknown());
        }
        let b: BlobRecord = self
            .db()
            .get_json(Table::Blobs, &keys::blob(digest))?
            .ok_or_else(unknown)?;
        Ok(b.size)
    }

    /// Reads a blob the repository may serve; `range` is `None` for all of
    /// it. The caller validated the range against [`Registry::blob_size`].
    pub async fn blob_read(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobRead> {
        self.blob_size(repo, digest).await?;
        self.inner
            .objects
            .read(&layout::blob_path(digest), range)
            .await
    }

    /// Where a client may fetch the blob itself: a presigned URL of its
    /// object when the store answers pulls with redirects
    /// (`storage.redirect`), `None` otherwise. The caller checked that
    /// the blob is in the repository ([`Registry::blob_size`]).
    pub async fn blob_redirect(&self, digest: &Digest) -> Result<Option<String>> {
        self.inner
            .objects
            .signed_get(&layout::blob_path(digest))
            .await
    }

    /// Removes the repository's link to a blob (the bytes are reclaimed by
    /// garbage collection once nothing links them).
    pub async fn blob_unlink(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let (repo, digest) = (repo.clone(), digest.clone());
        self.meta(move |r| {
            let key = keys::link(&repo, &digest);
            let repo_s = repo.to_string();
            r.db().transact(|tx| {
                if tx.get(Table::Links, &key)?.is_none() {
                    return Err(Error::BlobUnknown {
                        repo: repo_s.clone(),
                        digest: digest.clone(),
                    }
                    .into());
                }
                tx.delete(Table::Links, &key)?;
                tx.delete(Table::BlobLinks, &keys::blob_link(&digest, &repo))?;
                counters::count_in_tx(tx, &digest, -1, 0)
            })
        })
        .await?;
        self.durable().await
    }

    /// Links an existing blob into `repo` (cross-repository mount). With
    /// `from`, the blob must be linked there; without, any stored blob
    /// qualifies (the caller checked that the client may read it). Returns
    /// whether the blob was mounted.
    pub async fn blob_mount(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<bool> {
        let (repo, digest, from) = (repo.clone(), digest.clone(), from.cloned());
        let mounted = self
            .meta(move |r| r.blob_mount_blocking(&repo, &digest, from.as_ref()))
            .await?;
        if mounted {
            self.durable().await?;
        }
        Ok(mounted)
    }

    /// The metadata part of [`Registry::blob_mount`], on a blocking thread.
    fn blob_mount_blocking(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<bool> {
        self.check_writable(repo)?;
        match from {
            Some(from) => {
                if self.inner.deleting.hides(from)
                    || self
                        .db()
                        .get(Table::Links, &keys::link(from, digest))?
                        .is_none()
                {
                    return Ok(false);
                }
            }
            None => {
                // No `from` (containerd): the blob must still be linked to
                // some visible repository; unlinked bytes awaiting garbage
                // collection are readable nowhere and must not come back.
                let holders =
                    self.db()
                        .scan(Table::BlobLinks, &keys::blob_links_of(digest), None, 64)?;
                let readable = holders.iter().any(|(k, _)| {
                    keys::parse_blob_link(k).is_some_and(|(_, r)| !self.inner.deleting.hides(&r))
                });
                if !readable {
                    return Ok(false);
                }
            }
        }
        let ref_rows = self.blob_ref_rows(repo, digest)?;
        self.db().transact(|tx| {
            match meta::tx_get::<BlobRecord>(tx, Table::Blobs, &keys::blob(digest))? {
                Some(b) if b.state == BlobState::Live => {}
                // Unknown, or being deleted: the client uploads instead.
                _ => return Ok(false),
            }
            self.link_in_tx(tx, repo, digest, &ref_rows, false)?;
            Ok(true)
        })
    }

    /// Keys of the `blob_refs` rows saying which manifests of `repo`
    /// reference `digest`, for [`Registry::link_in_tx`].
    pub(crate) fn blob_ref_rows(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .db()
            .scan(
                Table::BlobRefs,
                &keys::blob_refs_of(digest, repo),
                None,
                usize::MAX,
            )?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Inside a transaction: the repository (and its namespace) exist, and
    /// may serve `digest`.
    /// `ref_rows`: [`Registry::blob_ref_rows`] of `repo` and `digest`, read
    /// before the transaction. `manifest`: the digest is a manifest's (its
    /// push time is recorded exactly; see [`Registry::ensure_repo_in_tx`]).
    pub(crate) fn link_in_tx(
        &self,
        tx: &dyn meta::Txn,
        repo: &RepoName,
        digest: &Digest,
        ref_rows: &[Vec<u8>],
        manifest: bool,
    ) -> meta::TxResult<()> {
        self.ensure_repo_in_tx(tx, repo, manifest)?;
        let key = keys::link(repo, digest);
        if let Some(mut link) = meta::tx_get::<LinkRecord>(tx, Table::Links, &key)? {
            // Pushed again: the grace period for unreferenced links starts
            // over, so a push in progress keeps what it uploaded.
            link.touched_at = records::now_millis();
            meta::tx_put(tx, Table::Links, &key, &link)?;
        } else {
            // Linked again after `DELETE /v2/<name>/blobs/<digest>` while
            // manifests of the repository still reference the blob: the new
            // link starts with their count, or garbage collection would take
            // it as unreferenced. A transaction cannot scan, so the caller
            // lists the rows before it and each is read again here (a
            // concurrent removal conflicts). None can be added meanwhile: a
            // manifest push needs the link this transaction creates.
            let mut refs = 0;
            for k in ref_rows {
                if tx.get(Table::BlobRefs, k)?.is_some() {
                    refs += 1;
                }
            }
            let now = records::now_millis();
            meta::tx_put(
                tx,
                Table::Links,
                &key,
                &LinkRecord {
                    created_at: now,
                    touched_at: now,
                    refs,
                },
            )?;
            tx.put(Table::BlobLinks, &keys::blob_link(digest, repo), b"")?;
            counters::count_in_tx(tx, digest, 1, 0)?;
            if refs == 0 {
                // Uploaded, not yet used: unless a manifest references it
                // within the grace period, garbage collection removes it.
                crate::gc::queue::review_link_in_tx(tx, now, repo, digest)?;
            }
        }
        Ok(())
    }

    /// Repositories that link a blob (at most `limit`), for a mount without
    /// `from`: the server picks one the caller may read.
    pub async fn blob_holders(&self, digest: &Digest, limit: usize) -> Result<Vec<RepoName>> {
        let digest = digest.clone();
        self.meta(move |r| r.blob_holders_blocking(&digest, limit))
            .await
    }

    /// [`Registry::blob_holders`] on a blocking thread.
    fn blob_holders_blocking(&self, digest: &Digest, limit: usize) -> Result<Vec<RepoName>> {
        Ok(self
            .db()
            .scan(Table::BlobLinks, &keys::blob_links_of(digest), None, limit)?
            .iter()
            .filter_map(|(k, _)| keys::parse_blob_link(k).map(|(_, r)| r))
            .collect())
    }
}
