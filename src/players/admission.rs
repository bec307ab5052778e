//! `GET /rooms/{id}/ws` (and `/ws`) without `Upgrade`: whether a player's upgrade and hello
//! from this page would be let in, and if not, why, as JSON any page may read. A browser hides
//! a refused upgrade's answer (its WebSocket reports 1006 and no reason), so a client whose
//! socket failed before its welcome asks here, and stops retrying on a refusal instead of
//! reconnecting forever.
//!
//! The answer is always 200 (with `Access-Control-Allow-Origin: *`: it says nothing a page could
//! not learn by trying): `{"admitted": true}`, or `{"admitted": false, "code", "reason"}` with
//! the HTTP status the upgrade would get (403 a foreign origin, 404 no such room, 421 a room on
//! another node) or the close code the hello would get (1013 full, 1008 a missing or bad join
//! token, 1001 a room that is closing, 1000 one whose match ended and that closes after it),
//! and the same reason.

use axum::extract::ws::close_code;
use axum::extract::{Query, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::auth;
use crate::cluster::Refusal;
use crate::room::Room;
use crate::state::AppState;

/// The query: the name and join token the hello would carry.
#[derive(Debug, Default, Deserialize)]
struct AdmissionQuery {
    #[serde(default)]
    name: String,
    #[serde(default)]
    token: String,
}

/// Whether a request asks to upgrade (any `Upgrade` header: a malformed upgrade is the
/// upgrade's to refuse, with 400).
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
}

/// What the answer says.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct Admission {
    admitted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl Admission {
    fn refused(code: u16, reason: impl Into<String>) -> Self {
        Self {
            admitted: false,
            code: Some(code),
            reason: Some(reason.into().trim_end().to_owned()),
        }
    }
}

/// The answer for `room`: its origin, (when the server requires them) the join token in the
/// query (`?name=&token=`), then its places, checked in the order the upgrade and the hello
/// check them.
pub(crate) fn answer(state: &AppState, room: &Room, req: &Request) -> Response {
    let Query(AdmissionQuery { name, token }) = Query::try_from_uri(req.uri()).unwrap_or_default();
    let admission = if let Err(refused) = state.origins.check(req.headers()) {
        Admission::refused(StatusCode::FORBIDDEN.as_u16(), refused.to_string())
    } else if let Some(why) = super::close::name_or_token_refused(&name, &token, "") {
        Admission::refused(close_code::POLICY, why)
    } else if room.stopping().is_cancelled() {
        Admission::refused(close_code::AWAY, "room closed")
    } else if !room.is_open() {
        Admission::refused(close_code::NORMAL, "match over")
    } else if let Some(secret) = &state.config.auth_secret
        && let Err(err) = auth::verify(
            secret.as_bytes(),
            room.id().as_str(),
            &name,
            &token,
            crate::protocol::unix_micros() / 1_000_000,
        )
    {
        Admission::refused(close_code::POLICY, err.to_string())
    } else if room.places().free(Instant::now()) == 0 && room.places().held_until(&name, Instant::now()).is_none() {
        Admission::refused(close_code::AGAIN, "server full")
    } else {
        Admission {
            admitted: true,
            code: None,
            reason: None,
        }
    };
    respond(&admission)
}

/// The answer for a room that cannot be reached from here (the refusal the upgrade gets).
pub(crate) fn unreachable(refusal: &Refusal) -> Response {
    respond(&Admission::refused(refusal.status, refusal.message.clone()))
}

fn respond(admission: &Admission) -> Response {
    let mut response = axum::Json(admission).into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
