//! Upload sessions: chunks arrive, are hashed as they arrive, are made
//! durable before they are acknowledged (so every acknowledged chunk
//! survives a restart), and become one content-addressed blob on commit.
//! On the local disk a session's chunks are appended to one file, which the
//! commit renames; on other stores each chunk is an object of its own.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use berth_oci::{Algorithm, Digest, RepoName};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::layout::{self, keys};
use crate::meta::{self, MetaDbExt, Table};
use crate::objects::ByteStream;
use crate::records::{now_millis, BlobRecord, UploadRecord};
use crate::Registry;

/// Where an upload session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadState {
    /// Session id.
    pub id: String,
    /// Bytes received so far.
    pub size: u64,
}

/// Live sessions of this process.
#[derive(Default)]
pub(crate) struct Sessions {
    // Why a map: the running hash of each session lives here, so that the
    // digest is known when the last chunk lands without re-reading bytes.
    // Why a std Mutex: held only to look up or insert an entry, never
    // across an await.
    map: std::sync::Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<Live>>>>,
    // Why: sessions per repository are limited, so the open ones are
    // counted. Why a std Mutex: a check and an insert or removal, never
    // held across an await. None until first needed, then loaded from the
    // session rows in metadata, so the count survives a restart.
    open: std::sync::Mutex<Option<OpenIndex>>,
}

/// Open sessions: which repository each belongs to, and how many each
/// repository has. Exact for one process; with several replicas, each
/// counts what it saw plus what the rows held when it last counted.
struct OpenIndex {
    repo_of: HashMap<Uuid, String>,
    count: HashMap<String, usize>,
    /// When the rows were last counted.
    counted: std::time::Instant,
}

impl Default for OpenIndex {
    fn default() -> Self {
        OpenIndex {
            repo_of: HashMap::new(),
            count: HashMap::new(),
            counted: std::time::Instant::now(),
        }
    }
}

/// Shortest time between two counts of the session rows.
const RECOUNT_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl OpenIndex {
    fn insert(&mut self, id: Uuid, repo: &str) {
        if self.repo_of.insert(id, repo.to_string()).is_none() {
            *self.count.entry(repo.to_string()).or_insert(0) += 1;
        }
    }

    fn remove(&mut self, id: &Uuid) {
        if let Some(repo) = self.repo_of.remove(id) {
            if let Some(n) = self.count.get_mut(&repo) {
                *n -= 1;
                if *n == 0 {
                    self.count.remove(&repo);
                }
            }
        }
    }
}

pub(crate) struct Live {
    /// None until loaded from metadata (first use after a restart).
    record: Option<UploadRecord>,
    /// Hash of all chunks so far; None after a restart until rebuilt.
    hasher: Option<Sha256>,
}

impl Sessions {
    pub(crate) fn entry(&self, id: Uuid) -> Arc<tokio::sync::Mutex<Live>> {
        let mut map = self.map.lock().expect("sessions lock poisoned");
        map.entry(id)
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Live {
                    record: None,
                    hasher: None,
                }))
            })
            .clone()
    }

    /// Forgets a session that ended (finished, cancelled, expired, or
    /// found missing): its slot in the repository's count is free.
    pub(crate) fn remove(&self, id: &Uuid) {
        self.map.lock().expect("sessions lock poisoned").remove(id);
        if let Some(ix) = self.open.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            ix.remove(id);
        }
    }
}

fn parse_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| Error::UploadUnknown { id: id.to_string() })
}

/// A body plus the length the client declared for it, if any.
pub(crate) type Body = (ByteStream, Option<u64>);

