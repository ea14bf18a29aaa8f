//! Where blob bytes live: the object stores Berth can use, built from
//! configuration, and what each of them can do.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;

use crate::error::{Error, Result};

/// Where blob bytes (blobs, manifests, upload chunks) are kept. Metadata
/// stays in the data directory whichever is chosen.
#[derive(Debug, Clone, Default)]
pub enum ObjectBackend {
    /// Files under the data directory (the default).
    #[default]
    Filesystem,
    /// `object_store`'s in-memory store: nothing survives the process.
    /// For tests of the store against a store that is not the local disk;
    /// registries opened with clones of one handle share its objects.
    Memory(MemoryObjects),
    /// A bucket of Amazon S3 or an S3-compatible server.
    S3(S3Config),
}

/// Where metadata (everything but blob bytes) is kept.
#[derive(Clone, Default)]
pub enum MetadataBackend {
    /// sled, embedded, in `<data_dir>/meta` (the default): one process
    /// per data directory.
    #[default]
    Sled,
    /// A PostgreSQL database, which several `berth serve` processes can
    /// share.
    Postgres(PostgresConfig),
}

/// A PostgreSQL database for the metadata.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:5432/database` (libpq's key=value
    /// form works too).
    pub url: String,
    /// Most connections this process opens.
    pub max_connections: usize,
    /// Create or upgrade the schema at start; off, a database without the
    /// current schema is refused (`berth migrate-schema` brings it).
    pub migrate: bool,
}

impl std::fmt::Debug for MetadataBackend {
    // The URL's password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataBackend::Sled => f.write_str("Sled"),
            MetadataBackend::Postgres(p) => f
                .debug_struct("Postgres")
                .field("url", &crate::meta::pg_db::redact(&p.url))
                .field("max_connections", &p.max_connections)
                .field("migrate", &p.migrate)
                .finish(),
        }
    }
}

impl MetadataBackend {
    /// Short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            MetadataBackend::Sled => "sled",
            MetadataBackend::Postgres(_) => "postgres",
        }
    }
}

/// Creates the PostgreSQL schema or brings it up to this binary's version
/// (`berth migrate-schema`); nothing to do for sled, which needs none.
pub async fn migrate_schema(backend: &MetadataBackend) -> Result<()> {
    match backend {
        MetadataBackend::Sled => Ok(()),
        MetadataBackend::Postgres(p) => {
            crate::meta::pg_db::PgDb::open(&p.url, 1, true, false).await?;
            Ok(())
        }
    }
}

/// Objects kept in memory ([`ObjectBackend::Memory`]).
#[derive(Debug, Clone, Default)]
pub struct MemoryObjects(Arc<InMemory>);

/// An S3 bucket. Fields left empty are taken from the usual `AWS_*`
/// environment variables (`AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT`, `AWS_SESSION_TOKEN`, ...), and
/// from the instance's or pod's role when none gives credentials.
#[derive(Clone, Default)]
pub struct S3Config {
    /// Bucket name (required).
    pub bucket: String,
    /// Key prefix inside the bucket, so that several registries (or other
    /// data) can share one bucket; empty: the bucket's root.
    pub prefix: String,
    /// Endpoint URL of an S3-compatible server (`http://127.0.0.1:9000`);
    /// empty: Amazon S3 of `region`.
    pub endpoint: String,
    /// Region; empty: `AWS_REGION`, else `us-east-1`.
    pub region: String,
    /// Access key id; empty: from the environment.
    pub access_key_id: String,
    /// Secret access key; empty: from the environment.
    pub secret_access_key: String,
    /// Allow `http://` endpoints (a test server on loopback); off, only
    /// TLS is used.
    pub allow_http: bool,
    /// Address the bucket as `https://<bucket>.<endpoint>` instead of
    /// `https://<endpoint>/<bucket>`.
    pub virtual_hosted_style: bool,
    /// Answer blob pulls with a redirect to a presigned URL of the object
    /// (clients then fetch the bytes from the bucket, not through Berth).
    pub redirect: bool,
}

impl std::fmt::Debug for S3Config {
    // The secret never reaches a log line or a panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &if self.secret_access_key.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("redirect", &self.redirect)
            .finish()
    }
}

impl ObjectBackend {
    /// Short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            ObjectBackend::Filesystem => "filesystem",
            ObjectBackend::Memory(_) => "memory",
            ObjectBackend::S3(_) => "s3",
        }
    }
}

