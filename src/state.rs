//! What every request handler and session shares: the server's state, one handle.
//!
//! A module of its own so that the routes (`server`), the sessions, the spectator endpoints and
//! the rooms API all depend on it and not on each other.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::extract::{FromRef, FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::budgets::TrustedProxies;
use crate::access::origin;
use crate::cluster::directory::RoomRecord;
use crate::cluster::glance::Seen;
use crate::cluster::{Cluster, Placed, Refusal};
use crate::config::Config;
use crate::feed::Feed;
use crate::metrics::Metrics;
use crate::room::{Room, RoomId};
use crate::rooms::Rooms;
use crate::rooms::registry::SharedGames;
use crate::runtime::Runtime;

/// The server's shared state.
pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) rooms: Arc<Rooms>,
    /// This node's part in a cluster, once joined (with `--redis` only).
    pub(crate) cluster: OnceLock<Arc<Cluster>>,
    /// The games rooms can play.
    pub(crate) games: SharedGames,
    /// Which web origins may open player sockets.
    pub(crate) origins: origin::Policy,
    /// Proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`).
    pub(crate) proxies: TrustedProxies,
    /// The base URL clients reach this server at (`--public-url`), without a trailing `/`.
    pub(crate) public_url: String,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

impl AppState {
    /// The client address of a request from `peer` with `headers` (the forwarded one, through
    /// a trusted proxy).
    pub(crate) fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        self.proxies.client(peer.ip(), forwarded)
    }

    /// The URL a player opens to join room `id`, on the node at `base` (a base URL).
    pub(crate) fn player_url_at(base: &str, id: &RoomId) -> String {
        let ws = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            format!("ws://{}", base.trim_start_matches("http://"))
        };
        format!("{ws}/rooms/{id}/ws")
    }

    /// The URL of room `id`'s spectator page on this node (any node serves any room's).
    pub(crate) fn page_url(&self, id: &RoomId) -> String {
        format!("{}/rooms/{id}/", self.public_url)
    }

    /// What the server's long-lived tasks run under.
    pub(crate) fn runtime(&self) -> Runtime {
        Runtime {
            metrics: self.metrics.clone(),
            tasks: self.tasks.clone(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// The cluster, when this node is in one.
    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    /// Where room `id` lives: here, on another node of the cluster, or nowhere (`Ok(None)`).
    pub(crate) async fn locate(&self, id: &RoomId) -> Result<Option<Placed>, Refusal> {
        match self.cluster() {
            Some(cluster) => cluster.locate(id).await,
            None => Ok(self.rooms.get(id).map(Placed::Here)),
        }
    }

    /// A room of this node as the directory describes it.
    pub(crate) fn record(&self, room: &Room) -> RoomRecord {
        match self.cluster() {
            Some(cluster) => cluster.room_record(room),
            None => RoomRecord {
                node: String::new(),
                url: self.public_url.clone(),
                summary: room.summary(),
                created_us: room.created_us(),
                last_results: room.results().map(|r| (*r).clone()),
            },
        }
    }
}

impl AppState {
    /// Where the room named `named` lives (the default room when `None`: the old paths), or
    /// why it cannot be found (404, or 503 when the cluster's directory is away).
    pub(crate) async fn place_named(&self, named: Option<&str>) -> Result<Placed, Refusal> {
        let not_found = |message: String| Refusal { status: 404, message };
        let id = match named {
            None => self.rooms.default_id().clone(),
            Some(text) => RoomId::parse(text).ok_or_else(|| not_found(format!("no room {text:?}: see GET /rooms")))?,
        };
        match self.locate(&id).await? {
            Some(placed) => Ok(placed),
            None if named.is_none() => Err(not_found(
                "this server has no default room (it runs with --no-default-room or --no-rooms): see GET /rooms".into(),
            )),
            None => Err(not_found(format!("no room {id}: see GET /rooms"))),
        }
    }

    /// The spectator feed of the room named `named`: its own when it lives here, else (in a
    /// cluster) this node's copy, rebuilt from the room's stream.
    pub(crate) async fn feed_named(&self, named: Option<&str>) -> Result<Arc<Feed>, Refusal> {
        let placed = match self.place_named(named).await {
            Ok(placed) => placed,
            // A room that closed a moment ago: its last events, and its end, are still there.
            Err(refusal) => {
                let closed = named.and_then(RoomId::parse).and_then(|id| self.rooms.closed_feed(&id));
                return closed.ok_or(refusal);
            }
        };
        match placed {
            Placed::Here(room) => Ok(room.feed().clone()),
            Placed::There(record) => {
                let cluster = self.cluster().expect("rooms elsewhere only in a cluster");
                cluster.follow(&record).await
            }
        }
    }
}

impl AppState {
    /// What a poll of the room named `named` is answered with: its snapshot now (its own,
    /// this node's follower's, or a look at its stream: no poll starts a follower).
    pub(crate) async fn state_named(&self, named: Option<&str>) -> Result<Seen, Refusal> {
        match self.place_named(named).await? {
            Placed::Here(room) => Ok(Seen::State(room.feed().snapshot())),
            Placed::There(record) => {
                let cluster = self.cluster().expect("rooms elsewhere only in a cluster");
                cluster.glance(&record).await
            }
        }
    }
}

/// The room named by a request's path (`{id}`), or `None` for the old paths of the default room.
async fn named<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<Option<String>, Response> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(params
        .iter()
        .find(|(name, _)| *name == "id")
        .map(|(_, value)| value.to_owned()))
}

/// The room a player request is for, which must live on this node: an unknown room gets 404,
/// one on another node of the cluster 421 naming the node to connect to (no node carries
/// another's player traffic).
pub(crate) struct RoomAt(pub(crate) Arc<Room>);

/// Why a player request's room cannot be played here (as a response: the refusal's status and
/// message; a room on another node 421 with `Location`). The player handler answers a plain
/// GET with it as JSON instead.
#[derive(Debug)]
pub(crate) enum RoomRefused {
    /// No such room (404), or the cluster's directory is away (503).
    Unknown(Refusal),
    /// The room lives on another node: its player URL there.
    Elsewhere(Refusal, String),
    /// The request's path could not be read.
    Request(Response),
}

impl RoomRefused {
    /// The refusal, if the room is the reason.
    pub(crate) fn refusal(&self) -> Option<&Refusal> {
        match self {
            Self::Unknown(refusal) | Self::Elsewhere(refusal, _) => Some(refusal),
            Self::Request(_) => None,
        }
    }
}

impl IntoResponse for RoomRefused {
    fn into_response(self) -> Response {
        match self {
            Self::Unknown(refusal) => refused(&refusal),
            Self::Elsewhere(refusal, url) => {
                let message = format!("{}\n", refusal.message);
                (StatusCode::MISDIRECTED_REQUEST, [(header::LOCATION, url)], message).into_response()
            }
            Self::Request(response) => response,
        }
    }
}

impl<S> FromRequestParts<S> for RoomAt
where
    Arc<AppState>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = RoomRefused;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, RoomRefused> {
        let named = named(parts, state).await.map_err(RoomRefused::Request)?;
        let state = Arc::<AppState>::from_ref(state);
        match state
            .place_named(named.as_deref())
            .await
            .map_err(RoomRefused::Unknown)?
        {
            Placed::Here(room) => Ok(Self(room)),
            Placed::There(record) => {
                let url = AppState::player_url_at(&record.url, &record.summary.id);
                let message = format!(
                    "room {} is on node {}: connect to {url}",
                    record.summary.id, record.node
                );
                let refusal = Refusal::new(StatusCode::MISDIRECTED_REQUEST.as_u16(), message);
                Err(RoomRefused::Elsewhere(refusal, url))
            }
        }
    }
}

