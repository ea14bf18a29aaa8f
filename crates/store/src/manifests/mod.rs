//! Manifests, tags and referrers: what a repository's images are made of
//! and what names them.
//!
//! Tables owned (keys in `crate::layout::keys`): `manifests`, `tags`
//! ([`tags`]), `referrers` ([`referrers`]). A manifest's bytes are a blob
//! like any other; pushing one links it and records its references through
//! the blob part's counters.

mod cache;
mod referrers;
mod tags;

pub(crate) use cache::Cache;
pub use tags::TagInfo;
pub(crate) use tags::{new_tags_version, tags_changed_in_tx, untag_in_tx};

use berth_oci::{
    Algorithm, Descriptor, Digest, ImageDetails, ManifestKind, ParsedManifest, Reference, RepoName,
};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sha2::{Digest as _, Sha256, Sha512};

use crate::blobs::counters;
use crate::error::{Error, Result};
use crate::events::{self, Event, EventContext, EventKind};
use crate::layout::{self, keys};
use crate::meta::{self, MetaDbExt, Table, TxResult, Txn};
use crate::records::{now_millis, BlobRecord, BlobRef, ManifestRecord, TagRecord};
use crate::Registry;

/// What a manifest PUT stored.
#[derive(Debug, Clone)]
pub struct PutManifest {
    /// Digest of the manifest bytes.
    pub digest: Digest,
    /// The manifest's subject, for the `OCI-Subject` header.
    pub subject: Option<Digest>,
}

/// A manifest as served.
#[derive(Debug, Clone)]
pub struct ManifestContent {
    /// Digest of the bytes.
    pub digest: Digest,
    /// Media type as pushed.
    pub media_type: String,
    /// Size of the bytes.
    pub size: u64,
    /// The bytes exactly as pushed (empty for [`Registry::manifest_head`]).
    pub bytes: Bytes,
}

fn blob_ref(d: &Descriptor) -> BlobRef {
    BlobRef {
        digest: d.digest.clone(),
        media_type: d.media_type.clone(),
        size: d.size,
        annotations: d.annotations.clone(),
    }
}

fn digest_of(alg: Algorithm, bytes: &[u8]) -> Digest {
    match alg {
        Algorithm::Sha256 => Digest::from_raw(alg, &Sha256::digest(bytes)),
        Algorithm::Sha512 => Digest::from_raw(alg, &Sha512::digest(bytes)),
    }
}

