//! Berth's storage engine.
//!
//! One [`Registry`] handle owns a content-addressed blob store (through
//! `object_store`, so the local disk can be swapped for S3) and a metadata
//! engine (sled, behind the narrow `meta::MetaDb` trait). Every operation the
//! HTTP front end needs is a method of [`Registry`]; nothing here knows about
//! HTTP.
//!
//! `Registry` is a facade: its methods are implemented by parts, each in its
//! own module, owning its own tables (whose keys are built and taken apart
//! only in `layout`):
//!
//! - `blobs`: blobs, links, uploads, and the garbage-collection counters;
//! - `manifests`: manifests, tags, referrers;
//! - `namespaces`: namespaces, repositories, sizes, settings, pull times,
//!   repository deletion;
//! - `gc`: garbage collection, retention, fsck;
//! - `identity`: users, grants, tokens, signing keys, the audit log;
//! - `events`: webhooks, the event outbox and the delivery queue.
//!
//! Durability rule: a method that stores something returns only after the
//! bytes are fsynced (object store with fsync) and the metadata is flushed,
//! so whatever the server acknowledges survives `kill -9`.
#![warn(missing_docs)]

mod backend;
mod blobs;
mod error;
mod events;
mod gc;
mod health;
mod identity;
mod layout;
mod manifests;
mod meta;
mod migrate;
mod namespaces;
mod objects;
#[cfg(test)]
mod race_tests;
mod records;

use std::path::PathBuf;
use std::sync::Arc;

pub use backend::{
    migrate_schema, MemoryObjects, MetadataBackend, ObjectBackend, PostgresConfig, S3Config,
};
pub use blobs::uploads::UploadState;
pub use error::{Error, Result};
pub use events::{
    Delivery, DeliveryOutcome, DeliveryState, Event, EventContext, EventKind, LeasedDelivery,
    NewWebhook, PayloadFormat, Webhook, WebhookChange,
};
pub use gc::{
    tag_pattern, FsckReport, GcBlob, GcManifest, GcOptions, GcReport, GcRun, PlannedArtifact,
    PlannedTag, Progress, RetentionPlan, RetentionPolicy,
};
pub use health::{Observer, StorageTotals};
pub use identity::truncate as truncate_str;
pub use identity::{
    glob_match, random_bytes, validate_password, validate_user_name, Action, AuditEntry, Grant,
    GrantRecord, NamespaceAccess, PasswordMemory, Role, SigningKey, SigningKeys, TokenCheck,
    TokenInfo, TokenRecord, TokenScope, UserInfo, MAX_AUDIT_FIELD, TOKEN_PREFIX,
};
pub use manifests::{ManifestContent, PutManifest, TagInfo};
pub use meta::pg_db::redact as redact_url;
pub use migrate::CopyReport;
pub use namespaces::{
    validate_namespace_name, ArtifactInfo, Features, GcSchedule, NamespaceInfo, RegistrySettings,
    RepoDetail, RepoSummary, Toggle,
};
pub use objects::{BlobRead, ByteStream};
pub use records::{
    BlobRef, ManifestRecord, Millis, NamespaceRecord, NamespaceStatus, RepoRecord, TagRecord,
};

use meta::{MetaDb, Table};

/// Store configuration.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory holding the metadata database, and blobs and uploads
    /// when `objects` is the filesystem.
    pub data_dir: PathBuf,
    /// Where blob bytes are kept.
    pub objects: ObjectBackend,
    /// Where metadata is kept.
    pub metadata: MetadataBackend,
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
    /// Bytes the embedded metadata engine may keep cached in memory: the
    /// largest part of the server's memory under load.
    pub metadata_cache_bytes: u64,
    /// Offline maintenance (`berth gc`, `berth fsck`): its passes assume
    /// no server writes meanwhile, so on a shared database it refuses to
    /// open while servers run, and servers refuse to open while it runs.
    /// Servers themselves share the database with each other.
    pub offline: bool,
}

