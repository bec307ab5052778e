//! Read-only spectator endpoints over plain HTTP, each served from its room's [`Feed`]
//! (paths under `/rooms/{id}/`, or the default room's at `/events`, `/poll`, `/state`).
//!
//! - `events`: Server-Sent Events. `retry:`, a snapshot (or, with `Last-Event-ID` or
//!   `?last_event_id=`, exactly the missed events), then deltas as they happen, a comment
//!   heartbeat every 15 s, and a final event when the room ends: `closed` (closed, idle,
//!   crashed, its node lost) or `shutdown` (the server stops).
//! - `poll?after=<event id>&timeout_ms=<ms>`: long-polling. Answers at once with the events
//!   after `after` (a snapshot if it is too old, from another epoch, or absent), otherwise
//!   waits for the next event or the timeout (then 204).
//! - `state`: the current snapshot, with an ETag naming its tick (If-None-Match: 304).
//! - `/rooms/{id}/`: the spectator page.
//!
//! Every endpoint serves a [`Feed`]: the room's own, or in a cluster this node's copy of a room
//! on another node, which behaves the same (event ids included).
//!
//! A spectator that stops reading is simply not polled by the HTTP layer: it holds no queue,
//! only its position in the feed and references to events that exist anyway (every response
//! is written from the feed's own bytes, never a copy per spectator). When it reads again and
//! its position has left the ring, or the events it missed outweigh a snapshot, it gets a
//! fresh snapshot (counted in `tickcast_spectator_resyncs_total`). A long-poll holds its
//! spectator place until its answer has been handed to the connection, not just until the
//! handler returns.

pub(crate) mod places;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};

use crate::cluster::glance::Seen;
use crate::http::{self, ConnectionPlace, RawRequest};
use crate::metrics::{CloseReason, Metrics, TrafficCounters};
use crate::room::feed::{Catchup, Event, Feed, Position};
use crate::state::{AppState, FeedAt, KnownRoom, StateAt};

use self::places::{Full, SpectatorPlace};

/// How often an idle SSE stream gets a comment line, so proxies do not time it out.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The reconnection delay suggested to EventSource clients.
const RETRY: &[u8] = b"retry: 2000\n\n";
/// Sent to an idle SSE stream every [`HEARTBEAT`].
const KEEPALIVE: &[u8] = b": keepalive\n\n";
/// Long-poll wait when the client names none.
const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(25);
/// Longest long-poll wait a client may ask for.
const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

const PAGE: &str = include_str!("page.html");

/// The spectator page of a room, embedded in the binary (it finds its feed by relative URL).
pub(crate) async fn page(_room: KnownRoom) -> Html<&'static str> {
    Html(PAGE)
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    last_event_id: Option<String>,
}

/// Where an event stream resumes: after the `Last-Event-ID` header (`Err` if it was not
/// text), else after the `last_event_id` query value; `None` from the start.
fn resume_at(header: Option<Result<&str, ()>>, query: Option<&str>) -> Result<Option<Position>, &'static str> {
    match header {
        Some(Err(())) => Err("Last-Event-ID is not text"),
        Some(Ok(id)) => position(Some(id)),
        None => position(query),
    }
}

/// Reads an event id given by a client: `None` if absent, the reason if malformed.
fn position(text: Option<&str>) -> Result<Option<Position>, &'static str> {
    match text {
        None => Ok(None),
        Some(text) => Position::parse(text)
            .map(Some)
            .ok_or("an event id is <epoch>-<tick>, as the events carry them"),
    }
}

