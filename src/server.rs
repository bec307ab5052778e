//! The HTTP front: one port for the lobby and the rooms API, players, spectators and metrics.
//!
//! [`Server::new`] takes an already-bound listener, so tests bind `127.0.0.1:0` and read the
//! port back; `main` binds the configured address. [`Server::run`] opens the default room,
//! serves until its cancellation token fires, then ends every room (players get 1001,
//! spectators a `shutdown` event) and waits for every task for at most `--shutdown-grace`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::time::{self, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::http::ConnectionPlace;
use crate::metrics::{CloseReason, Metrics};
use crate::origin::{self, Origin};
use crate::room::{Opener, RoomId, Settings};
use crate::rooms::Rooms;
use crate::rooms::registry::Games;
use crate::socket::{self, PlayerSocket};
use crate::spectators::places::SpectatorPlaces;
use crate::state::{AppState, RoomAt};
use crate::{api, http, session, spectators, web};

const LOBBY: &str = include_str!("lobby.html");

/// What the `tickcast` binary does, for a binary of your own that serves your games: parses
/// the flags (`--help`; `--game` names the default room's game), logs to stderr (filtered by
/// `RUST_LOG`, `info` by default), then [`serve`]s until ctrl-c or SIGTERM.
pub async fn main_with(games: Games) -> anyhow::Result<()> {
    let config = <Config as clap::Parser>::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    serve(config, games).await
}

/// Serves `games` the way the `tickcast` binary does: binds `--bind`, logs where the rooms and
/// the default room's page are, and serves until ctrl-c or SIGTERM, then shuts down in order.
/// A game of your own is served with `serve(config, games)` after [`Games::register`].
pub async fn serve(config: Config, games: Games) -> anyhow::Result<()> {
    if let Some(url) = &config.redis {
        crate::cluster::reachable(url).await?;
    }
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let server = Server::with_games(listener, config.clone(), games);
    let addr = server.local_addr()?;
    match (server.seed(), server.default_room_id()) {
        (Some(seed), Some(room)) => tracing::info!(
            game = config.game,
            tick_hz = config.tick_hz,
            seed,
            "tickcast listening: rooms at http://{addr}/ , the default room at http://{addr}/rooms/{room}/ , \
             play it at http://{addr}/play , players connect to ws://{addr}/ws"
        ),
        _ => tracing::info!("tickcast listening: rooms at http://{addr}/ (no default room)"),
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    server.run(shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Cancels `shutdown` on ctrl-c or SIGTERM.
async fn signal_shutdown(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("ctrl-c: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
    shutdown.cancel();
}

/// A tickcast server on a bound listener, ready to run.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    /// The default room's settings, opened by `run` (unless `--no-default-room`).
    default_room: Option<Settings>,
    /// This node's id in its cluster (with `--redis`).
    node: Option<String>,
}

impl Server {
    /// Prepares a server on `listener` with the built-in games. The default room's seed is
    /// drawn now (from `--seed`, else at random), so it can be logged before the server runs.
    pub fn new(listener: TcpListener, config: Config) -> Self {
        Self::with_games(listener, config, Games::builtin())
    }

    /// [`Server::new`] with these games (e.g. the built-in ones and your own, see
    /// [`Games::register`]); `--game` names the default room's.
    pub fn with_games(listener: TcpListener, config: Config, games: Games) -> Self {
        let metrics = Arc::new(Metrics::new());
        let local = listener.local_addr().ok();
        let own = match (&config.public_origin, local) {
            (own, _) if !own.is_empty() => own.clone(),
            (_, Some(addr)) => Origin::local_forms(addr),
            (_, None) => Vec::new(),
        };
        let origins = origin::Policy::new(own, &config.allowed_origins);
        let public_url = match (&config.public_url, local) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, Some(addr)) => format!("http://{addr}"),
            (None, None) => "http://localhost".into(),
        };
        let default_room = (!config.no_default_room && !config.no_rooms).then(|| Settings::from_config(&config));
        let node = config
            .redis
            .as_ref()
            .map(|_| config.node_id.clone().unwrap_or_else(crate::cluster::generated_node_id));
        // In a cluster every node's default room needs an id of its own.
        let default_id = match &node {
            Some(node) => RoomId::parse(&format!("default-{node}")),
            None => RoomId::parse(RoomId::DEFAULT),
        }
        .unwrap_or_else(|| RoomId::parse(RoomId::DEFAULT).expect("the default room's id is valid"));
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let games = Arc::new(games);
        let state = Arc::new(AppState {
            cluster: std::sync::OnceLock::new(),
            rooms: Rooms::new(
                config.clone(),
                default_id,
                games.clone(),
                metrics.clone(),
                tasks.clone(),
                shutdown.clone(),
            ),
            games,
            origins,
            proxies: crate::budgets::TrustedProxies::new(config.trusted_proxies.clone()),
            public_url,
            spectator_places: SpectatorPlaces::new(&config),
            budgets: Default::default(),
            room_list: Default::default(),
            config,
            metrics,
            shutdown,
            tasks,
        });
        Self {
            listener,
            state,
            default_room,
            node,
        }
    }

    /// The id of the default room `run` opens (`None` without one).
    pub fn default_room_id(&self) -> Option<RoomId> {
        self.default_room
            .as_ref()
            .map(|_| self.state.rooms.default_id().clone())
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The server's metrics, live while it runs.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// The seed the default room's world is created from (`None` without a default room).
    pub fn seed(&self) -> Option<u64> {
        self.default_room.as_ref().map(|settings| settings.seed)
    }

    /// Serves until `shutdown` is cancelled, then shuts down in order. With `--redis`, joins
    /// the cluster first, and fails if its Redis does not answer.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            default_room,
            node,
        } = self;
        let config = &state.config;
        anyhow::ensure!(
            !config.no_rooms || config.redis.is_some(),
            "--no-rooms makes a spectator edge of a cluster node: it needs --redis"
        );
        if let (Some(url), Some(node)) = (&config.redis, node) {
            anyhow::ensure!(
                crate::cluster::valid_node_id(&node),
                "--node-id {node:?}: use 1 to 24 of A-Z a-z 0-9 _ -"
            );
            let cluster = Cluster::join(
                url,
                node,
                state.public_url.clone(),
                config.clone(),
                state.rooms.clone(),
                state.metrics.clone(),
                state.tasks.clone(),
                state.shutdown.clone(),
            )
            .await?;
            let _ = state.cluster.set(cluster);
        }
        if let Some(settings) = default_room {
            let id = state.rooms.default_id().clone();
            let room = state.rooms.create(settings, Some(id), Opener::server())?;
            if let Some(cluster) = state.cluster() {
                cluster.adopt(&room).await;
            }
        }
        let tasks = state.tasks.clone();
        let inner = state.shutdown.clone();
        let router = app(state.clone());
        let (max_connections, head_timeout) = (state.config.max_connections(), state.config.head_timeout);
        let raw = Arc::new(spectators::RawEvents(state.clone()));
        tasks.spawn(http::serve(
            listener,
            http::Routes { router, raw },
            max_connections,
            head_timeout,
            state.metrics.clone(),
            inner.clone(),
            tasks.clone(),
        ));
        shutdown.cancelled().await;
        // From here on everything watches `inner`: the accept loop stops, each connection
        // finishes its current response, every room ends (players get 1001, spectators a
        // `shutdown` event). Whatever a stalled peer holds open is left at the deadline.
        inner.cancel();
        if let Some(cluster) = state.cluster() {
            // The node and its rooms leave the directory at once, not at their expiry.
            cluster.leave().await;
        }
        tasks.close();
        let grace = state.config.shutdown_grace;
        if time::timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!(
                left = tasks.len(),
                ?grace,
                "connections still open at the shutdown deadline"
            );
        }
        Ok(())
    }
}

