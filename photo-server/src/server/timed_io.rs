//! Deadlines on a connection's socket that hyper does not keep itself.
//!
//! hyper's `header_read_timeout` starts when it begins waiting for a request
//! head, so it also bounds how long an idle keep-alive connection lives; we
//! set it to the (long) idle timeout, because a proxy that reuses upstream
//! connections (ingress-nginx, an ALB) must never find them closed under it.
//! What it cannot do is tell a quiet client from a slow one. [`TimedIo`] adds:
//!
//! - a **request head deadline**: once the first byte of a request arrives,
//!   the whole head must follow within `header_timeout`, so a client that
//!   sends half a request line and stalls is dropped in seconds, not minutes;
//!   and a new connection's first head must arrive within `header_timeout` of
//!   the connection itself. A client (a proxy, a browser that preconnected)
//!   sends its first request at once; sockets opened and left silent only
//!   hold connection slots (384 of them took a server with 1024 descriptors
//!   off the air for the whole idle timeout). Chrome drops a preconnected
//!   socket it has not used after 10 s itself. After a first request, an idle
//!   keep-alive connection waits for the idle timeout, hyper's;
//! - a **write stall deadline**: a response write that makes no progress for
//!   `write_timeout` (the client stopped reading) closes the connection.
//!
//! - a **lingering close**: when hyper closes a connection, the write side is
//!   shut down first (the response, then FIN) and what the client still sends
//!   is read and discarded until it closes too, for at most [`LINGER`]. A
//!   server that answers early (`413` for an upload past its limits) and
//!   closed at once, with the client's data unread, would reset the
//!   connection, and the client would lose the answer it had not read yet.
//!
//! The head deadline needs to know when hyper has a whole head and is running
//! the request: the connection's service marks that on a shared
//! [`RequestClock`]. Reads while a request is running (its body, or hyper
//! checking for a closed socket while the handler works) are never timed
//! here: request bodies have their own stall timeout at the HTTP layer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a closing connection keeps reading what the client still sends.
pub const LINGER: Duration = Duration::from_secs(2);

/// What the connection's service tells the socket wrapper.
#[derive(Debug, Default)]
pub struct RequestClock {
    /// Requests handed to the service so far.
    dispatched: AtomicU64,
    /// Whether one is being handled now.
    busy: AtomicBool,
}

impl RequestClock {
    /// A request head was parsed and the request is being handled.
    pub fn begin(&self) {
        self.dispatched.fetch_add(1, Ordering::Relaxed);
        self.busy.store(true, Ordering::Relaxed);
    }

