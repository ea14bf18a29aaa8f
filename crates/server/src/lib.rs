//! Berth's HTTP front end: hyper 1 on tokio.
//!
//! `run(listener, state, shutdown)` serves until `shutdown` resolves, then
//! stops accepting and lets in-flight requests finish (bounded wait), as in
//! mini-redis's server. Every request is parsed into a
//! [`router::Endpoint`] first, then dispatched; every failure goes through
//! the one mapping in [`error`].
#![warn(missing_docs)]

pub mod api;
pub mod error;
pub mod router;
mod v2;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_store::Registry;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Response body: streamed blobs or small buffers.
pub type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Server settings that are not storage settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long in-flight requests may run after shutdown starts.
    pub shutdown_timeout: Duration,
    /// How long a client may take to send request headers (slowloris).
    pub header_read_timeout: Duration,
    /// Most simultaneous connections; past it, new ones wait in the
    /// kernel's accept queue.
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Most blob uploads receiving bytes at once; more get 429.
    pub max_concurrent_uploads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            shutdown_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_header_bytes: 64 << 10,
            max_concurrent_uploads: 256,
        }
    }
}

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The storage engine.
    pub registry: Registry,
    /// Server settings.
    pub config: ServerConfig,
    /// Why: each upload holds buffers and a file; bounding how many receive
    /// bytes at once bounds memory and open files whatever clients do.
    pub(crate) uploads: Arc<Semaphore>,
    /// Why: each connection costs a task, buffers and a file descriptor.
    connections: Arc<Semaphore>,
}

impl AppState {
    /// State for a server over `registry`.
    pub fn new(registry: Registry, config: ServerConfig) -> AppState {
        AppState {
            registry,
            uploads: Arc::new(Semaphore::new(config.max_concurrent_uploads.max(1))),
            connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            config,
        }
    }
}

/// Serves `listener` until `shutdown` resolves, then drains connections.
pub async fn run(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = state.connections.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = &mut shutdown => {
                tracing::info!("shutting down: no new connections, draining in-flight requests");
                break;
            }
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let header_timeout = state.config.header_read_timeout;
                let max_buf = state.config.max_header_bytes.max(8192);
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let _permit = permit;
                    let Some(stream) = reject_tls(stream).await else { return };
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(state, peer, req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_timeout)
                        .max_buf_size(max_buf)
                        .serve_connection(TokioIo::new(stream), svc);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, %peer, "connection ended with error");
                    }
                });
            }
            _ = &mut shutdown => {
                tracing::info!("shutting down: no new connections, draining in-flight requests");
                break;
            }
        }
    }
    drop(listener);
    let timeout = state.config.shutdown_timeout;
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(timeout) => tracing::warn!(?timeout, "shutdown timeout; dropping remaining connections"),
    }
    if let Err(e) = state.registry.flush().await {
        tracing::error!(error = %e, "final metadata flush failed");
    }
}

/// A client that speaks TLS to this plain-HTTP port gets the plain HTTP 400
/// that Go servers send, which docker and containerd recognise ("server gave
/// HTTP response to HTTPS client") and which lets them fall back to HTTP for
/// insecure registries.
async fn reject_tls(stream: TcpStream) -> Option<TcpStream> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(30), stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == 0x16 => {
            let mut stream = stream;
            let _ = stream
                .write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
                .await;
            let _ = stream.shutdown().await;
            None
        }
        Ok(Ok(_)) => Some(stream),
        _ => None,
    }
}

async fn handle(state: AppState, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = if path == "/api/v1" || path.starts_with("/api/v1/") {
        api::dispatch(&state, req).await
    } else {
        v2::dispatch(&state, req).await
    };
    let bytes = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    // The access log: one line per request.
    tracing::info!(
        target: "berth::access",
        %peer,
        %method,
        path,
        status = resp.status().as_u16(),
        bytes,
        duration_ms = start.elapsed().as_secs_f64() * 1000.0,
    );
    resp
}
