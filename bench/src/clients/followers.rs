//! One client per way of following a match, each recording when it learned of which tick.
//!
//! Every follower counts its bytes on the wire ([`Counted`] sockets, HTTP heads and WebSocket
//! framing included) and its HTTP requests into a shared [`Tally`], and returns its
//! [`Arrival`]s: the local time at which it first held the world at a newer tick.
//!
//! - [`Transport::WebSocket`]: a player that never moves; every delta is an arrival.
//! - [`Transport::Sse`]: `GET /events`; every event (its id is its tick) is an arrival.
//! - [`Transport::LongPoll`]: `GET /poll?after=<last id>` on a kept-alive connection; every
//!   event in an answer is an arrival, all at the answer's time (an answer may carry several
//!   when events were published while the next request was on its way).
//! - [`Transport::Poll`]: `GET /state` with `If-None-Match` every interval; each 200 is an
//!   arrival at its ETag's tick, a 304 is not.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use client_demo::sse;
use serde::Deserialize;
use tickcast::protocol::ServerMsg;
use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::clients::counted::{Dial, Traffic};
use crate::clients::http1::{Conn, Head};
use crate::clients::wire;

/// Longest a long-poll waits on the server before answering 204.
const LONG_POLL_WAIT_MS: u64 = 25_000;
/// How long any single request or connection may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A way of following the match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A player WebSocket (binary deltas every tick).
    WebSocket,
    /// Server-sent events.
    Sse,
    /// Long-polling.
    LongPoll,
    /// Polling `/state` every interval.
    Poll(Duration),
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::WebSocket => f.write_str("WebSocket player"),
            Transport::Sse => f.write_str("SSE"),
            Transport::LongPoll => f.write_str("long-poll"),
            Transport::Poll(every) => write!(f, "poll every {every:?}"),
        }
    }
}

/// When a follower first held the world at `tick`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Local receipt time.
    pub at: Instant,
    /// The tick.
    pub tick: u64,
}

/// Counters all followers of one transport share.
#[derive(Debug, Default)]
pub struct Tally {
    /// Bytes on the wire.
    pub traffic: Arc<Traffic>,
    /// HTTP requests made (a WebSocket upgrade is one).
    pub requests: AtomicU64,
    /// HTTP responses read (not counting a WebSocket upgrade's).
    pub responses: AtomicU64,
    /// Bytes of those responses' heads (status line, headers, blank line).
    pub response_heads: AtomicU64,
    /// Followers whose connection failed or ended early.
    pub errors: AtomicU64,
}

impl Tally {
    fn counted_response(&self, head: &Head) {
        self.responses.fetch_add(1, Relaxed);
        self.response_heads.fetch_add(head.len as u64, Relaxed);
    }
}

/// Follows the match at `addr` over `transport` until `stop`; returns the arrivals.
pub async fn follow(
    transport: Transport,
    addr: SocketAddr,
    name: String,
    tally: Arc<Tally>,
    stop: CancellationToken,
) -> Vec<Arrival> {
    let mut arrivals = Vec::new();
    let followed = tokio::select! {
        () = stop.cancelled() => Ok(()),
        followed = run(transport, addr, &name, &tally, &mut arrivals) => followed,
    };
    if let Err(err) = followed {
        tally.errors.fetch_add(1, Relaxed);
        tracing::warn!(%transport, %name, %err, "follower stopped");
    }
    arrivals
}

async fn run(
    transport: Transport,
    addr: SocketAddr,
    name: &str,
    tally: &Tally,
    arrivals: &mut Vec<Arrival>,
) -> Result<(), String> {
    let traffic = tally.traffic.clone();
    let mut record = |tick: u64| {
        if arrivals.last().is_none_or(|last| tick > last.tick) {
            arrivals.push(Arrival {
                at: Instant::now(),
                tick,
            });
        }
    };
    if transport == Transport::WebSocket {
        tally.requests.fetch_add(1, Relaxed);
        let connecting = wire::connect(addr, Dial::default(), traffic, name);
        let (mut ws, schema) = bounded(connecting).await?.map_err(|e| e.to_string())?;
        loop {
            match wire::next(&mut ws, &schema).await.map_err(|e| e.to_string())? {
                ServerMsg::Snapshot(s) => record(s.tick),
                ServerMsg::Delta(d) => record(d.tick),
                _ => {}
            }
        }
    }
    let mut conn = bounded(Conn::dial(addr, Dial::default(), traffic))
        .await?
        .map_err(|e| e.to_string())?;
    match transport {
        Transport::Sse => {
            tally.requests.fetch_add(1, Relaxed);
            conn.send_get("/events", &[("accept", "text/event-stream")])
                .await
                .map_err(|e| e.to_string())?;
            let head = bounded(conn.read_head()).await?.map_err(|e| e.to_string())?;
            tally.counted_response(&head);
            if head.status != 200 || !head.chunked() {
                return Err(format!("/events answered {}", head.status));
            }
            let (mut parser, mut events) = (sse::Parser::new(), Vec::new());
            while let Some(chunk) = conn.next_chunk().await.map_err(|e| e.to_string())? {
                parser.push(&chunk, &mut events).map_err(|e| e.to_string())?;
                for event in events.drain(..) {
                    if let Some(tick) = sse::event_tick(&event.id) {
                        record(tick);
                    }
                }
            }
            Err("the event stream ended".into())
        }
        Transport::LongPoll => {
            let mut after: Option<String> = None;
            loop {
                let path = match &after {
                    Some(id) => format!("/poll?after={id}&timeout_ms={LONG_POLL_WAIT_MS}"),
                    None => format!("/poll?timeout_ms={LONG_POLL_WAIT_MS}"),
                };
                tally.requests.fetch_add(1, Relaxed);
                let response = bounded(conn.get(&path, &[])).await?.map_err(|e| e.to_string())?;
                tally.counted_response(&response.head);
                match response.head.status {
                    204 => {}
                    200 => {
                        let events: Vec<PolledEvent> =
                            serde_json::from_slice(&response.body).map_err(|e| e.to_string())?;
                        for id in events.into_iter().filter_map(|e| e.id) {
                            if let Some(tick) = sse::event_tick(&id) {
                                record(tick);
                            }
                            after = Some(id);
                        }
                    }
                    status => return Err(format!("/poll answered {status}")),
                }
            }
        }
        Transport::Poll(every) => {
            let mut ticks = time::interval(every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut etag = String::new();
            loop {
                ticks.tick().await;
                tally.requests.fetch_add(1, Relaxed);
                let headers: &[(&str, &str)] = if etag.is_empty() {
                    &[]
                } else {
                    &[("if-none-match", &etag)]
                };
                let response = bounded(conn.get("/state", headers)).await?.map_err(|e| e.to_string())?;
                tally.counted_response(&response.head);
                match response.head.status {
                    304 => {}
                    200 => {
                        etag = response.head.header("etag").unwrap_or_default().to_owned();
                        if let Some(tick) = sse::event_tick(etag.trim_matches('"')) {
                            record(tick);
                        }
                    }
                    status => return Err(format!("/state answered {status}")),
                }
            }
        }
        // Handled above, before any HTTP connection was opened.
        Transport::WebSocket => Ok(()),
    }
}

/// One element of a long-poll answer; only the id (`<epoch>-<tick>`) is needed here.
#[derive(Debug, Deserialize)]
struct PolledEvent {
    id: Option<String>,
}

async fn bounded<F: Future>(f: F) -> Result<F::Output, String> {
    time::timeout(REQUEST_TIMEOUT, f)
        .await
        .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))
}