/// The routes, on shared state. Built apart from [`Server::run`] so it reads in one place.
fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(lobby))
        .route("/rooms", get(api::list).post(api::create))
        .route("/rooms/{id}", get(api::show).delete(api::close))
        .route("/matchmake", post(api::matchmake))
        .route("/rooms/{id}/", get(spectators::page))
        .route("/rooms/{id}/play", get(web::play))
        .route("/rooms/{id}/ws", get(player_upgrade))
        .route("/rooms/{id}/events", get(spectators::events))
        .route("/rooms/{id}/poll", get(spectators::poll))
        .route("/rooms/{id}/state", get(spectators::current_state))
        // The default room, where a single-match server always had its match.
        .route("/ws", get(player_upgrade))
        .route("/play", get(web::play))
        .route("/events", get(spectators::events))
        .route("/poll", get(spectators::poll))
        .route("/state", get(spectators::current_state))
        .route("/metrics", get(metrics))
        .route("/tickcast.js", get(web::client))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: try /, /rooms, /rooms/{id}/ws, /rooms/{id}/events, /ws or /metrics\n",
            )
        })
        .with_state(state)
}

/// `GET /`: the lobby, a live list of the public rooms (embedded in the binary).
async fn lobby() -> Html<&'static str> {
    Html(LOBBY)
}

async fn player_upgrade(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(state): State<Arc<AppState>>,
    RoomAt(room): RoomAt,
    req: Request,
) -> Response {
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
    tasks.spawn(async move {
        match PlayerSocket::open(upgrade).await {
            Ok(socket) => session::run(socket, peer, state, room, upgraded, place).await,
            Err(err) => tracing::debug!(%peer, %err, "upgrade failed"),
        }
    });
    response
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
