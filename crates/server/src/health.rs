//! `GET /readyz`: whether this process can serve, as opposed to
//! `/healthz`, which says only that it runs. Ready means the metadata
//! engine answers a point read and the object store takes a write, a read
//! and a delete of a probe object, each within
//! `server.readiness_timeout_ms`; otherwise 503 names what failed, so that
//! a load balancer stops sending traffic and an operator sees why.

use std::future::Future;
use std::time::Duration;

use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Response, StatusCode};

use crate::{full, AppState, Body};

/// Runs one check under the timeout: `Err` is the reason.
async fn within(
    what: &str,
    timeout: Duration,
    check: impl Future<Output = berth_store::Result<()>>,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(())) => Ok(()),
        // The error itself (paths, bucket names) goes to the log only:
        // anyone may ask `/readyz`.
        Ok(Err(e)) => {
            tracing::warn!(error = %e, check = what, "readiness check failed");
            Err(format!("{what}: the probe failed (see the server log)"))
        }
        Err(_) => Err(format!(
            "{what}: no answer within {} ms",
            timeout.as_millis()
        )),
    }
}

/// The readiness answer.
pub(crate) async fn ready(state: &AppState) -> Response<Body> {
    let timeout = state.config.readiness_timeout;
    let reg = &state.registry;
    let (meta, objects) = tokio::join!(
        within("metadata", timeout, reg.probe_metadata()),
        within("object storage", timeout, reg.probe_objects()),
    );
    let reasons: Vec<String> = [meta, objects]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    let (status, body) = if reasons.is_empty() {
        (StatusCode::OK, serde_json::json!({"status": "ready"}))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unready", "reason": reasons.join("; ")}),
        )
    };
    let text = body.to_string();
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, text.len())
        .header(CACHE_CONTROL, "no-store")
        .body(full(text))
        .unwrap_or_else(|_| {
            let mut r = Response::new(full("{\"status\":\"unready\"}"));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r
        })
}
