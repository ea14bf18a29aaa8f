//! `berth serve`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use berth_server::auth::{AuthConfig, AuthMode};
use berth_server::{AppState, ServerConfig};
use berth_store::Registry;

use crate::config::Config;

/// Options of `berth serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:5000; port 0 picks a free port
    /// (overrides [server] addr; default 127.0.0.1:5000).
    #[arg(long, value_name = "IP:PORT")]
    addr: Option<String>,
    /// Directory for blobs, upload sessions and metadata (overrides
    /// [storage] data_dir; default ./berth-data).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS (with --tls-key; overrides
    /// [server] tls_cert). SIGHUP reloads the certificate and key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (overrides [server] tls_key).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

pub fn run(mut cfg: Config, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(a) = args.addr {
        cfg.server.addr = a;
    }
    if let Some(d) = args.data_dir {
        cfg.storage.data_dir = d;
    }
    if let (Some(c), Some(k)) = (args.tls_cert, args.tls_key) {
        cfg.server.tls_cert = Some(c);
        cfg.server.tls_key = Some(k);
    }
    cfg.validate()?;
    super::init_logging(cfg.log.format, &cfg.log.level);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(cfg))
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let store = cfg.store();
    let opening = super::opening(&store);
    let registry = Registry::open(store).await.context(opening)?;
    let auth = auth_config(&cfg);
    bootstrap_admin(&registry).await?;
    let tls = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
        (Some(c), Some(k)) => Some(berth_server::tls::Tls::new(c, k).map_err(anyhow::Error::msg)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(&cfg.server.addr)
        .await
        .with_context(|| format!("binding {}", cfg.server.addr))?;
    let local = listener.local_addr()?;
    if auth.mode == AuthMode::None && !local.ip().is_loopback() {
        tracing::warn!(
            addr = %local,
            "LISTENING ON A NON-LOOPBACK ADDRESS WITH AUTHENTICATION OFF: anyone who can reach \
             this port can push, pull and delete. Set [auth] mode = \"token\" (BERTH_AUTH__MODE=token) \
             or bind 127.0.0.1."
        );
    }
    if auth.mode == AuthMode::Token {
        // Generated and persisted on the first start in token mode.
        registry
            .signing_keys()
            .await
            .context("loading the token-signing key")?;
    }
    if auth.mode == AuthMode::Token && registry.user_count().await? == 0 {
        tracing::warn!(
            "authentication is on but there is no user yet: create one with \
             `berth user add NAME --admin` (server stopped) or start once with BERTH_ADMIN_PASSWORD set"
        );
    }
    if auth.mode == AuthMode::Token && tls.is_none() && !local.ip().is_loopback() {
        tracing::warn!(
            "authentication is on over plain HTTP on a non-loopback address: passwords and tokens \
             cross the network in clear; use --tls-cert/--tls-key or a TLS-terminating proxy"
        );
    }
    let shutdown = shutdown_signal()?;
    // Why a watch channel: one signal stops two listeners (the main one and
    // the metrics one), and a watch is the one-to-many "it happened" flag.
    let (stopping, stop_seen) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(true);
    };
    let metrics_listener = match (&cfg.metrics.addr, cfg.metrics.enabled) {
        (Some(a), true) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding the metrics address {a}"))?,
        ),
        _ => None,
    };
    if let Some(t) = tls.clone() {
        spawn_reload_on_sighup(t)?;
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %local, data_dir = %cfg.storage.data_dir.display(), objects = ?cfg.storage.backend, metadata = ?cfg.metadata.backend, auth = ?auth.mode, tls = tls.is_some(), "berth is serving");
    // The one line on stdout: scripts and tests wait for it to know the port.
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "berth listening on {scheme}://{local}")?;
        out.flush()?;
    }
    spawn_audit_pruning(registry.clone(), cfg.audit.retention_days);
    let mut state = AppState::new(
        registry,
        ServerConfig {
            shutdown_timeout: Duration::from_secs(cfg.server.shutdown_timeout_secs),
            header_read_timeout: Duration::from_secs(cfg.server.header_read_timeout_secs),
            auth,
            max_connections: cfg.server.max_connections,
            max_header_bytes: cfg.server.max_header_bytes,
            max_concurrent_uploads: cfg.server.max_concurrent_uploads,
            max_concurrent_uploads_per_client: cfg.server.max_concurrent_uploads_per_client,
            max_manifest_bytes_in_flight: cfg.server.max_manifest_bytes_in_flight,
            body_read_timeout: Duration::from_secs(cfg.server.body_read_timeout_secs.max(1)),
            console: cfg.console.enabled,
            webhooks: cfg.webhooks.worker(&local.to_string()),
            metrics: berth_server::metrics::MetricsConfig {
                enabled: cfg.metrics.enabled,
                separate_listener: metrics_listener.is_some(),
                public: cfg.metrics.public,
                storage_refresh: Duration::from_secs(cfg.metrics.storage_refresh_secs),
            },
            readiness_timeout: Duration::from_millis(cfg.server.readiness_timeout_ms),
        },
    );
    state.tls = tls;
    let metrics_task = metrics_listener.map(|l| {
        if let Ok(a) = l.local_addr() {
            tracing::info!(addr = %a, "serving /metrics");
        }
        let mut stop = stop_seen.clone();
        tokio::spawn(berth_server::metrics::serve_listener(
            l,
            state.metrics.clone(),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ))
    });
    berth_server::run(listener, state, shutdown).await;
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Deletes audit entries older than `days`, at start and then hourly, a
/// batch at a time so that a large backlog never holds the database long.
fn spawn_audit_pruning(registry: Registry, days: u64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let before = now.saturating_sub((days as i64).saturating_mul(86_400_000));
            let mut pruned = 0;
            loop {
                match registry.audit_prune(before, 1000).await {
                    Ok(0) => break,
                    Ok(n) => pruned += n,
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning the audit log failed");
                        break;
                    }
                }
            }
            if pruned > 0 {
                tracing::info!(pruned, days, "old audit entries removed");
            }
        }
    });
}

