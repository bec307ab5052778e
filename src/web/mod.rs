//! The pages, embedded in the binary: the lobby (`/`), a room's spectator page
//! (`/rooms/{id}/`), its play page (`/rooms/{id}/play`, `/play` for the default room), and the
//! JavaScript client they use (`/tickcast.js`, an ES module with no dependencies: see its
//! header; it imports `/tickcast-wire.js` and `/tickcast-world.js`, by relative URL), which is
//! the package in `client-js/`; and their icon (`/favicon.svg`, also at `/favicon.ico`, where a
//! browser looks for one by itself). The pages find everything else (the rooms API, the feed,
//! the player socket) by relative URL.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::state::{AppState, KnownRoom};

// The client module is the package in `client-js/`: one source, served here and published there.
const CLIENT: &str = include_str!("../../client-js/tickcast.js");
const CLIENT_WIRE: &str = include_str!("../../client-js/tickcast-wire.js");
const CLIENT_WORLD: &str = include_str!("../../client-js/tickcast-world.js");
const LOBBY: &str = include_str!("lobby.html");
const PAGE: &str = include_str!("page.html");
const PLAY: &str = include_str!("play.html");
const FAVICON: &str = include_str!("favicon.svg");

/// The pages' routes.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(lobby))
        .route("/rooms/{id}/", get(page))
        .route("/rooms/{id}/play", get(play))
        .route("/play", get(play))
        .route("/tickcast.js", get(|| module(CLIENT)))
        .route("/tickcast-wire.js", get(|| module(CLIENT_WIRE)))
        .route("/tickcast-world.js", get(|| module(CLIENT_WORLD)))
        .route("/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon))
        .with_state(state)
}

/// `GET /`: the lobby, a live list of the public rooms.
async fn lobby() -> Html<&'static str> {
    Html(LOBBY)
}

/// `GET /rooms/{id}/`: the spectator page, for a room that exists (404 else).
async fn page(_room: KnownRoom) -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /rooms/{id}/play` and `GET /play`: the play page, for a room that exists (404 else).
async fn play(_room: KnownRoom) -> Html<&'static str> {
    Html(PLAY)
}

/// `GET /favicon.svg` and `GET /favicon.ico`: the pages' icon. The pages link the SVG; the
/// `.ico` path answers with it too, so that whatever asks there by itself gets an icon, not a 404.
async fn favicon() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        FAVICON,
    )
}

/// `GET /tickcast.js` and the modules it imports: the client.
async fn module(source: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            // It changes with the server; a browser must not keep an old one against a new one.
            (header::CACHE_CONTROL, "no-cache"),
            // Public code: any page may import it (`import … from "http://HOST/tickcast.js"`);
            // what it may then do is the rooms API's and the player sockets' origin policy.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        source,
    )
}
