//! The rooms API, JSON over HTTP: list, show, create and close rooms, and matchmaking.
//!
//! - `GET /rooms?limit=&cursor=&game=&joinable=&labels=k:v,…`: the public rooms, oldest first,
//!   a page at a time, each with its game's labels ([`listing`]). `GET /rooms/{id}`: one room
//!   (private ones too: knowing the id is the permission), with its last match's results; a
//!   room that closed after its match answers 410 with them for a while.
//! - `POST /rooms` `{"game", "tick_hz"?, "max_players"?, "seed"?, "private"?, "options"?,
//!   "after_match"?, "reconnect_grace"?, "view_radius"?}`: 201 with the new room and its `key`, given only here (`options` checked
//!   against the game's `room_options`). `DELETE /rooms/{id}` with `Authorization: Bearer <the
//!   room's key or the admin secret>`: 204; its players get 1001 "room closed", its spectators
//!   a final `closed` event.
//! - `POST /matchmake` `{"game", "name", "identity"?, "options"?, "filter"?}`: a place held for
//!   the name in a public room of that game whose labels match `filter` (the one holding a place
//!   for it already, else the fullest), or in a new room opened with `filter` as its room
//!   options; `options` (checked against the game's join options) come back for the hello. When
//!   the server requires join tokens, the caller proves the name (an identity token, or the
//!   admin secret) and the answer carries a join token for that room and name.
//!
//! Who may do what, and what callers without a credential may take, is [`guard`]'s: every
//! write must be JSON from no page or one of our origins, the admin has no budget, anonymous
//! callers have budgets per address. Pages on the origins that may open player sockets may
//! read the answers (CORS, preflights included: `cors`).
//!
//! In a cluster (`--redis`) every one of these answers for the whole cluster, on any node: a
//! new room goes to the least-loaded node (through Redis, `crate::cluster`), a room is found
//! and closed wherever it lives, and each room says which node owns it (`node`) and where its
//! players connect (`ws`, on the owner).
//!
//! Every error is a status with `{"error": "<what went wrong>"}`. Request bodies are at most
//! [`MAX_BODY`] bytes and must arrive within [`BODY_TIMEOUT`].

mod cors;
pub(crate) mod guard;
pub(crate) mod listing;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use tokio::time::Instant;

use self::guard::{ANONYMOUS_MAX_TICK_HZ, Budgets, Caller, same_site_write};
use self::listing::{ListQuery, RoomList};
use crate::access::budgets::HoldClaim;
use crate::auth;
use crate::cluster::directory::RoomRecord;
use crate::cluster::{Placed, Refusal};
use crate::config::MAX_RECONNECT_GRACE;
use crate::protocol::rooms_api::{CreatedRoom, HeldPlace, Labels, MatchmakeRequest, NewRoom, RoomId, RoomInfo};
use crate::protocol::{MAX_NAME_LEN, Options, Param, ParamType, Schema, Value, unix_micros};
use crate::room::places::HOLD_FOR;
use crate::room::{OpenedBy, Opener, RoomKey, Settings};
use crate::rooms::CreateError;
use crate::state::AppState;

/// What the rooms API's handlers share: the server's state, the budgets of callers without a
/// credential, and the room list.
pub(crate) struct Api {
    pub(crate) app: Arc<AppState>,
    budgets: Budgets,
    list: RoomList,
}

/// The rooms API's routes.
pub(crate) fn router(app: Arc<AppState>) -> Router {
    let api = Arc::new(Api {
        app: app.clone(),
        budgets: Budgets::default(),
        list: RoomList::default(),
    });
    Router::new()
        .route("/rooms", get(list).post(create))
        .route("/rooms/{id}", get(show).delete(close))
        .route("/matchmake", post(matchmake))
        .with_state(api)
        // Around each route: it answers the preflights the routes' methods do not take.
        .layer(axum::middleware::from_fn_with_state(app, cors::cors))
}

