//! Configuration: built-in defaults, then a TOML file (`--config`), then
//! `BERTH_<SECTION>__<KEY>` environment variables, then command-line flags.

use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The whole configuration file. Unknown keys are errors, so a typo is
/// reported instead of silently ignored.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`
    pub server: ServerSection,
    /// `[storage]`
    pub storage: StorageSection,
    /// `[metadata]`
    pub metadata: MetadataSection,
    /// `[log]`
    pub log: LogSection,
    /// `[auth]`
    pub auth: AuthSection,
    /// `[gc]`
    pub gc: GcSection,
    /// `[console]`
    pub console: ConsoleSection,
    /// `[audit]`
    pub audit: AuditSection,
    /// `[webhooks]`
    pub webhooks: WebhooksSection,
    /// `[metrics]`
    pub metrics: MetricsSection,
}

/// `[webhooks]`: delivery of events to webhooks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksSection {
    /// Run the delivery worker; off, events still queue durably.
    pub enabled: bool,
    /// Seconds one delivery attempt may take (connect and exchange).
    pub timeout_secs: u64,
    /// Seconds a delivery is retried before it is marked failed.
    pub retry_for_secs: u64,
    /// Milliseconds before the first retry; doubles per attempt.
    pub retry_initial_ms: u64,
    /// Longest delay between retries, in seconds.
    pub retry_max_secs: u64,
    /// Most deliveries in flight at once.
    pub max_concurrent_deliveries: usize,
    /// Allow receivers on loopback, private and link-local addresses.
    pub allow_private_targets: bool,
    /// Milliseconds between looks for due deliveries when nothing wakes
    /// the worker.
    pub poll_interval_ms: u64,
    /// Registry host in payloads (`host/ns/repo@digest`); empty: the
    /// address the server listens on.
    pub registry_host: String,
    /// Days delivered and failed deliveries stay in the delivery log.
    pub log_retention_days: u64,
}

impl Default for WebhooksSection {
    fn default() -> Self {
        WebhooksSection {
            enabled: true,
            timeout_secs: 10,
            retry_for_secs: 86_400,
            retry_initial_ms: 1000,
            retry_max_secs: 3600,
            max_concurrent_deliveries: 16,
            allow_private_targets: true,
            poll_interval_ms: 1000,
            registry_host: String::new(),
            log_retention_days: 7,
        }
    }
}

impl WebhooksSection {
    /// The worker's settings; `addr` is the address listened on, the host
    /// payloads name when `registry_host` is empty.
    pub fn worker(&self, addr: &str) -> berth_server::webhooks::WebhookConfig {
        use std::time::Duration;
        berth_server::webhooks::WebhookConfig {
            enabled: self.enabled,
            timeout: Duration::from_secs(self.timeout_secs),
            retry_for: Duration::from_secs(self.retry_for_secs),
            retry_initial: Duration::from_millis(self.retry_initial_ms),
            retry_max: Duration::from_secs(self.retry_max_secs),
            max_concurrent_deliveries: self.max_concurrent_deliveries,
            allow_private_targets: self.allow_private_targets,
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            registry_host: if self.registry_host.is_empty() {
                addr.to_string()
            } else {
                self.registry_host.clone()
            },
            log_retention: Duration::from_secs(self.log_retention_days * 86_400),
        }
    }
}

/// `[metrics]`: Prometheus metrics at `/metrics`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Collect and serve metrics; `false` makes `/metrics` answer 404.
    pub enabled: bool,
    /// A separate `IP:port` for `/metrics`, open to whoever reaches it;
    /// when set, the main listener's `/metrics` answers 404.
    pub addr: Option<String>,
    /// On the main listener, serve `/metrics` without credentials
    /// (otherwise a registry administrator's are needed).
    pub public: bool,
    /// Seconds between two reads of the storage totals from the metadata.
    pub storage_refresh_secs: u64,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            enabled: true,
            addr: None,
            public: false,
            storage_refresh_secs: 60,
        }
    }
}

/// `[console]`: the web console served at `/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSection {
    /// Serve the console; `false` makes its paths answer 404.
    pub enabled: bool,
}

impl Default for ConsoleSection {
    fn default() -> Self {
        ConsoleSection { enabled: true }
    }
}

/// `[audit]`: the audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Days an audit entry is kept; older ones are deleted hourly.
    pub retention_days: u64,
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection { retention_days: 90 }
    }
}

/// `[gc]`: garbage collection and upload expiry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcSection {
    /// Seconds after its last link or reference change during which an
    /// unneeded blob is kept (protects pushes in progress).
    pub grace_period_secs: u64,
    /// Seconds an upload session may stay idle before it is removed.
    pub upload_ttl_secs: u64,
}

