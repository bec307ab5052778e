//! `idle`: the server's memory per idle player connection.
//!
//! Start the release server, note its resident memory, open N player WebSockets that send their
//! hello and then only read (tungstenite answers the server's keep-alive pings by itself), wait
//! until every one is welcomed, let it settle, and read the resident memory again:
//! `(VmRSS after - VmRSS before) / players open` is what one idle player costs the server, its
//! socket, session task, queue and place in the world included. (Players still open, by the
//! server's count: an overloaded server closes those too slow to keep up.)
//!
//! Connections come from 127.0.0.1, 127.0.0.2, ... in turn, [`IdleConfig::per_source`] from
//! each, since one source address has only so many ephemeral ports. Both this process and the
//! server need a file descriptor per connection: the soft limit is raised to the hard limit
//! (the server inherits it), and the command refuses to start if that is not enough.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::{self, Instant};
use tokio_util::sync::CancellationToken;

use crate::clients::counted::{Dial, Traffic};
use crate::clients::wire;
use crate::server::process::{ServerProcess, StartError};
use crate::server::procinfo;

/// Descriptors this process and the server need beyond one per connection.
const SPARE_FDS: u64 = 512;
/// How long one connection may take to be welcomed.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// What `idle` does.
#[derive(Debug, Clone)]
pub struct IdleConfig {
    /// The server binary.
    pub server_bin: PathBuf,
    /// Idle players to open.
    pub count: usize,
    /// Connections per source address.
    pub per_source: usize,
    /// Connection attempts in flight at once.
    pub concurrency: usize,
    /// The server's tick rate.
    pub tick_hz: u32,
    /// How long all connections may take to be welcomed.
    pub patience: Duration,
    /// Time between the last welcome and the measurement.
    pub settle: Duration,
}

impl IdleConfig {
    /// The documented run: 10 000 idle players at 30 Hz.
    pub fn new(server_bin: PathBuf, count: usize) -> Self {
        Self {
            server_bin,
            count,
            per_source: 5000,
            concurrency: 128,
            tick_hz: 30,
            patience: Duration::from_secs(180),
            settle: Duration::from_secs(5),
        }
    }
}

