//! The browser's side of a room, embedded in the binary: the JavaScript client (`/tickcast.js`,
//! one ES module with no dependencies: see its header) and the play page that uses it
//! (`/rooms/{id}/play`, and `/play` for the default room).

use axum::http::header;
use axum::response::{Html, IntoResponse};

use crate::state::FeedAt;

const CLIENT: &str = include_str!("web/tickcast.js");
const PLAY: &str = include_str!("web/play.html");

/// `GET /tickcast.js`: the client module.
pub(crate) async fn client() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            // It changes with the server; a browser must not keep an old one against a new one.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CLIENT,
    )
}

/// `GET /rooms/{id}/play` and `GET /play`: the play page, for a room that exists (404 else).
pub(crate) async fn play(FeedAt(_feed): FeedAt) -> Html<&'static str> {
    Html(PLAY)
}
