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
//! Some requests skip hyper: a spectator's event stream and long-poll (see [`RawRoute`]).
//! Hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for each connection for as long
//! as a response lasts, which for a spectator is forever and for a long-poll the whole wait:
//! several times what the response itself holds. When a request's first packet holds a GET
//! such a route takes, this module reads its head (with the same limits, and not a byte past
//! it) and hands the socket to the route, which may hand it back for the connection's next
//! request (a long-poll's keep-alive); anything else, or a request line split over packets,
//! goes to hyper as usual for the rest of the connection. Every head has one deadline.
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
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    /// Whether the connection may carry another request after this one's answer, as hyper
    /// decides it: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`, and never after a request with a body (which is not read).
    pub(crate) keep_alive: bool,
}

/// Requests served straight on their socket, without hyper: GETs whose target `takes` accepts.
pub(crate) trait RawRoute: Send + Sync + 'static {
    /// Whether a GET of `path` is served here.
    fn takes(&self, path: &str) -> bool;
    /// Serves it on `tcp`, from which its head (and nothing more) has been read; gives the
    /// socket back if the connection is to carry the next request. (The connection's place
    /// is held by its task meanwhile.)
    fn serve(
        &self,
        tcp: TcpStream,
        request: RawRequest,
    ) -> Pin<Box<dyn Future<Output = Option<TcpStream>> + Send + 'static>>;
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

/// Writes `response` (whose body is complete, not a stream) as hyper would for a request
/// served raw: the same status line, headers, `content-length`, `connection` and `date`.
/// `http10` and `keep_alive` are the request's ([`RawRequest`]).
pub(crate) async fn write_response(
    tcp: &mut TcpStream,
    response: Response,
    http10: bool,
    keep_alive: bool,
) -> std::io::Result<()> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(std::io::Error::other)?.to_bytes();
    let mut head = response_head(parts.status, &parts.headers, Some(body.len()), http10, keep_alive);
    head.extend_from_slice(&body);
    tcp.write_all(&head).await
}

