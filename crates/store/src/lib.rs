//! Berth's storage engine.
//!
//! One [`Registry`] handle owns a content-addressed blob store (through
//! `object_store`, so the local disk can be swapped for S3) and a metadata
//! engine (sled, behind the narrow `meta::MetaDb` trait). Every operation the
//! HTTP front end needs is a method here; nothing here knows about HTTP.
//!
//! Durability rule: a method that stores something returns only after the
//! bytes are fsynced (object store with fsync) and the metadata is flushed,
//! so whatever the server acknowledges survives `kill -9`.
#![warn(missing_docs)]

mod admin;
mod error;
mod fsck;
mod gc;
mod identity;
mod layout;
mod manifests;
mod meta;
mod objects;
#[cfg(test)]
mod race_tests;
mod records;
mod repo_delete;
mod retention;
mod uploads;

use std::path::PathBuf;
use std::sync::Arc;

use berth_oci::{ByteRange, Digest, RepoName};
use object_store::local::LocalFileSystem;

pub use admin::{
    normalize_cidr, parse_cidr, validate_namespace_name, ArtifactInfo, Features, GcSchedule,
    NamespaceInfo, RegistrySettings, RepoDetail, RepoSummary, TagInfo, Toggle, MAX_ALLOW_LIST,
};
pub use error::{Error, Result};
pub use fsck::FsckReport;
pub use gc::{GcBlob, GcManifest, GcOptions, GcReport, GcRun, Progress};
pub use identity::truncate as truncate_str;
pub use identity::{
    glob_match, random_bytes, validate_password, validate_user_name, Action, AuditEntry, Grant,
    GrantRecord, PasswordMemory, Role, SigningKey, SigningKeys, TokenCheck, TokenInfo, TokenRecord,
    TokenScope, UserInfo, MAX_AUDIT_FIELD, TOKEN_PREFIX,
};
pub use manifests::{ManifestContent, PutManifest};
pub use objects::{BlobRead, ByteStream};
pub use records::{
    BlobRef, ManifestRecord, Millis, NamespaceRecord, NamespaceStatus, RepoRecord, TagRecord,
};
pub use retention::{PlannedArtifact, PlannedTag, RetentionPlan, RetentionPolicy, MAX_POLICIES};
pub use uploads::UploadState;

use meta::{MetaDb, MetaDbExt, Table};
use records::{BlobRecord, LinkRecord};

/// Store configuration.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory holding blobs, uploads and the metadata database.
    pub data_dir: PathBuf,
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: u64,
    /// Blobs linked or referenced within this period are never collected.
    pub gc_grace: std::time::Duration,
    /// Upload sessions idle longer than this are removed with their data.
    pub upload_ttl: std::time::Duration,
    /// Run the garbage-collection scheduler (off for offline commands).
    pub gc_scheduler: bool,
    /// Most upload sessions open at once in one repository.
    pub max_open_uploads_per_repository: usize,
}

impl StoreConfig {
    /// Defaults for a data directory: 4 MiB manifests, 1 h grace period,
    /// 24 h upload expiry, scheduler on.
    pub fn new(data_dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            data_dir: data_dir.into(),
            max_manifest_bytes: 4 << 20,
            gc_grace: std::time::Duration::from_secs(3600),
            upload_ttl: std::time::Duration::from_secs(24 * 3600),
            gc_scheduler: true,
            max_open_uploads_per_repository: 1000,
        }
    }
}

/// Settings-table key of the database format marker.
const FORMAT_KEY: &[u8] = b"format";

/// The metadata format this binary writes and reads. Within one format,
/// records only gain fields (with defaults) and readers ignore fields they
/// do not know, so an older or newer binary of the same format opens the
/// database; a change older binaries cannot read raises the number, and a
/// binary refuses a database of a format newer than its own instead of
/// misreading it.
const FORMAT: u64 = 1;

/// The format marker as stored: `{"format": N}`; other fields are ignored.
#[derive(serde::Deserialize)]
struct FormatMarker {
    format: u64,
}

fn check_format(shown: &str, raw: &[u8]) -> Result<()> {
    let marker: FormatMarker =
        serde_json::from_slice(raw).map_err(|source| Error::FormatMarker {
            path: shown.to_string(),
            source,
        })?;
    if marker.format > FORMAT {
        return Err(Error::Corrupt {
            what: format!(
                "the metadata database at {shown} has format {}, written by a newer Berth; \
                 this binary reads format {FORMAT} and older: run the newer version",
                marker.format
            ),
        });
    }
    Ok(())
}