/// An object store ready for [`crate::objects::Objects`]: the store, and
/// its directory when it keeps objects as local files.
pub(crate) struct Built {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) local_root: Option<PathBuf>,
    /// Signs URLs for blob pulls answered with a redirect
    /// (`storage.redirect`).
    pub(crate) signer: Option<UrlSigner>,
}

/// Presigns GETs of objects in an S3 bucket under the store's prefix.
#[derive(Clone)]
pub(crate) struct UrlSigner {
    s3: Arc<object_store::aws::AmazonS3>,
    prefix: Option<object_store::path::Path>,
}

/// How long a presigned URL is valid: long enough for a client to start
/// its download after the redirect, short enough that a URL that leaks
/// (a log, a proxy) soon stops working.
const SIGNED_URL_TTL: std::time::Duration = std::time::Duration::from_secs(600);

impl UrlSigner {
    /// A presigned GET of the object `path`.
    pub(crate) async fn get_url(&self, path: &object_store::path::Path) -> Result<String> {
        use object_store::signer::Signer;
        let full = match &self.prefix {
            Some(p) => p.parts().chain(path.parts()).collect(),
            None => path.clone(),
        };
        let url = self
            .s3
            .signed_url(object_store::signer::Method::GET, &full, SIGNED_URL_TTL)
            .await?;
        Ok(url.to_string())
    }
}

/// Builds the object store of `backend` (`data_dir` for the filesystem).
pub(crate) fn build(backend: &ObjectBackend, data_dir: &std::path::Path) -> Result<Built> {
    Ok(match backend {
        ObjectBackend::Filesystem => {
            let fs = LocalFileSystem::new_with_prefix(data_dir)?
                // No automatic cleanup of empty directories: removing one
                // races with a concurrent write creating a file in it.
                // Upload chunks are flat files, so no per-upload
                // directories pile up.
                .with_fsync(true);
            Built {
                store: Arc::new(fs),
                local_root: Some(data_dir.to_path_buf()),
                signer: None,
            }
        }
        ObjectBackend::Memory(m) => Built {
            store: m.0.clone(),
            local_root: None,
            signer: None,
        },
        ObjectBackend::S3(c) => {
            let (store, signer) = s3(c)?;
            Built {
                store,
                local_root: None,
                signer: c.redirect.then_some(signer),
            }
        }
    })
}

fn s3(c: &S3Config) -> Result<(Arc<dyn ObjectStore>, UrlSigner)> {
    if c.bucket.is_empty() {
        return Err(Error::Config {
            what: "storage.bucket must name the S3 bucket when storage.backend is s3".into(),
        });
    }
    // The S3 client's reqwest has rustls without a built-in provider (see
    // Cargo.toml); a process that installed none yet (a test, a tool) gets
    // ring's, the one the binary installs at start. Refused if one is set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(&c.bucket)
        .with_allow_http(c.allow_http)
        .with_virtual_hosted_style_request(c.virtual_hosted_style)
        // Create-if-absent as `If-None-Match: *`; whether the server
        // honours it is checked at start (`Objects::probe_create`).
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    if !c.endpoint.is_empty() {
        b = b.with_endpoint(&c.endpoint);
    }
    if !c.region.is_empty() {
        b = b.with_region(&c.region);
    } else if std::env::var_os("AWS_REGION").is_none()
        && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        b = b.with_region("us-east-1");
    }
    if !c.access_key_id.is_empty() {
        b = b.with_access_key_id(&c.access_key_id);
    }
    if !c.secret_access_key.is_empty() {
        b = b.with_secret_access_key(&c.secret_access_key);
    }
    let s3 = b.build().map_err(|e| Error::Config {
        what: format!("the S3 storage configuration is not usable: {e}"),
    })?;
    let s3 = Arc::new(s3);
    let prefix = c.prefix.trim_matches('/');
    Ok(if prefix.is_empty() {
        let signer = UrlSigner {
            s3: s3.clone(),
            prefix: None,
        };
        (s3 as Arc<dyn ObjectStore>, signer)
    } else {
        let signer = UrlSigner {
            s3: s3.clone(),
            prefix: Some(object_store::path::Path::from(prefix)),
        };
        (Arc::new(PrefixStore::new(s3, prefix)), signer)
    })
}
