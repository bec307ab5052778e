//! Polling: `GET /state`, the current snapshot, with an ETag naming its event (If-None-Match:
//! 304). In a cluster a poll of another node's room is answered without following the room
//! (`crate::cluster::glance`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::cluster::glance::Seen;
use crate::state::{AppState, StateAt};

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
