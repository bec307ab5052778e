//! Long-polling: answers at once with the events after `after` (a snapshot if it is too old,
//! from another epoch, or absent), otherwise waits for the next event or the timeout (then
//! 204). A long-poll holds its spectator place until its answer has been handed to the
//! connection, not just until the handler returns.
//!
//! Served on the socket without hyper ([`serve_raw`]), as event streams are: through hyper, a
//! waiting long-poll would keep hyper's two 8 KiB buffers for the whole wait. The answer is
//! the same bytes either way (status, headers, body, `date`, keep-alive), and the connection
//! carries the next poll as it would; through hyper ([`poll`]) when a request's first packet
//! does not hold its whole request line, or its room id is percent-encoded.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, Bytes};
use http_body::{Frame, SizeHint};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::places::SpectatorPlace;
use super::{Spectators, bad_request, catch_up, position, refused_full};
use crate::feed::{Event, Feed, Position};
use crate::http::{self, RawRequest};
use crate::state::{FeedAt, refused};

/// Long-poll wait when the client names none.
const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(25);
/// Longest long-poll wait a client may ask for.
const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
pub(crate) struct PollQuery {
    after: Option<String>,
    timeout_ms: Option<u64>,
}

/// `GET /poll`: long-polling, through hyper.
pub(crate) async fn poll(
    State(spectators): State<Spectators>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    FeedAt(feed): FeedAt,
    headers: HeaderMap,
    Query(query): Query<PollQuery>,
) -> Response {
    let client = spectators.app.client_ip(peer, &headers);
    let (mut cursor, place) = match admit(&spectators, client, &feed, &query) {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    let deadline = Instant::now() + wait(&query);
    match answer(&spectators, &feed, &mut cursor, deadline, &mut Some(place)).await {
        Answer::Events(body) => (json_headers(), Body::new(body)).into_response(),
        Answer::Last(body) => (json_headers(), body).into_response(),
        Answer::Timeout => (StatusCode::NO_CONTENT, [(header::CACHE_CONTROL, "no-store")]).into_response(),
    }
}

/// Serves a long-poll whose head was read by [`crate::http`] (the path is one [`takes`]
/// accepts) on its socket; gives the socket back when the connection carries the next request.
///
/// In three steps, the first and last boxed for their while: the request read and the place
/// taken (or the refusal written), the wait, the answer written. What the future holds for
/// the length of the wait is only the wait's.
pub(crate) fn serve_raw(
    spectators: Spectators,
    tcp: TcpStream,
    request: RawRequest,
) -> Pin<Box<dyn Future<Output = Option<TcpStream>> + Send + 'static>> {
    let admitted = Box::pin(admit_raw(spectators, tcp, request));
    Box::pin(async move {
        let mut waiting = match admitted.await {
            Ok(waiting) => waiting,
            Err(answered) => return answered,
        };
        // A long-poll whose peer closes frees its place at once, not at its answer.
        let answer = tokio::select! {
            answer = answer(&waiting.spectators, &waiting.feed, &mut waiting.cursor, waiting.deadline, &mut waiting.place) => answer,
            () = closed(&waiting.tcp) => return None,
        };
        Box::pin(write_answer(waiting, answer)).await
    })
}

/// A long-poll served raw, waiting for its answer.
struct Waiting {
    spectators: Spectators,
    tcp: TcpStream,
    feed: Arc<Feed>,
    cursor: Option<Position>,
    deadline: Instant,
    /// Until the answer takes it.
    place: Option<SpectatorPlace>,
    http10: bool,
    keep_alive: bool,
}