/// `GET /events`: the SSE feed.
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    FeedAt(feed): FeedAt,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Response {
    let header = headers.get("last-event-id").map(|v| v.to_str().map_err(|_| ()));
    let resume = match resume_at(header, query.last_event_id.as_deref()) {
        Ok(resume) => resume,
        Err(why) => return bad_request(why),
    };
    let client = state.client_ip(peer, &headers);
    let stream = match SseStream::open(&state, client, feed, resume) {
        Ok(stream) => stream,
        Err(full) => return refused_full(&state.metrics, full),
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
pub(crate) struct RawEvents(pub(crate) Arc<AppState>);

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

    async fn serve_stream(state: Arc<AppState>, mut tcp: TcpStream, request: RawRequest, place: ConnectionPlace) {
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
            Err(why) => return bad(&mut tcp, why).await,
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
                return http::write_plain(&mut tcp, refusal.status, reason, retry, &body).await;
            }
        };
        let Ok(peer) = tcp.peer_addr() else { return };
        let forwarded = request.forwarded_for.iter().map(String::as_str);
        let client = state.proxies.client(peer.ip(), forwarded);
        let mut stream = match SseStream::open(&state, client, feed, resume) {
            Ok(stream) => stream,
            Err(full) => {
                state.metrics.close(CloseReason::Full);
                let body = format!("{full}\n");
                return http::write_plain(&mut tcp, 503, "Service Unavailable", "retry-after: 5\r\n", &body).await;
            }
        };
        let chunked = !request.http10;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
             x-accel-buffering: no\r\n{}connection: close\r\n\r\n",
            if chunked { "transfer-encoding: chunked\r\n" } else { "" }
        );
        if tcp.write_all(head.as_bytes()).await.is_err() {
            return;
        }
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
        drop(place);
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
        place: ConnectionPlace,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(Self::serve_stream(self.0.clone(), tcp, request, place))
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
    metrics: Arc<Metrics>,
    _place: SpectatorPlace,
}

