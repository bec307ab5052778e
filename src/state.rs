//! What every request handler and session shares: the server's state, one handle.
//!
//! A module of its own so that the routes (`server`), the sessions, the spectator endpoints and
//! the rooms API all depend on it and not on each other.

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::game::SharedGames;
use crate::limits::PerAddress;
use crate::metrics::Metrics;
use crate::origin;
use crate::room::{Room, RoomId};
use crate::rooms::{Located, Rooms};

/// The server's shared state.
pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) rooms: Arc<Rooms>,
    /// The games rooms can play.
    pub(crate) games: SharedGames,
    /// One permit per spectator place (`--max-spectators`), over all rooms.
    pub(crate) spectator_places: Arc<Semaphore>,
    /// Room creations per client address, when there is no admin secret.
    pub(crate) room_creations: PerAddress,
    /// Which web origins may open player sockets.
    pub(crate) origins: origin::Policy,
    /// The base URL clients reach this server at (`--public-url`), without a trailing `/`.
    pub(crate) public_url: String,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

impl AppState {
    /// The URL a player opens to join room `id`.
    pub(crate) fn player_url(&self, id: &RoomId) -> String {
        let ws = if let Some(rest) = self.public_url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            format!("ws://{}", self.public_url.trim_start_matches("http://"))
        };
        format!("{ws}/rooms/{id}/ws")
    }

    /// The URL of room `id`'s spectator page.
    pub(crate) fn page_url(&self, id: &RoomId) -> String {
        format!("{}/rooms/{id}/", self.public_url)
    }
}

/// The room a request is for: the `{id}` in its path, or the default room for the old paths
/// (`/ws`, `/events`, `/poll`, `/state`). Unknown rooms get 404 with a message.
pub(crate) struct RoomAt(pub(crate) Arc<Room>);

impl FromRequestParts<Arc<AppState>> for RoomAt {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Response> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let named = params.iter().find(|(name, _)| *name == "id").map(|(_, value)| value);
        let text = named.unwrap_or(RoomId::DEFAULT);
        let not_found = |message: String| (StatusCode::NOT_FOUND, format!("{message}\n")).into_response();
        let Some(id) = RoomId::parse(text) else {
            return Err(not_found(format!("no room {text:?}: see GET /rooms")));
        };
        match state.rooms.locate(&id) {
            Located::Here(room) => Ok(Self(room)),
            Located::Nowhere if named.is_none() => Err(not_found(
                "this server has no default room (it runs with --no-default-room): see GET /rooms".into(),
            )),
            Located::Nowhere => Err(not_found(format!("no room {id}: see GET /rooms"))),
        }
    }
}