/// Reads a raw long-poll's request as the handler's extractors would, in their order (the
/// room, then the query), and takes its place: the long-poll to wait, or the socket (if the
/// connection goes on) once its refusal is written.
async fn admit_raw(
    spectators: Spectators,
    mut tcp: TcpStream,
    request: RawRequest,
) -> Result<Waiting, Option<TcpStream>> {
    let state = &spectators.app;
    let named = takes(&request.path).flatten();
    let feed = match state.feed_named(named).await {
        Ok(feed) => feed,
        Err(refusal) => return Err(refuse(tcp, refused(&refusal), &request).await),
    };
    let target = match &request.query {
        Some(query) => format!("{}?{query}", request.path),
        None => request.path.clone(),
    };
    let Ok(uri) = target.parse::<Uri>() else {
        http::write_plain(&mut tcp, 400, "Bad Request", "", "malformed request\n").await;
        return Err(None);
    };
    let query = match Query::<PollQuery>::try_from_uri(&uri) {
        Ok(Query(query)) => query,
        Err(rejection) => return Err(refuse(tcp, rejection.into_response(), &request).await),
    };
    let Ok(peer) = tcp.peer_addr() else {
        return Err(None);
    };
    let forwarded = request.forwarded_for.iter().map(String::as_str);
    let client = state.proxies.client(peer.ip(), forwarded);
    let (cursor, place) = match admit(&spectators, client, &feed, &query) {
        Ok(admitted) => admitted,
        Err(refused) => return Err(refuse(tcp, *refused, &request).await),
    };
    Ok(Waiting {
        deadline: Instant::now() + wait(&query),
        spectators,
        tcp,
        feed,
        cursor,
        place: Some(place),
        http10: request.http10,
        keep_alive: request.keep_alive,
    })
}

/// Writes a raw long-poll's answer as hyper would; gives the socket back if the connection
/// goes on.
async fn write_answer(waiting: Waiting, answer: Answer) -> Option<TcpStream> {
    let Waiting {
        spectators,
        mut tcp,
        http10,
        keep_alive,
        ..
    } = waiting;
    // As hyper on shutdown: the answer in progress is the connection's last.
    let keep_alive = keep_alive && !spectators.app.shutdown.is_cancelled();
    let ok = StatusCode::OK;
    let (mut parts, _place) = match answer {
        Answer::Events(body) => {
            let head = http::response_head(
                ok,
                &json_headers_map(),
                Some(body.remaining as usize),
                http10,
                keep_alive,
            );
            let PollBody { mut parts, _place, .. } = body;
            parts.push_front(head.into());
            // The place is held until the answer is written.
            (parts, Some(_place))
        }
        Answer::Last(body) => {
            let head = http::response_head(ok, &json_headers_map(), Some(body.len()), http10, keep_alive);
            (VecDeque::from([Bytes::from(head), Bytes::from(body)]), None)
        }
        Answer::Timeout => {
            let mut headers = HeaderMap::new();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            let head = http::response_head(StatusCode::NO_CONTENT, &headers, None, http10, keep_alive);
            (VecDeque::from([Bytes::from(head)]), None)
        }
    };
    let written = write_parts(&mut tcp, &mut parts).await;
    (written.is_ok() && keep_alive).then_some(tcp)
}

/// The room a long-poll path names, if it is one served raw: `Some(None)` for the default
/// room's `/poll`, `Some(Some(id))` for `/rooms/{id}/poll` (an id with a `%` goes to hyper,
/// which decodes it).
pub(crate) fn takes(path: &str) -> Option<Option<&str>> {
    if path == "/poll" {
        return Some(None);
    }
    let id = path.strip_prefix("/rooms/")?.strip_suffix("/poll")?;
    (!id.is_empty() && !id.contains(['/', '%'])).then_some(Some(id))
}

/// What a long-poll is answered with.
enum Answer {
    /// The events after its cursor.
    Events(PollBody),
    /// The feed's last event (the room or the server ended), as JSON.
    Last(Vec<u8>),
    /// Nothing came before the wait's end: 204.
    Timeout,
}