impl Registry {
    /// Starts an upload session in `repo`.
    pub async fn upload_start(&self, repo: &RepoName) -> Result<UploadState> {
        self.check_writable(repo)?;
        let id = Uuid::new_v4();
        let repo = repo.clone();
        let rec = self
            .meta(move |r| {
                r.reserve_session(&repo, id)?;
                let now = now_millis();
                let rec = UploadRecord {
                    repo: repo.to_string(),
                    parts: Vec::new(),
                    part_tags: Vec::new(),
                    created_at: now,
                    updated_at: now,
                };
                // Not flushed here: a session lost in a crash before its
                // first chunk only makes the client start again; every chunk
                // is flushed.
                if let Err(e) = r
                    .db()
                    .transact(|tx| meta::tx_put(tx, Table::Uploads, &keys::upload(&id), &rec))
                {
                    r.inner.uploads.remove(&id);
                    return Err(e);
                }
                Ok(rec)
            })
            .await?;
        let live = self.inner.uploads.entry(id);
        let mut l = live.lock().await;
        l.record = Some(rec);
        l.hasher = Some(Sha256::new());
        Ok(UploadState {
            id: id.to_string(),
            size: 0,
        })
    }

    /// Counts a new session against its repository's limit, or refuses it.
    fn reserve_session(&self, repo: &RepoName, id: Uuid) -> Result<()> {
        let limit = self.inner.cfg.max_open_uploads_per_repository;
        let mut open = self
            .inner
            .uploads
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let full = |ix: &OpenIndex| ix.count.get(repo.as_str()).copied().unwrap_or(0) >= limit;
        // Counted from the session rows in metadata on first use, and again
        // before a refusal: sessions that other replicas finished are gone
        // from the rows but not from this process's count (at most once a
        // second, so that a client hammering a full repository costs one
        // scan a second, not one a request).
        let stale = match open.as_ref() {
            None => true,
            Some(ix) => full(ix) && ix.counted.elapsed() >= RECOUNT_AFTER,
        };
        if stale {
            let mut ix = OpenIndex {
                counted: std::time::Instant::now(),
                ..OpenIndex::default()
            };
            for (k, v) in self.db().scan(Table::Uploads, b"", None, usize::MAX)? {
                let rec: UploadRecord = meta::decode(Table::Uploads, &v)?;
                if let Some(uuid) = keys::parse_upload(&k) {
                    ix.insert(uuid, &rec.repo);
                }
            }
            *open = Some(ix);
        }
        let ix = open.get_or_insert_with(OpenIndex::default);
        if full(ix) {
            return Err(Error::TooManyUploads {
                repo: repo.to_string(),
                limit,
                ttl_secs: self.inner.cfg.upload_ttl.as_secs(),
            });
        }
        ix.insert(id, repo.as_str());
        Ok(())
    }

    /// Loads a session for `repo`, holding its lock for the caller. The
    /// stored record is read every time, not only on first use: another
    /// replica may have taken chunks of this session since (a client's
    /// next PATCH, or its retry, lands on whichever replica it reaches).
    async fn session(
        &self,
        repo: &RepoName,
        id: &str,
    ) -> Result<(Uuid, tokio::sync::OwnedMutexGuard<Live>)> {
        let uuid = parse_id(id)?;
        let live = self.inner.uploads.entry(uuid);
        // Held for the whole operation: chunks of one session must apply one
        // at a time and in order.
        let mut guard = live.lock_owned().await;
        let stored = self
            .meta_point(move |r| {
                r.db()
                    .get_json::<UploadRecord>(Table::Uploads, &keys::upload(&uuid))
            })
            .await?;
        let Some(rec) = stored else {
            drop(guard);
            self.inner.uploads.remove(&uuid);
            return Err(Error::UploadUnknown { id: id.to_string() });
        };
        let current = guard
            .record
            .as_ref()
            .is_some_and(|c| c.parts == rec.parts && c.part_tags == rec.part_tags);
        if !current {
            // First use in this process, or chunks taken elsewhere: the
            // running hash is rebuilt from the stored chunks when needed.
            // On the local disk, a crash between writing a chunk and
            // recording it leaves bytes after the last recorded one in the
            // session's file; they were never acknowledged.
            if let Some(&len) = rec.parts.last() {
                let path = part_paths(uuid, &rec).pop().expect("one per part");
                self.inner.objects.truncate_local(&path, len).await?;
            }
            guard.record = Some(rec);
            guard.hasher = None;
        }
        if guard.record.as_ref().map(|r| r.repo.as_str()) != Some(repo.as_str()) {
            return Err(Error::UploadUnknown { id: id.to_string() });
        }
        Ok((uuid, guard))
    }

