//! Server memory per connection: many clients of one kind (WebSocket players, SSE streams,
//! long-polls), each kind against a fresh server, over loopback directly.
//!
//! Each server runs a live match with one moving bot, so every connection carries what it would
//! in a game: players get a frame every tick, SSE streams an event every 100 ms, and a long-poll
//! is answered at each event and waits on the server for the next one in between (nearly all the
//! time, over loopback). The figure is (RSS with the clients - RSS before them) / clients, where
//! the RSS with them is the median of several samples once the server counts them all.

use std::sync::Arc;
use std::time::Duration;

use client_demo::swarm::{self, SwarmConfig};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::{self, Instant};
use tokio_util::sync::CancellationToken;

use super::{SPECTATOR_HZ, TransportsConfig, TransportsError};
use crate::clients::followers::{self, Tally, Transport};
use crate::server::process::ServerProcess;
use crate::server::procinfo;
use crate::server::scrape::Scrape;

/// The kinds measured, in order.
pub const KINDS: [Transport; 3] = [Transport::WebSocket, Transport::Sse, Transport::LongPoll];
/// Connections opened per second.
const OPEN_RATE: usize = 500;
/// RSS samples taken once everyone is connected, and the time between them.
const SAMPLES: usize = 5;
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// How long the server may take to count every client before the step measures what it has.
const COUNT_PATIENCE: Duration = Duration::from_secs(15);
/// Descriptors beyond one per client here and one per client in the server.
const SPARE_FDS: u64 = 512;

/// One kind's memory per connection.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryRow {
    /// The kind of connection.
    pub kind: String,
    /// Clients opened.
    pub clients: usize,
    /// Of them, what the server counted at the measurement (players, SSE streams, or long-polls
    /// waiting at that moment).
    pub counted: u64,
    /// Server RSS before the clients, KiB.
    pub rss_before_kib: u64,
    /// Server RSS with them, KiB (median of the samples).
    pub rss_after_kib: u64,
    /// (after - before) / clients, bytes.
    pub bytes_per_connection: f64,
    /// Clients that failed.
    pub errors: u64,
}

/// About how long one kind's step takes: the server settles for twice `settle` before the
/// clients and again once they are all counted.
pub(super) fn step_duration(config: &TransportsConfig) -> Duration {
    let opening = Duration::from_secs_f64(config.memory_clients as f64 / OPEN_RATE as f64);
    Duration::from_secs(1) + config.settle * 4 + opening + SAMPLE_EVERY * SAMPLES as u32
}

/// Every kind in turn; `log` gets a line per kind.
pub(super) async fn run(
    config: &TransportsConfig,
    stop: &CancellationToken,
    log: &mut impl FnMut(&str),
) -> Result<Vec<MemoryRow>, TransportsError> {
    // One descriptor per client here, and one in the server (which inherits our limit).
    procinfo::ensure_open_files(2 * config.memory_clients as u64 + SPARE_FDS)?;
    let mut rows = Vec::new();
    for kind in KINDS {
        if stop.is_cancelled() {
            break;
        }
        log(&format!("memory: {} × {kind}", config.memory_clients));
        rows.push(one_kind(config, kind, stop).await?);
    }
    Ok(rows)
}

async fn one_kind(
    config: &TransportsConfig,
    kind: Transport,
    stop: &CancellationToken,
) -> Result<MemoryRow, TransportsError> {
    let n = config.memory_clients;
    let args = [
        format!("--tick-hz={}", config.tick_hz),
        format!("--spectator-hz={SPECTATOR_HZ}"),
        "--seed=1".into(),
        format!("--max-players={}", n + 16),
        format!("--max-spectators={}", n + 16),
        // One machine's clients, all in one room: this measures memory, not the shares.
        format!("--max-spectators-per-room={}", n + 16),
        format!("--max-spectators-per-address={}", n + 16),
        format!("--max-connections={}", n + 256),
    ];
    let server = ServerProcess::start(&config.server_bin, &args).await?;
    let pid = server.pid();
    let halt = stop.child_token();
    let bot_config = SwarmConfig {
        url: server.ws_url(),
        ramp: Duration::ZERO,
        ..SwarmConfig::new(1, step_duration(config) * 3)
    };
    let bot = tokio::spawn({
        let halt = halt.clone();
        async move { swarm::run(&bot_config, halt, |_| {}).await }
    });
    time::sleep(config.settle * 2).await;
    let rss = || {
        procinfo::memory(pid)
            .map(|m| m.rss_kib)
            .map_err(|e| TransportsError::Run(e.to_string()))
    };
    let before = rss()?;

    let tally = Arc::new(Tally::default());
    let mut clients = JoinSet::new();
    for i in 0..n {
        let name = format!("mem-{i}");
        clients.spawn(followers::follow(
            kind,
            server.addr(),
            name,
            tally.clone(),
            halt.clone(),
        ));
        if i % 50 == 49 {
            time::sleep(Duration::from_secs(50) / OPEN_RATE as u32).await;
        }
    }
    let deadline = Instant::now() + COUNT_PATIENCE;
    while counted(&server.metrics().await.unwrap_or_default(), kind) < n as u64 && Instant::now() < deadline {
        time::sleep(SAMPLE_EVERY).await; // the server's count cannot be awaited
    }
    time::sleep(config.settle * 2).await;
    let mut samples = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..SAMPLES {
        samples.push(rss()?);
        counts.push(counted(&server.metrics().await.unwrap_or_default(), kind));
        time::sleep(SAMPLE_EVERY).await;
    }
    halt.cancel();
    clients.join_all().await;
    let _ = bot.await;
    let _ = server.stop().await;
    samples.sort_unstable();
    counts.sort_unstable();
    let after = samples[SAMPLES / 2];
    Ok(MemoryRow {
        kind: kind.to_string(),
        clients: n,
        counted: counts[SAMPLES / 2],
        rss_before_kib: before,
        rss_after_kib: after,
        bytes_per_connection: (after.saturating_sub(before) * 1024) as f64 / n.max(1) as f64,
        errors: tally.errors.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// What the server counts of `kind`: players (less the bot), SSE streams, or waiting long-polls.
fn counted(scrape: &Scrape, kind: Transport) -> u64 {
    let value = match kind {
        Transport::WebSocket => scrape.value("tickcast_players") - 1.0,
        Transport::Sse => scrape.value("tickcast_spectators{transport=\"Sse\"}"),
        _ => scrape.value("tickcast_spectators{transport=\"Longpoll\"}"),
    };
    value.max(0.0) as u64
}
