//! The rooms API, JSON over HTTP: list, show, create and close rooms, and matchmaking.
//!
//! - `GET /rooms`: the public rooms. `GET /rooms/{id}`: one room (private ones too: knowing
//!   the id is the permission).
//! - `POST /rooms` `{"game", "tick_hz"?, "max_players"?, "seed"?, "private"?}`: 201 with the
//!   new room. `DELETE /rooms/{id}`: 204; its players get 1001 "room closed", its spectators a
//!   final `closed` event. With `--admin-secret`, both need `Authorization: Bearer <secret>`;
//!   without it, creation is limited per client address ([`CREATE_BURST`] at once, one every
//!   [`CREATE_EVERY`] after).
//! - `POST /matchmake` `{"game", "name"}`: a public room of that game with a free place (the
//!   fullest), or a new one; a place is held for the name for `HOLD_FOR` and, when the server
//!   requires join tokens, the answer carries one for that room and name, expiring with it.
//!
//! Every error is a status with `{"error": "<what went wrong>"}`. Request bodies are at most
//! [`MAX_BODY`] bytes and must arrive within [`BODY_TIMEOUT`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::auth;
use crate::protocol::{MAX_NAME_LEN, unix_micros};
use crate::room::seats::HOLD_FOR;
use crate::room::{Info, Room, RoomId, Settings};
use crate::rooms::{CreateError, Located};
use crate::state::AppState;

/// The largest request body accepted.
pub(crate) const MAX_BODY: usize = 4096;
/// How long a request body may take to arrive (the head has its own `--head-timeout`).
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Rooms one client address may create at once without `--admin-secret`.
pub(crate) const CREATE_BURST: u32 = 10;
/// After the burst, one room per this long per address.
pub(crate) const CREATE_EVERY: Duration = Duration::from_secs(6);
/// Client addresses the creation limit tracks at once.
pub(crate) const CREATE_ADDRESSES: usize = 4096;

/// A failed API request: a status and what went wrong.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<CreateError> for ApiError {
    fn from(err: CreateError) -> Self {
        let status = match err {
            CreateError::Full(_) | CreateError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            CreateError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            CreateError::UnknownGame(..) => StatusCode::BAD_REQUEST,
        };
        Self::new(status, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// A room as the API shows it: its [`Info`] and where to reach it.
#[derive(Debug, Serialize)]
struct RoomJson {
    #[serde(flatten)]
    info: Info,
    /// The player URL (WebSocket).
    ws: String,
    /// The spectator page.
    page: String,
}

fn room_json(state: &AppState, room: &Room) -> RoomJson {
    RoomJson {
        info: room.info(),
        ws: state.player_url(room.id()),
        page: state.page_url(room.id()),
    }
}

/// `GET /rooms`.
pub(crate) async fn list(State(state): State<Arc<AppState>>) -> Response {
    let rooms: Vec<_> = state
        .rooms
        .all()
        .iter()
        .filter(|room| !room.settings().private)
        .map(|room| room_json(&state, room))
        .collect();
    Json(serde_json::json!({ "rooms": rooms })).into_response()
}

/// `GET /rooms/{id}`.
pub(crate) async fn show(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let room = find(&state, &id)?;
    Ok(Json(room_json(&state, &room)).into_response())
}

/// What `POST /rooms` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoom {
    game: String,
    tick_hz: Option<u32>,
    max_players: Option<usize>,
    seed: Option<u64>,
    #[serde(default)]
    private: bool,
}

/// `POST /rooms`.
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Result<Response, ApiError> {
    let admin = admin(&state, req.headers())?;
    let body: CreateRoom = read_json(req).await?;
    let settings = settings(&state, &body.game)?;
    let max = state.config.max_players;
    let settings = Settings {
        tick_hz: match body.tick_hz {
            Some(hz @ 1..=240) => hz,
            Some(hz) => return Err(ApiError::bad(format!("tick_hz {hz} is outside 1..=240"))),
            None => settings.tick_hz,
        },
        max_players: match body.max_players {
            Some(n) if (1..=max).contains(&n) => n,
            Some(n) => return Err(ApiError::bad(format!("max_players {n} is outside 1..={max}"))),
            None => settings.max_players,
        },
        seed: body.seed.unwrap_or(settings.seed),
        private: body.private,
        ..settings
    };
    if !admin && !state.room_creations.allow(peer.ip(), Instant::now()) {
        return Err(CreateError::RateLimited.into());
    }
    let room = state.rooms.create(settings, None)?;
    Ok((StatusCode::CREATED, Json(room_json(&state, &room))).into_response())
}

/// `DELETE /rooms/{id}`.
pub(crate) async fn close(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&state, &headers)?;
    let room = find(&state, &id)?;
    if room.is_default() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the default room cannot be closed: start the server with --no-default-room",
        ));
    }
    state.rooms.close(room.id());
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What `POST /matchmake` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Matchmake {
    game: String,
    name: String,
}