    /// Where the session stands.
    pub async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadState> {
        let (uuid, live) = self.session(repo, id).await?;
        Ok(UploadState {
            id: uuid.to_string(),
            size: live.record.as_ref().expect("loaded").size(),
        })
    }

    /// Appends a chunk. `start`, when given (Content-Range), must equal the
    /// bytes received so far; `declared_len` (Content-Length) must equal the
    /// body's length. On any error the session is unchanged.
    pub async fn upload_append(
        &self,
        repo: &RepoName,
        id: &str,
        start: Option<u64>,
        body: ByteStream,
        declared_len: Option<u64>,
    ) -> Result<UploadState> {
        let (uuid, mut live) = self.session(repo, id).await?;
        let size = live.record.as_ref().expect("loaded").size();
        if let Some(start) = start {
            if start != size {
                return Err(Error::UploadOffset {
                    expected: size,
                    got: start,
                });
            }
        }
        self.append_locked(uuid, &mut live, (body, declared_len), Record::Now)
            .await?;
        Ok(UploadState {
            id: uuid.to_string(),
            size: live.record.as_ref().expect("loaded").size(),
        })
    }

    /// Appends one chunk. Its bytes are on disk when this returns; with
    /// [`Record::Now`] the session's record says so durably too (a chunk
    /// about to be acknowledged), with [`Record::ByCommit`] only the
    /// in-memory session does, for a final chunk whose commit follows.
    async fn append_locked(
        &self,
        uuid: Uuid,
        live: &mut Live,
        (body, declared): Body,
        record: Record,
    ) -> Result<()> {
        let rec = live.record.as_ref().expect("loaded");
        let paths = part_paths(uuid, rec);
        if live.hasher.is_none() {
            // First chunk after a restart: rebuild the running hash from the
            // chunks already stored.
            let (_, h) = self.inner.objects.hash(&paths, Algorithm::Sha256).await?;
            live.hasher = h;
        }
        let mut hasher = live.hasher.clone().expect("rebuilt");
        let objects = &self.inner.objects;
        // On the local disk every chunk is appended to the session's one
        // file, so that the commit is a rename, not a second copy of every
        // byte; elsewhere each chunk is an object of its own.
        let tag = new_part_tag();
        let (path, at) = match (objects.appends(), paths.last(), rec.parts.last()) {
            (true, Some(last), Some(&len)) => (last.clone(), len),
            (true, _, _) => (layout::upload_part_path(&uuid, 0, tag), 0),
            (false, _, _) => (layout::upload_part_path(&uuid, paths.len(), tag), 0),
        };
        let undo = || async {
            if objects.appends() {
                if let Err(e) = objects.truncate_local(&path, at).await {
                    tracing::warn!(error = %e, %path, "could not cut a refused chunk off its upload file");
                }
                if at == 0 {
                    objects.delete_all(std::slice::from_ref(&path)).await;
                }
            } else {
                objects.delete_all(std::slice::from_ref(&path)).await;
            }
        };
        let n = if objects.appends() {
            objects
                .append_local(&path, at, true, body, &mut hasher)
                .await?
        } else {
            objects.write_stream(&path, body, &mut hasher).await?
        };
        if let Some(d) = declared {
            if d != n {
                undo().await;
                return Err(Error::SizeMismatch {
                    declared: d,
                    actual: n,
                });
            }
        }
        if n == 0 {
            // Nothing arrived; do not record an empty chunk.
            if at == 0 {
                undo().await;
            }
            return Ok(());
        }
        let base = rec.clone();
        let mut rec = rec.clone();
        match rec.parts.last_mut() {
            Some(last) if objects.appends() => *last += n,
            _ => {
                // A record from before tags keeps untagged names for the
                // chunks it has; its new chunks are tagged.
                rec.part_tags.resize(rec.parts.len(), 0);
                rec.parts.push(n);
                rec.part_tags.push(tag);
            }
        }
        rec.updated_at = now_millis();
        if record == Record::ByCommit {
            live.record = Some(rec);
            live.hasher = Some(hasher);
            return Ok(());
        }
        let r = self
            .meta(move |r| {
                let key = keys::upload(&uuid);
                r.db().transact(|tx| {
                    // The session may have been cancelled or finished
                    // meanwhile by a request that did not take our lock
                    // (on another replica); do not revive it.
                    let Some(now) = meta::tx_get::<UploadRecord>(tx, Table::Uploads, &key)? else {
                        return Err(Error::UploadUnknown {
                            id: uuid.to_string(),
                        }
                        .into());
                    };
                    // Or another replica took a chunk since this one read
                    // the record: the client sent two chunks for one
                    // offset, and the first recorded wins; this one is
                    // refused with the session's size, as an out-of-order
                    // chunk is.
                    if now.parts != base.parts || now.part_tags != base.part_tags {
                        return Err(Error::UploadOffset {
                            expected: now.size(),
                            got: base.size(),
                        }
                        .into());
                    }
                    meta::tx_put(tx, Table::Uploads, &key, &rec)
                })?;
                Ok(rec)
            })
            .await;
        let rec = match r {
            Ok(rec) => rec,
            Err(e) => {
                undo().await;
                return Err(e);
            }
        };
        self.durable().await?;
        live.record = Some(rec);
        live.hasher = Some(hasher);
        Ok(())
    }