impl StoreConfig {
    /// Defaults for a data directory: 4 MiB manifests, 1 h grace period,
    /// 24 h upload expiry, scheduler on.
    pub fn new(data_dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            data_dir: data_dir.into(),
            objects: ObjectBackend::Filesystem,
            metadata: MetadataBackend::Sled,
            max_manifest_bytes: 4 << 20,
            gc_grace: std::time::Duration::from_secs(3600),
            upload_ttl: std::time::Duration::from_secs(24 * 3600),
            gc_scheduler: true,
            max_open_uploads_per_repository: 1000,
            metadata_cache_bytes: DEFAULT_METADATA_CACHE_BYTES,
            offline: false,
        }
    }
}

/// [`StoreConfig::metadata_cache_bytes`] unless configured.
pub const DEFAULT_METADATA_CACHE_BYTES: u64 = 64 << 20;

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

/// What every part shares (configuration, engines) and each part's state
/// in memory; each lock is explained where its type is defined.
struct Inner {
    cfg: StoreConfig,
    meta: Box<dyn MetaDb>,
    objects: objects::Objects,
    /// Blobs: live upload sessions.
    uploads: blobs::uploads::Sessions,
    /// Manifests: bytes of recently served manifests.
    manifest_cache: manifests::Cache,
    /// Namespaces: names hidden while they are deleted.
    deleting: namespaces::Deleting,
    /// Namespaces: pull times waiting to be written.
    pulls: namespaces::Pulls,
    /// Events: wakes the delivery worker after a commit that wrote events.
    events_wake: events::Wake,
    /// Garbage collection: one run at a time.
    gc_running: gc::RunGuard,
    /// Garbage collection and fsck: counters for a progress display.
    progress: Arc<gc::Progress>,
    /// Monitoring: told about events it counts; set once at start.
    observer: std::sync::OnceLock<Arc<dyn Observer>>,
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
        let (meta, existed, shown): (Box<dyn MetaDb>, bool, String) = match &cfg.metadata {
            MetadataBackend::Sled => {
                let meta_path = cfg.data_dir.join("meta");
                let cache = cfg.metadata_cache_bytes;
                let existed = meta_path.join("db").exists();
                let shown = meta_path.display().to_string();
                // Opening runs on a blocking thread, like every sled call
                // (see `Registry::meta`).
                let db = tokio::task::spawn_blocking(move || {
                    meta::sled_db::SledDb::open(&meta_path, cache)
                })
                .await??;
                (Box::new(db), existed, shown)
            }
            MetadataBackend::Postgres(p) => {
                let db = meta::pg_db::PgDb::open(&p.url, p.max_connections, p.migrate, cfg.offline)
                    .await?;
                // A schema that exists was created with its marker in the
                // same start; a missing marker is a fresh database.
                (Box::new(db), false, meta::pg_db::redact(&p.url))
            }
        };
        let meta = tokio::task::spawn_blocking(move || -> Result<Box<dyn MetaDb>> {
            // A database that existed must carry the format marker written at
            // its creation. sled reads a mangled log as an empty database;
            // serving that would hide every stored image, so refuse to start
            // instead.
            match meta.get(Table::Settings, layout::keys::FORMAT)? {
                Some(v) => check_format(&shown, &v)?,
                None if existed => {
                    return Err(Error::Corrupt {
                        what: format!(
                            "the metadata database at {shown} lost its contents (no format \
                             marker); restore it from a backup or run `berth fsck` to see what \
                             is stored"
                        ),
                    })
                }
                None => {
                    meta.transact_dyn(&|tx| {
                        tx.put(
                            Table::Settings,
                            layout::keys::FORMAT,
                            format!("{{\"format\":{FORMAT}}}").as_bytes(),
                        )?;
                        // A new database queues every review from its first
                        // write on: garbage collection never scans it whole.
                        tx.put(Table::Settings, layout::keys::GC_QUEUE_SEEDED, b"{}")
                    })?;
                    meta.flush()?;
                }
            }
            Ok(meta)
        })
        .await??;
        let built = backend::build(&cfg.objects, &cfg.data_dir)?;
        let native_create = objects::refuses_second_create(
            &*built.store,
            &layout::probe_path(&uuid::Uuid::new_v4()),
        )
        .await
        .map_err(|e| Error::Config {
            what: format!(
                "cannot write to the {} object store: {e}; check storage.* (bucket, endpoint, \
                 credentials) and that the store is reachable",
                cfg.objects.name()
            ),
        })?;
        if !native_create {
            tracing::warn!(
                backend = cfg.objects.name(),
                "the object store does not refuse a create-if-absent write over an existing \
                 object (If-None-Match); Berth checks for the object before writing instead, \
                 which is safe because object names are content digests"
            );
        }
        let reg = Registry {
            inner: Arc::new(Inner {
                cfg,
                meta,
                objects: objects::Objects::new(
                    built.store,
                    built.local_root,
                    native_create,
                    built.signer,
                ),
                uploads: blobs::uploads::Sessions::default(),
                manifest_cache: manifests::Cache::default(),
                deleting: namespaces::Deleting::default(),
                pulls: namespaces::Pulls::default(),
                events_wake: events::Wake::default(),
                gc_running: gc::RunGuard::default(),
                progress: Arc::default(),
                observer: std::sync::OnceLock::new(),
                #[cfg(test)]
                hooks: race_tests::Hooks::default(),
            }),
        };
        // Namespace deletions interrupted by a stop resume now.
        // So do repository deletions.
        let (namespaces, repos) = reg.meta(|r| r.load_deleting()).await?;
        for ns in namespaces {
            reg.spawn_namespace_purge(ns);
        }
        for repo in repos {
            reg.spawn_repo_purge(repo);
        }
        reg.spawn_deleting_refresh();
        reg.spawn_pull_flusher();
        if reg.inner.cfg.gc_scheduler {
            reg.meta(|r| r.mark_interrupted_gc_runs()).await?;
            reg.spawn_gc_scheduler();
        }
        Ok(reg)
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// Makes all metadata durable, pull times included (shutdown).
    pub async fn flush(&self) -> Result<()> {
        self.meta(|r| {
            r.flush_pulls()?;
            r.db().flush()
        })
        .await
    }

