//! Berth's HTTP front end: hyper 1 on tokio.
//!
//! `run(listener, state, shutdown)` serves until `shutdown` resolves, then
//! stops accepting and lets in-flight requests finish (bounded wait), as in
//! mini-redis's server. Every request is parsed into an
//! [`endpoint::Endpoint`] first, authorised once from its head, then
//! dispatched; store failures go through the one table in [`error`].
#![warn(missing_docs)]

pub mod api;
pub mod auth;
mod authorize;
pub mod body;
pub mod console;
pub mod endpoint;
pub mod error;
mod health;
mod limits;
mod login;
pub mod metrics;
mod query;
mod tag_cache;
pub mod tls;
mod token;
pub mod usage;
mod v2;
pub mod webhooks;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_store::Registry;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

pub use authorize::Access;
use endpoint::{Endpoint, Plane};
use error::{Failure, MgmtError};

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
    /// Authentication.
    pub auth: auth::AuthConfig,
    /// Most simultaneous connections; past it, new ones wait in the
    /// kernel's accept queue.
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Most blob uploads receiving bytes at once; more get 429.
    pub max_concurrent_uploads: usize,
    /// Most blob uploads one client (a user or token; an address for
    /// anonymous callers) may have receiving bytes at once; more get 429.
    pub max_concurrent_uploads_per_client: usize,
    /// Manifest bytes being received at once, over all requests; a push
    /// that would pass it gets 429.
    pub max_manifest_bytes_in_flight: u64,
    /// How long a request body may make no progress before the request is
    /// answered 408 and its connection closed.
    pub body_read_timeout: Duration,
    /// Serve the web console at `/`; off, its paths answer 404.
    pub console: bool,
    /// Webhook deliveries.
    pub webhooks: webhooks::WebhookConfig,
    /// Where and how `/metrics` is served.
    pub metrics: metrics::MetricsConfig,
    /// How long each readiness check (metadata, object store) may take
    /// before `/readyz` answers 503.
    pub readiness_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            shutdown_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(30),
            auth: auth::AuthConfig::default(),
            max_connections: 4096,
            max_header_bytes: 64 << 10,
            max_concurrent_uploads: 256,
            max_concurrent_uploads_per_client: 32,
            max_manifest_bytes_in_flight: 64 << 20,
            body_read_timeout: Duration::from_secs(60),
            console: true,
            webhooks: webhooks::WebhookConfig::default(),
            metrics: metrics::MetricsConfig::default(),
            readiness_timeout: Duration::from_secs(2),
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
    /// Authentication state (signing keys, throttling).
    pub auth: Arc<auth::AuthState>,
    /// HTTPS, when a certificate is configured.
    pub tls: Option<Arc<tls::Tls>>,
    /// Why: each upload holds buffers and a file; bounding how many receive
    /// bytes at once bounds memory and open files whatever clients do.
    pub(crate) uploads: Arc<Semaphore>,
    /// Per-client share of the upload places, so that one client cannot
    /// take them all.
    pub(crate) client_uploads: Arc<limits::ClientSlots>,
    /// Why: manifests are buffered whole before parsing; bounding the bytes
    /// being received bounds that memory whatever the number of pushes.
    pub(crate) manifest_bytes: Arc<Semaphore>,
    /// Why: each connection costs a task, buffers and a file descriptor.
    connections: Arc<Semaphore>,
    /// The metric families (registered even when metrics are off: cheap,
    /// and it keeps every counting site unconditional).
    pub metrics: Arc<metrics::Metrics>,
    /// Whole tag listings, served while their repository's tags are
    /// unchanged.
    pub(crate) tag_lists: Arc<tag_cache::TagLists>,
}

