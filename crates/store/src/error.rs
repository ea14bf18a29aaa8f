//! The store's typed error. Nothing HTTP here: the server owns the one
//! mapping from these variants to OCI error codes and statuses.

use berth_oci::Digest;

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
    /// The operation is not supported.
    #[error("{what} is not supported")]
    Unsupported {
        /// What.
        what: String,
    },
    /// Reading the request body failed (client went away, short body).
    #[error("reading the request body failed: {message}")]
    BodyRead {
        /// Why.
        message: String,
    },
    /// The blob backend has no space left or is read-only.
    #[error("the data directory cannot take more data ({message}); free space or fix permissions, then retry")]
    StorageFull {
        /// From the backend.
        message: String,
    },
    /// The blob backend failed.
    #[error("blob storage failed: {message}")]
    Storage {
        /// From the backend.
        message: String,
    },
    /// The metadata engine failed.
    #[error("metadata engine failed: {message}")]
    Metadata {
        /// From the engine.
        message: String,
    },
    /// Stored data is not what it should be.
    #[error("corrupt data: {what}")]
    Corrupt {
        /// What.
        what: String,
    },
    /// Another process holds the data directory.
    #[error("the metadata database at {path} is in use by another process (is `berth serve` running on this data directory?)")]
    Locked {
        /// The database path.
        path: String,
    },
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        let message = e.to_string();
        if is_no_space(&e) {
            Error::StorageFull { message }
        } else {
            Error::Storage { message }
        }
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