/// A page of names (tags or repositories).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The names, in lexical order.
    pub items: Vec<String>,
    /// Whether more names follow the last one.
    pub more: bool,
}

/// The registry storage handle. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: StoreConfig,
    meta: Box<dyn MetaDb>,
    objects: objects::Objects,
    uploads: uploads::Sessions,
    manifest_cache: manifests::Cache,
    deleting: admin::Deleting,
    pulls: admin::Pulls,
    gc_running: gc::RunGuard,
    progress: Arc<gc::Progress>,
    #[cfg(test)]
    hooks: race_tests::Hooks,
}

impl Registry {
    /// Opens (creating if needed) the registry in `cfg.data_dir`.
    pub async fn open(cfg: StoreConfig) -> Result<Registry> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(|source| Error::DataDir {
            path: cfg.data_dir.clone(),
            source,
        })?;
        let meta_path = cfg.data_dir.join("meta");
        let existed = meta_path.join("db").exists();
        let shown = meta_path.display().to_string();
        let meta =
            tokio::task::spawn_blocking(move || meta::sled_db::SledDb::open(&meta_path)).await??;
        // A database that existed must carry the format marker written at
        // its creation. sled reads a mangled log as an empty database; serving
        // that would hide every stored image, so refuse to start instead.
        match meta.get(Table::Settings, FORMAT_KEY)? {
            Some(v) => check_format(&shown, &v)?,
            None if existed => {
                return Err(Error::Corrupt {
                    what: format!(
                        "the metadata database at {shown} lost its contents (no format marker); \
                         restore it from a backup or run `berth fsck` to see what is stored"
                    ),
                })
            }
            None => {
                meta.transact_dyn(&|tx| {
                    tx.put(
                        Table::Settings,
                        FORMAT_KEY,
                        format!("{{\"format\":{FORMAT}}}").as_bytes(),
                    )
                })?;
                meta.flush()?;
            }
        }
        let fs = LocalFileSystem::new_with_prefix(&cfg.data_dir)?
            // No automatic cleanup of empty directories: removing one races
            // with a concurrent write creating a file in it. Upload chunks
            // are flat files, so no per-upload directories pile up.
            .with_fsync(true);
        let reg = Registry {
            inner: Arc::new(Inner {
                cfg,
                meta: Box::new(meta),
                objects: objects::Objects::new(Arc::new(fs)),
                uploads: uploads::Sessions::default(),
                manifest_cache: manifests::Cache::default(),
                deleting: admin::Deleting::default(),
                pulls: admin::Pulls::default(),
                gc_running: gc::RunGuard::default(),
                progress: Arc::default(),
                #[cfg(test)]
                hooks: race_tests::Hooks::default(),
            }),
        };
        // Namespace deletions interrupted by a stop resume now.
        for ns in reg.load_deleting()? {
            reg.spawn_namespace_purge(ns);
        }
        // So do repository deletions.
        for repo in reg.load_deleting_repos()? {
            reg.spawn_repo_purge(repo);
        }
        reg.spawn_pull_flusher();
        if reg.inner.cfg.gc_scheduler {
            reg.mark_interrupted_gc_runs()?;
            reg.spawn_gc_scheduler();
        }
        Ok(reg)
    }

    /// Writes batched pull times every few seconds for as long as the
    /// registry is open.
    fn spawn_pull_flusher(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(std::time::Duration::from_secs(admin::PULL_FLUSH_SECS));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let reg = Registry { inner };
                if let Err(e) = reg.flush_pulls() {
                    tracing::warn!(error = %e, "could not record pull times");
                }
            }
        });
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// Makes all metadata durable, pull times included (shutdown).
    pub async fn flush(&self) -> Result<()> {
        self.flush_pulls()?;
        self.flush_meta().await
    }

    async fn flush_meta(&self) -> Result<()> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.inner.meta.flush()).await?
    }

    fn meta(&self) -> &dyn MetaDb {
        &*self.inner.meta
    }

    /// Whether the repository exists (and is not being deleted).
    pub fn repo_exists(&self, repo: &RepoName) -> Result<bool> {
        Ok(!self.inner.deleting.hides(repo)
            && self
                .meta()
                .get(Table::Repos, repo.as_str().as_bytes())?
                .is_some())
    }

    /// Size of a blob the repository may serve.
    pub fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        let d = digest.to_string();
        let unknown = || Error::BlobUnknown {
            repo: repo.to_string(),
            digest: digest.clone(),
        };
        if self.inner.deleting.hides(repo)
            || self
                .meta()
                .get(Table::Links, &layout::repo_key(repo, &d))?
                .is_none()
        {
            return Err(unknown());
        }
        let b: BlobRecord = self
            .meta()
            .get_json(Table::Blobs, d.as_bytes())?
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
        self.blob_size(repo, digest)?;
        self.inner
            .objects
            .read(&layout::blob_path(digest), range)
            .await
    }

    /// Removes the repository's link to a blob (the bytes are reclaimed by
    /// garbage collection once nothing links them).
    pub async fn blob_unlink(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let key = layout::repo_key(repo, &digest.to_string());
        let repo_s = repo.to_string();
        self.meta().transact(|tx| {
            if tx.get(Table::Links, &key)?.is_none() {
                return Err(Error::BlobUnknown {
                    repo: repo_s.clone(),
                    digest: digest.clone(),
                }
                .into());
            }
            tx.delete(Table::Links, &key)?;
            tx.delete(Table::BlobLinks, &layout::blob_link_key(digest, repo))?;
            gc::count_in_tx(tx, digest, -1, 0)
        })?;
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
        self.check_writable(repo)?;
        let d = digest.to_string();
        match from {
            Some(from) => {
                if self.inner.deleting.hides(from)
                    || self
                        .meta()
                        .get(Table::Links, &layout::repo_key(from, &d))?
                        .is_none()
                {
                    return Ok(false);
                }
            }
            None => {
                // No `from` (containerd): the blob must still be linked to
                // some visible repository; unlinked bytes awaiting garbage
                // collection are readable nowhere and must not come back.
                let holders = self.meta().scan(
                    Table::BlobLinks,
                    &layout::blob_links_prefix(digest),
                    None,
                    64,
                )?;
                let readable = holders.iter().any(|(k, _)| {
                    std::str::from_utf8(&k[d.len() + 1..])
                        .ok()
                        .and_then(|r| r.parse::<RepoName>().ok())
                        .is_some_and(|r| !self.inner.deleting.hides(&r))
                });
                if !readable {
                    return Ok(false);
                }
            }
        }
        let ref_rows = self.blob_ref_rows(repo, digest)?;
        let mounted = self.meta().transact(|tx| {
            match meta::tx_get::<BlobRecord>(tx, Table::Blobs, d.as_bytes())? {
                Some(b) if b.state == records::BlobState::Live => {}
                // Unknown, or being deleted: the client uploads instead.
                _ => return Ok(false),
            }
            self.link_in_tx(tx, repo, digest, &ref_rows)?;
            Ok(true)
        })?;
        if mounted {
            self.durable().await?;
        }
        Ok(mounted)
    }

    /// Keys of the `blob_refs` rows saying which manifests of `repo`
    /// reference `digest`, for [`Registry::link_in_tx`].
    fn blob_ref_rows(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .meta()
            .scan(
                Table::BlobRefs,
                &layout::blob_refs_prefix(digest, repo),
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
    /// before the transaction.
    fn link_in_tx(
        &self,
        tx: &dyn meta::Txn,
        repo: &RepoName,
        digest: &Digest,
        ref_rows: &[Vec<u8>],
    ) -> meta::TxResult<()> {
        self.ensure_repo_in_tx(tx, repo)?;
        let key = layout::repo_key(repo, &digest.to_string());
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
            tx.put(Table::BlobLinks, &layout::blob_link_key(digest, repo), b"")?;
            gc::count_in_tx(tx, digest, 1, 0)?;
        }
        Ok(())
    }

    /// Inside a transaction: creates the repository and its namespace on
    /// first push, and records the push time.
    fn ensure_repo_in_tx(&self, tx: &dyn meta::Txn, repo: &RepoName) -> meta::TxResult<()> {
        let now = records::now_millis();
        let ns = repo.namespace();
        if let Some(rec) = meta::tx_get::<NamespaceRecord>(tx, Table::Namespaces, ns.as_bytes())? {
            if rec.status == NamespaceStatus::Deleting {
                return Err(Error::BeingDeleted {
                    what: format!("namespace {ns}"),
                }
                .into());
            }
        } else {
            meta::tx_put(
                tx,
                Table::Namespaces,
                ns.as_bytes(),
                &NamespaceRecord {
                    id: uuid::Uuid::new_v4().to_string(),
                    created_at: now,
                    updated_at: now,
                    description: String::new(),
                    project_id: String::new(),
                    is_public: false,
                    status: Default::default(),
                    status_message: String::new(),
                },
            )?;
        }
        let key = repo.as_str().as_bytes();
        let mut rec: RepoRecord = meta::tx_get(tx, Table::Repos, key)?.unwrap_or(RepoRecord {
            created_at: now,
            last_push: None,
            last_pull: None,
            deleting: false,
        });
        if rec.deleting {
            return Err(Error::BeingDeleted {
                what: format!("repository {repo}"),
            }
            .into());
        }
        rec.last_push = Some(now);
        meta::tx_put(tx, Table::Repos, key, &rec)
    }

    /// A namespace's stored record without the figures (cheap: one point
    /// read), `None` when it does not exist.
    pub fn namespace_record(&self, ns: &str) -> Result<Option<NamespaceRecord>> {
        self.meta()
            .get_json(Table::Namespaces, &layout::keys::namespace(ns))
    }

    /// Repositories that link a blob (at most `limit`), for a mount without
    /// `from`: the server picks one the caller may read.
    pub fn blob_holders(&self, digest: &Digest, limit: usize) -> Result<Vec<RepoName>> {
        Ok(self
            .meta()
            .scan(
                Table::BlobLinks,
                &layout::keys::blob_links_of(digest),
                None,
                limit,
            )?
            .iter()
            .filter_map(|(k, _)| layout::keys::parse_blob_link(k).map(|(_, r)| r))
            .collect())
    }

    /// Counters of the maintenance run going on (garbage collection,
    /// fsck), for a progress display.
    pub fn progress(&self) -> Arc<gc::Progress> {
        self.inner.progress.clone()
    }

    /// Flushes metadata before an acknowledgement.
    async fn durable(&self) -> Result<()> {
        self.flush_meta().await
    }

    /// Repository names in lexical order, after `last`, at most `n`.
    pub fn catalog(&self, last: Option<&str>, n: usize) -> Result<Page> {
        let mut names = Vec::new();
        let mut after = last.map(|l| l.as_bytes().to_vec());
        let hidden = self.inner.deleting.snapshot();
        // Repositories being deleted are skipped, so scan until the page is
        // full or the table ends.
        loop {
            let want = n.saturating_add(1) - names.len();
            let rows = self
                .meta()
                .scan(Table::Repos, b"", after.as_deref(), want)?;
            let exhausted = rows.len() < want;
            for (k, _) in rows {
                after = Some(k.clone());
                let hidden = std::str::from_utf8(&k)
                    .ok()
                    .and_then(|s| s.parse::<RepoName>().ok())
                    .is_some_and(|r| hidden.hides(&r));
                if !hidden {
                    names.push(k);
                }
            }
            if exhausted || names.len() > n {
                break;
            }
        }
        page(names.into_iter(), n)
    }

    /// Tags of a repository in lexical order, after `last`, at most `n`.
    pub fn tags(&self, repo: &RepoName, last: Option<&str>, n: usize) -> Result<Page> {
        if !self.repo_exists(repo)? {
            return Err(Error::RepoUnknown {
                name: repo.to_string(),
            });
        }
        let prefix = layout::repo_prefix(repo);
        let after = last.map(|l| layout::repo_key(repo, l));
        let rows = self
            .meta()
            .scan(Table::Tags, &prefix, after.as_deref(), n.saturating_add(1))?;
        page(
            rows.into_iter()
                .map(|(k, _)| layout::key_suffix(&k, repo).to_vec()),
            n,
        )
    }
}

fn page(keys: impl Iterator<Item = Vec<u8>>, n: usize) -> Result<Page> {
    let mut items = Vec::new();
    let mut more = false;
    for k in keys {
        if items.len() == n {
            more = true;
            break;
        }
        items.push(String::from_utf8(k).map_err(|_| Error::Corrupt {
            what: "non-UTF-8 key in metadata".into(),
        })?);
    }
    Ok(Page { items, more })
}
