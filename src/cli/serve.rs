//! `berth serve`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
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
}

pub fn run(mut cfg: Config, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(a) = args.addr {
        cfg.server.addr = a;
    }
    if let Some(d) = args.data_dir {
        cfg.storage.data_dir = d;
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
    let registry = Registry::open(cfg.store())
        .await
        .with_context(|| format!("opening data directory {}", cfg.storage.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(&cfg.server.addr)
        .await
        .with_context(|| format!("binding {}", cfg.server.addr))?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        tracing::warn!(
            addr = %local,
            "LISTENING ON A NON-LOOPBACK ADDRESS WITH AUTHENTICATION OFF: anyone who can reach \
             this port can push, pull and delete. Bind 127.0.0.1 or put an authenticating proxy in front."
        );
    }
    tracing::info!(addr = %local, data_dir = %cfg.storage.data_dir.display(), "berth is serving");
    // The one line on stdout: scripts and tests wait for it to know the port.
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "berth listening on http://{local}")?;
        out.flush()?;
    }
    let state = AppState::new(
        registry,
        ServerConfig {
            shutdown_timeout: Duration::from_secs(cfg.server.shutdown_timeout_secs),
            header_read_timeout: Duration::from_secs(cfg.server.header_read_timeout_secs),
            max_connections: cfg.server.max_connections,
            max_header_bytes: cfg.server.max_header_bytes,
            max_concurrent_uploads: cfg.server.max_concurrent_uploads,
        },
    );
    berth_server::run(listener, state, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
