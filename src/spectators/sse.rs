//! Server-Sent Events: `retry:`, a snapshot (or, with `Last-Event-ID` or `?last_event_id=`,
//! exactly the missed events), then deltas as they happen, a comment every 15 s, and a final
//! event when the room ends. Served on the socket without hyper ([`RawEvents`]: a fraction of
//! the memory per stream), watching the socket's read side so a closed stream frees its place
//! at once; through hyper ([`events`]) when a request's first packet does not hold its whole
//! request line.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};

use super::places::{Full, SpectatorPlace};
use super::{Spectators, bad_request, catch_up, refused_full, resume_at};
use crate::feed::{Event, EventKind, Feed, Position, Viewport, Watch};
use crate::http::{self, RawRequest};
use crate::metrics::{CloseReason, Metrics};
use crate::state::FeedAt;

/// How often an idle SSE stream gets a comment line, so proxies do not time it out.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The reconnection delay suggested to EventSource clients.
const RETRY: &[u8] = b"retry: 2000\n\n";
/// Sent to an idle SSE stream every [`HEARTBEAT`].
const KEEPALIVE: &[u8] = b": keepalive\n\n";
#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    last_event_id: Option<String>,
}

/// `GET /events`: the SSE feed.
pub(crate) async fn events(
    State(spectators): State<Spectators>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    FeedAt(feed): FeedAt,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
    RawQuery(raw): RawQuery,
) -> Response {
    let header = headers.get("last-event-id").map(|v| v.to_str().map_err(|_| ()));
    let resume = match resume_at(header, query.last_event_id.as_deref()) {
        Ok(resume) => resume,
        Err(why) => return bad_request(why),
    };
    let watch = match Watch::from_query(pairs(raw.as_deref())) {
        Ok(watch) => watch,
        Err(why) => return bad_request(&why),
    };
    let client = spectators.app.client_ip(peer, &headers);
    let stream = match SseStream::open(&spectators, client, feed, resume, watch) {
        Ok(stream) => stream,
        Err(full) => return refused_full(&spectators.app.metrics, full),
    };
    let body = futures_util::stream::unfold(stream, |mut stream| async move {
        let chunk = stream.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), stream))
    });
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            // Tells nginx-style proxies not to buffer the stream.
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Event streams served on their socket, without hyper (see [`crate::http::RawRoute`]): the
/// same stream as [`events`] writes, with a fraction of the memory per spectator.
pub(crate) struct RawEvents(pub(crate) Spectators);

impl RawEvents {
    /// The room an events path names: `Some(None)` for the default room's `/events`,
    /// `Some(Some(id))` for `/rooms/{id}/events`.
    fn named(path: &str) -> Option<Option<&str>> {
        if path == "/events" {
            return Some(None);
        }
        let id = path.strip_prefix("/rooms/")?.strip_suffix("/events")?;
        (!id.is_empty() && !id.contains('/')).then_some(Some(id))
    }

    /// Answers a stream's request: its head, written, and the stream to write on `tcp`;
    /// `None` if it was refused (and answered so).
    async fn open(spectators: Spectators, mut tcp: TcpStream, request: RawRequest) -> Option<(TcpStream, SseStream)> {
        let state = &spectators.app;
        let bad = async |tcp: &mut TcpStream, why: &str| {
            http::write_plain(tcp, 400, "Bad Request", "", &format!("{why}\n")).await;
        };
        let query_id = request.query.as_deref().and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("last_event_id="))
                .map(percent_decoded)
        });
        let header = request.last_event_id.as_ref().map(|id| id.as_deref().map_err(|_| ()));
        let resume = match resume_at(header, query_id.as_deref()) {
            Ok(resume) => resume,
            Err(why) => {
                bad(&mut tcp, why).await;
                return None;
            }
        };
        let watch = match Watch::from_query(pairs(request.query.as_deref())) {
            Ok(watch) => watch,
            Err(why) => {
                bad(&mut tcp, &why).await;
                return None;
            }
        };
        let named = Self::named(&request.path).unwrap_or(None);
        let feed = match state.feed_named(named).await {
            Ok(feed) => feed,
            Err(refusal) => {
                let reason = StatusCode::from_u16(refusal.status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Error");
                let retry = if refusal.status == 503 {
                    "retry-after: 2\r\n"
                } else {
                    ""
                };
                let body = format!("{}\n", refusal.message);
                http::write_plain(&mut tcp, refusal.status, reason, retry, &body).await;
                return None;
            }
        };
        let peer = tcp.peer_addr().ok()?;
        let forwarded = request.forwarded_for.iter().map(String::as_str);
        let client = state.proxies.client(peer.ip(), forwarded);
        let mut stream = match SseStream::open(&spectators, client, feed, resume, watch) {
            Ok(stream) => stream,
            Err(full) => {
                state.metrics.close(CloseReason::Full);
                let body = format!("{full}\n");
                http::write_plain(&mut tcp, 503, "Service Unavailable", "retry-after: 5\r\n", &body).await;
                return None;
            }
        };
        stream.chunked = !request.http10;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
             x-accel-buffering: no\r\n{}connection: close\r\n\r\n",
            if stream.chunked {
                "transfer-encoding: chunked\r\n"
            } else {
                ""
            }
        );
        tcp.write_all(head.as_bytes()).await.ok()?;
        Some((tcp, stream))
    }

    /// Writes `stream` to `tcp` until it ends, or the peer leaves. (Borrowing both: the
    /// caller's future holds them once, not once more for this one.)
    async fn pump(tcp: &mut TcpStream, stream: &mut SseStream) {
        let chunked = stream.chunked;
        let (mut from_peer, mut to_peer) = tcp.split();
        loop {
            // A spectator that closes its socket frees its place when the close arrives, not at
            // the next event written to it (which may be long in an idle room).
            let chunk = tokio::select! {
                chunk = stream.next_chunk() => chunk,
                () = closed(&mut from_peer) => return,
            };
            let Some(chunk) = chunk else { break };
            if write_chunk(&mut to_peer, &chunk, chunked).await.is_err() {
                return;
            }
        }
        if chunked {
            let _ = to_peer.write_all(b"0\r\n\r\n").await;
        }
        let _ = to_peer.shutdown().await;
    }
}

