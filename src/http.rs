//! The accept loop: our own, on hyper's HTTP/1 connection builder, instead of `axum::serve`.
//!
//! `axum::serve` cannot bound what an HTTP peer may send before the router sees it. Here:
//! - at most `--max-connections` TCP connections, counted until they close whatever they
//!   became (an upgraded player socket keeps its [`ConnectionPlace`]); one more is answered
//!   `503` with `Retry-After` and closed, rather than left waiting in the accept backlog;
//! - request heads are limited in size ([`MAX_HEAD_BYTES`]) and header count, and must arrive
//!   within `--head-timeout` (a peer that trickles headers cannot hold a connection);
//! - each socket's kernel send buffer is [`SEND_BUFFER`], not autotuned up to megabytes;
//! - every connection task is tracked, so shutdown can wait for them with a deadline and
//!   then stop regardless, instead of hanging on a peer that stopped reading.
//!
//! HTTP/2 is not served: WebSockets and SSE are HTTP/1.1 here, and a proxy in front
//! terminates HTTP/2 and TLS (see README, "Security").

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::metrics::{CloseReason, Metrics};

/// The largest request head (request line and headers) accepted; larger gets 431.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The kernel send buffer per connection (Linux doubles it for bookkeeping): room for a
/// keyframe of about 10 000 entities, and for a few seconds of deltas.
pub const SEND_BUFFER: usize = 128 * 1024;
/// The most headers a request may carry; more gets 431.
pub const MAX_HEADERS: usize = 64;

/// A connection's place under `--max-connections`, held until the connection closes: by its
/// HTTP task, and by whatever it is upgraded to (each request carries a clone).
#[derive(Debug, Clone)]
pub(crate) struct ConnectionPlace(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// Accepts connections on `listener` and serves `router` on each until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    head_timeout: Duration,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let places = Arc::new(Semaphore::new(max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let http = Arc::new(http);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, say: back off rather than spin.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Deltas are small and latency-critical: never wait to coalesce them.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
        // Left to autotuning, the kernel would buffer up to 4 MiB per socket for a peer that
        // does not read: memory outside our bounds, and a stalled player would never back up
        // into its queue, where the slow-consumer policy can see it.
        if let Err(err) = socket2::SockRef::from(&tcp).set_send_buffer_size(SEND_BUFFER) {
            tracing::debug!(%err, "could not set SO_SNDBUF");
        }
        let Ok(place) = places.clone().try_acquire_owned() else {
            metrics.close(CloseReason::Full);
            tasks.spawn(refuse(tcp));
            continue;
        };
        let (http, router, shutdown) = (http.clone(), router.clone(), shutdown.clone());
        let place = ConnectionPlace(Arc::new(place));
        tasks.spawn(connection(http, tcp, peer, router, place, shutdown));
    }
}

/// Serves one connection. On shutdown, a response in progress is finished (then the
/// connection closes); a connection with none, idle or with a request head still arriving,
/// is closed at once: it has been told nothing and is owed nothing.
async fn connection(
    http: Arc<hyper::server::conn::http1::Builder>,
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    place: ConnectionPlace,
    shutdown: CancellationToken,
) {
    let responding = Arc::new(AtomicUsize::new(0));
    let in_flight = responding.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // What axum's `ConnectInfo` extractor reads, and the place an upgrade takes along.
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(place.clone());
        let router = router.clone();
        let responding = Responding::start(&in_flight);
        async move {
            let response = router.oneshot(req).await.unwrap_or_else(|never| match never {});
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(Tracked {
                    body,
                    _responding: responding,
                })
            }))
        }
    });
    let conn = http.serve_connection(TokioIo::new(tcp), service).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%peer, %err, "connection ended with an error");
            }
            return;
        }
        _ = shutdown.cancelled() => {
            if responding.load(Ordering::Acquire) == 0 {
                return;
            }
            conn.as_mut().graceful_shutdown();
        }
    }
    if let Err(err) = conn.await {
        tracing::debug!(%peer, %err, "connection ended with an error during shutdown");
    }
}

/// Counts a response from the moment its request arrives until its body is done (or dropped).
struct Responding(Arc<AtomicUsize>);

impl Responding {
    fn start(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count.clone())
    }
}

impl Drop for Responding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection counted as responding while it lives.
struct Tracked {
    body: Body,
    _responding: Responding,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Answers a connection over the cap with a 503 and closes it.
async fn refuse(mut tcp: TcpStream) {
    let body = "too many connections: retry later\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 5\r\ncontent-type: text/plain\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(response.as_bytes())).await;
    let _ = tcp.shutdown().await;
}
