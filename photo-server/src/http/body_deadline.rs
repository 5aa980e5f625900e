//! Deadlines on request bodies: a body must keep arriving, and arrive at a
//! minimum average rate.
//!
//! A timeout that restarts on every byte (tower-http's `RequestBodyTimeout`)
//! cannot tell a slow client from an attacker: 4,300 connections each sending
//! a login body at one byte per 20 seconds (200 B/s in all) held every
//! connection slot of a server for as long as they liked. So, as Apache's
//! `mod_reqtimeout` does (`body=30,MinRate=...`), a body has two deadlines:
//!
//! - **stall**: no byte for `PHOTO_BODY_TIMEOUT` (30 s) fails the request;
//! - **rate**: the whole body must have arrived by `PHOTO_BODY_TIMEOUT` after
//!   the request began, plus one second for every `PHOTO_BODY_MIN_RATE` bytes
//!   (1 KiB/s) received so far. A photo over a poor mobile link (20 KiB/s)
//!   is never near it; a trickle is cut after 30 s.
//!
//! Either one ends the body with [`BodyTooSlow`], which the handlers turn
//! into `408`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http_body::Frame;
use tokio::time::{Instant, Sleep};

use crate::error::{BodyTooSlow, caused_by};

/// Whether an error (or one of its sources) is [`BodyTooSlow`].
pub fn is_too_slow(e: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<BodyTooSlow>(e)
}

/// The deadlines of one request's body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// No byte for this long fails the body; also the allowance before the rate counts.
    pub stall: Duration,
    /// Bytes per second the body must average (after the allowance); 0: not checked.
    pub min_rate: u64,
}

impl BodyLimits {
    /// When a body that began at `start` and has `received` bytes so far must be complete.
    fn rate_deadline(&self, start: Instant, received: u64) -> Instant {
        let earned = received
            .checked_div(self.min_rate)
            .map_or(Duration::from_secs(u64::MAX / 4), Duration::from_secs);
        start + self.stall + earned
    }
}

pin_project_lite::pin_project! {
    /// A request body under [`BodyLimits`].
    pub struct DeadlineBody {
        #[pin]
        inner: Body,
        limits: BodyLimits,
        start: Instant,
        received: u64,
        #[pin]
        stall: Sleep,
        #[pin]
        rate: Sleep,
    }
}

impl DeadlineBody {
    pub fn new(inner: Body, limits: BodyLimits) -> DeadlineBody {
        let start = Instant::now();
        DeadlineBody {
            inner,
            limits,
            start,
            received: 0,
            stall: tokio::time::sleep(limits.stall),
            rate: tokio::time::sleep_until(limits.rate_deadline(start, 0)),
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                *this.received += len;
                let now = Instant::now();
                let due = this.limits.rate_deadline(*this.start, *this.received);
                // Data that is there is still too late: a client cannot keep a
                // body going by sending a byte just before each check.
                if now >= due {
                    return Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow))));
                }
                this.stall.as_mut().reset(now + this.limits.stall);
                this.rate.as_mut().reset(due);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                if this.stall.poll(cx).is_ready() || this.rate.poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow))));
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: every request body gets `limits`.
pub fn layer(
    limits: BodyLimits,
) -> impl Fn(Request, Next) -> Pin<Box<dyn Future<Output = Response> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    move |request: Request, next: Next| {
        let request = request.map(|body| Body::new(DeadlineBody::new(body, limits)));
        Box::pin(next.run(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn limits() -> BodyLimits {
        BodyLimits {
            stall: Duration::from_secs(30),
            min_rate: 1024,
        }
    }

    /// A body of `chunks` of `size` bytes, one every `every`.
    fn trickle(chunks: usize, size: usize, every: Duration) -> Body {
        let stream = futures_util::stream::iter(0..chunks).then(move |_| async move {
            tokio::time::sleep(every).await;
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; size]))
        });
        Body::from_stream(stream)
    }

    async fn read_all(body: Body) -> Result<usize, axum::Error> {
        let mut body = std::pin::pin!(DeadlineBody::new(body, limits()));
        let mut total = 0;
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            total += frame?.into_data().map_or(0, |d| d.len());
        }
        Ok(total)
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_cut_after_the_allowance_however_steady() {
        // one byte every 20 s: never stalls for 30 s, but far below the rate
        let start = Instant::now();
        let err = read_all(trickle(100, 1, Duration::from_secs(20)))
            .await
            .expect_err("too slow");
        assert!(is_too_slow(&err));
        let took = start.elapsed();
        assert!(took <= Duration::from_secs(41), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_real_upload_arrives() {
        // 8 MiB at 16 KiB/s over nearly 9 minutes: above the minimum rate throughout
        let total = read_all(trickle(512, 16 * 1024, Duration::from_secs(1)))
            .await
            .expect("arrives");
        assert_eq!(total, 8 << 20);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_after_a_good_start_is_still_cut() {
        let stream = futures_util::stream::iter(0..2).then(|i| async move {
            if i == 1 {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 1 << 20]))
        });
        let start = Instant::now();
        let err = read_all(Body::from_stream(stream))
            .await
            .expect_err("stalled");
        assert!(is_too_slow(&err));
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }
}
