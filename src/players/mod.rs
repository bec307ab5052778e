//! Players: a WebSocket from its upgrade to its close. [`socket`] reads the player's frames
//! and writes frames framed once; [`session`] runs the connection (hello, pings, inputs, the
//! frames the tick loop could not write at once, every way it can end); `close` is how it
//! ends (the close code and reason) and the checks whose failures end it; [`limits`] is the
//! rate a player may send at; [`admission`] answers a plain GET of the same URL: would this
//! page be let in, and if not, why (a browser cannot read a refused upgrade's answer).

pub mod admission;
mod close;
pub mod limits;
pub(crate) mod session;
pub(crate) mod socket;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::http::ConnectionPlace;
use crate::metrics::CloseReason;
use crate::state::{AppState, RoomAt, RoomRefused};

/// `GET /rooms/{id}/ws` (and `/ws`): a player's upgrade, checked (its origin, its request)
/// before anything is spent on it; then its session, on a task of its own.
pub(crate) async fn upgrade(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(state): State<Arc<AppState>>,
    room: Result<RoomAt, RoomRefused>,
    req: Request,
) -> Response {
    // A plain GET asks whether it would be let in: the answer any page can read.
    let room = match (room, admission::is_upgrade(req.headers())) {
        (Ok(RoomAt(room)), true) => room,
        (Ok(RoomAt(room)), false) => return admission::answer(&state, &room, &req),
        (Err(refused), upgrade) => match refused.refusal() {
            Some(refusal) if !upgrade => return admission::unreachable(refusal),
            _ => return refused.into_response(),
        },
    };
    if let Err(refused) = state.origins.check(req.headers()) {
        // A page on another site must not open a socket with this browser's cookies and
        // network position (cross-site WebSocket hijacking, DNS rebinding): refuse before
        // upgrading.
        state.metrics.close(CloseReason::Origin);
        tracing::debug!(%peer, %refused, "refused player");
        return (StatusCode::FORBIDDEN, format!("{refused}\n")).into_response();
    }
    let Some(place) = req.extensions().get::<ConnectionPlace>().cloned() else {
        // Every request comes through our accept loop, which adds it.
        return (StatusCode::INTERNAL_SERVER_ERROR, "no connection place\n").into_response();
    };
    let (response, upgrade) = match socket::accept(req) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    // The hello deadline counts from here: every frame the peer sends before its hello is
    // charged, nothing it sends re-arms the wait, and it holds no player place until then.
    let upgraded = Instant::now();
    let tasks = state.tasks.clone();
    tasks.spawn(session::run(upgrade, peer, state, room, upgraded, place));
    response
}
