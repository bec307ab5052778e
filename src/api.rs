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
//! In a cluster (`--redis`) every one of these answers for the whole cluster, on any node: a
//! new room goes to the least-loaded node (through Redis, `crate::cluster`), a room is found
//! and closed wherever it lives, and each room says which node owns it (`node`) and where its
//! players connect (`ws`, on the owner).
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
use crate::cluster::directory::RoomRecord;
use crate::cluster::{Placed, Refusal};
use crate::protocol::{MAX_NAME_LEN, unix_micros};
use crate::room::seats::HOLD_FOR;
use crate::room::{Info, RoomId, Settings};
use crate::rooms::CreateError;
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
        let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        Self::new(status, err.to_string())
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        Self::new(status, refusal.message)
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
    /// The player URL (WebSocket), on the node that owns the room.
    ws: String,
    /// The spectator page, on the node answering (any node serves any room's spectators).
    page: String,
    /// The node that owns the room (in a cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
}

fn room_json(state: &AppState, record: RoomRecord) -> RoomJson {
    RoomJson {
        ws: AppState::player_url_at(&record.url, &record.info.id),
        page: state.page_url(&record.info.id),
        node: (!record.node.is_empty()).then_some(record.node),
        info: record.info,
    }
}

/// The record of a room wherever it lives.
fn record_of(state: &AppState, placed: Placed) -> RoomRecord {
    match placed {
        Placed::Here(room) => state.record(&room),
        Placed::There(record) => record,
    }
}

/// `GET /rooms`.
pub(crate) async fn list(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let records = match state.cluster() {
        Some(cluster) => cluster.list().await?,
        None => state.rooms.all().iter().map(|room| state.record(room)).collect(),
    };
    let rooms: Vec<_> = records
        .into_iter()
        .filter(|record| !record.info.private)
        .map(|record| room_json(&state, record))
        .collect();
    Ok(Json(serde_json::json!({ "rooms": rooms })).into_response())
}

/// `GET /rooms/{id}`.
pub(crate) async fn show(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let placed = find(&state, &id).await?;
    Ok(Json(room_json(&state, record_of(&state, placed))).into_response())
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
    let placed = match state.cluster() {
        Some(cluster) => cluster.place(settings, None).await?,
        None => Placed::Here(state.rooms.create(settings, None)?),
    };
    let record = record_of(&state, placed);
    Ok((StatusCode::CREATED, Json(room_json(&state, record))).into_response())
}

/// `DELETE /rooms/{id}`.
pub(crate) async fn close(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&state, &headers)?;
    match find(&state, &id).await? {
        Placed::Here(room) if room.is_default() => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "the default room cannot be closed: start the server with --no-default-room",
            ));
        }
        Placed::Here(room) => {
            state.rooms.close(room.id());
        }
        Placed::There(record) => {
            let cluster = state.cluster().expect("rooms elsewhere only in a cluster");
            cluster.close(&record).await?;
        }
    }
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
    let (record, created) = match state.cluster() {
        Some(_) => matchmake_in_cluster(&state, settings, &body.name, may_create).await?,
        None => {
            let (room, created) = state.rooms.matchmake(settings, &body.name, may_create)?;
            (state.record(&room), created)
        }
    };
    let expires = unix_micros() / 1_000_000 + HOLD_FOR.as_secs();
    let id = record.info.id;
    let token = state
        .config
        .auth_secret
        .as_ref()
        .map(|secret| auth::mint(secret.as_bytes(), id.as_str(), &body.name, expires));
    let seat = Seat {
        ws: AppState::player_url_at(&record.url, &id),
        page: state.page_url(&id),
        room: id,
        created,
        token,
        expires,
    };
    Ok(Json(seat).into_response())
}

/// How many of the fullest open rooms matchmaking tries before it opens a new one.
const MATCHMAKE_TRIES: usize = 3;

/// Matchmaking over the whole cluster: a place in one of the fullest public rooms of the game
/// that has one (held by the room's owner), else a new room on the least-loaded node.
async fn matchmake_in_cluster(
    state: &AppState,
    settings: Settings,
    name: &str,
    may_create: impl FnOnce() -> bool,
) -> Result<(RoomRecord, bool), ApiError> {
    let cluster = state.cluster().expect("called in a cluster");
    let mut open: Vec<RoomRecord> = cluster
        .list()
        .await?
        .into_iter()
        .filter(|r| !r.info.private && r.info.joinable && r.info.game == settings.game)
        .collect();
    open.sort_by_key(|r| r.info.max_players.saturating_sub(r.info.players));
    for record in open.into_iter().take(MATCHMAKE_TRIES) {
        if record.node == cluster.node() {
            match state.rooms.get(&record.info.id) {
                Some(room) if room.seats().hold(name, Instant::now()) => return Ok((state.record(&room), false)),
                _ => continue,
            }
        }
        if let Some(held) = cluster.hold(&record, name).await? {
            return Ok((held, false));
        }
    }
    if !may_create() {
        return Err(CreateError::RateLimited.into());
    }
    let placed = cluster.place(settings, Some(name)).await?;
    Ok((record_of(state, placed), true))
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

async fn find(state: &AppState, id: &str) -> Result<Placed, ApiError> {
    let missing = || ApiError::new(StatusCode::NOT_FOUND, format!("no room {id:?}"));
    let id = RoomId::parse(id).ok_or_else(missing)?;
    state.locate(&id).await?.ok_or_else(missing)
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
