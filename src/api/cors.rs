//! Cross-origin requests to the rooms API: a deliberate policy, the player sockets' own.
//!
//! A page on another site may read and matchmake through the rooms API when its origin may
//! open player sockets: the server's own origins (`--public-origin`) and `--allowed-origins`.
//! Its requests are answered with `Access-Control-Allow-Origin: <that origin>` (and `Vary:
//! Origin`), and its preflights (`OPTIONS`, which a `POST` with a JSON body needs) with the
//! methods and headers the API takes. Any other origin's preflight is refused (403, with the
//! reason), and its plain requests get no CORS header, so its page cannot read the answer;
//! writes from it are refused anyway ([`super::guard::same_site_write`]). No credentials
//! are ever allowed: the API's only credentials are bearer secrets a page sends itself.
//!
//! The client module (`/tickcast.js`) is public code, served to every origin (`web/`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// What a preflight answers: the methods and request headers the rooms API takes.
const METHODS: &str = "GET, POST, DELETE";
const HEADERS: &str = "content-type, authorization";
/// How long a browser may keep a preflight's answer, in seconds.
const MAX_AGE: &str = "600";

/// Answers preflights, and marks the answers to allowed origins' requests readable by them.
pub(crate) async fn cors(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let origin = allowed_origin(&app, req.headers());
    if req.method() == Method::OPTIONS {
        return preflight(&app, req.headers(), origin);
    }
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

/// The request's `Origin`, if it is one that may use the API from a page.
fn allowed_origin(app: &AppState, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    app.origins.check(headers).ok().map(|()| origin.clone())
}

fn preflight(app: &AppState, headers: &HeaderMap, origin: Option<HeaderValue>) -> Response {
    let Some(origin) = origin else {
        let why = match app.origins.check(headers) {
            Err(refused) => refused.to_string(),
            Ok(()) => "a preflight without an Origin".to_owned(),
        };
        return (StatusCode::FORBIDDEN, format!("{why}\n")).into_response();
    };
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin),
            (header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS)),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(HEADERS)),
            (header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE)),
            (header::VARY, HeaderValue::from_static("origin")),
        ],
    )
        .into_response()
}