/// The largest request body accepted.
pub(crate) const MAX_BODY: usize = 4096;
/// How long a request body may take to arrive (the head has its own `--head-timeout`).
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed API request: a status and what went wrong.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    /// What `Retry-After` says, when waiting helps (a 503 says 5 s unless told otherwise).
    retry_after: Option<Duration>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Says when to try again: a client that waits this long is not refused for the same reason.
    pub(crate) fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }
}

impl From<CreateError> for ApiError {
    fn from(err: CreateError) -> Self {
        let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        Self::new(status, err.to_string()).unavailable_for(UNAVAILABLE_FOR)
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        Self::new(status, refusal.message).unavailable_for(UNAVAILABLE_FOR)
    }
}

/// What `Retry-After` says of a 503 that cannot tell better (the server is full, or the
/// cluster's Redis is away).
const UNAVAILABLE_FOR: Duration = Duration::from_secs(5);

impl ApiError {
    /// For a 503: try again after `wait`.
    fn unavailable_for(self, wait: Duration) -> Self {
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE => self.retry_after(wait),
            _ => self,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": &self.message }));
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                // Whole seconds, rounded up: never earlier than the limit allows. A refusal that
                // waiting does not cure (rooms of this address still open) says none.
                if let Some(wait) = self.retry_after {
                    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                    headers.insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
                }
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// A room as the API shows it: its summary and where to reach it.
pub(crate) fn room_json(state: &AppState, record: RoomRecord) -> RoomInfo {
    RoomInfo {
        ws: AppState::player_url_at(&record.url, &record.summary.id),
        page: state.page_url(&record.summary.id),
        node: (!record.node.is_empty()).then_some(record.node),
        summary: record.summary,
        last_results: record.last_results,
    }
}

/// The record of a room wherever it lives.
fn record_of(state: &AppState, placed: Placed) -> RoomRecord {
    match placed {
        Placed::Here(room) => state.record(&room),
        Placed::There(record) => *record,
    }
}

/// `GET /rooms`: a page of the public rooms ([`listing`]).
pub(crate) async fn list(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    if Caller::of(&api.app, &headers) == Caller::Anonymous {
        api.budgets.listing(api.app.client_ip(peer, &headers), Instant::now())?;
    }
    let body = api.list.page(&api.app, &query).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /rooms/{id}`; a room that closed after its match is `410 Gone` for a while, with its
/// results.
pub(crate) async fn show(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let state = &api.app;
    let placed = match find(state, &id).await {
        Ok(placed) => placed,
        Err(err) if err.status == StatusCode::NOT_FOUND => {
            let ended = RoomId::parse(&id).and_then(|id| state.rooms.ended_results(&id));
            let Some(results) = ended else { return Err(err) };
            let body = serde_json::json!({
                "error": format!("room {id} has ended: its match is over"),
                "last_results": *results,
            });
            return Ok((StatusCode::GONE, Json(body)).into_response());
        }
        Err(err) => return Err(err),
    };
    Ok(Json(room_json(state, record_of(state, placed))).into_response())
}

/// `POST /rooms`.
pub(crate) async fn create(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Result<Response, ApiError> {
    let state = &api.app;
    same_site_write(state, req.headers())?;
    let caller = Caller::of(state, req.headers());
    let client = state.client_ip(peer, req.headers());
    if caller == Caller::Anonymous && !state.config.anonymous_may_create() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "creating rooms needs Authorization: Bearer <the server's admin secret>",
        ));
    }
    let body: NewRoom = read_json(req).await?;
    let defaults = settings(state, &body.game, caller)?;
    let options = checked(&schema_of(state, &defaults).room_options, &body.options, "room option")?;
    let (max_hz, max) = (max_tick_hz(caller), state.config.max_players);
    let settings = Settings {
        tick_hz: match body.tick_hz {
            Some(hz) if (1..=max_hz).contains(&hz) => hz,
            Some(hz) if caller == Caller::Anonymous && (1..=240).contains(&hz) => {
                return Err(ApiError::bad(format!(
                    "tick_hz {hz}: rooms created without a credential tick at most {ANONYMOUS_MAX_TICK_HZ} times a second"
                )));
            }
            Some(hz) => return Err(ApiError::bad(format!("tick_hz {hz} is outside 1..=240"))),
            None => defaults.tick_hz,
        },
        max_players: match body.max_players {
            Some(n) if (1..=max).contains(&n) => n,
            Some(n) => return Err(ApiError::bad(format!("max_players {n} is outside 1..={max}"))),
            None => defaults.max_players,
        },
        seed: body.seed.unwrap_or(defaults.seed),
        private: body.private,
        options,
        after_match: body.after_match.unwrap_or_default(),
        reconnect_grace_ms: match body.reconnect_grace {
            Some(secs) if u64::from(secs) <= MAX_RECONNECT_GRACE.as_secs() => secs * 1000,
            Some(secs) => {
                return Err(ApiError::bad(format!(
                    "reconnect_grace {secs} is outside 0..={} seconds",
                    MAX_RECONNECT_GRACE.as_secs()
                )));
            }
            None => defaults.reconnect_grace_ms,
        },
        view_radius: match body.view_radius {
            Some(r) if (1..=defaults.world_size).contains(&r) => Some(r),
            Some(r) => {
                return Err(ApiError::bad(format!(
                    "view_radius {r} is outside 1..={} (the world's size)",
                    defaults.world_size
                )));
            }
            None => defaults.view_radius,
        },
        ..defaults
    };
    let key = RoomKey::random();
    let opener = opener(&api, caller, client, Some(key.clone()))?;
    let placed = match state.cluster() {
        Some(cluster) => cluster.place(settings, None, opener).await?.0,
        None => Placed::Here(state.rooms.create(settings, None, opener)?),
    };
    let room = room_json(state, record_of(state, placed));
    let created = CreatedRoom {
        room,
        key: key.as_str().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `DELETE /rooms/{id}`: with the room's key or the admin secret.
pub(crate) async fn close(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let state = &api.app;
    same_site_write(state, &headers)?;
    let Some(given) = guard::bearer(&headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "closing a room needs Authorization: Bearer <the room's key or the server's admin secret>",
        ));
    };
    let admin = Caller::of(state, &headers) == Caller::Admin;
    let refused = |id: &RoomId| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!("that credential does not close room {id}: it takes the room's key or the admin secret"),
        )
    };
    match find(state, &id).await? {
        Placed::Here(room) if room.is_default() && admin => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "the default room cannot be closed: start the server with --no-default-room",
            ));
        }
        Placed::Here(room) if admin || room.opens_with(given) => {
            state.rooms.close(room.id());
        }
        Placed::Here(room) => return Err(refused(room.id())),
        Placed::There(record) => {
            let cluster = state.cluster().expect("rooms elsewhere only in a cluster");
            cluster.close(&record, admin, given).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /matchmake`.
pub(crate) async fn matchmake(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Result<Response, ApiError> {
    let state = &api.app;
    same_site_write(state, req.headers())?;
    let caller = Caller::of(state, req.headers());
    let client = state.client_ip(peer, req.headers());
    let body: MatchmakeRequest = read_json(req).await?;
    if body.name.len() > MAX_NAME_LEN || body.name.chars().any(char::is_control) {
        return Err(ApiError::bad(format!(
            "name must be at most {MAX_NAME_LEN} bytes, without control characters"
        )));
    }
    let unix_now = unix_micros() / 1_000_000;
    if let (Some(secret), Caller::Anonymous) = (&state.config.auth_secret, caller) {
        // Tokens are on: a join token says who may play, so matchmaking hands one only to a
        // caller that proves the name.
        let identity = body.identity.as_deref().unwrap_or_default();
        auth::verify_identity(secret.as_bytes(), &body.name, identity, unix_now).map_err(|err| {
            let why = match err {
                auth::TokenError::Missing => "none given",
                auth::TokenError::Invalid => "it is not for this name",
                auth::TokenError::Expired => "it has expired",
                _ => "it is malformed",
            };
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("matchmaking needs an identity token for this name (README, \"Identity tokens\"): {why}"),
            )
        })?;
    }
    let mut settings = settings(state, &body.game, caller)?;
    let schema = schema_of(state, &settings);
    let options = checked(&schema.options, &body.options, "option")?;
    // A room opened for this request has the labels asked for: its room options are them.
    settings.options = filter_options(&schema, &body.filter)?;
    let filter = &body.filter;
    let now = Instant::now();
    let claim = match caller {
        Caller::Admin => HoldClaim::unbudgeted(),
        Caller::Anonymous => api.budgets.matchmake(client, now, now + HOLD_FOR)?,
    };
    let (record, until, created) = match state.cluster() {
        Some(_) => matchmake_in_cluster(&api, settings, filter, &body.name, caller, client, &claim).await?,
        None => match state
            .rooms
            .hold_in_open_room(&settings.game, filter, &body.name, &claim, now)
        {
            Some((room, until)) => (state.record(&room), until, false),
            None => {
                let opener = opener(&api, caller, client, None).map_err(|err| no_open_room(&settings, err))?;
                let room = state.rooms.create(settings, None, opener)?;
                let until = room
                    .places()
                    .hold(&body.name, now, Some(claim))
                    .map_err(|err| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string()))?;
                (state.record(&room), until, true)
            }
        },
    };
    // Both clocks run together: the sum is the same instant however late this runs, so a hold
    // asked for again says the same second.
    let expires =
        (unix_micros() + until.saturating_duration_since(Instant::now()).as_micros() as u64).div_ceil(1_000_000);
    let id = record.summary.id;
    let token = state
        .config
        .auth_secret
        .as_ref()
        .map(|secret| auth::mint(secret.as_bytes(), id.as_str(), &body.name, expires));
    let held = HeldPlace {
        ws: AppState::player_url_at(&record.url, &id),
        page: state.page_url(&id),
        room: id,
        created,
        token,
        expires,
        options,
    };
    Ok(Json(held).into_response())
}

/// How many of the fullest open rooms matchmaking tries before it opens a new one.
const MATCHMAKE_TRIES: usize = 3;

/// Matchmaking over the whole cluster: a place in one of the fullest public rooms of the game
/// that has one (held by the room's owner), else a new room on the least-loaded node.
async fn matchmake_in_cluster(
    api: &Api,
    settings: Settings,
    filter: &Labels,
    name: &str,
    caller: Caller,
    client: IpAddr,
    claim: &HoldClaim,
) -> Result<(RoomRecord, Instant, bool), ApiError> {
    let state = &api.app;
    let cluster = state.cluster().expect("called in a cluster");
    let now = Instant::now();
    if let Some((room, until)) = state.rooms.hold_in_open_room(&settings.game, filter, name, claim, now) {
        return Ok((state.record(&room), until, false));
    }
    let mut open: Vec<RoomRecord> = cluster
        .list()
        .await?
        .into_iter()
        .filter(|r| {
            !r.summary.private
                && r.summary.joinable
                && r.summary.game == settings.game
                && r.summary.labels.matches(filter)
                && r.node != cluster.node()
        })
        .collect();
    open.sort_by_key(|r| {
        (
            r.summary.max_players.saturating_sub(r.summary.players),
            r.summary.created,
        )
    });
    for record in open.into_iter().take(MATCHMAKE_TRIES) {
        if let Some((held, until)) = cluster.hold(&record, name).await? {
            if caller == Caller::Anonymous {
                api.budgets.held_elsewhere(client, claim);
            }
            return Ok((held, until, false));
        }
    }
    let opener = opener(api, caller, client, None).map_err(|err| no_open_room(&settings, err))?;
    let (placed, until) = cluster.place(settings, Some((name, claim.clone())), opener).await?;
    if matches!(placed, Placed::There(_)) && caller == Caller::Anonymous {
        api.budgets.held_elsewhere(client, claim);
    }
    let until = until.unwrap_or(now + HOLD_FOR);
    Ok((record_of(state, placed), until, true))
}

/// Who opens a room for `caller`: the admin, or an anonymous caller within its budgets (and
/// only where anonymous callers may create rooms).
fn opener(api: &Api, caller: Caller, client: IpAddr, key: Option<RoomKey>) -> Result<Opener, ApiError> {
    let state = &api.app;
    match caller {
        Caller::Admin => Ok(Opener {
            by: OpenedBy::Admin,
            key,
            budget: None,
        }),
        Caller::Anonymous if !state.config.anonymous_may_create() => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "rooms are opened by the admin here: this needs Authorization: Bearer <the server's admin secret>",
        )),
        Caller::Anonymous => {
            // Checked before any budget is spent (the room's own creation checks it again).
            if state.cluster().is_none() && state.rooms.anonymous_full() {
                return Err(CreateError::AnonymousFull(state.config.max_anonymous_rooms()).into());
            }
            Ok(Opener {
                by: OpenedBy::Anonymous,
                key,
                budget: Some(api.budgets.room(client, Instant::now())?),
            })
        }
    }
}

