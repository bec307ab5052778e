//! The accept loop: our own, on hyper's HTTP/1 connection builder, instead of `axum::serve`.
//!
//! `axum::serve` cannot bound what an HTTP peer may send before the router sees it. Here:
//! - at most `--max-connections` TCP connections; one more is answered `503` with
//!   `Retry-After` and closed, rather than left waiting in the accept backlog;
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
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
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
        tasks.spawn(async move {
            connection(&http, tcp, peer, router, shutdown).await;
            drop(place);
        });
    }
}

/// Serves one connection, finishing gracefully (current response, then close) on shutdown.
async fn connection(
    http: &hyper::server::conn::http1::Builder,
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // What axum's `ConnectInfo` extractor reads.
        req.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|never| match never {})) }
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
        _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    if let Err(err) = conn.await {
        tracing::debug!(%peer, %err, "connection ended with an error during shutdown");
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
