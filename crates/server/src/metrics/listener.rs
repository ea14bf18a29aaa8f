//! The metrics listener of `[metrics] addr`: `GET /metrics` and nothing
//! else, without credentials (whoever can reach the address may scrape),
//! so that the address can be bound where only the monitoring network
//! reaches it.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Metrics;
use crate::{full, Body};

/// Why a bound: a scraper connects a few times a minute; anything more is
/// not monitoring, and must not cost more than a few tasks.
const MAX_CONNECTIONS: usize = 64;
/// Slow clients get no longer than this for their request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

fn answer(metrics: &Metrics, req: &Request<Incoming>) -> Response<Body> {
    let status = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => return metrics.response(),
        (_, "/metrics") => StatusCode::METHOD_NOT_ALLOWED,
        _ => StatusCode::NOT_FOUND,
    };
    let mut r = Response::new(full(format!(
        "{status}; this address serves GET /metrics only\n"
    )));
    *r.status_mut() = status;
    r
}

/// Serves `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Over the bound: closed at once rather than queued.
            continue;
        };
        let metrics = metrics.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let r = answer(&metrics, &req);
            async move { Ok::<_, Infallible>(r) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), svc);
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = watched.await {
                tracing::debug!(error = %e, %peer, "metrics connection ended with error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
}