impl SseStream {
    /// A stream of `feed` for a spectator at `client`, resuming after `cursor`, if it has a
    /// place.
    fn open(state: &AppState, client: IpAddr, feed: Arc<Feed>, cursor: Option<Position>) -> Result<Self, Full> {
        let place = state
            .spectator_places
            .take(client, &feed, &state.metrics.spectators_sse)?;
        Ok(Self {
            _place: place,
            feed,
            heartbeat: heartbeat(),
            cursor,
            pending: VecDeque::new(),
            started: false,
            done: false,
            metrics: state.metrics.clone(),
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
                return Some(self.count(event.sse.clone()));
            }
            if self.feed.stopping().is_cancelled() {
                self.done = true;
                let (name, json) = self.feed.last_event();
                return Some(self.count(format!("event: {name}\ndata: {json}\n\n").into()));
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

/// Moves `cursor` to the latest event and returns what lies between: the missed deltas, or a
/// snapshot if they are no longer (or were never) in the ring.
fn catch_up(feed: &Feed, cursor: &mut Option<Position>, metrics: &Metrics) -> Vec<Arc<Event>> {
    let events = match feed.since(cursor.as_ref()) {
        Catchup::UpToDate => return Vec::new(),
        Catchup::Events(events) => events,
        Catchup::Snapshot(snapshot) => {
            if cursor.is_some() {
                metrics.spectator_resyncs.inc();
            }
            vec![snapshot]
        }
    };
    if let Some(last) = events.last() {
        *cursor = Some(last.position());
    }
    events
}

#[derive(Debug, Deserialize)]
pub(crate) struct PollQuery {
    after: Option<String>,
    timeout_ms: Option<u64>,
}

/// `GET /poll`: long-polling.
pub(crate) async fn poll(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    FeedAt(feed): FeedAt,
    headers: HeaderMap,
    Query(query): Query<PollQuery>,
) -> Response {
    let mut cursor = match position(query.after.as_deref()) {
        Ok(cursor) => cursor,
        Err(why) => return bad_request(why),
    };
    let wait = query
        .timeout_ms
        .map_or(DEFAULT_POLL_WAIT, Duration::from_millis)
        .min(MAX_POLL_WAIT);
    let deadline = Instant::now() + wait;
    let place = match state.spectator_places.take(
        state.client_ip(peer, &headers),
        &feed,
        &state.metrics.spectators_longpoll,
    ) {
        Ok(place) => place,
        Err(full) => return refused_full(&state.metrics, full),
    };
    let traffic = &state.metrics.longpoll;
    traffic.received(0);
    loop {
        if feed.stopping().is_cancelled() {
            let (name, json) = feed.last_event();
            let body = format!(r#"[{{"event":"{name}","data":{json}}}]"#);
            return json_response(traffic, body.into_bytes());
        }
        // Waiting from before the read: an event published in between wakes the wait below.
        let published = feed.published();
        tokio::pin!(published);
        published.as_mut().enable();
        let events = catch_up(&feed, &mut cursor, &state.metrics);
        if !events.is_empty() {
            let body = PollBody::new(&events, place);
            traffic.sent(body.remaining as usize);
            return (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                Body::new(body),
            )
                .into_response();
        }
        tokio::select! {
            _ = feed.stopping().cancelled() => {}
            () = published => {}
            _ = tokio::time::sleep_until(deadline) => {
                traffic.sent(0);
                return (StatusCode::NO_CONTENT, [(header::CACHE_CONTROL, "no-store")]).into_response();
            }
        }
    }
}

/// A long-poll answer, `[{"event":…,"id":…,"data":…},…]`, written from the events' own bytes
/// (their JSON is shared with the feed, never copied), with an exact length. It holds the
/// spectator's place until the connection has taken all of it: a spectator that does not
/// read its answer still counts under `--max-spectators`.
struct PollBody {
    parts: VecDeque<Bytes>,
    remaining: u64,
    _place: SpectatorPlace,
}

impl PollBody {
    fn new(events: &[Arc<Event>], place: SpectatorPlace) -> Self {
        let mut parts = VecDeque::with_capacity(events.len() * 3 + 1);
        for (i, event) in events.iter().enumerate() {
            let open = if i == 0 { "[" } else { "," };
            parts.push_back(Bytes::from_static(open.as_bytes()));
            parts.push_back(event.poll_head.clone());
            parts.push_back(event.json.clone());
            parts.push_back(Bytes::from_static(b"}"));
        }
        parts.push_back(Bytes::from_static(b"]"));
        let remaining = parts.iter().map(|p| p.len() as u64).sum();
        Self {
            parts,
            remaining,
            _place: place,
        }
    }
}

impl http_body::Body for PollBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let part = self.parts.pop_front();
        if let Some(part) = &part {
            self.remaining -= part.len() as u64;
        }
        Poll::Ready(part.map(|part| Ok(Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// `GET /state`: the current snapshot, cacheable by its tick.
pub(crate) async fn current_state(
    State(state): State<Arc<AppState>>,
    StateAt(seen): StateAt,
    headers: HeaderMap,
) -> Response {
    let snapshot = match seen {
        Seen::State(snapshot) => snapshot,
        Seen::Ended => return (StatusCode::NOT_FOUND, "the room has ended: see GET /rooms\n").into_response(),
        Seen::NotYet => {
            let body = "the room has no state to show yet: try again shortly\n";
            return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], body).into_response();
        }
    };
    let traffic = &state.metrics.poll;
    traffic.received(0);
    let etag = format!("\"{}\"", snapshot.id());
    let cache = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, "no-cache".to_owned()),
    ];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if fresh {
        traffic.sent(0);
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    traffic.sent(snapshot.json.len());
    (
        cache,
        [(header::CONTENT_TYPE, "application/json")],
        snapshot.json.clone(),
    )
        .into_response()
}

fn json_response(traffic: &TrafficCounters, body: Vec<u8>) -> Response {
    traffic.sent(body.len());
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn heartbeat() -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

/// A spectator over one of the caps: 503, naming it, counted.
fn refused_full(metrics: &Metrics, full: Full) -> Response {
    metrics.close(CloseReason::Full);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        format!("{full}\n"),
    )
        .into_response()
}