/// The spectator feed a request follows: the room's own when it lives here, else (in a
/// cluster) this node's copy of it, rebuilt from the room's stream.
pub(crate) struct FeedAt(pub(crate) Arc<Feed>);

impl<S> FromRequestParts<S> for FeedAt
where
    Arc<AppState>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let named = named(parts, state).await?;
        let state = Arc::<AppState>::from_ref(state);
        state
            .feed_named(named.as_deref())
            .await
            .map(Self)
            .map_err(|r| refused(&r))
    }
}

/// What a poll of a room's state is answered with (see [`AppState::state_named`]).
pub(crate) struct StateAt(pub(crate) Seen);

impl<S> FromRequestParts<S> for StateAt
where
    Arc<AppState>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let named = named(parts, state).await?;
        let state = Arc::<AppState>::from_ref(state);
        state
            .state_named(named.as_deref())
            .await
            .map(Self)
            .map_err(|r| refused(&r))
    }
}

/// A room that exists, wherever it lives (for its pages: nothing is followed).
pub(crate) struct KnownRoom;

impl<S> FromRequestParts<S> for KnownRoom
where
    Arc<AppState>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let named = named(parts, state).await?;
        let state = Arc::<AppState>::from_ref(state);
        state
            .place_named(named.as_deref())
            .await
            .map(|_| Self)
            .map_err(|r| refused(&r))
    }
}

/// A cluster refusal as a plain-text response (`503` with `Retry-After: 2`); long-polls
/// served raw answer it the same way.
pub(crate) fn refused(refusal: &Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = (status, format!("{}\n", refusal.message)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
    }
    response
}
