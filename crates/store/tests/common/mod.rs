//! Shared helpers of the store-level suites. They use only the public API
//! of `berth_store`, so the same suites can run against any metadata engine.
#![allow(dead_code)]

#[path = "../../../../tests/support/pg_database.rs"]
mod pg_database;

use std::path::Path;
use std::time::Duration;

use berth_oci::{Digest, Reference, RepoName};
use berth_store::{
    ByteStream, MemoryObjects, MetadataBackend, ObjectBackend, PostgresConfig, Registry, S3Config,
    StoreConfig,
};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest as _, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A multi-threaded runtime for one test (the store spawns background
/// tasks, so it needs a runtime that keeps running between awaits).
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Opens the registry in `dir` without the garbage-collection scheduler,
/// so that only the test decides when a collection runs. Blob bytes go to
/// the object store `BERTH_TEST_OBJECTS` names (see [`objects`]).
pub async fn open(dir: &Path) -> Registry {
    open_with(dir, objects(dir)).await
}

/// [`open`] on the local disk whatever `BERTH_TEST_OBJECTS` says: for
/// tests that look at or damage the files themselves.
pub async fn open_fs(dir: &Path) -> Registry {
    open_with(dir, ObjectBackend::Filesystem).await
}

async fn open_with(dir: &Path, objects: ObjectBackend) -> Registry {
    let mut cfg = StoreConfig::new(dir);
    cfg.gc_scheduler = false;
    cfg.objects = objects;
    cfg.metadata = metadata(dir);
    Registry::open(cfg).await.expect("open registry")
}

/// The metadata engine of the registry in `dir`: `BERTH_TEST_META` unset
/// or `sled`, sled in the data directory; `postgres`, a database of its own
/// per data directory on the server `BERTH_TEST_PG_URL` names (created
/// with `psql` on first use, so a reopen finds its rows).
pub fn metadata(dir: &Path) -> MetadataBackend {
    match std::env::var("BERTH_TEST_META").as_deref() {
        Err(_) | Ok("sled") => MetadataBackend::Sled,
        Ok("postgres") => {
            let admin = std::env::var("BERTH_TEST_PG_URL").expect("BERTH_TEST_PG_URL is not set");
            MetadataBackend::Postgres(PostgresConfig {
                url: pg_database::database_for(dir, &admin),
                max_connections: 8,
                migrate: true,
            })
        }
        Ok(other) => panic!("BERTH_TEST_META={other}: expected sled or postgres"),
    }
}

/// The object store of the registry in `dir`: `BERTH_TEST_OBJECTS` unset
/// or `filesystem`, the data directory; `memory`, one in-memory store per
/// data directory (so a reopen finds its objects); `s3`, the bucket
/// `BERTH_TEST_S3_BUCKET` at `BERTH_TEST_S3_ENDPOINT` (keys
/// `BERTH_TEST_S3_ACCESS_KEY` and `BERTH_TEST_S3_SECRET_KEY`), under a
/// prefix of its own per data directory. `scripts/test.sh` runs the store
/// suites once with each.
pub fn objects(dir: &Path) -> ObjectBackend {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    match std::env::var("BERTH_TEST_OBJECTS").as_deref() {
        Err(_) | Ok("filesystem") => ObjectBackend::Filesystem,
        Ok("memory") => {
            // Why a Mutex: tests of one binary run on several threads.
            static STORES: std::sync::Mutex<Vec<(std::path::PathBuf, MemoryObjects)>> =
                std::sync::Mutex::new(Vec::new());
            let mut stores = STORES.lock().unwrap_or_else(|p| p.into_inner());
            let m = match stores.iter().find(|(d, _)| d == dir) {
                Some((_, m)) => m.clone(),
                None => {
                    let m = MemoryObjects::default();
                    stores.push((dir.to_path_buf(), m.clone()));
                    m
                }
            };
            ObjectBackend::Memory(m)
        }
        Ok("s3") => ObjectBackend::S3(S3Config {
            bucket: var("BERTH_TEST_S3_BUCKET"),
            prefix: dir
                .file_name()
                .expect("a temporary directory has a name")
                .to_string_lossy()
                .trim_start_matches('.')
                .to_string(),
            endpoint: var("BERTH_TEST_S3_ENDPOINT"),
            region: "us-east-1".into(),
            access_key_id: var("BERTH_TEST_S3_ACCESS_KEY"),
            secret_access_key: var("BERTH_TEST_S3_SECRET_KEY"),
            allow_http: true,
            virtual_hosted_style: false,
            redirect: false,
        }),
        Ok(other) => panic!("BERTH_TEST_OBJECTS={other}: expected filesystem, memory or s3"),
    }
}

pub fn repo(name: &str) -> RepoName {
    name.parse().expect("repository name")
}

pub fn tag(t: &str) -> Reference {
    Reference::Tag(t.parse().expect("tag"))
}

pub fn by_digest(d: &Digest) -> Reference {
    Reference::Digest(d.clone())
}

pub fn sha(b: &[u8]) -> Digest {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
        .parse()
        .expect("valid digest")
}

/// A body of one chunk.
pub fn body(b: &[u8]) -> ByteStream {
    futures::stream::iter([Ok(Bytes::copy_from_slice(b))]).boxed()
}

/// Deterministic bytes that differ by seed.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Stores `b` in `repo` in one piece and returns its digest.
pub async fn put_blob(reg: &Registry, repo: &RepoName, b: &[u8]) -> Digest {
    let d = sha(b);
    reg.blob_put(repo, &d, body(b), Some(b.len() as u64))
        .await
        .expect("blob put");
    d
}

/// Reads a whole blob.
pub async fn read_blob(reg: &Registry, repo: &RepoName, d: &Digest) -> Vec<u8> {
    let mut s = reg.blob_read(repo, d, None).await.expect("blob read").body;
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.expect("blob chunk"));
    }
    out
}