/// Matchmaking found no place and may not open a room: say which, and when to try again.
fn no_open_room(settings: &Settings, err: ApiError) -> ApiError {
    if err.status == StatusCode::UNAUTHORIZED {
        let message = format!(
            "no open room of {} has a place, and rooms are opened by the admin here: try again shortly",
            settings.game
        );
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).retry_after(Duration::from_secs(5));
    }
    err
}

/// The fastest tick rate `caller` may ask a room for.
fn max_tick_hz(caller: Caller) -> u32 {
    match caller {
        Caller::Admin => 240,
        Caller::Anonymous => ANONYMOUS_MAX_TICK_HZ,
    }
}

/// The settings of a new room of `game` for `caller`: the server's flags (an anonymous
/// caller's room at most [`ANONYMOUS_MAX_TICK_HZ`]), a fresh seed.
fn settings(state: &AppState, game: &str, caller: Caller) -> Result<Settings, ApiError> {
    if state.games.get(game).is_none() {
        let known = state.games.names().join(", ");
        return Err(CreateError::UnknownGame(game.into(), known).into());
    }
    let defaults = state.config.room_settings();
    Ok(Settings {
        game: game.into(),
        seed: rand::random(),
        tick_hz: defaults.tick_hz.min(max_tick_hz(caller)),
        ..defaults
    })
}

