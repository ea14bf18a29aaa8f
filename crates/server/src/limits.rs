//! Limits checked from the request head, before any body byte is read, and
//! the per-client share of upload places.
//!
//! A request refused here never has its body read: an oversized head gets
//! 431, a small-body endpoint (management JSON, the token form) declaring
//! more than it accepts gets 413, and an anonymous caller of a management
//! write gets 401. Refusals of requests that still have a body coming close
//! the connection, so the unread body cannot be taken for the next request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{CONNECTION, CONTENT_LENGTH, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response};
use http_body::Body as _;

use crate::auth::{Caller, Principal};
use crate::endpoint::Plane;
use crate::error::{ApiError, MgmtError};
use crate::{api, body, AppState, Body};

/// Units of the manifest-bytes semaphore: permits are counted in u32.
const MANIFEST_UNIT: u64 = 1024;

/// Permits of the manifest-bytes budget for `bytes` (at least one).
pub(crate) fn manifest_permits(bytes: u64) -> usize {
    bytes.div_ceil(MANIFEST_UNIT).clamp(1, u32::MAX as u64) as usize
}

fn refuse(plane: Plane, status: u16, msg: &str) -> Response<Body> {
    if plane == Plane::Api {
        MgmtError::limit(status, msg).response()
    } else {
        crate::error::oci_response(ApiError::limit(status, msg))
    }
}

/// Size of the request head as sent (request line, headers, blank line),
/// with the usual `Name: value` spacing.
fn head_len<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len()
        + req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().len())
            .unwrap_or(1)
        + " HTTP/1.1\r\n".len()
        + 1;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    line + headers + 2
}

/// Checks made on the head alone, before authentication: the refusal, if
/// any.
pub(crate) fn check_head(
    state: &AppState,
    req: &Request<body::Incoming>,
    plane: Plane,
) -> Option<Response<Body>> {
    // hyper's buffer limit is not exact (it stops reading once its buffer
    // has grown past the limit, and a head that arrived in fewer reads can
    // be larger): this makes the limit exact.
    let max = state.config.max_header_bytes;
    let len = head_len(req);
    if len > max {
        return Some(refuse(
            plane,
            431,
            &format!(
                "the request head is {len} bytes; the limit is {max} (server.max_header_bytes)"
            ),
        ));
    }
    let cap = match plane {
        Plane::Api => api::MAX_BODY,
        Plane::Token => crate::token::MAX_FORM,
        // /v2 bodies are streamed blobs and manifests with limits of their
        // own; console requests carry no body that is read.
        Plane::V2 | Plane::Console => return None,
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > cap as u64) {
        return Some(refuse(
            plane,
            413,
            &format!("the request body is {n} bytes; this endpoint accepts at most {cap}"),
        ));
    }
    None
}

/// Checks made once the caller is known, still before the body is read
/// (every management write needs credentials): the refusal, if any.
pub(crate) fn check_caller(
    caller: &Caller,
    req: &Request<body::Incoming>,
    plane: Plane,
) -> Option<Response<Body>> {
    let read = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if plane == Plane::Api && !read && matches!(caller.principal, Principal::Anonymous) {
        return Some(
            MgmtError::unauthorized(crate::authorize::UNAUTHORIZED)
                .with_header(WWW_AUTHENTICATE, "Basic realm=\"berth\"")
                .response(),
        );
    }
    None
}

/// Marks a refusal of a request whose body is still coming as the last
/// answer on its connection.
pub(crate) fn closing(mut resp: Response<Body>, req_body_pending: bool) -> Response<Body> {
    if req_body_pending {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Largest refused body still read (and thrown away) before the answer.
/// A client that is still writing when the server closes the connection
/// gets a reset instead of the answer: an oversized JSON body or form of a
/// few MiB is read to its end, so its sender learns it got 413, while
/// anything larger only ever costs this much.
const DRAIN_MAX: u64 = 8 << 20;

/// How long a refused body may take to arrive before the connection is
/// closed anyway: a sender that is really writing sends a few MiB over any
/// working link in that time, a stalled one holds nothing for long.
const DRAIN_TIME: Duration = Duration::from_millis(500);

/// Reads and discards the body of a request refused with 413, when it
/// declares at most [`DRAIN_MAX`] bytes and arrives within [`DRAIN_TIME`].
/// Whether the body was read to its end (the connection can then stay
/// open).
pub(crate) async fn drain_refused(req: &mut Request<body::Incoming>) -> bool {
    use http_body_util::BodyExt as _;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_none_or(|n| n > DRAIN_MAX) {
        return false;
    }
    let drain = async {
        let mut seen = 0u64;
        while let Some(frame) = req.body_mut().frame().await {
            match frame {
                Ok(f) => {
                    seen += f.data_ref().map_or(0, |d| d.len() as u64);
                    if seen > DRAIN_MAX {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, drain)
        .await
        .unwrap_or(false)
}

/// Whether the request still has body bytes to come.
pub(crate) fn body_pending(req: &Request<body::Incoming>) -> bool {
    !req.body().is_end_stream()
}

/// The answer to a request whose body stalled: 408, connection closed.
pub(crate) fn body_timeout(idle: Duration, plane: Plane) -> Response<Body> {
    let msg = format!(
        "the request body made no progress for {} s (server.body_read_timeout_secs)",
        idle.as_secs()
    );
    closing(refuse(plane, 408, &msg), true)
}

/// How many uploads each client has receiving bytes.
///
/// Why a Mutex: a map lookup and a counter change per upload request; an
/// entry lives only while its client has an upload running, so the map is
/// never larger than the global number of upload places.
#[derive(Default)]
pub(crate) struct ClientSlots {
    counts: Mutex<HashMap<String, usize>>,
}

/// One of a client's upload places, freed on drop.
pub(crate) struct ClientSlot {
    slots: Arc<ClientSlots>,
    key: String,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = self.slots.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

/// Whose share an upload counts against: the user or token, or the address
/// of anonymous callers (and of everyone when authentication is off).
pub(crate) fn client_key(caller: &Caller) -> String {
    match caller.principal.effective() {
        Principal::Open | Principal::Anonymous => format!("addr:{}", caller.addr),
        p => p.actor(),
    }
}

impl ClientSlots {
    /// A place for `key` if it has fewer than `max` uploads running.
    pub(crate) fn try_acquire(self: &Arc<Self>, key: String, max: usize) -> Option<ClientSlot> {
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key.clone()).or_insert(0);
        if *n >= max.max(1) {
            if *n == 0 {
                m.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            slots: self.clone(),
            key,
        })
    }
}
