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
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::time::{self};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::origin::{self, Origin};
use crate::cluster::{Cluster, Node};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::room::{Opener, RoomId, Settings};
use crate::rooms::Rooms;
use crate::rooms::registry::Games;
use crate::runtime::Runtime;
use crate::state::AppState;
use crate::{api, http, players, spectators, web};

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
        let default_room = (!config.no_default_room && !config.no_rooms).then(|| config.room_settings());
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
                &config,
                default_id,
                games.clone(),
                Runtime {
                    metrics: metrics.clone(),
                    tasks: tasks.clone(),
                    shutdown: shutdown.clone(),
                },
            ),
            games,
            origins,
            proxies: crate::access::budgets::TrustedProxies::new(config.trusted_proxies.clone()),
            public_url,
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
            let node = Node {
                id: node,
                url: state.public_url.clone(),
                hosts_rooms: !config.no_rooms,
                max_rooms: config.max_rooms,
                max_followed_rooms: config.max_followed_rooms,
            };
            let cluster = Cluster::join(url, node, state.rooms.clone(), state.runtime()).await?;
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
        let (router, raw) = app(state.clone());
        let (max_connections, head_timeout) = (state.config.max_connections(), state.config.head_timeout);
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

/// The routes, each layer's with its own state: the rooms API, the spectators, the pages,
/// and here the players' sockets and the metrics. Returns the event streams served without
/// hyper, too.
fn app(state: Arc<AppState>) -> (Router, Arc<dyn http::RawRoute>) {
    let (spectating, raw) = spectators::router(state.clone());
    let router = Router::new()
        .route("/rooms/{id}/ws", get(players::upgrade))
        // The default room, where a single-match server always had its match.
        .route("/ws", get(players::upgrade))
        .route("/metrics", get(metrics))
        .with_state(state.clone())
        .merge(api::router(state.clone()))
        .merge(spectating)
        .merge(web::router(state))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: try /, /rooms, /rooms/{id}/ws, /rooms/{id}/events, /ws or /metrics\n",
            )
        });
    (router, raw)
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