/// The schema of the rooms `settings` make.
fn schema_of(state: &AppState, settings: &Settings) -> Arc<Schema> {
    // `settings` came from `settings`, which checked the game is known.
    state
        .games
        .get(&settings.game)
        .expect("a known game")
        .schema_for(&settings.schema_config())
}

/// `given` checked against `params` (a 400 naming what is wrong: `room option kills = 0 is
/// outside [1, 1000]`).
fn checked(params: &[Param], given: &Options, what: &str) -> Result<Options, ApiError> {
    let given = given.iter().map(|(k, v)| (k.to_owned(), v.clone()));
    Options::checked(params, given).map_err(|why| ApiError::bad(why.replacen("option", what, 1)))
}

/// A matchmaking filter as the room options of a room opened for it: each label must be a
/// room option of the game, its value read as the option's type.
fn filter_options(schema: &Schema, filter: &Labels) -> Result<Options, ApiError> {
    let mut given = Vec::new();
    for (key, value) in filter.iter() {
        let Some(param) = schema.room_options.iter().find(|p| p.name == key) else {
            return Err(ApiError::bad(format!(
                "filter {key}: {} has no room option {key}, so no room could be opened with that label",
                schema.game
            )));
        };
        let value = match param.ty {
            ParamType::Int { .. } => Value::Int(
                value
                    .parse()
                    .map_err(|_| ApiError::bad(format!("filter {key}: {value:?} is not a number")))?,
            ),
            ParamType::Text { .. } => Value::text(value),
        };
        given.push((key.to_owned(), value));
    }
    Options::checked(&schema.room_options, given).map_err(|why| ApiError::bad(format!("filter: {why}")))
}

async fn find(state: &AppState, id: &str) -> Result<Placed, ApiError> {
    let missing = || ApiError::new(StatusCode::NOT_FOUND, format!("no room {id:?}"));
    let id = RoomId::parse(id).ok_or_else(missing)?;
    state.locate(&id).await?.ok_or_else(missing)
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