impl http::RawRoute for RawEvents {
    fn takes(&self, path: &str) -> bool {
        Self::named(path).is_some()
    }

    fn serve(
        &self,
        tcp: TcpStream,
        request: RawRequest,
    ) -> Pin<Box<dyn Future<Output = Option<TcpStream>> + Send + 'static>> {
        // Opening is boxed apart, and over before the stream starts: what the stream's future
        // holds for as long as it lasts is only what writing it needs.
        let open = Box::pin(Self::open(self.0.clone(), tcp, request));
        Box::pin(async move {
            let (mut tcp, mut stream) = open.await?;
            Self::pump(&mut tcp, &mut stream).await;
            // A stream is its connection's last answer.
            None
        })
    }
}

/// Returns when the peer has closed its side (or the connection failed). What it sends after
/// its request head is read and dropped: a stream answers one request.
async fn closed(from_peer: &mut tokio::net::tcp::ReadHalf<'_>) {
    let mut sink = [0u8; 64];
    while let Ok(1..) = from_peer.read(&mut sink).await {}
}

/// Writes `data` as one chunk of a chunked body (or as it is, for HTTP/1.0), in one write.
async fn write_chunk(tcp: &mut tokio::net::tcp::WriteHalf<'_>, data: &Bytes, chunked: bool) -> std::io::Result<()> {
    use bytes::Buf;
    if !chunked {
        return tcp.write_all(data).await;
    }
    let size = format!("{:x}\r\n", data.len());
    let mut all = Buf::chain(Buf::chain(size.as_bytes(), &data[..]), &b"\r\n"[..]);
    tcp.write_all_buf(&mut all).await
}

/// A query's `name=value` pairs.
fn pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query.unwrap_or("").split('&').filter_map(|pair| pair.split_once('='))
}

/// `%XX` escapes decoded (event ids need none, but a client may escape the `-`).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One SSE response: its place in the feed and what it needs to notice.
struct SseStream {
    feed: Arc<Feed>,
    heartbeat: tokio::time::Interval,
    /// The last event taken from the feed; `None` before the first.
    cursor: Option<Position>,
    /// Events taken from the feed and not yet handed to the connection, one per chunk.
    pending: VecDeque<Arc<Event>>,
    started: bool,
    done: bool,
    /// Written in chunks (not to an HTTP/1.0 client).
    chunked: bool,
    metrics: Arc<Metrics>,
    /// A spectator of a part of the world: its own snapshots and deltas (boxed: most streams
    /// have none).
    viewport: Option<Box<Viewport>>,
    _place: SpectatorPlace,
}

impl SseStream {
    /// A stream of `feed` (of the part `watch` names, if any) for a spectator at `client`,
    /// resuming after `cursor`, if it has a place.
    fn open(
        spectators: &Spectators,
        client: IpAddr,
        feed: Arc<Feed>,
        cursor: Option<Position>,
        watch: Option<Watch>,
    ) -> Result<Self, Full> {
        let metrics = &spectators.app.metrics;
        let place = spectators.places.take(client, &feed, &metrics.spectators_sse)?;
        Ok(Self {
            _place: place,
            feed,
            heartbeat: heartbeat(),
            cursor,
            pending: VecDeque::new(),
            started: false,
            done: false,
            chunked: true,
            metrics: metrics.clone(),
            viewport: watch.map(|watch| Box::new(Viewport::new(watch))),
        })
    }

    /// The next bytes to write, or `None` when the response is complete. Each event goes out
    /// as the feed's own bytes: the connection holds a reference, not a copy.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            return Some(self.count(Bytes::from_static(RETRY)));
        }
        loop {
            if let Some(event) = self.pending.pop_front() {
                let world = matches!(event.kind, EventKind::Snapshot | EventKind::Delta);
                let Some(viewport) = self.viewport.as_mut().filter(|_| world) else {
                    return Some(self.count(event.sse.clone()));
                };
                // A viewport's own frame, of the latest world, once for the events taken.
                if self
                    .pending
                    .iter()
                    .any(|e| matches!(e.kind, EventKind::Snapshot | EventKind::Delta))
                {
                    continue;
                }
                match viewport.next(&self.feed) {
                    Some(own) => return Some(self.count(own.sse.clone())),
                    None => continue,
                }
            }
            // Wait for the next event from before reading the feed, so one published in between
            // wakes the wait below rather than being missed.
            let feed = self.feed.clone();
            let published = feed.published();
            tokio::pin!(published);
            published.as_mut().enable();
            self.pending = catch_up(&self.feed, &mut self.cursor, &self.metrics).into();
            if !self.pending.is_empty() {
                continue;
            }
            // Only once every event published before the end is sent (a match's `ended`).
            if self.feed.stopping().is_cancelled() {
                self.done = true;
                let (name, json) = self.feed.last_event();
                return Some(self.count(format!("event: {name}\ndata: {json}\n\n").into()));
            }
            tokio::select! {
                _ = feed.stopping().cancelled() => {}
                () = published => {}
                _ = self.heartbeat.tick() => return Some(self.count(Bytes::from_static(KEEPALIVE))),
            }
        }
    }

    fn count(&self, chunk: Bytes) -> Bytes {
        self.metrics.sse.sent(chunk.len());
        chunk
    }
}

fn heartbeat() -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}