/// A long-poll's cursor and spectator place, or the answer refusing it.
fn admit(
    spectators: &Spectators,
    client: std::net::IpAddr,
    feed: &Arc<Feed>,
    query: &PollQuery,
) -> Result<(Option<Position>, SpectatorPlace), Box<Response>> {
    // Boxed: the refusal is the rare way out, and a response is large.
    let cursor = position(query.after.as_deref()).map_err(|why| Box::new(bad_request(why)))?;
    let state = &spectators.app;
    let place = spectators
        .places
        .take(client, feed, &state.metrics.spectators_longpoll)
        .map_err(|full| Box::new(refused_full(&state.metrics, full)))?;
    Ok((cursor, place))
}

/// How long a long-poll may wait.
fn wait(query: &PollQuery) -> Duration {
    query
        .timeout_ms
        .map_or(DEFAULT_POLL_WAIT, Duration::from_millis)
        .min(MAX_POLL_WAIT)
}

/// Waits, if it must, for what to answer a long-poll after `cursor` with, until `deadline`.
/// An answer of events takes the `place` along, to hold it until it is written.
async fn answer(
    spectators: &Spectators,
    feed: &Feed,
    cursor: &mut Option<Position>,
    deadline: Instant,
    place: &mut Option<SpectatorPlace>,
) -> Answer {
    let state = &spectators.app;
    let traffic = &state.metrics.longpoll;
    traffic.received(0);
    loop {
        // Waiting from before the read: an event published in between wakes the wait below.
        let published = feed.published();
        tokio::pin!(published);
        published.as_mut().enable();
        let events = catch_up(feed, cursor, &state.metrics);
        // The place is always there until an answer takes it.
        if !events.is_empty()
            && let Some(place) = place.take()
        {
            let body = PollBody::new(&events, place);
            traffic.sent(body.remaining as usize);
            return Answer::Events(body);
        }
        // Only once every event published before the end is answered (a match's `ended`).
        if feed.stopping().is_cancelled() {
            let (name, json) = feed.last_event();
            let body = format!(r#"[{{"event":"{name}","data":{json}}}]"#);
            traffic.sent(body.len());
            return Answer::Last(body.into_bytes());
        }
        tokio::select! {
            _ = feed.stopping().cancelled() => {}
            () = published => {}
            _ = tokio::time::sleep_until(deadline) => {
                traffic.sent(0);
                return Answer::Timeout;
            }
        }
    }
}

fn json_headers() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, "no-store"),
    ]
}

fn json_headers_map() -> HeaderMap {
    json_headers()
        .into_iter()
        .map(|(name, value)| (name, HeaderValue::from_static(value)))
        .collect()
}

/// Writes a refusal, as hyper would; gives the socket back if the connection goes on.
async fn refuse(mut tcp: TcpStream, response: Response, request: &RawRequest) -> Option<TcpStream> {
    let keep_alive = request.keep_alive;
    let written = http::write_response(&mut tcp, response, request.http10, keep_alive).await;
    (written.is_ok() && keep_alive).then_some(tcp)
}

/// Returns when the peer has closed its side (or the connection failed). Reads nothing: bytes
/// it sends meanwhile (its next request, pipelined) stay for after the answer, and stop the
/// watch. (A `poll_peek`, not `peek`: its future is a fraction of the size, and it is held
/// for the whole wait.)
async fn closed(tcp: &TcpStream) {
    let mut byte = [0u8; 1];
    let peeked = std::future::poll_fn(|cx| tcp.poll_peek(cx, &mut tokio::io::ReadBuf::new(&mut byte))).await;
    match peeked {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

/// Writes `parts` in order, as few writes as the socket allows.
async fn write_parts(tcp: &mut TcpStream, parts: &mut VecDeque<Bytes>) -> std::io::Result<()> {
    while !parts.is_empty() {
        let mut slices = [IoSlice::new(&[]); 16];
        for (slice, part) in slices.iter_mut().zip(parts.iter()) {
            *slice = IoSlice::new(part);
        }
        let count = parts.len().min(slices.len());
        let mut written = tcp.write_vectored(&slices[..count]).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while let Some(front) = parts.front_mut() {
            if written < front.len() {
                front.advance(written);
                break;
            }
            written -= front.len();
            parts.pop_front();
        }
    }
    Ok(())
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
