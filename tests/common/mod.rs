//! Shared test fixtures: a real server on 127.0.0.1:0 and helpers around real clients.
#![allow(dead_code, unreachable_pub)] // each test crate uses its own subset

pub mod raw;
pub mod sse;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tickcast::client::{Client, Received};
use tickcast::metrics::Metrics;
use tickcast::{Config, Server};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Long enough for anything a healthy loopback server does; only reached when a test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running server; shut down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let server = Server::new(
            listener,
            Config {
                seed: config.seed.or(Some(7)),
                ..config
            },
        );
        let addr = server.local_addr().unwrap();
        let metrics = server.metrics();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Self {
            addr,
            metrics,
            shutdown,
            task: Some(task),
        }
    }

    /// A server with the defaults at `tick_hz`.
    pub async fn at(tick_hz: u32) -> Self {
        Self::start(Config {
            tick_hz,
            ..Config::defaults()
        })
        .await
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn player(&self, name: &str) -> Client {
        within(Client::connect(&self.ws_url(), name))
            .await
            .expect("player connects")
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        within(task).await.expect("server task")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Awaits `f`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f).await.expect("timed out waiting")
}

/// Receives until the first snapshot and returns its tick.
pub async fn until_snapshot(client: &mut Client) -> u64 {
    loop {
        if let Received::Snapshot { tick, .. } = within(client.recv()).await.expect("recv") {
            return tick;
        }
    }
}

/// Receives until the local world reaches `tick`.
pub async fn until_tick(client: &mut Client, tick: u64) {
    while client.world().is_none_or(|w| w.tick() < tick) {
        within(client.recv()).await.expect("recv");
    }
}