    /// The handler returned its response.
    pub fn end(&self) {
        self.busy.store(false, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    pub struct TimedIo<T> {
        #[pin]
        inner: T,
        clock: Arc<RequestClock>,
        header_timeout: Duration,
        write_timeout: Duration,
        // `dispatched` when the head deadline was armed: a new request resets it.
        armed_for: u64,
        head_armed: bool,
        head_deadline: Pin<Box<Sleep>>,
        write_armed: bool,
        write_deadline: Pin<Box<Sleep>>,
        // Set once the write side is shut down.
        linger: Option<Pin<Box<Sleep>>>,
    }
}

impl<T> TimedIo<T> {
    pub fn new(
        inner: T,
        clock: Arc<RequestClock>,
        header_timeout: Duration,
        write_timeout: Duration,
    ) -> TimedIo<T> {
        let now = Instant::now();
        TimedIo {
            inner,
            clock,
            header_timeout,
            write_timeout,
            armed_for: 0,
            // The first request's head is due from the start.
            head_armed: true,
            head_deadline: Box::pin(tokio::time::sleep_until(now + header_timeout)),
            write_armed: false,
            write_deadline: Box::pin(tokio::time::sleep_until(now)),
            linger: None,
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

impl<T: AsyncRead> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let dispatched = this.clock.dispatched.load(Ordering::Relaxed);
        if *this.armed_for != dispatched {
            // The head the deadline was armed for has been parsed.
            *this.armed_for = dispatched;
            *this.head_armed = false;
        }
        let between_requests = !this.clock.busy.load(Ordering::Relaxed);
        let before = buf.filled().len();
        match this.inner.poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if between_requests && !*this.head_armed && buf.filled().len() > before {
                    // The first bytes of a request head.
                    let deadline = Instant::now() + *this.header_timeout;
                    this.head_deadline.as_mut().reset(deadline);
                    *this.head_armed = true;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if between_requests
                    && *this.head_armed
                    && this.head_deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(timed_out("request head not received in time")));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite> TimedIo<T> {
    /// Arms the write deadline on `Pending`, disarms it on progress.
    fn watch_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        match write(this.inner, cx) {
            Poll::Pending => {
                if !*this.write_armed {
                    let deadline = Instant::now() + *this.write_timeout;
                    this.write_deadline.as_mut().reset(deadline);
                    *this.write_armed = true;
                }
                if this.write_deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(timed_out("the client stopped reading the response")));
                }
                Poll::Pending
            }
            ready => {
                *this.write_armed = false;
                ready
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.watch_write(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.watch_write(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        if this.linger.is_none() {
            // The response is out: FIN after it.
            std::task::ready!(this.inner.as_mut().poll_shutdown(cx))?;
            *this.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        // Discard what the client still sends until it closes too.
        let mut scratch = [0u8; 8 * 1024];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match this.inner.as_mut().poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    let expired = this
                        .linger
                        .as_mut()
                        .is_none_or(|linger| linger.as_mut().poll(cx).is_ready());
                    return if expired {
                        Poll::Ready(Ok(()))
                    } else {
                        Poll::Pending
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const HEAD: Duration = Duration::from_millis(200);
    const WRITE: Duration = Duration::from_millis(200);

    fn timed(io: tokio::io::DuplexStream) -> (TimedIo<tokio::io::DuplexStream>, Arc<RequestClock>) {
        let clock = Arc::new(RequestClock::default());
        (TimedIo::new(io, clock.clone(), HEAD, WRITE), clock)
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_that_sends_nothing_is_cut_but_an_idle_keep_alive_is_not() {
        let (server, _client) = tokio::io::duplex(1024);
        let (mut io, _clock) = timed(server);
        let mut buf = [0u8; 64];
        let started = Instant::now();
        let error = io.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), HEAD);

        let (server, mut client) = tokio::io::duplex(1024);
        let (mut io, clock) = timed(server);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 18);
        clock.begin();
        clock.end();
        // Between requests: the read simply waits (idle is hyper's business).
        let quiet = tokio::time::timeout(HEAD * 5, io.read(&mut buf)).await;
        assert!(
            quiet.is_err(),
            "an idle keep-alive connection is not cut by the head deadline"
        );
        // Half a request line, then silence.
        client.write_all(b"GET /heal").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 9);
        let error = io.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_while_a_request_runs_are_not_timed_and_the_next_head_gets_a_fresh_deadline() {
        let (server, mut client) = tokio::io::duplex(1024);
        let (mut io, clock) = timed(server);
        let mut buf = [0u8; 64];
        client.write_all(b"POST /x HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 20);
        clock.begin();
        // The handler works for long; hyper's reads meanwhile are not cut.
        let waiting = tokio::time::timeout(HEAD * 5, io.read(&mut buf)).await;
        assert!(waiting.is_err());
        clock.end();
        // Next request, sent whole: no timeout however long after.
        tokio::time::sleep(HEAD * 3).await;
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 18);
        clock.begin();
        clock.end();
        // A third head that stalls is cut again.
        client.write_all(b"GE").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 2);
        assert_eq!(
            io.read(&mut buf).await.unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
    }

    #[tokio::test]
    async fn closing_reads_what_the_client_still_sends_so_the_answer_arrives() {
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let (mut io, _clock) = timed(server);
        // The client is in the middle of a large body when the server answers
        // and closes.
        client.write_all(&[7u8; 32 * 1024]).await.unwrap();
        io.write_all(b"HTTP/1.1 413 Payload Too Large\r\n\r\n")
            .await
            .unwrap();
        let closing = tokio::spawn(async move { io.shutdown().await });
        // The client keeps sending for a while (more than fits in the pipe:
        // only a lingering close reads it), then reads the answer.
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), async {
            client.write_all(&[7u8; 48 * 1024]).await.unwrap();
            client.read_to_string(&mut answer).await.unwrap();
        })
        .await
        .expect("the closing side never read what the client sent");
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        drop(client);
        closing.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_lingering_close_gives_up_on_a_client_that_never_closes() {
        let (server, _client) = tokio::io::duplex(1024);
        let (mut io, _clock) = timed(server);
        let started = Instant::now();
        io.shutdown().await.unwrap();
        assert_eq!(started.elapsed(), LINGER);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_stops_the_write() {
        let (server, mut client) = tokio::io::duplex(64);
        let (mut io, _clock) = timed(server);
        // Progress keeps the connection alive however slow.
        for _ in 0..5 {
            io.write_all(&[1u8; 64]).await.unwrap();
            tokio::time::sleep(WRITE / 2).await;
            let mut sink = [0u8; 64];
            client.read_exact(&mut sink).await.unwrap();
        }
        // Then the client stops reading.
        io.write_all(&[1u8; 64]).await.unwrap();
        let error = io.write_all(&[1u8; 64]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
