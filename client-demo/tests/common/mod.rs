//! Shared test fixtures: a real tickcast server on 127.0.0.1:0 (client-demo's tests, and the
//! harness's `bench/tests/measure.rs`, which includes this file).
#![allow(dead_code, unreachable_pub)] // each test crate uses its own subset

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tickcast::metrics::Metrics;
use tickcast::{Config, Server};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Long enough for anything a healthy loopback server does; only reached when a test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A running server; shut down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// A server with the defaults at `tick_hz` and a fixed seed.
    pub async fn at(tick_hz: u32) -> Self {
        Self::with(Config {
            tick_hz,
            ..Config::defaults()
        })
        .await
    }

    /// A server of `config`, with a fixed seed.
    pub async fn with(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let config = Config {
            seed: Some(7),
            ..config
        };
        let server = Server::new(listener, config);
        let addr = server.local_addr().expect("bound address");
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

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            within(task).await.expect("server task").expect("server ran");
        }
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

/// A loopback address where nothing listens (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    listener.local_addr().expect("bound address")
}
