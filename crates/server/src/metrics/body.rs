//! Response bodies that count the bytes they yield, so that
//! `berth_http_sent_bytes_total` is what was streamed, not what a
//! `Content-Length` promised (a client that goes away mid-blob counts only
//! what it was sent).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use prometheus_client::metrics::counter::Counter;

use crate::Body;

struct Counted {
    inner: Body,
    sent: Counter,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.sent.inc_by(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `body`, adding each data frame's length to `sent` as it is yielded.
pub fn count_sent(body: Body, sent: Counter) -> Body {
    Counted { inner: body, sent }.boxed_unsync()
}