fn auth_config(cfg: &Config) -> AuthConfig {
    let a = &cfg.auth;
    AuthConfig {
        mode: match a.mode {
            crate::config::AuthMode::None => AuthMode::None,
            crate::config::AuthMode::Token => AuthMode::Token,
        },
        service: a.service.clone(),
        realm: (!a.realm.is_empty()).then(|| a.realm.clone()),
        token_ttl: Duration::from_secs(a.token_ttl_secs),
        trusted_proxies: a
            .trusted_proxies
            .iter()
            .filter_map(|p| berth_server::auth::parse_cidr(p))
            .collect(),
        max_failed_logins: a.max_failed_logins,
    }
}

/// `BERTH_ADMIN_PASSWORD` creates the user `admin` when there is no user
/// at all; there is never a built-in password.
async fn bootstrap_admin(registry: &Registry) -> anyhow::Result<()> {
    let Ok(pw) = std::env::var("BERTH_ADMIN_PASSWORD") else {
        return Ok(());
    };
    if registry.user_count().await? > 0 {
        tracing::info!("BERTH_ADMIN_PASSWORD ignored: users exist already");
        return Ok(());
    }
    match registry.user_create("admin", &pw, true).await {
        Ok(_) => {}
        // Another replica starting at the same time created it first.
        Err(berth_store::Error::Exists { .. }) => {
            tracing::info!("BERTH_ADMIN_PASSWORD ignored: another replica created `admin`");
            return Ok(());
        }
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context("creating user admin from BERTH_ADMIN_PASSWORD")
            )
        }
    }
    tracing::warn!(
        "created registry administrator `admin` from BERTH_ADMIN_PASSWORD; unset the variable now"
    );
    Ok(())
}

/// SIGHUP reloads the TLS certificate and key; a failed reload keeps the
/// old ones.
fn spawn_reload_on_sighup(tls: std::sync::Arc<berth_server::tls::Tls>) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        // Registered before the listening line for the same reason as the
        // shutdown handlers: SIGHUP's default action ends the process.
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => tracing::info!("TLS certificate reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one")
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = tls;
    Ok(())
}

/// Registers the Ctrl-C / SIGTERM handlers now and returns a future that
/// resolves on either. Registering here, before the listening line is
/// printed, matters: a handler installed lazily on first poll leaves a window
/// in which a supervisor's SIGTERM takes the default action and kills the
/// process without a clean shutdown.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