impl AppState {
    /// State for a server over `registry`, plain HTTP.
    pub fn new(registry: Registry, config: ServerConfig) -> AppState {
        let metrics = Arc::new(metrics::Metrics::new());
        if config.metrics.enabled {
            registry.set_observer(metrics.clone());
        }
        AppState {
            metrics,
            registry,
            auth: Arc::default(),
            tls: None,
            uploads: Arc::new(Semaphore::new(config.max_concurrent_uploads.max(1))),
            client_uploads: Arc::default(),
            manifest_bytes: Arc::new(Semaphore::new(limits::manifest_permits(
                config.max_manifest_bytes_in_flight,
            ))),
            connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            tag_lists: Arc::default(),
            config,
        }
    }
}

/// Serves `listener` until `shutdown` resolves, then drains connections.
pub async fn run(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    // Stopped below, so that it does not keep the registry open after run returns.
    let sampler = usage::spawn_sampler(state.clone());
    // Stopped below too: deliveries left in flight are leased, and retried
    // once their lease expires.
    let deliveries = webhooks::spawn(
        state.registry.clone(),
        state.config.webhooks.clone(),
        state.metrics.webhooks(),
    );
    let refresher = state.config.metrics.enabled.then(|| {
        metrics::spawn_storage_refresher(
            state.registry.clone(),
            state.metrics.clone(),
            state.config.metrics.storage_refresh,
        )
    });
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
                    match state.tls.as_ref().map(|t| t.acceptor()) {
                        Some(acceptor) => {
                            // The handshake gets the header timeout too.
                            let tls = match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, %peer, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            };
                            serve_connection(state, peer, tls, header_timeout, max_buf, watcher).await;
                        }
                        None => {
                            let Some(stream) = reject_tls(stream, header_timeout).await else { return };
                            serve_connection(state, peer, stream, header_timeout, max_buf, watcher).await;
                        }
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
    sampler.abort();
    if let Some(d) = deliveries {
        d.abort();
    }
    if let Some(r) = refresher {
        r.abort();
    }
    if let Err(e) = state.registry.flush().await {
        tracing::error!(error = %e, "final metadata flush failed");
    }
}

async fn serve_connection<IO>(
    state: AppState,
    peer: SocketAddr,
    io: IO,
    header_timeout: Duration,
    max_buf: usize,
    watcher: hyper_util::server::graceful::Watcher,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(state, peer, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(max_buf)
        .serve_connection(TokioIo::new(io), svc);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, %peer, "connection ended with error");
    }
}

