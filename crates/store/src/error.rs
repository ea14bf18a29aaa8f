//! The store's typed error. Nothing HTTP here: the server owns the one
//! mapping from these variants to OCI error codes and statuses.
//!
//! Every condition has its own variant, and a failure that has a cause
//! keeps it as its `source`; the message still names the cause, because
//! the server shows messages to clients as they are.

use std::path::PathBuf;

use berth_oci::Digest;

/// A metadata engine's own error, kept whole behind the engine seam.
pub type EngineError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias for the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The blob is not stored, or not linked to the repository asked about.
    #[error("blob {digest} is unknown to repository {repo}")]
    BlobUnknown {
        /// Repository.
        repo: String,
        /// Digest.
        digest: Digest,
    },
    /// Garbage collection is deleting the blob right now (or has just
    /// removed its record): nothing may link or reference it until the bytes
    /// are written again. Operations that meet it wait and retry; this is
    /// what they return when the wait runs out. The message is that of an
    /// unknown blob, which is what the client is told.
    #[error("blob {digest} is unknown to repository ")]
    BlobBeingDeleted {
        /// Digest.
        digest: Digest,
    },
    /// The repository has as many open upload sessions as it may.
    #[error(
        "repository {repo} has {limit} open upload sessions, the most it may have \
         (storage.max_open_uploads_per_repository): finish or cancel some \
         (DELETE on the session URL); idle sessions expire after {ttl_secs} s"
    )]
    TooManyUploads {
        /// Repository.
        repo: String,
        /// The limit.
        limit: usize,
        /// Idle sessions expire after this many seconds.
        ttl_secs: u64,
    },
    /// No such upload session (never existed, finished, cancelled, expired,
    /// or belongs to another repository).
    #[error("upload session {id} is unknown")]
    UploadUnknown {
        /// Session id as given.
        id: String,
    },
    /// A chunk did not start where the session ends.
    #[error(
        "chunk starts at byte {got} but the upload holds {expected} bytes; resume at {expected}"
    )]
    UploadOffset {
        /// Current size of the session.
        expected: u64,
        /// Start offset of the chunk.
        got: u64,
    },
    /// The client declared a length that the body did not have.
    #[error("declared length {declared} but the body had {actual} bytes")]
    SizeMismatch {
        /// Declared by the client.
        declared: u64,
        /// Received.
        actual: u64,
    },
    /// Content does not hash to the digest the client gave.
    #[error("content digest is {actual}, not {expected}")]
    DigestMismatch {
        /// Digest given by the client.
        expected: Digest,
        /// Digest of the received bytes.
        actual: Digest,
    },
    /// No such manifest in the repository.
    #[error("manifest {reference} is unknown to repository {repo}")]
    ManifestUnknown {
        /// Repository.
        repo: String,
        /// Tag or digest.
        reference: String,
    },
    /// No such repository.
    #[error("repository {name} is unknown")]
    RepoUnknown {
        /// Repository.
        name: String,
    },
    /// A namespace of that name exists already.
    #[error("namespace {name} already exists")]
    NamespaceExists {
        /// Name.
        name: String,
    },
    /// No such namespace.
    #[error("namespace {name} does not exist")]
    NamespaceUnknown {
        /// Name.
        name: String,
    },
    /// The namespace or repository is being deleted; pushes are refused
    /// until that finishes.
    #[error("{what} is being deleted; retry once the deletion has finished")]
    BeingDeleted {
        /// `namespace x` or `repository x/y`.
        what: String,
    },
    /// Something of that name exists already (user, ...).
    #[error("{what} already exists")]
    Exists {
        /// `user alice`, ...
        what: String,
    },
    /// No such thing (user, token, grant).
    #[error("{what} does not exist")]
    NotFound {
        /// `user alice`, ...
        what: String,
    },
    /// A garbage-collection run is going already.
    #[error(
        "a garbage-collection run is in progress; wait for it to finish (GET /api/v1/gc/runs)"
    )]
    GcBusy,
    /// A run's lease lapsed and another replica took it over.
    #[error(
        "this run lost the garbage-collection lease (the server paused longer than the lease \
         lasts, and another replica took over); nothing is half-done, start a new run if needed"
    )]
    GcLeaseLost,
    /// No such garbage-collection run.
    #[error("garbage-collection run {id} does not exist")]
    GcRunUnknown {
        /// The id asked for.
        id: String,
    },
    /// A management request carried an invalid value.
    #[error("{field}: {reason}")]
    InvalidInput {
        /// The offending field.
        field: String,
        /// What is wrong and what would be right.
        reason: String,
    },
    /// The manifest is malformed.
    #[error("{reason}")]
    ManifestInvalid {
        /// Why.
        reason: String,
    },
    /// The manifest references content the repository does not have.
    #[error("manifest references {digest}, which repository {repo} does not have; push it first")]
    ManifestBlobUnknown {
        /// Repository.
        repo: String,
        /// Missing digest.
        digest: Digest,
    },
    /// The manifest is larger than the configured limit.
    #[error("manifest is {size} bytes; the limit is {limit} bytes")]
    ManifestTooLarge {
        /// Received size (at least).
        size: u64,
        /// Limit.
        limit: u64,
    },
    /// Reading the request body failed (client went away, short body).
    #[error("reading the request body failed: {message}")]
    BodyRead {
        /// Why.
        message: String,
    },
    /// The blob backend has no space left or is read-only.
    #[error("the data directory cannot take more data ({source}); free space or fix permissions, then retry")]
    StorageFull {
        /// From the backend.
        #[source]
        source: object_store::Error,
    },
    /// The blob backend failed.
    #[error("blob storage failed: {source}")]
    Storage {
        /// From the backend.
        #[source]
        source: object_store::Error,
    },
    /// Reading a blob's local file failed.
    #[error("blob storage failed: {source}")]
    BlobFile {
        /// From the file system.
        #[source]
        source: std::io::Error,
    },
    /// The data directory could not be created.
    #[error("blob storage failed: cannot create data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// From the file system.
        #[source]
        source: std::io::Error,
    },
    /// The metadata engine failed.
    #[error("metadata engine failed: {source}")]
    Metadata {
        /// From the engine.
        #[source]
        source: EngineError,
    },
    /// A task the store ran on the blocking pool failed (panicked or was
    /// cancelled).
    #[error("metadata engine failed: background task failed: {source}")]
    TaskFailed {
        /// From the runtime.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A garbage-collection run panicked; recorded as the run's failure.
    #[error("metadata engine failed: garbage collection panicked: {what}")]
    GcPanicked {
        /// The panic's message.
        what: String,
    },
    /// Hashing a password failed.
    #[error("corrupt data: argon2 hashing failed: {source}")]
    PasswordHash {
        /// From argon2.
        #[source]
        source: argon2::password_hash::Error,
    },
    /// A stored record does not decode.
    #[error("corrupt data: metadata table {table}: {source}")]
    CorruptRecord {
        /// The table holding it.
        table: &'static str,
        /// From the decoder.
        #[source]
        source: serde_json::Error,
    },
    /// The database's format marker does not decode.
    #[error(
        "corrupt data: the metadata database at {path} has an unreadable format marker: {source}"
    )]
    FormatMarker {
        /// The database path.
        path: String,
        /// From the decoder.
        #[source]
        source: serde_json::Error,
    },
    /// The metadata database is corrupt (the engine says so).
    #[error("corrupt data: metadata database at {path} is corrupt: {source}; run `berth fsck`")]
    CorruptDatabase {
        /// The database path.
        path: String,
        /// From the engine.
        #[source]
        source: EngineError,
    },
    /// Stored data is not what it should be.
    #[error("corrupt data: {what}")]
    Corrupt {
        /// What.
        what: String,
    },
    /// The storage configuration cannot be used (found at start).
    #[error("{what}")]
    Config {
        /// What is wrong and what to set.
        what: String,
    },
    /// Another process holds the data directory.
    #[error("the metadata database at {path} is in use by another process (is `berth serve` running on this data directory?)")]
    Locked {
        /// The database path.
        path: String,
        /// From the engine.
        #[source]
        source: EngineError,
    },
}

impl From<object_store::Error> for Error {
    fn from(source: object_store::Error) -> Self {
        if is_no_space(&source) {
            Error::StorageFull { source }
        } else {
            Error::Storage { source }
        }
    }
}

impl Error {
    /// A local blob file's I/O error: a full or read-only disk is reported
    /// as such, like the object store's own errors.
    pub(crate) fn file(source: std::io::Error) -> Error {
        if matches!(source.raw_os_error(), Some(28) | Some(30) | Some(122)) {
            Error::StorageFull {
                source: object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(source),
                },
            }
        } else {
            Error::BlobFile { source }
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(source: tokio::task::JoinError) -> Self {
        Error::TaskFailed { source }
    }
}

/// Whether an object-store error comes from a full or read-only disk.
fn is_no_space(e: &object_store::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            // ENOSPC (28), EROFS (30), EDQUOT (122)
            if matches!(io.raw_os_error(), Some(28) | Some(30) | Some(122)) {
                return true;
            }
        }
        cur = err.source();
    }
    let s = e.to_string();
    s.contains("No space left") || s.contains("Read-only file system")
}