/// A response head as hyper writes it: the status line in the request's version, the headers in
/// order, then the `content-length` (`None`: no body), `connection` when it says something the
/// version does not imply, and `date`.
pub(crate) fn response_head(
    status: axum::http::StatusCode,
    headers: &axum::http::HeaderMap,
    length: Option<usize>,
    http10: bool,
    keep_alive: bool,
) -> Vec<u8> {
    use std::io::Write;
    let mut head = Vec::with_capacity(192);
    let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let reason = status.canonical_reason().unwrap_or("<none>");
    let _ = write!(head, "{version} {} {reason}\r\n", status.as_u16());
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if let Some(length) = length {
        let _ = write!(head, "content-length: {length}\r\n");
    }
    match (http10, keep_alive) {
        (false, false) => head.extend_from_slice(b"connection: close\r\n"),
        (true, true) => head.extend_from_slice(b"connection: keep-alive\r\n"),
        _ => {}
    }
    let _ = write!(
        head,
        "date: {}\r\n\r\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    );
    head
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

/// Serves one connection: raw while each request's first packet is a request [`RawRoute`]
/// takes (and the route keeps the connection), else with hyper for the rest of it. On
/// shutdown, a response in progress is finished (then the connection closes); a connection
/// with none, idle or with a request head still arriving, is closed at once: it has been told
/// nothing and is owed nothing.
async fn connection(
    mut tcp: TcpStream,
    peer: SocketAddr,
    Routes { router, raw }: Routes,
    place: ConnectionPlace,
    head_timeout: Duration,
    shutdown: CancellationToken,
) {
    let mut deadline = tokio::time::Instant::now() + head_timeout;
    loop {
        // Boxed, as is all but the wait for a raw answer: this task lives as long as the
        // connection, and a long-poll or a stream waiting in it should not carry room for
        // reading a head or answering a bad one.
        let serving = {
            let head = tokio::select! {
                () = shutdown.cancelled() => return,
                head = Box::pin(tokio::time::timeout_at(deadline, raw_head(&mut tcp, &*raw))) => head,
            };
            // Nothing within the head's deadline, or the peer is gone: nothing to answer.
            let request = match head {
                Err(_) | Ok(Head::Gone) => return,
                Ok(Head::Hyper) => break,
                Ok(Head::Raw(request)) => request,
                Ok(Head::Bad(err)) => return Box::pin(bad_head(tcp, err)).await,
            };
            tracing::trace!(%peer, path = request.path, "served raw");
            raw.serve(tcp, request)
        };
        match serving.await {
            // As hyper: the next head is due within the timeout, and none is read on shutdown.
            Some(kept) if !shutdown.is_cancelled() => tcp = kept,
            _ => return,
        }
        deadline = tokio::time::Instant::now() + head_timeout;
    }
    // Boxed: the hyper connection's state is large, and a raw stream, which lives as long,
    // should not carry room for it in its task.
    Box::pin(with_hyper(tcp, peer, router, place, deadline, shutdown)).await;
}

/// Answers a raw request whose head is not one to serve, and closes.
async fn bad_head(mut tcp: TcpStream, err: HeadError) {
    match err {
        HeadError::TooLarge => {
            let body = "request head too large\n";
            write_plain(&mut tcp, 431, "Request Header Fields Too Large", "", body).await;
        }
        HeadError::Malformed => write_plain(&mut tcp, 400, "Bad Request", "", "malformed request\n").await,
        HeadError::Closed => {}
    }
}

/// How a connection's next request is to be served.
enum Head {
    /// The peer closed, or the connection failed.
    Gone,
    /// By hyper (nothing has been read).
    Hyper,
    /// Raw: its head, read.
    Raw(RawRequest),
    /// Raw, but its head is not one to serve.
    Bad(HeadError),
}

/// Waits for the next request and, if its first packet holds a GET `raw` takes, reads its head.
async fn raw_head(tcp: &mut TcpStream, raw: &dyn RawRoute) -> Head {
    let mut first = [0u8; 256];
    let Ok(n @ 1..) = tcp.peek(&mut first).await else {
        return Head::Gone;
    };
    if !raw_get_target(&first[..n]).is_some_and(|path| raw.takes(path)) {
        return Head::Hyper;
    }
    match read_raw_head(tcp).await {
        Ok(request) => Head::Raw(request),
        Err(err) => Head::Bad(err),
    }
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
/// [`MAX_HEAD_BYTES`], and nothing past the head: what follows (a pipelined request) stays in
/// the socket for whoever serves it.
async fn read_raw_head(tcp: &mut TcpStream) -> Result<RawRequest, HeadError> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = tcp.peek(&mut chunk).await.map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        // The blank line may begin in the bytes already taken.
        let seen = head.len();
        head.extend_from_slice(&chunk[..n]);
        let from = seen.saturating_sub(3);
        let end = head[from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|at| from + at + 4);
        let take = end.map_or(n, |end| end - seen);
        head.truncate(seen + take);
        // What was peeked is there: this takes exactly those bytes, at once.
        tcp.read_exact(&mut chunk[..take])
            .await
            .map_err(|_| HeadError::Closed)?;
        if head.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
        if end.is_some() {
            return parse_raw_head(&head);
        }
        if head.len() == MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
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
    let http10 = version == 0;
    let has = |name: &str, token: &str| {
        request
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .any(|h| {
                let value = std::str::from_utf8(h.value).unwrap_or("");
                value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))
            })
    };
    let length = |h: &httparse::Header<'_>| h.name.eq_ignore_ascii_case("content-length") && h.value != b"0";
    let body = request
        .headers
        .iter()
        .any(|h| length(h) || h.name.eq_ignore_ascii_case("transfer-encoding"));
    let keep_alive = !body
        && if http10 {
            has("connection", "keep-alive")
        } else {
            !has("connection", "close")
        };
    Ok(RawRequest {
        path: path.to_owned(),
        query,
        last_event_id,
        http10,
        forwarded_for,
        keep_alive,
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
                keep_alive: true,
            })
        );
        let many = format!("GET /events HTTP/1.1\r\n{}\r\n", "x: y\r\n".repeat(MAX_HEADERS + 1));
        assert_eq!(parse_raw_head(many.as_bytes()), Err(HeadError::TooLarge));
        assert_eq!(parse_raw_head(b"GET /events\r\n\r\n"), Err(HeadError::Malformed));
    }
}