/// A client that speaks TLS to this plain-HTTP port gets the plain HTTP 400
/// that Go servers send, which docker and containerd recognise ("server gave
/// HTTP response to HTTPS client") and which lets them fall back to HTTP for
/// insecure registries.
async fn reject_tls(stream: TcpStream, wait: Duration) -> Option<TcpStream> {
    let mut first = [0u8; 1];
    // A connection that sends nothing within the header timeout is closed,
    // like an idle keep-alive one.
    match tokio::time::timeout(wait, stream.peek(&mut first)).await {
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

/// One request through the pipeline of `docs/ARCHITECTURE.md`: head
/// limits, the endpoint, allow-list and credentials, the one
/// authorisation, then the handler; the access log and the audit log last.
async fn handle(state: AppState, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let start = Instant::now();
    let timed_out = Arc::new(AtomicBool::new(false));
    let body_ended = Arc::new(AtomicBool::new(false));
    let idle = state.config.body_read_timeout;
    let received = state.metrics.received();
    let req =
        req.map(|b| body::Incoming::new(b, idle, timed_out.clone(), body_ended.clone(), received));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let plane = Plane::of(&path);
    let parsed = match Endpoint::parse(&method, &path, req.uri().query()) {
        // Off, or served on a listener of its own: no such path here.
        Ok(Endpoint::Metrics) if !state.config.metrics.on_main_listener() => {
            Err(Failure::Oci(error::ApiError::new(
                berth_oci::ErrorCode::NameUnknown,
                format!("no route for {path}"),
            )))
        }
        p => p,
    };
    let route = parsed
        .as_ref()
        .map(Endpoint::route_label)
        .unwrap_or("unknown");
    let skips_admission = parsed.as_ref().is_ok_and(Endpoint::skips_admission);
    let (addr, scheme) =
        auth::client_addr(&state.config.auth, peer, req.headers(), state.tls.is_some());
    let request_id = auth::request_id(&state.config.auth, peer, req.headers());
    // Head checks first: no body byte is read before the request is known
    // to be admissible.
    let admitted = match limits::check_head(&state, &req, plane) {
        Some(resp) => Err(resp),
        None => match admit(
            &state,
            addr,
            scheme,
            &request_id,
            skips_admission,
            plane,
            &req,
        )
        .await
        {
            Ok(c) => match limits::check_caller(&c, &req, plane) {
                Some(resp) => Err(resp),
                None => Ok(c),
            },
            Err(resp) => Err(resp),
        },
    };
    let caller = match admitted {
        Ok(c) => c,
        Err(resp) => {
            let mut req = req;
            let drained = resp.status() == StatusCode::PAYLOAD_TOO_LARGE
                && limits::drain_refused(&mut req).await;
            // Refused from the head: an unread body cannot be taken for the
            // next request, so such a connection ends here.
            let resp = limits::closing(resp, !drained && limits::body_pending(&req));
            let resp = if plane == Plane::Console {
                console::with_security_headers(resp)
            } else {
                resp
            };
            let resp = with_request_id(resp, &request_id);
            access_log(peer, addr, &method, &path, route, &request_id, &resp, start);
            return finish(&state, route, &method, resp, start);
        }
    };
    let is_head = method == http::Method::HEAD;
    // The caller is handed to each plane explicitly: no handler can run
    // without one, and none can fall back to a default with every right.
    let decided = authorize::decide(&state, &caller, req.headers(), plane, parsed).await;
    let (resp, endpoint) = match decided {
        Err(Failure::Oci(e)) if plane == Plane::V2 => {
            (v2::finish(crate::error::oci_response(e), is_head), None)
        }
        Err(Failure::Oci(e)) => (crate::error::oci_response(e), None),
        Err(Failure::Api(e)) => (e.response(), None),
        Ok(endpoint) => {
            let resp = match &endpoint {
                Endpoint::Console => console::serve(state.config.console, &method, &path),
                Endpoint::Health => v2::finish(v2::health(), is_head),
                Endpoint::Ready => v2::finish(health::ready(&state).await, is_head),
                Endpoint::Metrics => v2::finish(state.metrics.response(), is_head),
                Endpoint::Api(op) => api::dispatch(&state, &caller, op.clone(), req).await,
                Endpoint::TokenGet | Endpoint::TokenPost => {
                    token::dispatch(&state, caller.clone(), req).await
                }
                Endpoint::V2(op) => v2::finish(
                    v2::dispatch(&state, &caller, op.clone(), req).await,
                    is_head,
                ),
            };
            (resp, Some(endpoint))
        }
    };
    let resp = if timed_out.load(Ordering::Relaxed) {
        limits::body_timeout(idle, plane)
    } else {
        // A handler that failed part-way through the body (a full disk, a
        // bad chunk) leaves the rest unread: the client must not send its
        // next request on this connection.
        limits::closing(resp, !body_ended.load(Ordering::Relaxed))
    };
    let status = resp.status();
    if let Some((action, target)) = endpoint
        .filter(|_| status.is_success())
        .and_then(|e| e.audit(&path))
    {
        auth::record(&state, &caller, action, &target, status.as_str()).await;
    }
    let resp = with_request_id(resp, &request_id);
    access_log(peer, addr, &method, &path, route, &request_id, &resp, start);
    finish(&state, route, &method, resp, start)
}

/// Every answer carries its request's id, refusals included.
fn with_request_id(mut resp: Response<Body>, id: &str) -> Response<Body> {
    if let Ok(v) = http::HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Counts the answered request and wraps its body to count what is sent.
fn finish(
    state: &AppState,
    route: &'static str,
    method: &http::Method,
    resp: Response<Body>,
    start: Instant,
) -> Response<Body> {
    state
        .metrics
        .request(route, method, resp.status(), start.elapsed());
    let sent = state.metrics.sent();
    resp.map(|b| metrics::count_sent(b, sent))
}

/// Allow-list and authentication: the caller, or the refusal to answer.
async fn admit(
    state: &AppState,
    addr: std::net::IpAddr,
    scheme: &'static str,
    request_id: &str,
    skips_admission: bool,
    plane: Plane,
    req: &Request<body::Incoming>,
) -> Result<auth::Caller, Response<Body>> {
    let refuse = |api: MgmtError, oci: error::ApiError| {
        if plane == Plane::Api {
            api.response()
        } else {
            crate::error::oci_response(oci)
        }
    };
    if !skips_admission {
        match auth::allow_listed(&state.registry, addr).await {
            Ok(true) => {}
            Ok(false) => {
                let msg = format!("{addr} is not in the registry's subnet allow-list");
                return Err(refuse(
                    MgmtError::denied(msg.clone()),
                    error::ApiError::new(berth_oci::ErrorCode::Denied, msg),
                ));
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the allow-list failed");
                let msg = "the allow-list could not be read";
                return Err(refuse(
                    MgmtError::internal(msg),
                    error::ApiError::new(berth_oci::ErrorCode::Unknown, msg),
                ));
            }
        }
    }
    // The console's static files need no credentials (its API calls do).
    let principal = if skips_admission || plane == Plane::Console {
        auth::Principal::Anonymous
    } else {
        match auth::authenticate(state, addr, req.headers()).await {
            Ok(p) => p,
            Err(f) => {
                let caller = auth::Caller {
                    principal: auth::Principal::Anonymous,
                    addr,
                    scheme,
                    request_id: request_id.to_string(),
                };
                return Err(match (plane, f) {
                    (Plane::Token, f) => crate::error::oci_response(token::failure_error(f)),
                    (Plane::Api, auth::AuthFailure::Unauthorized(m)) => MgmtError::unauthorized(m)
                        .with_header(http::header::WWW_AUTHENTICATE, "Basic realm=\"berth\"")
                        .response(),
                    (Plane::Api, f) => {
                        let (msg, after) = f.throttle().unwrap_or_default();
                        MgmtError::retry_after(msg, after).response()
                    }
                    (Plane::V2, auth::AuthFailure::Unauthorized(m)) => {
                        let challenge = auth::challenge(state, &caller, req.headers(), None, false);
                        crate::error::oci_response(
                            error::ApiError::new(berth_oci::ErrorCode::Unauthorized, m)
                                .with_header(http::header::WWW_AUTHENTICATE, challenge),
                        )
                    }
                    (Plane::V2 | Plane::Console, f) => {
                        crate::error::oci_response(token::failure_error(f))
                    }
                });
            }
        }
    };
    Ok(auth::Caller {
        principal,
        addr,
        scheme,
        request_id: request_id.to_string(),
    })
}

#[allow(clippy::too_many_arguments)]
fn access_log(
    peer: SocketAddr,
    client: std::net::IpAddr,
    method: &http::Method,
    path: &str,
    route: &str,
    request_id: &str,
    resp: &Response<Body>,
    start: Instant,
) {
    let bytes = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    // The access log: one line per request. The query string is left out
    // (it may carry a token request's parameters), and so are headers.
    tracing::info!(
        target: "berth::access",
        %peer,
        %client,
        %method,
        path,
        route,
        request_id,
        status = resp.status().as_u16(),
        bytes,
        duration_ms = start.elapsed().as_secs_f64() * 1000.0,
    );
}
