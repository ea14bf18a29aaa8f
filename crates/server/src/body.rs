//! Request bodies as handlers see them: hyper's body with an idle timeout.
//!
//! hyper bounds how long a client may take to send the request head, not
//! the body. A client that declares a large `Content-Length` and then sends
//! nothing would hold its connection (and whatever the handler holds: an
//! upload slot, a buffer) for as long as it likes. [`Incoming`] fails a
//! read that makes no progress for `server.body_read_timeout_secs`, and
//! records that it did, so that the request is answered 408 and its
//! connection closed whatever the handler made of the error.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Why reading a request body failed.
#[derive(Debug)]
pub enum BodyError {
    /// The connection failed or the client sent a malformed body.
    Read(hyper::Error),
    /// No byte arrived for the body read timeout.
    TimedOut(Duration),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Read(e) => write!(f, "reading the request body failed: {e}"),
            BodyError::TimedOut(d) => write!(
                f,
                "the request body made no progress for {} s",
                d.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::Read(e) => Some(e),
            BodyError::TimedOut(_) => None,
        }
    }
}

/// A request body whose reads time out when no frame arrives for `idle`,
/// and that counts the bytes read (`berth_http_received_bytes_total`: what
/// was read, not what a `Content-Length` announced).
pub struct Incoming {
    inner: hyper::body::Incoming,
    idle: Duration,
    received: prometheus_client::metrics::counter::Counter,
    /// Armed on the first read that has to wait, reset by every frame.
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
    /// Set once the whole body has been read (at once for an empty one):
    /// a request answered before that leaves unread bytes on its
    /// connection, which then cannot carry another request.
    ended: Arc<AtomicBool>,
}

impl Incoming {
    /// Wraps `inner`; `timed_out` is set once a read times out, `ended`
    /// once the body has been read to its end, and `received` counts the
    /// data bytes read.
    pub(crate) fn new(
        inner: hyper::body::Incoming,
        idle: Duration,
        timed_out: Arc<AtomicBool>,
        ended: Arc<AtomicBool>,
        received: prometheus_client::metrics::counter::Counter,
    ) -> Incoming {
        ended.store(inner.is_end_stream(), Ordering::Relaxed);
        Incoming {
            inner,
            idle,
            received,
            timer: None,
            timed_out,
            ended,
        }
    }
}

impl Body for Incoming {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.timed_out.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(BodyError::TimedOut(this.idle))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(t) = this.timer.as_mut() {
                    t.as_mut().reset(Instant::now() + this.idle);
                }
                if let Some(d) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
                    this.received.inc_by(d.len() as u64);
                }
                if frame.is_none() || this.inner.is_end_stream() {
                    this.ended.store(true, Ordering::Relaxed);
                }
                Poll::Ready(frame.map(|f| f.map_err(BodyError::Read)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.timed_out.store(true, Ordering::Relaxed);
                        Poll::Ready(Some(Err(BodyError::TimedOut(idle))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