impl Registry {
    /// Stores a manifest under a tag or its digest. Every blob and child
    /// manifest it references must already be in the repository; its
    /// `subject` need not exist.
    pub async fn manifest_put(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<PutManifest> {
        self.manifest_put_by(
            repo,
            reference,
            content_type,
            bytes,
            &EventContext::default(),
        )
        .await
    }

    /// [`Registry::manifest_put`], recording `ctx` in the events the push
    /// writes (`artifact.pushed`, and `tag.updated` when it moves a tag),
    /// in the push's own transaction.
    pub async fn manifest_put_by(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
        ctx: &EventContext,
    ) -> Result<PutManifest> {
        // The manifest's own bytes may be under deletion by garbage
        // collection (same content deleted earlier): wait and write again.
        let put = self
            .retry_while_deleting(|| {
                self.manifest_put_once(repo, reference, content_type, bytes.clone(), ctx)
            })
            .await?;
        self.events_wake();
        Ok(put)
    }

    async fn manifest_put_once(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
        ctx: &EventContext,
    ) -> Result<PutManifest> {
        self.check_writable(repo)?;
        let limit = self.inner.cfg.max_manifest_bytes;
        if bytes.len() as u64 > limit {
            return Err(Error::ManifestTooLarge {
                size: bytes.len() as u64,
                limit,
            });
        }
        let digest = match reference {
            Reference::Digest(given) => {
                let actual = digest_of(given.algorithm(), &bytes);
                if &actual != given {
                    return Err(Error::DigestMismatch {
                        expected: given.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(_) => digest_of(Algorithm::Sha256, &bytes),
        };
        let parsed =
            ParsedManifest::parse(&bytes, content_type).map_err(|e| Error::ManifestInvalid {
                reason: e.to_string(),
            })?;
        // Check once before writing bytes, for a clear error without side
        // effects; checked again inside the transaction below. A few
        // references are a few point reads, done in place; an index of
        // many children goes to the blocking pool.
        if parsed.required_blobs().count() + parsed.manifests.len() <= POINT_CHECK_MAX {
            self.meta_point(|r| check_references(&|t, k| r.db().get(t, k), repo, &parsed))
                .await?;
        } else {
            let (repo, parsed) = (repo.clone(), parsed.clone());
            self.meta(move |r| check_references(&|t, k| r.db().get(t, k), &repo, &parsed))
                .await?;
        }
        self.inner
            .objects
            .put_if_absent(&layout::blob_path(&digest), bytes.clone())
            .await?;
        let now = now_millis();
        let record = ManifestRecord {
            media_type: parsed.media_type.clone(),
            kind: parsed.kind,
            size: bytes.len() as u64,
            artifact_type: parsed.effective_artifact_type(),
            subject: parsed.subject.as_ref().map(|s| s.digest.clone()),
            config: parsed.config.as_ref().map(blob_ref),
            layers: parsed.layers.iter().map(blob_ref).collect(),
            children: parsed
                .manifests
                .iter()
                .map(|d| (d.digest.clone(), d.platform.clone()))
                .collect(),
            annotations: parsed.annotations.clone(),
            pushed_at: now,
            last_pull: None,
            tags: Vec::new(),
            image: match &parsed.config {
                Some(c) => self.image_details(c).await,
                None => None,
            },
        };
        {
            let (repo, reference, digest, parsed, bytes, ctx) = (
                repo.clone(),
                reference.clone(),
                digest.clone(),
                parsed.clone(),
                bytes.clone(),
                ctx.clone(),
            );
            self.meta_durable(move |r| {
                let (repo, reference) = (&repo, &reference);
                let mkey = keys::manifest(repo, &digest);
                let bkey = keys::blob(&digest);
                let ref_rows = r.blob_ref_rows(repo, &digest)?;
                r.db().transact(|tx| {
                    check_references(&|t, k| tx.get(t, k), repo, &parsed)?;
                    if tx.get(Table::Blobs, &bkey)?.is_none() {
                        meta::tx_put(
                            tx,
                            Table::Blobs,
                            &bkey,
                            &BlobRecord::new(bytes.len() as u64),
                        )?;
                    }
                    r.link_in_tx(tx, repo, &digest, &ref_rows, true)?;
                    let record = own_references(tx, repo, &record)?;
                    for target in record.references() {
                        counters::add_ref_in_tx(tx, &target, repo, &digest)?;
                    }
                    let mut record = record.clone();
                    if let Some(old) = meta::tx_get::<ManifestRecord>(tx, Table::Manifests, &mkey)?
                    {
                        record.tags = old.tags;
                    }
                    let mut moved_from = None;
                    if let Reference::Tag(tag) = reference {
                        let tkey = keys::tag(repo, tag.as_str());
                        if let Some(old) = meta::tx_get::<TagRecord>(tx, Table::Tags, &tkey)? {
                            if old.digest != digest {
                                untag_in_tx(tx, repo, &old.digest, tag.as_str())?;
                                moved_from = Some(old.digest);
                            }
                        }
                        if !record.tags.iter().any(|t| t == tag.as_str()) {
                            record.tags.push(tag.as_str().to_string());
                            record.tags.sort();
                        }
                        meta::tx_put(
                            tx,
                            Table::Tags,
                            &tkey,
                            &TagRecord {
                                digest: digest.clone(),
                                pushed_at: now,
                            },
                        )?;
                        tags_changed_in_tx(tx, repo)?;
                    }
                    meta::tx_put(tx, Table::Manifests, &mkey, &record)?;
                    let mut pushed =
                        manifest_event(EventKind::ArtifactPushed, repo, &digest, &record, &ctx);
                    if let Reference::Tag(tag) = reference {
                        pushed.tag = Some(tag.as_str().to_string());
                    }
                    events::write_in_tx(tx, &pushed)?;
                    if let Some(old) = &moved_from {
                        let mut moved = pushed.clone();
                        moved.id = uuid::Uuid::new_v4().to_string();
                        moved.kind = EventKind::TagUpdated;
                        moved.previous_digest = Some(old.to_string());
                        events::write_in_tx(tx, &moved)?;
                    }
                    if let Some(subject) = &parsed.subject {
                        let desc = Descriptor {
                            media_type: parsed.media_type.clone(),
                            digest: digest.clone(),
                            size: bytes.len() as u64,
                            artifact_type: parsed.effective_artifact_type(),
                            annotations: parsed.annotations.clone(),
                            platform: None,
                            urls: None,
                        };
                        meta::tx_put(
                            tx,
                            Table::Referrers,
                            &keys::referrer(repo, &subject.digest, &digest),
                            &desc,
                        )?;
                    }
                    Ok(())
                })
            })
            .await?;
        }
        self.inner.manifest_cache.insert(digest.clone(), bytes);
        Ok(PutManifest {
            digest,
            subject: parsed.subject.map(|s| s.digest),
        })
    }

    /// Platform and history of an image config, for listings. Reads at
    /// most [`berth_oci::image_config::MAX_CONFIG_BYTES`]; a config that is
    /// larger, unreadable or not an image config gives no details (they are
    /// for display only and never fail a push).
    async fn image_details(&self, config: &Descriptor) -> Option<ImageDetails> {
        use berth_oci::image_config::{is_image_config, MAX_CONFIG_BYTES};
        if !is_image_config(&config.media_type) || config.size > MAX_CONFIG_BYTES {
            return None;
        }
        let read = self
            .inner
            .objects
            .read(&layout::blob_path(&config.digest), None)
            .await
            .ok()?;
        let mut body = read.body;
        let mut buf = BytesMut::with_capacity(config.size as usize);
        while let Some(c) = body.next().await {
            buf.extend_from_slice(&c.ok()?);
            if buf.len() as u64 > MAX_CONFIG_BYTES {
                return None;
            }
        }
        ImageDetails::parse(&buf)
    }

    /// Every config and layer must be linked to the repository and stored;
    /// every index child must be a manifest of the repository.
    fn resolve(&self, repo: &RepoName, reference: &Reference) -> Result<(Digest, ManifestRecord)> {
        let unknown = || Error::ManifestUnknown {
            repo: repo.to_string(),
            reference: reference.to_string(),
        };
        if self.inner.deleting.hides(repo) {
            return Err(unknown());
        }
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => {
                let tag: TagRecord = self
                    .db()
                    .get_json(Table::Tags, &keys::tag(repo, t.as_str()))?
                    .ok_or_else(unknown)?;
                tag.digest
            }
        };
        let rec: ManifestRecord = self
            .db()
            .get_json(Table::Manifests, &keys::manifest(repo, &digest))?
            .ok_or_else(unknown)?;
        Ok((digest, rec))
    }

    /// [`Registry::resolve`] through the point-read gate: one call for a
    /// manifest request.
    async fn resolve_async(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(Digest, ManifestRecord)> {
        let (repo, reference) = (repo.clone(), reference.clone());
        self.meta_point(move |r| r.resolve(&repo, &reference)).await
    }

    /// A manifest's digest, media type and size, without its bytes.
    pub async fn manifest_head(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestContent> {
        let (digest, rec) = self.resolve_async(repo, reference).await?;
        Ok(ManifestContent {
            digest,
            media_type: rec.media_type,
            size: rec.size,
            bytes: Bytes::new(),
        })
    }

    /// A manifest with its bytes exactly as pushed.
    pub async fn manifest_get(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestContent> {
        let (digest, rec) = self.resolve_async(repo, reference).await?;
        self.inner.pulls.record(repo, &digest);
        let bytes = match self.inner.manifest_cache.get(&digest) {
            Some(b) => b,
            None => {
                let mut s = self
                    .inner
                    .objects
                    .read(&layout::blob_path(&digest), None)
                    .await?
                    .body;
                let mut buf = BytesMut::with_capacity(rec.size as usize);
                while let Some(c) = s.next().await {
                    buf.extend_from_slice(&c?);
                }
                let b = buf.freeze();
                self.inner.manifest_cache.insert(digest.clone(), b.clone());
                b
            }
        };
        Ok(ManifestContent {
            digest,
            media_type: rec.media_type,
            size: rec.size,
            bytes,
        })
    }

    /// Deletes a tag (by tag), or a manifest with every tag pointing at it
    /// (by digest).
    pub async fn manifest_delete(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        self.manifest_delete_by(repo, reference, &EventContext::default())
            .await
    }

    /// [`Registry::manifest_delete`], writing `tag.deleted` or
    /// `artifact.deleted` with `ctx` in the deletion's own transaction.
    pub async fn manifest_delete_by(
        &self,
        repo: &RepoName,
        reference: &Reference,
        ctx: &EventContext,
    ) -> Result<()> {
        let ctx = ctx.clone();
        match reference {
            Reference::Tag(t) => {
                let (repo, reference, t) = (repo.clone(), reference.clone(), t.clone());
                self.meta(move |r| {
                    let key = keys::tag(&repo, t.as_str());
                    r.db().transact(|tx| {
                        let Some(tag) = meta::tx_get::<TagRecord>(tx, Table::Tags, &key)? else {
                            return Err(manifest_unknown(&repo, &reference).into());
                        };
                        tx.delete(Table::Tags, &key)?;
                        untag_in_tx(tx, &repo, &tag.digest, t.as_str())?;
                        tags_changed_in_tx(tx, &repo)?;
                        let mut e = Event::new(EventKind::TagDeleted, repo.namespace(), &ctx)
                            .in_repo(&repo);
                        e.tag = Some(t.as_str().to_string());
                        e.digest = Some(tag.digest.to_string());
                        events::write_in_tx(tx, &e)
                    })
                })
                .await?;
            }
            Reference::Digest(d) => {
                // Tags are keyed by name and a transaction cannot scan: the
                // tags the manifest record lists are read inside the
                // transaction (a concurrent tag push writes that record, so
                // the two serialise), plus a scan for tags set by versions
                // that kept no such list; each is re-checked before it goes.
                let (repo, reference, d) = (repo.clone(), reference.clone(), d.clone());
                let scanned: Vec<Vec<u8>> = {
                    let (repo, d) = (repo.clone(), d.clone());
                    self.meta(move |r| {
                        Ok(r.db()
                            .scan(Table::Tags, &keys::repo_rows(&repo), None, usize::MAX)?
                            .into_iter()
                            .filter(|(_, v)| {
                                meta::decode::<TagRecord>(Table::Tags, v)
                                    .map(|t| t.digest == d)
                                    .unwrap_or(false)
                            })
                            .map(|(k, _)| k)
                            .collect())
                    })
                    .await?
                };
                #[cfg(test)]
                self.inner.hooks.pause_after_tag_scan().await;
                self.meta(move |r| {
                    let (repo, d) = (&repo, &d);
                    let mkey = keys::manifest(repo, d);
                    let lkey = keys::link(repo, d);
                    r.db().transact(|tx| {
                        let Some(rec) =
                            meta::tx_get::<ManifestRecord>(tx, Table::Manifests, &mkey)?
                        else {
                            return Err(manifest_unknown(repo, &reference).into());
                        };
                        let mut tag_keys = scanned.clone();
                        tag_keys.extend(rec.tags.iter().map(|t| keys::tag(repo, t)));
                        tag_keys.sort();
                        tag_keys.dedup();
                        tx.delete(Table::Manifests, &mkey)?;
                        if tx.get(Table::Links, &lkey)?.is_some() {
                            tx.delete(Table::Links, &lkey)?;
                            tx.delete(Table::BlobLinks, &keys::blob_link(d, repo))?;
                            counters::count_in_tx(tx, d, -1, 0)?;
                        }
                        for target in rec.references() {
                            counters::remove_ref_in_tx(tx, &target, repo, d)?;
                        }
                        for k in &tag_keys {
                            if let Some(t) = meta::tx_get::<TagRecord>(tx, Table::Tags, k)? {
                                if &t.digest == d {
                                    tx.delete(Table::Tags, k)?;
                                    tags_changed_in_tx(tx, repo)?;
                                }
                            }
                        }
                        if let Some(subject) = &rec.subject {
                            tx.delete(Table::Referrers, &keys::referrer(repo, subject, d))?;
                        }
                        let e = manifest_event(EventKind::ArtifactDeleted, repo, d, &rec, &ctx);
                        events::write_in_tx(tx, &e)
                    })
                })
                .await?;
            }
        }
        self.durable().await?;
        self.events_wake();
        Ok(())
    }
}

/// An event about a manifest, with what its record says.
pub(crate) fn manifest_event(
    kind: EventKind,
    repo: &RepoName,
    digest: &Digest,
    rec: &ManifestRecord,
    ctx: &EventContext,
) -> Event {
    let mut e = Event::new(kind, repo.namespace(), ctx).in_repo(repo);
    e.digest = Some(digest.to_string());
    e.tags = rec.tags.clone();
    e.media_type = Some(rec.media_type.clone());
    e.artifact_type = rec.artifact_type.clone();
    e.size = Some(rec.size);
    e
}

fn manifest_unknown(repo: &RepoName, reference: &Reference) -> Error {
    Error::ManifestUnknown {
        repo: repo.to_string(),
        reference: reference.to_string(),
    }
}

/// Inside a transaction: the record as it may hold references. Images and
/// indexes were checked to name only what the repository holds; a manifest
/// of an unknown media type is stored as pushed, but only the descriptors
/// linked to its own repository count as its references (are kept alive by
/// it, and listed as its layers), so naming the digest of another
/// repository's blob holds nothing.
fn own_references(
    tx: &dyn Txn,
    repo: &RepoName,
    record: &ManifestRecord,
) -> TxResult<ManifestRecord> {
    if record.kind != ManifestKind::Other {
        return Ok(record.clone());
    }
    let linked = |d: &Digest| -> TxResult<bool> {
        Ok(tx.get(Table::Links, &keys::link(repo, d))?.is_some())
    };
    let mut own = record.clone();
    own.config = match record.config.clone() {
        Some(c) if linked(&c.digest)? => Some(c),
        _ => None,
    };
    own.layers.clear();
    for l in &record.layers {
        if linked(&l.digest)? {
            own.layers.push(l.clone());
        }
    }
    own.children.clear();
    for (d, p) in &record.children {
        let key = keys::manifest(repo, d);
        if tx.get(Table::Manifests, &key)?.is_some() {
            own.children.push((d.clone(), p.clone()));
        }
    }
    Ok(own)
}

/// Most references a manifest may have for its first check to run in
/// place (see [`Registry::meta_point`]).
const POINT_CHECK_MAX: usize = 16;

/// A point read: a transaction's, or the engine's outside one.
type PointRead<'a, E> = &'a dyn Fn(Table, &[u8]) -> std::result::Result<Option<Vec<u8>>, E>;

/// Every blob and child manifest `m` needs is present in `repo`, read
/// through `get` (a transaction's, or the engine's for the first check).
fn check_references<E: From<Error>>(
    get: PointRead<'_, E>,
    repo: &RepoName,
    m: &ParsedManifest,
) -> std::result::Result<(), E> {
    let missing = |d: &Digest| Error::ManifestBlobUnknown {
        repo: repo.to_string(),
        digest: d.clone(),
    };
    if m.kind == ManifestKind::Other {
        return Ok(());
    }
    for b in m.required_blobs() {
        if get(Table::Links, &keys::link(repo, &b.digest))?.is_none()
            || get(Table::Blobs, &keys::blob(&b.digest))?.is_none()
        {
            return Err(missing(&b.digest).into());
        }
    }
    for c in &m.manifests {
        if get(Table::Manifests, &keys::manifest(repo, &c.digest))?.is_none() {
            return Err(missing(&c.digest).into());
        }
    }
    Ok(())
}