    /// Finishes a session: appends the optional final chunk, verifies the
    /// digest, and makes the blob available in `repo`. A digest mismatch
    /// discards the session.
    pub async fn upload_finish(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        body: Option<(ByteStream, Option<u64>)>,
    ) -> Result<()> {
        let (uuid, mut live) = self.session(repo, id).await?;
        // A final PUT with an empty body (docker's) adds no chunk.
        // The final chunk is recorded by the commit, not on its own: the
        // client is answered only after the commit, and one metadata flush
        // (not two) makes a `POST` + `PUT` with the body durable.
        let appended = match body.filter(|(_, len)| *len != Some(0)) {
            Some(body) => {
                self.append_locked(uuid, &mut live, body, Record::ByCommit)
                    .await?;
                true
            }
            None => false,
        };
        let rec = live.record.clone().expect("loaded");
        let paths = part_paths(uuid, &rec);
        let actual = match (digest.algorithm(), &live.hasher) {
            (Algorithm::Sha256, Some(h)) => {
                Digest::from_raw(Algorithm::Sha256, &h.clone().finalize())
            }
            (alg, _) => self.inner.objects.hash(&paths, alg).await?.0,
        };
        if &actual != digest {
            self.cancel_locked(uuid, &paths).await?;
            drop(live);
            self.inner.uploads.remove(&uuid);
            return Err(Error::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        if let Err(e) = self
            .store_blob(repo, digest, rec.size(), &paths, Some(uuid))
            .await
        {
            if appended {
                // The final chunk was never recorded: forget the session's
                // state here, so its next use loads the stored record and
                // cuts the file back to it, as after a restart.
                live.record = None;
                live.hasher = None;
            }
            return Err(e);
        }
        drop(live);
        self.inner.uploads.remove(&uuid);
        Ok(())
    }

    /// Cancels a session and drops its data.
    pub async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        let (uuid, live) = self.session(repo, id).await?;
        let paths = part_paths(uuid, live.record.as_ref().expect("loaded"));
        self.cancel_locked(uuid, &paths).await?;
        drop(live);
        self.inner.uploads.remove(&uuid);
        Ok(())
    }

    async fn cancel_locked(&self, uuid: Uuid, paths: &[object_store::path::Path]) -> Result<()> {
        self.meta(move |r| {
            let key = keys::upload(&uuid);
            r.db().transact(|tx| tx.delete(Table::Uploads, &key))
        })
        .await?;
        self.durable().await?;
        self.inner.objects.delete_all(paths).await;
        Ok(())
    }

    /// Monolithic upload: the whole blob in one body.
    pub async fn blob_put(
        &self,
        repo: &RepoName,
        digest: &Digest,
        body: ByteStream,
        declared_len: Option<u64>,
    ) -> Result<()> {
        self.check_writable(repo)?;
        let mut hasher = Sha256::new();
        let (path, n) = self.inner.objects.write_staging(body, &mut hasher).await?;
        let paths = [path];
        if let Some(d) = declared_len {
            if d != n {
                self.inner.objects.delete_all(&paths).await;
                return Err(Error::SizeMismatch {
                    declared: d,
                    actual: n,
                });
            }
        }
        let actual = match digest.algorithm() {
            Algorithm::Sha256 => Digest::from_raw(Algorithm::Sha256, &hasher.finalize()),
            alg => self.inner.objects.hash(&paths, alg).await?.0,
        };
        if &actual != digest {
            self.inner.objects.delete_all(&paths).await;
            return Err(Error::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let parts: &[_] = if n == 0 { &[] } else { &paths };
        if n == 0 {
            self.inner.objects.delete_all(&paths).await;
        }
        self.store_blob(repo, digest, n, parts, None).await
    }

    /// Moves verified chunks into the blob store and records the blob and
    /// its link to `repo` (and ends the session, if any) in one transaction.
    /// If garbage collection is deleting the same content right now, waits
    /// for it to finish and stores the bytes again.
    async fn store_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        parts: &[object_store::path::Path],
        session: Option<Uuid>,
    ) -> Result<()> {
        let dest = layout::blob_path(digest);
        // Set once the chunks became the blob; an atomic because the
        // retried closure only borrows it, across awaits.
        let consumed = std::sync::atomic::AtomicBool::new(false);
        self.retry_while_deleting(|| async {
            if !consumed.load(Ordering::Relaxed) {
                let moved = self
                    .inner
                    .objects
                    .move_parts_if_absent(parts, &dest)
                    .await?;
                consumed.store(moved, Ordering::Relaxed);
            }
            let (repo, digest) = (repo.clone(), digest.clone());
            self.meta_durable(move |r| {
                let key = keys::blob(&digest);
                let ref_rows = r.blob_ref_rows(&repo, &digest)?;
                r.db().transact(|tx| {
                    if tx.get(Table::Blobs, &key)?.is_none() {
                        meta::tx_put(tx, Table::Blobs, &key, &BlobRecord::new(size))?;
                    }
                    r.link_in_tx(tx, &repo, &digest, &ref_rows, false)?;
                    if let Some(id) = session {
                        tx.delete(Table::Uploads, &keys::upload(&id))?;
                    }
                    Ok(())
                })
            })
            .await
        })
        .await?;
        if !consumed.load(Ordering::Relaxed) {
            // Deduplicated: the same bytes were stored already.
            self.inner.objects.delete_all(parts).await;
        }
        Ok(())
    }
}

/// Whether [`Registry::append_locked`] records the chunk in the session's
/// metadata itself.
#[derive(PartialEq, Eq, Clone, Copy)]
enum Record {
    /// Recorded and flushed before returning: the chunk is acknowledged.
    Now,
    /// Left to the commit that follows in the same request.
    ByCommit,
}

/// The object of each chunk of a session, in order.
pub(crate) fn part_paths(uuid: Uuid, rec: &UploadRecord) -> Vec<object_store::path::Path> {
    (0..rec.parts.len())
        .map(|i| layout::upload_part_path(&uuid, i, rec.part_tags.get(i).copied().unwrap_or(0)))
        .collect()
}

/// A fresh, non-zero tag for a new chunk's object.
fn new_part_tag() -> u32 {
    let bits = Uuid::new_v4().as_u128() as u32;
    bits.max(1)
}
