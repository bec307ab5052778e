//! A byte-counting socket: every byte read or written through it, HTTP headers and WebSocket
//! framing included, is added to shared counters. This is how the measuring commands know the
//! bytes really on the wire rather than payload sizes.
//!
//! Also how measuring clients open their sockets: from a chosen loopback source address (one
//! address has only so many ephemeral ports) and with a chosen receive buffer (a small one makes
//! a client that stops reading stall the server quickly instead of after megabytes).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

/// Bytes through one or more [`Counted`] sockets.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes read from the peer.
    pub read: AtomicU64,
    /// Bytes written to the peer.
    pub written: AtomicU64,
}

impl Traffic {
    /// `(read, written)` so far.
    pub fn get(&self) -> (u64, u64) {
        (self.read.load(Relaxed), self.written.load(Relaxed))
    }
}

/// A socket whose traffic is counted into a shared [`Traffic`].
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    traffic: Arc<Traffic>,
}

impl<S> Counted<S> {
    /// Counts `inner`'s traffic into `traffic`.
    pub fn new(inner: S, traffic: Arc<Traffic>) -> Self {
        Self { inner, traffic }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.traffic.read.fetch_add(n as u64, Relaxed);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.traffic.written.fetch_add(n as u64, Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How a measuring client opens its TCP connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dial {
    /// The local address to connect from (e.g. 127.0.0.2), or the system's choice.
    pub source: Option<IpAddr>,
    /// `SO_RCVBUF` in bytes, or the system's default (which autotunes up to megabytes).
    pub recv_buffer: Option<u32>,
}

impl Dial {
    /// Connects to `addr` with Nagle off, as the server's own sockets are.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(size) = self.recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        if let Some(ip) = self.source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn both_directions_are_counted() {
        let traffic = Arc::new(Traffic::default());
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = Counted::new(a, traffic.clone());
        a.write_all(b"hello").await.unwrap();
        b.write_all(b"hi").await.unwrap();
        let mut buf = [0; 2];
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(traffic.get(), (2, 5));
    }
}
