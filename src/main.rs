//! The tickcast server binary: parse flags, install logging, bind, run until a signal.

use anyhow::Context as _;
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use tickcast::{Config, Server};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();

    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let server = Server::new(listener, config.clone());
    let addr = server.local_addr()?;
    match server.seed() {
        Some(seed) => tracing::info!(
            tick_hz = config.tick_hz,
            seed,
            "tickcast listening: rooms at http://{addr}/ , the default room at http://{addr}/rooms/default/ , \
             players connect to ws://{addr}/ws"
        ),
        None => tracing::info!("tickcast listening: rooms at http://{addr}/ (no default room)"),
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
