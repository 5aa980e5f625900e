//! The socket under hyper: a body that is a mapped file (see
//! `storage::cache::zero_copy`) goes out with `sendfile(2)`, everything else with
//! `writev` as before.
//!
//! hyper hands a response to the socket as one vectored write: the head it
//! formatted, then the body's buffer. When one of the buffers is a mapped
//! file, the buffers before it are sent with `MSG_MORE` (the kernel holds
//! them back to go out with what follows), then the file with `sendfile`;
//! what comes after waits for hyper's next write. A partial send reports
//! what was sent, as any write may, and hyper writes the rest.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::metrics::SENT_FROM_FILES;
use crate::storage::cache::zero_copy;

pub struct SendfileStream {
    inner: TcpStream,
}

impl SendfileStream {
    pub fn new(inner: TcpStream) -> SendfileStream {
        SendfileStream { inner }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let found = bufs
            .iter()
            .enumerate()
            .find_map(|(i, buf)| zero_copy::file_behind(buf).map(|f| (i, f, buf.len())));
        let Some((at, (file, offset), len)) = found else {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        };
        let head = &bufs[..at];
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let socket = &self.inner;
            match socket.try_io(Interest::WRITABLE, || {
                send(socket.as_fd(), head, &file, offset, len)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Sends `head`, then `len` bytes of `file` from `offset`: how many bytes
/// went out, or `WouldBlock` if none did.
fn send(
    socket: BorrowedFd<'_>,
    head: &[IoSlice<'_>],
    file: &File,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    let head_len: usize = head.iter().map(|b| b.len()).sum();
    if head_len > 0 {
        let sent = send_more(socket, head)?;
        if sent < head_len {
            return Ok(sent);
        }
    }
    let mut from = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    // SAFETY: both descriptors are open for the call (`socket` is borrowed
    // from the stream, `file` is held); `from` is a valid offset to update.
    let sent = unsafe { libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut from, len) };
    match usize::try_from(sent) {
        // The head went out: that is progress; the next write fails.
        Ok(0) if head_len > 0 => Ok(head_len),
        Ok(0) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file behind a response body is shorter than its mapping",
        )),
        Ok(sent) => {
            SENT_FROM_FILES.inc_by(sent as u64);
            Ok(head_len + sent)
        }
        Err(_) => {
            let e = io::Error::last_os_error();
            if head_len > 0 && e.kind() == io::ErrorKind::WouldBlock {
                Ok(head_len)
            } else {
                Err(e)
            }
        }
    }
}

/// `sendmsg` of `bufs` with `MSG_MORE`: more follows at once, so the kernel
/// does not push these bytes out in a segment of their own.
fn send_more(socket: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero `msghdr` is valid (no name, no control data).
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is guaranteed to be ABI-compatible with `iovec` on Unix.
    message.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    message.msg_iovlen = bufs.len() as _;
    // SAFETY: `message` points at `bufs`, live for the call, and the kernel
    // only reads them.
    let sent = unsafe {
        libc::sendmsg(
            socket.as_raw_fd(),
            &message,
            libc::MSG_MORE | libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (SendfileStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (SendfileStream::new(accepted.unwrap().0), client.unwrap())
    }

    fn mapped(contents: &[u8]) -> (tempfile::TempDir, bytes::Bytes) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jpg");
        std::fs::write(&path, contents).unwrap();
        let file = std::sync::Arc::new(File::open(&path).unwrap());
        // SAFETY (test): only the test that means to truncates the file.
        let bytes = unsafe { zero_copy::map_file_for_tests(file, contents.len()) }.unwrap();
        (dir, bytes)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 % 253) as u8).collect()
    }

    /// Writes `bufs` whole the way hyper does: vectored writes, each one
    /// resumed after what the last one sent.
    async fn write_all_vectored(stream: &mut SendfileStream, bufs: &[&[u8]]) {
        let (mut index, mut skip) = (0, 0);
        while index < bufs.len() {
            let mut slices = vec![IoSlice::new(&bufs[index][skip..])];
            slices.extend(bufs[index + 1..].iter().map(|b| IoSlice::new(b)));
            let mut sent = stream.write_vectored(&slices).await.unwrap();
            assert!(sent > 0);
            while index < bufs.len() && sent >= bufs[index].len() - skip {
                sent -= bufs[index].len() - skip;
                index += 1;
                skip = 0;
            }
            skip += sent;
        }
    }

    #[tokio::test]
    async fn a_head_and_a_mapped_body_arrive_whole_and_in_order() {
        // Larger than the socket buffers, read slowly: sends are partial and
        // resumed in the middle of the file.
        let body = pattern(3 << 20);
        let (_dir, bytes) = mapped(&body);
        let slice = bytes.slice(1000..);
        let (mut server, mut client) = pair().await;
        let before = SENT_FROM_FILES.get();
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 3144728\r\n\r\n".as_slice();
        let tail = b"after".as_slice();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut chunk = vec![0u8; 7000];
            loop {
                let n = client.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&chunk[..n]);
                if got.len() < 100_000 {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
            got
        });
        write_all_vectored(&mut server, &[head, &slice, tail]).await;
        server.shutdown().await.unwrap();
        drop(server);
        let got = reader.await.unwrap();
        let mut expected = head.to_vec();
        expected.extend_from_slice(&body[1000..]);
        expected.extend_from_slice(tail);
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes differ from what was written");
        assert!(
            SENT_FROM_FILES.get() - before >= (body.len() - 1000) as u64,
            "the body went out with sendfile"
        );
    }

    #[tokio::test]
    async fn ordinary_buffers_are_written_as_they_are() {
        let (mut server, mut client) = pair().await;
        let heap = pattern(zero_copy::MIN_LEN * 3);
        write_all_vectored(&mut server, &[b"head", &heap]).await;
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(&got[..4], b"head");
        assert!(got[4..] == heap[..]);
    }

    #[tokio::test]
    async fn a_file_cut_short_under_its_mapping_fails_the_write_instead_of_hanging() {
        let body = pattern(zero_copy::MIN_LEN * 4);
        let (dir, bytes) = mapped(&body);
        // What the cache never does; an outside hand might. Nothing reads the
        // mapping past the new end here (that would be SIGBUS): only
        // `sendfile` looks at the file.
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("r.jpg"))
            .unwrap()
            .set_len(10)
            .unwrap();
        let (mut server, _client) = pair().await;
        let tail = bytes.slice(zero_copy::MIN_LEN..);
        // Bounded: a write that fell back to copying would block on the
        // unread socket instead of failing.
        let limit = std::time::Duration::from_secs(10);
        let slices = [IoSlice::new(b"head"), IoSlice::new(&tail)];
        let first = server.write_vectored(&slices);
        // The head went out; the body cannot.
        assert_eq!(
            tokio::time::timeout(limit, first).await.unwrap().unwrap(),
            4
        );
        let error = tokio::time::timeout(limit, server.write(&tail))
            .await
            .expect("the write neither failed nor finished")
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }
}
