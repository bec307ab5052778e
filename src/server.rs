//! The HTTP front: one port for players (`/ws`), spectators (`/`, `/events`, `/poll`, `/state`)
//! and metrics (`/metrics`).
//!
//! [`Server::new`] takes an already-bound listener, so tests bind `127.0.0.1:0` and read the
//! port back; `main` binds the configured address. [`Server::run`] serves until its
//! cancellation token fires, then closes every player with 1001 and waits for their tasks for
//! at most `--shutdown-grace`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{self, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::feed::Feed;
use crate::http::ConnectionPlace;
use crate::metrics::{CloseReason, Metrics};
use crate::origin::{self, Origin};
use crate::socket::{self, PlayerSocket};
use crate::tick::{JoinRequest, TickClock, TickLoop};
use crate::{http, session, spectators};

/// Joins waiting for the next tick; a burst beyond this waits in its session (bounded by the
/// player cap), it is not dropped.
const JOIN_QUEUE: usize = 256;

/// What every request handler and session shares.
pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) clock: Arc<TickClock>,
    pub(crate) joins: mpsc::Sender<JoinRequest>,
    /// One permit per player place (`--max-players`).
    pub(crate) player_places: Arc<Semaphore>,
    /// One permit per spectator place (`--max-spectators`).
    pub(crate) spectator_places: Arc<Semaphore>,
    pub(crate) feed: Arc<Feed>,
    /// Which web origins may open player sockets.
    pub(crate) origins: origin::Policy,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

/// A tickcast server on a bound listener, ready to run.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    tick_loop: TickLoop,
    seed: u64,
}

impl Server {
    /// Prepares a server on `listener`. The world is created now, from `--seed` or a random one.
    pub fn new(listener: TcpListener, config: Config) -> Self {
        let seed = config.seed.unwrap_or_else(rand::random);
        let metrics = Arc::new(Metrics::new());
        let clock = Arc::new(TickClock::default());
        let (joins, join_rx) = mpsc::channel(JOIN_QUEUE);
        let tick_loop = TickLoop::new(&config, seed, join_rx, clock.clone(), metrics.clone());
        let own = match (&config.public_origin, listener.local_addr()) {
            (own, _) if !own.is_empty() => own.clone(),
            (_, Ok(addr)) => Origin::local_forms(addr),
            (_, Err(_)) => Vec::new(),
        };
        let origins = origin::Policy::new(own, &config.allowed_origins);
        let state = Arc::new(AppState {
            origins,
            player_places: Arc::new(Semaphore::new(config.max_players)),
            spectator_places: Arc::new(Semaphore::new(config.max_spectators)),
            feed: tick_loop.feed(),
            config,
            metrics,
            clock,
            joins,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        Self {
            listener,
            state,
            tick_loop,
            seed,
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The server's metrics, live while it runs.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// The seed the world was created from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Serves until `shutdown` is cancelled, then shuts down in order. Fails only if the tick
    /// loop dies (it never should): the server then shuts down rather than serve a frozen world.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            tick_loop,
            ..
        } = self;
        let tasks = state.tasks.clone();
        let inner = state.shutdown.clone();
        let mut ticking = tasks.spawn(tick_loop.run(inner.clone()));

        let router = app(state.clone());
        let (max_connections, head_timeout) = (state.config.max_connections(), state.config.head_timeout);
        let metrics = state.metrics.clone();
        tasks.spawn(http::serve(
            listener,
            router,
            max_connections,
            head_timeout,
            metrics,
            inner.clone(),
            tasks.clone(),
        ));
        let failure = tokio::select! {
            _ = shutdown.cancelled() => None,
            // The tick loop only returns once `inner` is cancelled; ending first is a bug.
            ended = &mut ticking => Some(match ended {
                Err(err) if err.is_panic() => anyhow::anyhow!("the tick loop panicked"),
                _ => anyhow::anyhow!("the tick loop stopped unexpectedly"),
            }),
        };
        // From here on everything watches `inner`: the accept loop stops, each connection
        // finishes its current response, players get 1001, spectators a `shutdown` event,
        // and the tick loop stops. Whatever a stalled peer holds open is left at the deadline.
        inner.cancel();
        tasks.close();
        let grace = state.config.shutdown_grace;
        if time::timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!(
                left = tasks.len(),
                ?grace,
                "connections still open at the shutdown deadline"
            );
        }
        failure.map_or(Ok(()), Err)
    }
}

/// The routes, on shared state. Built apart from [`Server::run`] so it reads in one place.
fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(spectators::page))
        .route("/events", get(spectators::events))
        .route("/poll", get(spectators::poll))
        .route("/state", get(spectators::current_state))
        .route("/ws", get(player_upgrade))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: try /, /events, /poll, /state, /ws or /metrics\n",
            )
        })
        .with_state(state)
}

async fn player_upgrade(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(state): State<Arc<AppState>>,
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
            Ok(socket) => session::run(socket, peer, state, upgraded, place).await,
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
