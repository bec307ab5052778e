//! Spectators: read-only followers of a room's [`Feed`] over plain HTTP (paths under
//! `/rooms/{id}/`, or the default room's at `/events`, `/poll`, `/state`), each a transport of
//! its own: [`sse`] (Server-Sent Events) and [`longpoll`], both served on the socket without
//! hyper ([`RawSpectators`]), and [`polling`]. A spectator's place is one of [`places`]'s,
//! under three caps. Every transport serves a feed, the room's own or (in a cluster) this
//! node's copy of another node's room, and writes the feed's own bytes, never a copy per
//! spectator: a spectator that stops reading holds no queue, only its position in the feed.

pub(crate) mod longpoll;
pub(crate) mod places;
pub(crate) mod polling;
pub(crate) mod sse;

use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use self::places::{Full, SpectatorPlaces};
use crate::feed::{Catchup, Event, Feed, Position};
use crate::http::{RawRequest, RawRoute};
use crate::metrics::{CloseReason, Metrics};
use crate::state::AppState;

/// What the spectator endpoints share: the server's state and the spectators' places.
#[derive(Clone)]
pub(crate) struct Spectators {
    pub(crate) app: Arc<AppState>,
    pub(crate) places: Arc<SpectatorPlaces>,
}

impl FromRef<Spectators> for Arc<AppState> {
    fn from_ref(spectators: &Spectators) -> Self {
        spectators.app.clone()
    }
}

/// The spectator routes, and the event streams served on their socket without hyper.
pub(crate) fn router(app: Arc<AppState>) -> (Router, Arc<dyn RawRoute>) {
    let spectators = Spectators {
        places: Arc::new(SpectatorPlaces::new(&app.config)),
        app,
    };
    let router = Router::new()
        .route("/rooms/{id}/events", get(sse::events))
        .route("/rooms/{id}/poll", get(longpoll::poll))
        .route("/rooms/{id}/state", get(polling::current_state))
        // The default room, where a single-match server always had its match.
        .route("/events", get(sse::events))
        .route("/poll", get(longpoll::poll))
        .route("/state", get(polling::current_state))
        .with_state(spectators.clone());
    (router, Arc::new(RawSpectators(sse::RawEvents(spectators))))
}

/// The spectator requests served on their socket without hyper: event streams and long-polls.
struct RawSpectators(sse::RawEvents);

impl RawRoute for RawSpectators {
    fn takes(&self, path: &str) -> bool {
        self.0.takes(path) || longpoll::takes(path).is_some()
    }

    fn serve(
        &self,
        tcp: tokio::net::TcpStream,
        request: RawRequest,
    ) -> Pin<Box<dyn Future<Output = Option<tokio::net::TcpStream>> + Send + 'static>> {
        if self.0.takes(&request.path) {
            return self.0.serve(tcp, request);
        }
        longpoll::serve_raw(self.0.0.clone(), tcp, request)
    }
}

/// Where an event stream resumes: after the `Last-Event-ID` header (`Err` if it was not
/// text), else after the `last_event_id` query value; `None` from the start.
pub(crate) fn resume_at(
    header: Option<Result<&str, ()>>,
    query: Option<&str>,
) -> Result<Option<Position>, &'static str> {
    match header {
        Some(Err(())) => Err("Last-Event-ID is not text"),
        Some(Ok(id)) => position(Some(id)),
        None => position(query),
    }
}

/// Reads an event id given by a client: `None` if absent, the reason if malformed.
pub(crate) fn position(text: Option<&str>) -> Result<Option<Position>, &'static str> {
    match text {
        None => Ok(None),
        Some(text) => Position::parse(text)
            .map(Some)
            .ok_or("an event id is <epoch>-<tick>, as the events carry them"),
    }
}

/// Moves `cursor` to the latest event and returns what lies between: the missed deltas, or a
/// snapshot if they are no longer (or were never) in the ring.
pub(crate) fn catch_up(feed: &Feed, cursor: &mut Option<Position>, metrics: &Metrics) -> Vec<Arc<Event>> {
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

pub(crate) fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

/// A spectator over one of the caps: 503, naming it, counted.
pub(crate) fn refused_full(metrics: &Metrics, full: Full) -> Response {
    metrics.close(CloseReason::Full);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        format!("{full}\n"),
    )
        .into_response()
}