    async fn flush_meta(&self) -> Result<()> {
        self.meta(|r| r.db().flush()).await
    }

    /// The gate to the metadata engine from async code for transactions,
    /// scans and flushes (point reads on a request's path take
    /// [`Registry::meta_point`]): runs `f` on tokio's blocking pool and
    /// awaits it. sled calls can block on disk (a
    /// page not in its cache, a scan over a whole table, a transaction
    /// retrying), and a blocked async worker stalls every request it
    /// carries; an async engine later replaces this body, not its callers.
    /// `f` gets the registry back so that the store's synchronous helpers
    /// (which reach the engine through [`Registry::db`]) run inside it.
    pub(crate) async fn meta<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Registry) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this)).await?
    }

    /// [`Registry::meta`] and then the flush that makes its writes durable,
    /// in one trip to the blocking pool: a write that is acknowledged right
    /// after (a blob, a manifest) would otherwise pay for a second trip.
    pub(crate) async fn meta_durable<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Registry) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.meta(move |r| {
            let v = f(r)?;
            r.db().flush()?;
            Ok(v)
        })
        .await
    }

    /// The gate for point reads of a few keys on a request's path (settings,
    /// a tag and its manifest record, a blob's size, a role, a namespace's
    /// visibility): runs `f` right here. These are served from the
    /// engine's cache in microseconds, and the hop to the blocking pool
    /// costs more than the read: measured on 2 cores, manifest GETs by tag
    /// went from about 50,000 to 23,000 requests/s with every read on the
    /// pool. Scans, transactions and flushes go through [`Registry::meta`].
    /// It has the gate's shape so that an async engine replaces its body,
    /// not its callers.
    pub(crate) async fn meta_point<T>(&self, f: impl FnOnce(&Registry) -> Result<T>) -> Result<T> {
        if self.inner.meta.remote() {
            // A database server is a network round trip away: the worker
            // hands its other tasks to the rest of the pool while it waits.
            tokio::task::block_in_place(|| f(self))
        } else {
            f(self)
        }
    }

    /// The metadata engine, for code inside a gate ([`Registry::meta`] on a
    /// blocking thread, [`Registry::meta_point`] for point reads), or the
    /// offline passes. Async code never calls
    /// it directly.
    fn db(&self) -> &dyn MetaDb {
        &*self.inner.meta
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
}

/// The first `n` names, and whether more follow.
pub(crate) fn page(names: impl Iterator<Item = Result<String>>, n: usize) -> Result<Page> {
    let mut items = Vec::new();
    let mut more = false;
    for name in names {
        if items.len() == n {
            more = true;
            break;
        }
        items.push(name?);
    }
    Ok(Page { items, more })
}
