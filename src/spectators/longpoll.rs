//! Long-polling: answers at once with the events after `after` (a snapshot if it is too old,
//! from another epoch, or absent), otherwise waits for the next event or the timeout (then
//! 204). A long-poll holds its spectator place until its answer has been handed to the
//! connection, not just until the handler returns.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use serde::Deserialize;
use tokio::time::Instant;

use super::places::SpectatorPlace;
use super::{Spectators, bad_request, catch_up, position, refused_full};
use crate::feed::Event;
use crate::metrics::TrafficCounters;
use crate::state::FeedAt;

/// Long-poll wait when the client names none.
const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(25);
/// Longest long-poll wait a client may ask for.
const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
pub(crate) struct PollQuery {
    after: Option<String>,
    timeout_ms: Option<u64>,
}

/// `GET /poll`: long-polling.
pub(crate) async fn poll(
    State(spectators): State<Spectators>,
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
    let state = &spectators.app;
    let place = match spectators.places.take(
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
        // Only once every event published before the end is answered (a match's `ended`).
        if feed.stopping().is_cancelled() {
            let (name, json) = feed.last_event();
            let body = format!(r#"[{{"event":"{name}","data":{json}}}]"#);
            return json_response(traffic, body.into_bytes());
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