/// An image manifest over `config` and `layers` (digest, size), with an
/// optional subject and artifact type.
pub fn image_manifest(
    config: (&Digest, usize),
    layers: &[(&Digest, usize)],
    subject: Option<(&Digest, usize)>,
    artifact_type: Option<&str>,
) -> Vec<u8> {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0.to_string(), "size": config.1},
        "layers": layers
            .iter()
            .map(|(d, n)| serde_json::json!({"mediaType": OCI_LAYER, "digest": d.to_string(), "size": n}))
            .collect::<Vec<_>>(),
    });
    if let Some((d, n)) = subject {
        m["subject"] =
            serde_json::json!({"mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": n});
    }
    if let Some(t) = artifact_type {
        m["artifactType"] = serde_json::json!(t);
    }
    serde_json::to_vec(&m).expect("manifest json")
}

/// An image pushed by [`push_image`].
pub struct Pushed {
    pub manifest: Digest,
    pub manifest_size: usize,
    pub config: Digest,
    pub layer: Digest,
}

/// Pushes a config, one layer of `layer` and a manifest under `reference`.
pub async fn push_image(
    reg: &Registry,
    repo: &RepoName,
    reference: &Reference,
    layer: &[u8],
) -> Pushed {
    // The config names the repository, so that two repositories pushing the
    // same layer still have manifests of their own.
    let config_bytes = format!(
        r#"{{"architecture":"amd64","os":"linux","repo":"{repo}","layer":"{}"}}"#,
        sha(layer)
    );
    let config = put_blob(reg, repo, config_bytes.as_bytes()).await;
    let layer_d = put_blob(reg, repo, layer).await;
    let m = image_manifest(
        (&config, config_bytes.len()),
        &[(&layer_d, layer.len())],
        None,
        None,
    );
    let put = reg
        .manifest_put(repo, reference, Some(OCI_MANIFEST), Bytes::from(m.clone()))
        .await
        .expect("manifest put");
    assert_eq!(put.digest, sha(&m));
    Pushed {
        manifest: put.digest,
        manifest_size: m.len(),
        config,
        layer: layer_d,
    }
}

/// Whether `d` is readable in `repo`.
pub async fn has_blob(reg: &Registry, repo: &RepoName, d: &Digest) -> bool {
    match reg.blob_size(repo, d).await {
        Ok(_) => true,
        Err(berth_store::Error::BlobUnknown { .. }) => false,
        Err(e) => panic!("blob_size {repo}@{d}: {e}"),
    }
}

/// Where the local object store keeps a blob's bytes. Tests look there to
/// see whether bytes are really gone (the public API hides unlinked blobs);
/// the object layout does not depend on the metadata engine.
pub fn blob_file(data: &Path, d: &Digest) -> std::path::PathBuf {
    let hex = d.hex();
    data.join("blobs")
        .join(d.algorithm().as_str())
        .join(&hex[..2])
        .join(hex)
}

/// The grace period the GC tests use where a blob must be within it.
pub const LONG_GRACE: Duration = Duration::from_secs(3600);
/// Upload sessions never expire in these tests unless a test says so.
pub const LONG_TTL: Duration = Duration::from_secs(24 * 3600);