/// What `POST /matchmake` answers.
#[derive(Debug, Serialize)]
struct Seat {
    room: RoomId,
    ws: String,
    page: String,
    /// Whether the room was created for this request.
    created: bool,
    /// A join token for this room and name, when the server requires them.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    /// Until when (Unix seconds) the place is held and the token valid.
    expires: u64,
}

/// `POST /matchmake`.
pub(crate) async fn matchmake(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Result<Response, ApiError> {
    let admin = admin_optional(&state, req.headers());
    let body: Matchmake = read_json(req).await?;
    if body.name.len() > MAX_NAME_LEN || body.name.chars().any(char::is_control) {
        return Err(ApiError::bad(format!(
            "name must be at most {MAX_NAME_LEN} bytes, without control characters"
        )));
    }
    let settings = settings(&state, &body.game)?;
    let may_create = || admin || state.room_creations.allow(peer.ip(), Instant::now());
    let (room, created) = state.rooms.matchmake(settings, &body.name, may_create)?;
    let expires = unix_micros() / 1_000_000 + HOLD_FOR.as_secs();
    let token = state
        .config
        .auth_secret
        .as_ref()
        .map(|secret| auth::mint(secret.as_bytes(), room.id().as_str(), &body.name, expires));
    let seat = Seat {
        ws: state.player_url(room.id()),
        page: state.page_url(room.id()),
        room: room.id().clone(),
        created,
        token,
        expires,
    };
    Ok(Json(seat).into_response())
}

/// The settings of a new room of `game`: the server's flags, a fresh seed.
fn settings(state: &AppState, game: &str) -> Result<Settings, ApiError> {
    if state.games.get(game).is_none() {
        let known = state.games.names().join(", ");
        return Err(CreateError::UnknownGame(game.into(), known).into());
    }
    Ok(Settings {
        game: game.into(),
        seed: rand::random(),
        ..Settings::from_config(&state.config)
    })
}

fn find(state: &AppState, id: &str) -> Result<Arc<Room>, ApiError> {
    let missing = || ApiError::new(StatusCode::NOT_FOUND, format!("no room {id:?}"));
    let id = RoomId::parse(id).ok_or_else(missing)?;
    match state.rooms.locate(&id) {
        Located::Here(room) => Ok(room),
        Located::Nowhere => Err(missing()),
    }
}

/// Checks the admin secret when there is one: `Ok(true)` for the admin, `Ok(false)` when the
/// server has no secret (anyone may, within limits), 401 otherwise.
fn admin(state: &AppState, headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(secret) = &state.config.admin_secret else {
        return Ok(false);
    };
    if bearer_is(headers, secret) {
        Ok(true)
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this needs Authorization: Bearer <the server's admin secret>",
        ))
    }
}

/// Whether the request carries the admin secret (matchmaking is open to all; the admin
/// only skips the creation limit).
fn admin_optional(state: &AppState, headers: &HeaderMap) -> bool {
    state
        .config
        .admin_secret
        .as_ref()
        .is_some_and(|secret| bearer_is(headers, secret))
}

fn bearer_is(headers: &HeaderMap, secret: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Compared in constant time for a given length (the length is no secret worth keeping).
    given.len() == secret.len() && given.bytes().zip(secret.bytes()).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes within [`BODY_TIMEOUT`].
async fn read_json<T: DeserializeOwned>(req: Request) -> Result<T, ApiError> {
    let read = axum::body::to_bytes(req.into_body(), MAX_BODY);
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Err(_) => return Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "the body took too long")),
        Ok(Err(_)) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("bodies are at most {MAX_BODY} bytes"),
            ));
        }
        Ok(Ok(bytes)) => bytes,
    };
    serde_json::from_slice(&bytes).map_err(|err| ApiError::bad(format!("bad JSON body: {err}")))
}
