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
//! One kind of request skips hyper: a spectator's event stream (see [`RawRoute`]). Hyper
//! keeps an 8 KiB read buffer and an 8 KiB write buffer for each connection for as long as a
//! response lasts, which for a spectator is forever: three times what the stream itself
//! holds. When the first packet of a connection is such a request, this module reads its
//! head (with the same limits) and hands the socket to the route; anything else, or a request
//! line split over packets, goes to hyper as usual. Either way the head has one deadline.
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

/// A request served without hyper: what its head said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawRequest {
    /// The path.
    pub(crate) path: String,
    /// The query, without its `?`.
    pub(crate) query: Option<String>,
    /// The `Last-Event-ID` header; `Err` if it was not text.
    pub(crate) last_event_id: Option<Result<String, ()>>,
    /// An HTTP/1.0 request (no chunked encoding in the answer).
    pub(crate) http10: bool,
    /// The `X-Forwarded-For` headers, in order (believed only from a trusted proxy).
    pub(crate) forwarded_for: Vec<String>,
}

/// Requests served straight on their socket, without hyper: GETs whose target `takes` accepts.
pub(crate) trait RawRoute: Send + Sync + 'static {
    /// Whether a GET of `path` is served here.
    fn takes(&self, path: &str) -> bool;
    /// Serves it on `tcp`, from which its head has been read.
    fn serve(
        &self,
        tcp: TcpStream,
        request: RawRequest,
        place: ConnectionPlace,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

/// Writes a complete plain-text response and ends the connection (for requests served raw).
pub(crate) async fn write_plain(tcp: &mut TcpStream, status: u16, reason: &str, extra: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
         {extra}connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(response.as_bytes())).await;
    let _ = tcp.shutdown().await;
}

/// What a connection may be served by: hyper and the router, or a [`RawRoute`].
#[derive(Clone)]
pub(crate) struct Routes {
    /// Every request but the raw ones.
    pub(crate) router: Router,
    /// The requests served without hyper.
    pub(crate) raw: Arc<dyn RawRoute>,
}

/// Accepts connections on `listener` and serves `routes` on each until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    routes: Routes,
    max_connections: usize,
    head_timeout: Duration,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let places = Arc::new(Semaphore::new(max_connections));
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
        let place = ConnectionPlace(Arc::new(place));
        tasks.spawn(connection(
            tcp,
            peer,
            routes.clone(),
            place,
            head_timeout,
            shutdown.clone(),
        ));
    }
}

/// Serves one connection: raw if its first packet is a request [`RawRoute`] takes, else with
/// hyper. On shutdown, a response in progress is finished (then the connection closes); a
/// connection with none, idle or with a request head still arriving, is closed at once: it has
/// been told nothing and is owed nothing.
async fn connection(
    mut tcp: TcpStream,
    peer: SocketAddr,
    Routes { router, raw }: Routes,
    place: ConnectionPlace,
    head_timeout: Duration,
    shutdown: CancellationToken,
) {
    let deadline = tokio::time::Instant::now() + head_timeout;
    let mut first = [0u8; 256];
    let peeked = tokio::select! {
        () = shutdown.cancelled() => return,
        peeked = tokio::time::timeout_at(deadline, tcp.peek(&mut first)) => peeked,
    };
    // Nothing within the head's deadline, or the peer is gone: nothing to answer.
    let Ok(Ok(n @ 1..)) = peeked else { return };
    if let Some(path) = raw_get_target(&first[..n]).filter(|path| raw.takes(path)) {
        tracing::trace!(%peer, path, "served raw");
        let head = tokio::select! {
            () = shutdown.cancelled() => return,
            head = tokio::time::timeout_at(deadline, read_raw_head(&mut tcp)) => head,
        };
        match head {
            Ok(Ok(request)) => raw.serve(tcp, request, place).await,
            Ok(Err(HeadError::TooLarge)) => {
                let body = "request head too large\n";
                write_plain(&mut tcp, 431, "Request Header Fields Too Large", "", body).await;
            }
            Ok(Err(HeadError::Malformed)) => write_plain(&mut tcp, 400, "Bad Request", "", "malformed request\n").await,
            Ok(Err(HeadError::Closed)) | Err(_) => {}
        }
        return;
    }
    // Boxed: the hyper connection's state is large, and a raw stream, which lives as long,
    // should not carry room for it in its task.
    Box::pin(with_hyper(tcp, peer, router, place, deadline, shutdown)).await;
}