impl Default for GcSection {
    fn default() -> Self {
        GcSection {
            grace_period_secs: 3600,
            upload_ttl_secs: 24 * 3600,
        }
    }
}

/// `[server]`: the listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address to listen on; port 0 picks a free port.
    pub addr: String,
    /// Seconds in-flight requests may take to finish after SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// Seconds a client may take to send its request headers.
    pub header_read_timeout_secs: u64,
    /// PEM certificate chain; with `tls_key`, serve HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes.
    pub max_header_bytes: usize,
    /// Most blob uploads receiving bytes at once (more get 429).
    pub max_concurrent_uploads: usize,
    /// Most blob uploads one client (user, token, or address when
    /// anonymous) may have receiving bytes at once (more get 429).
    pub max_concurrent_uploads_per_client: usize,
    /// Manifest bytes being received at once over all pushes (more get
    /// 429).
    pub max_manifest_bytes_in_flight: u64,
    /// Seconds a request body may make no progress before the request is
    /// answered 408 and its connection closed.
    pub body_read_timeout_secs: u64,
    /// Milliseconds each `/readyz` check (metadata, object store) may take
    /// before the answer is 503.
    pub readiness_timeout_ms: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        let d = berth_server::ServerConfig::default();
        ServerSection {
            addr: "127.0.0.1:5000".into(),
            shutdown_timeout_secs: 30,
            header_read_timeout_secs: 30,
            tls_cert: None,
            tls_key: None,
            max_connections: d.max_connections,
            max_header_bytes: d.max_header_bytes,
            max_concurrent_uploads: d.max_concurrent_uploads,
            max_concurrent_uploads_per_client: d.max_concurrent_uploads_per_client,
            max_manifest_bytes_in_flight: d.max_manifest_bytes_in_flight,
            body_read_timeout_secs: d.body_read_timeout.as_secs(),
            readiness_timeout_ms: d.readiness_timeout.as_millis() as u64,
        }
    }
}

/// `[storage]`: where data lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// Data directory: blobs, upload sessions, metadata.
    pub data_dir: PathBuf,
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: u64,
    /// Most upload sessions open at once in one repository (more get 429).
    pub max_open_uploads_per_repository: usize,
    /// Memory the metadata engine may use as its cache, in bytes.
    pub metadata_cache_bytes: u64,
    /// Where blob bytes go: the data directory or an S3 bucket.
    pub backend: StorageBackend,
    /// S3: bucket name.
    pub bucket: String,
    /// S3: key prefix inside the bucket.
    pub prefix: String,
    /// S3: endpoint URL of an S3-compatible server; empty: Amazon S3.
    pub endpoint: String,
    /// S3: region; empty: `AWS_REGION`, else `us-east-1`.
    pub region: String,
    /// S3: access key id; empty: `AWS_ACCESS_KEY_ID` or the instance role.
    pub access_key_id: String,
    /// S3: secret access key; empty: `AWS_SECRET_ACCESS_KEY` or the
    /// instance role.
    pub secret_access_key: String,
    /// S3: allow an `http://` endpoint.
    pub allow_http: bool,
    /// S3: virtual-hosted-style addressing (`bucket.endpoint`).
    pub virtual_hosted_style: bool,
    /// S3: answer blob pulls with a redirect to a presigned URL (valid
    /// 10 minutes) instead of streaming the bytes through Berth.
    pub redirect: bool,
}

/// `storage.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Files under `storage.data_dir`.
    #[default]
    Filesystem,
    /// An S3 bucket (`storage.bucket`, ...).
    S3,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            data_dir: PathBuf::from("./berth-data"),
            max_manifest_bytes: 4 << 20,
            max_open_uploads_per_repository: 1000,
            metadata_cache_bytes: berth_store::DEFAULT_METADATA_CACHE_BYTES,
            backend: StorageBackend::Filesystem,
            bucket: String::new(),
            prefix: String::new(),
            endpoint: String::new(),
            region: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            allow_http: false,
            virtual_hosted_style: false,
            redirect: false,
        }
    }
}

/// `[metadata]`: where everything but blob bytes is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataSection {
    /// `sled` (embedded, in the data directory) or `postgres`.
    pub backend: MetadataKind,
    /// PostgreSQL: `postgres://user:password@host:5432/database`.
    pub url: String,
    /// PostgreSQL: most connections per process.
    pub max_connections: usize,
    /// PostgreSQL: create or upgrade the schema at start.
    pub migrate: bool,
}

impl Default for MetadataSection {
    fn default() -> Self {
        MetadataSection {
            backend: MetadataKind::Sled,
            url: String::new(),
            max_connections: 16,
            migrate: true,
        }
    }
}

/// `metadata.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MetadataKind {
    /// sled in `<data_dir>/meta`.
    #[default]
    Sled,
    /// A PostgreSQL database (`metadata.url`).
    Postgres,
}