/// Why `idle` could not run.
#[derive(Debug, thiserror::Error)]
pub enum IdleError {
    /// Not enough file descriptors.
    #[error(transparent)]
    Descriptors(#[from] procinfo::TooFewDescriptors),
    /// The server would not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Reading the server failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What `idle` measured.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// Connections asked for.
    pub requested: usize,
    /// Connections welcomed.
    pub joined: usize,
    /// Why the others failed -> how many.
    pub failures: BTreeMap<String, u64>,
    /// Source addresses used.
    pub sources: usize,
    /// Seconds until the last welcome.
    pub connect_secs: f64,
    /// The open-files soft limit in force.
    pub fd_limit: u64,
    /// Server resident memory before any connection, KiB.
    pub rss_before_kib: u64,
    /// Server resident memory with every connection open, KiB.
    pub rss_after_kib: u64,
    /// The server's peak resident memory, KiB.
    pub peak_rss_kib: u64,
    /// `(after - before) / players open at the measurement`, bytes.
    pub bytes_per_connection: f64,
    /// Open descriptors of the server at the measurement.
    pub server_fds: usize,
    /// `tickcast_players` at the measurement.
    pub players_gauge: f64,
    /// Frames waiting in players' queues at the measurement (backlog inflates memory).
    pub queued_frames: f64,
    /// Ticks per second during the settle.
    pub ticks_per_sec: f64,
}

/// Runs the measurement; `log` gets a line per stage.
pub async fn run(
    config: &IdleConfig,
    stop: CancellationToken,
    mut log: impl FnMut(&str),
) -> Result<IdleReport, IdleError> {
    // One descriptor per connection here, and one in the server (which inherits our limit).
    let soft = procinfo::ensure_open_files(config.count as u64 + SPARE_FDS)?;
    let args = [
        format!("--tick-hz={}", config.tick_hz),
        "--seed=1".into(),
        format!("--max-players={}", config.count + 16),
        format!("--max-connections={}", config.count + 256),
    ];
    let server = ServerProcess::start(&config.server_bin, &args).await?;
    let pid = server.pid();
    time::sleep(Duration::from_secs(1)).await;
    let before = procinfo::memory(pid)?;
    log(&format!(
        "server up, {} KiB resident; opening {} players",
        before.rss_kib, config.count
    ));

    let halt = stop.child_token();
    let (joined_tx, mut joined_rx) = mpsc::channel::<Result<(), String>>(1024);
    let places = Arc::new(Semaphore::new(config.concurrency));
    let traffic = Arc::new(Traffic::default());
    let mut players = JoinSet::new();
    let sources = config.count.div_ceil(config.per_source.max(1));
    for i in 0..config.count {
        let source = Ipv4Addr::new(127, 0, 0, 1 + (i / config.per_source.max(1)) as u8);
        let dial = Dial {
            source: Some(IpAddr::V4(source)),
            recv_buffer: None,
        };
        let (addr, traffic, joined_tx, halt, places) = (
            server.addr(),
            traffic.clone(),
            joined_tx.clone(),
            halt.clone(),
            places.clone(),
        );
        players.spawn(async move {
            let place = places.acquire_owned().await;
            let name = format!("idle-{i}");
            let joining = time::timeout(JOIN_TIMEOUT, wire::connect(addr, dial, traffic, &name));
            let (mut ws, schema) = match tokio::select! { () = halt.cancelled() => return, j = joining => j } {
                Ok(Ok((ws, schema))) => (ws, schema),
                Ok(Err(err)) => return drop(joined_tx.send(Err(short(&err.to_string()))).await),
                Err(_) => return drop(joined_tx.send(Err("no welcome in time".into())).await),
            };
            drop(place);
            let _ = joined_tx.send(Ok(())).await;
            // Idle: read (and so answer pings) until told to stop or the server closes.
            tokio::select! {
                () = halt.cancelled() => {}
                _ = async { while wire::next(&mut ws, &schema).await.is_ok() {} } => {}
            }
        });
    }
    drop(joined_tx);

    let started = Instant::now();
    let (mut joined, mut failures) = (0, BTreeMap::<String, u64>::new());
    let deadline = started + config.patience;
    let mut progress = time::interval(Duration::from_secs(2));
    while joined + failures.values().sum::<u64>() as usize != config.count {
        tokio::select! {
            () = halt.cancelled() => break,
            () = time::sleep_until(deadline) => {
                *failures.entry("not welcomed within the patience".into()).or_default() +=
                    (config.count - joined - failures.values().sum::<u64>() as usize) as u64;
                break;
            }
            _ = progress.tick() => log(&format!("  {joined} welcomed, {} failed", failures.values().sum::<u64>())),
            Some(outcome) = joined_rx.recv() => match outcome {
                Ok(()) => joined += 1,
                Err(why) => *failures.entry(why).or_default() += 1,
            },
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    log(&format!(
        "{joined} welcomed in {connect_secs:.1} s; settling {:?}",
        config.settle
    ));
    let first = server.metrics().await?;
    time::sleep(config.settle).await;
    let after = procinfo::memory(pid)?;
    let metrics = server.metrics().await?;
    let server_fds = procinfo::open_fds(pid)?;
    let ticks = metrics.value("tickcast_ticks_total") - first.value("tickcast_ticks_total");
    // Divided by the players still open: an overloaded server may have closed some as too
    // slow since they were welcomed, and they hold nothing any more.
    let open = metrics.value("tickcast_players");

    halt.cancel();
    players.shutdown().await;
    server.stop().await?;
    Ok(IdleReport {
        requested: config.count,
        joined,
        failures,
        sources,
        connect_secs,
        fd_limit: soft,
        rss_before_kib: before.rss_kib,
        rss_after_kib: after.rss_kib,
        peak_rss_kib: after.peak_kib,
        bytes_per_connection: after.rss_kib.saturating_sub(before.rss_kib) as f64 * 1024.0 / open.max(1.0),
        server_fds,
        players_gauge: open,
        queued_frames: metrics.value("tickcast_outbound_queued_frames"),
        ticks_per_sec: ticks / config.settle.as_secs_f64().max(1e-3),
    })
}

/// An error message cut to its first clause, so failures group.
fn short(message: &str) -> String {
    message.split(" (os error").next().unwrap_or(message).to_owned()
}

impl fmt::Display for IdleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "tickcast idle connections")?;
        writeln!(
            f,
            "  connections     {} requested, {} welcomed in {:.1} s, from {} source address(es); fd limit {}",
            self.requested, self.joined, self.connect_secs, self.sources, self.fd_limit
        )?;
        for (why, n) in &self.failures {
            writeln!(f, "  failed          {n} × {why}")?;
        }
        writeln!(
            f,
            "  server RSS      {:.1} MiB before, {:.1} MiB with them open (peak {:.1} MiB), {} fds open",
            self.rss_before_kib as f64 / 1024.0,
            self.rss_after_kib as f64 / 1024.0,
            self.peak_rss_kib as f64 / 1024.0,
            self.server_fds
        )?;
        writeln!(
            f,
            "  per connection  {:.0} bytes ({:.2} KiB) = (RSS after - RSS before) / players open",
            self.bytes_per_connection,
            self.bytes_per_connection / 1024.0
        )?;
        writeln!(
            f,
            "  server state    {} players, {} frames queued, {:.1} ticks/s while measuring",
            self.players_gauge, self.queued_frames, self.ticks_per_sec
        )
    }
}