/// Serves one connection with hyper and `router`; its first request head is due by `deadline`.
async fn with_hyper(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    place: ConnectionPlace,
    deadline: tokio::time::Instant,
    shutdown: CancellationToken,
) {
    // The head keeps the deadline it started with.
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
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

/// The path of a GET whose request line is complete in `first` (the connection's first bytes),
/// without its query; `None` for anything else.
fn raw_get_target(first: &[u8]) -> Option<&str> {
    let line = first.split(|&b| b == b'\n').next().filter(|_| first.contains(&b'\n'))?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let rest = line.strip_prefix("GET ")?;
    let (target, version) = rest.rsplit_once(' ')?;
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return None;
    }
    Some(target.split('?').next().unwrap_or(target))
}

/// Why a raw request head could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadError {
    TooLarge,
    Malformed,
    Closed,
}

/// Reads a request head (through its blank line) from `tcp` and parses it. Reads at most
/// [`MAX_HEAD_BYTES`]; bytes after the head (a pipelined request) are read and dropped, as
/// a raw route answers one request and closes.
async fn read_raw_head(tcp: &mut TcpStream) -> Result<RawRequest, HeadError> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let end = loop {
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() >= MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
        let n = tcp.read(&mut chunk).await.map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        head.extend_from_slice(&chunk[..n]);
    };
    if end > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    parse_raw_head(&head[..end])
}

fn parse_raw_head(head: &[u8]) -> Result<RawRequest, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        _ => return Err(HeadError::Malformed),
    }
    let (Some("GET"), Some(target), Some(version)) = (request.method, request.path, request.version) else {
        return Err(HeadError::Malformed);
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (target, None),
    };
    let last_event_id = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("last-event-id"))
        .map(|h| std::str::from_utf8(h.value).map(str::to_owned).map_err(drop));
    let forwarded_for = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
        .filter_map(|h| std::str::from_utf8(h.value).ok().map(str::to_owned))
        .collect();
    Ok(RawRequest {
        path: path.to_owned(),
        query,
        last_event_id,
        http10: version == 0,
        forwarded_for,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_complete_get_request_line_is_taken_raw() {
        assert_eq!(raw_get_target(b"GET /events HTTP/1.1\r\nhost: x\r\n"), Some("/events"));
        assert_eq!(
            raw_get_target(b"GET /rooms/a/events?last_event_id=1 HTTP/1.0\r\n"),
            Some("/rooms/a/events")
        );
        assert_eq!(raw_get_target(b"GET /events HTTP/1.1"), None, "no line end yet");
        assert_eq!(raw_get_target(b"POST /events HTTP/1.1\r\n"), None);
        assert_eq!(raw_get_target(b"GET /events HTTP/2\r\n"), None);
    }

    #[test]
    fn raw_heads_are_parsed_with_their_limits() {
        let head = b"GET /rooms/r/events?x=1 HTTP/1.1\r\nHost: t\r\nLast-Event-ID: ab-7\r\n\r\n";
        assert_eq!(
            parse_raw_head(head),
            Ok(RawRequest {
                path: "/rooms/r/events".into(),
                query: Some("x=1".into()),
                last_event_id: Some(Ok("ab-7".into())),
                http10: false,
                forwarded_for: Vec::new(),
            })
        );
        let many = format!("GET /events HTTP/1.1\r\n{}\r\n", "x: y\r\n".repeat(MAX_HEADERS + 1));
        assert_eq!(parse_raw_head(many.as_bytes()), Err(HeadError::TooLarge));
        assert_eq!(parse_raw_head(b"GET /events\r\n\r\n"), Err(HeadError::Malformed));
    }
}