/// `[log]`: logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `text` or `json`.
    pub format: LogFormat,
    /// Filter directive, e.g. `info` or `berth=debug` (`RUST_LOG` wins).
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// `[auth]`: authentication and authorisation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// `none` (everyone may do everything) or `token`.
    pub mode: AuthMode,
    /// Service name in `WWW-Authenticate` challenges and tokens.
    pub service: String,
    /// Token endpoint URL announced to clients; empty = derived from each
    /// request (`<scheme>://<Host>/auth/token`).
    pub realm: String,
    /// Lifetime of bearer tokens from `/auth/token`, in seconds.
    pub token_ttl_secs: u64,
    /// CIDRs of reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// Failed logins per client address and per user within 5 minutes
    /// before further attempts get 429.
    pub max_failed_logins: u32,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            mode: AuthMode::None,
            service: "berth".into(),
            realm: String::new(),
            token_ttl_secs: 300,
            trusted_proxies: Vec::new(),
            max_failed_logins: 10,
        }
    }
}

/// Authentication mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication.
    None,
    /// Docker token authentication, Basic, scoped tokens.
    Token,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Loads defaults, the optional file, then environment overrides.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        Config::load_with(file, true)
    }

    /// Loads defaults and `file` only: for a command that reads two
    /// configurations (`berth migrate`), where one set of environment
    /// overrides would apply to both.
    pub fn load_file(file: &Path) -> anyhow::Result<Config> {
        Config::load_with(Some(file), false)
    }

    fn load_with(file: Option<&Path>, env: bool) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            anyhow::ensure!(f.exists(), "config file {} does not exist", f.display());
            fig = fig.merge(Toml::file(f));
        }
        // Only sectioned variables (BERTH_SERVER__ADDR): other BERTH_*
        // variables belong to tools and tests, not to this file.
        if env {
            fig = fig.merge(
                Env::prefixed("BERTH_")
                    .filter(|k| k.as_str().contains("__"))
                    .split("__"),
            );
        }
        let cfg: Config = fig
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.server
            .addr
            .parse::<std::net::SocketAddr>()
            .with_context(|| {
                format!(
                    "server.addr {:?} is not an IP:port address",
                    self.server.addr
                )
            })?;
        if let Some(a) = &self.metrics.addr {
            a.parse::<std::net::SocketAddr>()
                .with_context(|| format!("metrics.addr {a:?} is not an IP:port address"))?;
        }
        anyhow::ensure!(
            (1..=86_400).contains(&self.metrics.storage_refresh_secs),
            "metrics.storage_refresh_secs must be between 1 and 86400"
        );
        anyhow::ensure!(
            (1..=600_000).contains(&self.server.readiness_timeout_ms),
            "server.readiness_timeout_ms must be between 1 and 600000"
        );
        anyhow::ensure!(
            self.storage.max_manifest_bytes >= 1024,
            "storage.max_manifest_bytes must be at least 1024"
        );
        anyhow::ensure!(
            !self.storage.data_dir.as_os_str().is_empty(),
            "storage.data_dir must not be empty"
        );
        anyhow::ensure!(
            self.server.tls_cert.is_some() == self.server.tls_key.is_some(),
            "server.tls_cert and server.tls_key go together: give both or neither"
        );
        let a = &self.auth;
        anyhow::ensure!(
            !a.service.is_empty()
                && a.service.len() <= 128
                && a.service
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
            "auth.service must be 1 to 128 printable characters without quotes or backslashes"
        );
        anyhow::ensure!(
            a.realm.is_empty()
                || ((a.realm.starts_with("http://") || a.realm.starts_with("https://"))
                    && a.realm.bytes().all(|b| b.is_ascii_graphic() && b != b'"')),
            "auth.realm must be empty or an http:// or https:// URL"
        );
        anyhow::ensure!(
            (10..=86_400).contains(&a.token_ttl_secs),
            "auth.token_ttl_secs must be between 10 and 86400"
        );
        anyhow::ensure!(
            a.max_failed_logins >= 1,
            "auth.max_failed_logins must be at least 1"
        );
        for p in &a.trusted_proxies {
            anyhow::ensure!(
                berth_server::auth::parse_cidr(p).is_some(),
                "auth.trusted_proxies: {p:?} is not a CIDR such as 10.0.0.0/8 or ::1/128"
            );
        }
        anyhow::ensure!(
            (1..=36_500).contains(&self.audit.retention_days),
            "audit.retention_days must be between 1 and 36500"
        );
        anyhow::ensure!(
            self.gc.upload_ttl_secs >= 1,
            "gc.upload_ttl_secs must be at least 1"
        );
        anyhow::ensure!(
            (1 << 20..=1 << 40).contains(&self.storage.metadata_cache_bytes),
            "storage.metadata_cache_bytes must be between 1048576 (1 MiB) and 1099511627776 (1 TiB)"
        );
        let st = &self.storage;
        match st.backend {
            StorageBackend::S3 => {
                anyhow::ensure!(
                    !st.bucket.is_empty(),
                    "storage.bucket must name the bucket when storage.backend is \"s3\""
                );
                anyhow::ensure!(
                    st.endpoint.is_empty()
                        || st.endpoint.starts_with("https://")
                        || (st.endpoint.starts_with("http://") && st.allow_http),
                    "storage.endpoint must be an https:// URL (or http:// with storage.allow_http = true)"
                );
            }
            StorageBackend::Filesystem => {
                anyhow::ensure!(
                    st.bucket.is_empty() && st.endpoint.is_empty() && st.prefix.is_empty(),
                    "storage.bucket, storage.endpoint and storage.prefix apply only with \
                     storage.backend = \"s3\""
                );
                anyhow::ensure!(
                    !st.redirect,
                    "storage.redirect needs storage.backend = \"s3\" (files on the local disk \
                     have no URL to redirect clients to)"
                );
            }
        }
        let md = &self.metadata;
        match md.backend {
            MetadataKind::Postgres => {
                anyhow::ensure!(
                    md.url.starts_with("postgres://")
                        || md.url.starts_with("postgresql://")
                        || md.url.contains("host="),
                    "metadata.url must be a PostgreSQL URL (postgres://user:password@host:5432/database) when metadata.backend is \"postgres\""
                );
                anyhow::ensure!(
                    (1..=1024).contains(&md.max_connections),
                    "metadata.max_connections must be between 1 and 1024"
                );
            }
            MetadataKind::Sled => anyhow::ensure!(
                md.url.is_empty(),
                "metadata.url applies only with metadata.backend = \"postgres\""
            ),
        }
        let w = &self.webhooks;
        anyhow::ensure!(
            (1..=300).contains(&w.timeout_secs),
            "webhooks.timeout_secs must be between 1 and 300"
        );
        anyhow::ensure!(
            w.retry_for_secs >= 1,
            "webhooks.retry_for_secs must be at least 1"
        );
        anyhow::ensure!(
            w.retry_initial_ms >= 10 && w.retry_max_secs >= 1,
            "webhooks.retry_initial_ms must be at least 10 and webhooks.retry_max_secs at least 1"
        );
        anyhow::ensure!(
            (1..=1024).contains(&w.max_concurrent_deliveries),
            "webhooks.max_concurrent_deliveries must be between 1 and 1024"
        );
        anyhow::ensure!(
            (10..=60_000).contains(&w.poll_interval_ms),
            "webhooks.poll_interval_ms must be between 10 and 60000"
        );
        anyhow::ensure!(
            w.registry_host
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/'),
            "webhooks.registry_host must be a host[:port], without a scheme or path"
        );
        anyhow::ensure!(
            w.log_retention_days >= 1,
            "webhooks.log_retention_days must be at least 1"
        );
        Ok(())
    }

    /// The storage engine's configuration.
    pub fn store(&self) -> berth_store::StoreConfig {
        let mut c = berth_store::StoreConfig::new(&self.storage.data_dir);
        c.max_manifest_bytes = self.storage.max_manifest_bytes;
        c.max_open_uploads_per_repository = self.storage.max_open_uploads_per_repository.max(1);
        c.metadata_cache_bytes = self.storage.metadata_cache_bytes;
        c.metadata = match self.metadata.backend {
            MetadataKind::Sled => berth_store::MetadataBackend::Sled,
            MetadataKind::Postgres => {
                berth_store::MetadataBackend::Postgres(berth_store::PostgresConfig {
                    url: self.metadata.url.clone(),
                    max_connections: self.metadata.max_connections,
                    migrate: self.metadata.migrate,
                })
            }
        };
        let st = &self.storage;
        c.objects = match st.backend {
            StorageBackend::Filesystem => berth_store::ObjectBackend::Filesystem,
            StorageBackend::S3 => berth_store::ObjectBackend::S3(berth_store::S3Config {
                bucket: st.bucket.clone(),
                prefix: st.prefix.clone(),
                endpoint: st.endpoint.clone(),
                region: st.region.clone(),
                access_key_id: st.access_key_id.clone(),
                secret_access_key: st.secret_access_key.clone(),
                allow_http: st.allow_http,
                virtual_hosted_style: st.virtual_hosted_style,
                redirect: st.redirect,
            }),
        };
        c.gc_grace = std::time::Duration::from_secs(self.gc.grace_period_secs);
        c.upload_ttl = std::time::Duration::from_secs(self.gc.upload_ttl_secs);
        c
    }
}
