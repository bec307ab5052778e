//! `cluster`: a cluster on this machine, measured. It starts a `redis-server` on a free
//! loopback port (its data in a temporary directory, no persistence) and four release nodes on
//! it: `a` and `b` run rooms, `e1` and `e2` are spectator edges (`--no-rooms`). Then:
//!
//! 1. **Create and join through another node**: `POST /rooms` on an edge (the room lands on
//!    `a` or `b`, asked through Redis), then a player connects to the URL it answered and waits
//!    for its first snapshot; the room is closed again. The same on a lone server without
//!    Redis, in the same run, is the floor.
//! 2. **Spectator event delay**: a player moving in `a`'s default room notes when each tick's
//!    delta reaches it; an SSE spectator on `a` (the owner) and one on `e1` (through Redis)
//!    note when the event of the same tick reaches them. The delay is spectator minus player,
//!    for each path.
//! 3. **Spectators on two edges**: N SSE spectators of that room, half on each edge, opened
//!    gradually; once all are in, for a window: the events each one received (it must get
//!    every one: 10 a second), each edge's RSS growth per spectator and CPU, and Redis's CPU
//!    and memory. Each edge's spectators are followed by a process of their own (this one, and
//!    a `tickcast-bench cluster-followers` it starts), as a process holds a descriptor per
//!    spectator and the hard limit on open files may be under their total.
//! 4. **Redis restarts**: Redis is killed and started again, empty, a few times; how soon
//!    after it listens each node is back in the directory ([`restarts`]).
//!
//! Everything runs on loopback, bounded in count and time, and stops by itself.

pub mod redis;
pub mod restarts;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use client_demo::sse;
use serde::{Deserialize, Serialize};
use tickcast::client::rooms_api::{self, ApiError, NewRoom};
use tickcast::client::{Client, ClientError, Received};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::{self, Instant};

use crate::clients::http1::Conn;
use crate::cluster::redis::RedisProcess;
use crate::server::process::{ServerProcess, StartError};
use crate::server::procinfo;
use crate::table::{Align, Table};

/// The admin secret of the nodes this command starts (they listen on loopback only).
const ADMIN: &str = "cluster-harness";
/// How many spectators are opened per second, in all (half by each following process).
const OPEN_RATE: u64 = 2_000;

/// What `cluster` does.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The server binary.
    pub server_bin: PathBuf,
    /// The redis-server binary.
    pub redis_bin: PathBuf,
    /// Rooms created and joined through another node (and on the lone server).
    pub joins: usize,
    /// How long the event delays are sampled.
    pub delay_window: Duration,
    /// SSE spectators over the two edges.
    pub spectators: usize,
    /// How long the spectators are watched once all are in.
    pub spectator_window: Duration,
    /// How many times Redis is restarted at the end.
    pub redis_restarts: usize,
}

/// Why `cluster` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A node would not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// redis-server would not start.
    #[error("redis-server: {0}")]
    Redis(String),
    /// An API call failed.
    #[error("rooms API: {0}")]
    Api(#[from] ApiError),
    /// A player failed.
    #[error("player: {0}")]
    Player(#[from] ClientError),
    /// Reading /proc, or a socket, failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Not enough file descriptors for the spectators.
    #[error(transparent)]
    Descriptors(#[from] procinfo::TooFewDescriptors),
}

/// Percentiles of a set of durations, milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// The `q` quantile of sorted `samples` (nearest rank).
fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get(((last as f64) * q).round() as usize).copied()
}

impl Spread {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let ms = |q| percentile(&samples, q).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
        Self {
            n: samples.len(),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
        }
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.2} ms, p99 {:.2} ms ({} samples)",
            self.p50_ms, self.p99_ms, self.n
        )
    }
}

/// What `cluster` measured.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// `POST /rooms` on an edge until the player's first snapshot on the owner.
    pub join_through_edge: Spread,
    /// The same on a lone server (no Redis).
    pub join_alone: Spread,
    /// A spectator event's arrival minus the player's delta of the same tick, served by the
    /// owner.
    pub delay_owner: Spread,
    /// The same, served by an edge from the Redis stream.
    pub delay_edge: Spread,
    /// Spectators asked for, and connected.
    pub spectators: usize,
    /// Spectators that had a stream open at the end of the window.
    pub spectators_connected: usize,
    /// Events per spectator per second over the window: the lowest and the median.
    pub events_per_sec_min: f64,
    /// See `events_per_sec_min`.
    pub events_per_sec_median: f64,
    /// The room's spectator event rate.
    pub events_per_sec_expected: f64,
    /// Each edge's RSS growth per spectator, KiB (e1, e2).
    pub edge_kib_per_spectator: [f64; 2],
    /// Each edge's CPU seconds per second over the window.
    pub edge_cpu: [f64; 2],
    /// Redis's CPU seconds per second over the window.
    pub redis_cpu: f64,
    /// Redis's RSS at the end, KiB.
    pub redis_rss_kib: u64,
    /// The client's own CPU seconds per second (it shares the two cores).
    pub client_cpu: f64,
    /// From Redis listening again after a restart to a node's record being back in it, for
    /// each restart and node.
    pub reregistered: Spread,
}

/// Runs the three parts; `log` gets a line per stage.
pub async fn run(config: &ClusterConfig, mut log: impl FnMut(&str)) -> Result<ClusterReport, ClusterError> {
    // Each edge, and each of the two processes following them, holds one edge's half (the
    // edges inherit this limit).
    procinfo::ensure_open_files(config.spectators.div_ceil(2) as u64 + 2048)?;
    let mut redis = RedisProcess::start(&config.redis_bin)
        .await
        .map_err(|e| ClusterError::Redis(e.to_string()))?;
    let node = |id: &str, edge: bool| {
        let mut args = vec![
            format!("--redis={}", redis.url()),
            format!("--node-id={id}"),
            format!("--admin-secret={ADMIN}"),
        ];
        if edge {
            let cap = config.spectators / 2 + 1000;
            args.extend([
                "--no-rooms".into(),
                format!("--max-spectators={cap}"),
                // This machine's spectators, all of one room: capacity, not the shares.
                format!("--max-spectators-per-room={cap}"),
                format!("--max-spectators-per-address={cap}"),
                format!("--max-connections={}", cap + 256),
            ]);
        }
        args
    };
    let a = ServerProcess::start(&config.server_bin, &node("a", false)).await?;
    let b = ServerProcess::start(&config.server_bin, &node("b", false)).await?;
    let e1 = ServerProcess::start(&config.server_bin, &node("e1", true)).await?;
    let e2 = ServerProcess::start(&config.server_bin, &node("e2", true)).await?;
    let alone = ServerProcess::start(&config.server_bin, &[format!("--admin-secret={ADMIN}")]).await?;
    log(&format!(
        "redis {}, nodes a {}, b {}, edges e1 {}, e2 {}; a lone server {}",
        redis.addr(),
        a.addr(),
        b.addr(),
        e1.addr(),
        e2.addr(),
        alone.addr()
    ));

    log(&format!(
        "1/4: {} rooms created through e1 and joined, then on the lone server",
        config.joins
    ));
    let join_through_edge = create_and_join(e1.addr(), config.joins).await?;
    let join_alone = create_and_join(alone.addr(), config.joins).await?;
    drop(alone);

    log(&format!("2/4: spectator event delay for {:?}", config.delay_window));
    let stop = Arc::new(AtomicBool::new(false));
    let player_ticks = Arc::new(Mutex::new(Vec::<(u64, Instant)>::new()));
    let mover = tokio::spawn(mover(a.ws_url(), player_ticks.clone(), stop.clone()));
    time::sleep(Duration::from_secs(1)).await;
    let room = "default-a";
    let window = config.delay_window + Duration::from_secs(1);
    let at_owner = tokio::spawn(event_times(a.addr(), room, window));
    let at_edge = tokio::spawn(event_times(e1.addr(), room, window));
    let (at_owner, at_edge) = (
        at_owner.await.map_err(io::Error::other)??,
        at_edge.await.map_err(io::Error::other)??,
    );
    let ticks = player_ticks.lock().await.clone();
    let delay = |events: &[(u64, Instant)]| {
        Spread::of(
            events
                .iter()
                .filter_map(|(tick, at)| {
                    let player = ticks.iter().find(|(t, _)| t == tick)?.1;
                    Some(at.saturating_duration_since(player))
                })
                .collect(),
        )
    };
    let (delay_owner, delay_edge) = (delay(&at_owner), delay(&at_edge));

    log(&format!("3/4: {} SSE spectators over e1 and e2", config.spectators));
    let edge_pids = [e1.pid(), e2.pid()];
    let rss = |pid| procinfo::memory(pid).map(|m| m.rss_kib);
    let rss_before = [rss(edge_pids[0])?, rss(edge_pids[1])?];
    // Each edge's spectators are followed by a process of their own: one process holds a
    // descriptor per spectator, and the hard limit on open files may be under their total.
    let per_edge = config.spectators / 2;
    let helper = Followers::spawn(e2.addr(), room, config.spectators - per_edge, config.spectator_window)?;
    // CPU of e1, e2, Redis, the helper and this process over the window; RSS of the edges at
    // its end, while every spectator is still connected (the helper lingers after its window).
    let watch = Watch {
        cpu: vec![
            edge_pids[0],
            edge_pids[1],
            redis.pid(),
            helper.pid(),
            std::process::id(),
        ],
        rss: vec![edge_pids[0], edge_pids[1]],
    };
    let ours = follow_many(e1.addr(), room, per_edge, config.spectator_window, Some(watch)).await?;
    let theirs = helper.wait().await?;
    let seconds = ours.seconds;
    let (cpu_before, cpu_after) = ours.cpu;
    let mut rates: Vec<f64> = ours.rates.iter().chain(&theirs.rates).copied().collect();
    rates.sort_by(f64::total_cmp);
    let connected = ours.connected + theirs.connected;
    let rss_after = [ours.rss[0], ours.rss[1]];
    let redis_rss_kib = rss(redis.pid())?;
    stop.store(true, Relaxed);
    mover.abort();
    log(&format!(
        "4/4: Redis restarted {} times, down {:?} each",
        config.redis_restarts,
        restarts::DOWN
    ));
    let reregistered = restarts::reregistration(&mut redis, &["a", "b", "e1", "e2"], config.redis_restarts).await?;
    let per_edge = [per_edge.max(1) as f64, (config.spectators - per_edge).max(1) as f64];
    let rate = |i: usize| (cpu_after[i] - cpu_before[i]).as_secs_f64() / seconds;
    let report = ClusterReport {
        join_through_edge,
        join_alone,
        delay_owner,
        delay_edge,
        spectators: config.spectators,
        spectators_connected: connected,
        events_per_sec_min: rates.first().copied().unwrap_or(0.0),
        events_per_sec_median: rates.get(rates.len() / 2).copied().unwrap_or(0.0),
        events_per_sec_expected: 10.0,
        edge_kib_per_spectator: [
            rss_after[0].saturating_sub(rss_before[0]) as f64 / per_edge[0],
            rss_after[1].saturating_sub(rss_before[1]) as f64 / per_edge[1],
        ],
        edge_cpu: [rate(0), rate(1)],
        redis_cpu: rate(2),
        redis_rss_kib,
        // The two processes that follow the spectators.
        client_cpu: rate(3) + rate(4),
        reregistered,
    };
    for node in [a, b, e1, e2] {
        let _ = node.stop().await;
    }
    Ok(report)
}

/// Creates `n` rooms through `via` and joins each, then closes it; the times from the
/// request to the first snapshot.
async fn create_and_join(via: SocketAddr, n: usize) -> Result<Spread, ClusterError> {
    let server = format!("http://{via}");
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let room = rooms_api::create_room(
            &server,
            &NewRoom {
                game: "arena".into(),
                ..NewRoom::default()
            },
            Some(ADMIN),
        )
        .await?;
        let mut player = Client::connect(&room.room.ws, &format!("j{i}")).await?;
        while !matches!(player.recv().await?, Received::Snapshot { .. }) {}
        samples.push(start.elapsed());
        drop(player);
        rooms_api::close_room(&server, room.room.summary.id.as_str(), ADMIN).await?;
    }
    Ok(Spread::of(samples))
}

/// A player that keeps moving and notes when each tick's frame reached it.
async fn mover(url: String, ticks: Arc<Mutex<Vec<(u64, Instant)>>>, stop: Arc<AtomicBool>) -> Result<(), ClientError> {
    let mut player = Client::connect(&url, "mover").await?;
    player.keep_world(false);
    let mut n = 0u32;
    while !stop.load(Relaxed) {
        let tick = match player.recv().await? {
            Received::Delta { tick, .. } | Received::Snapshot { tick, .. } => tick,
            _ => continue,
        };
        ticks.lock().await.push((tick, Instant::now()));
        n += 1;
        if n % 15 == 0 {
            let (dx, dy) = [(127, 0), (0, 127), (-127, 0), (0, -127)][(n / 15 % 4) as usize];
            player.send_move(dx, dy).await?;
        }
    }
    Ok(())
}

/// Follows `room` on the node at `addr` over SSE for `window`; when each event arrived.
async fn event_times(addr: SocketAddr, room: &str, window: Duration) -> io::Result<Vec<(u64, Instant)>> {
    let mut conn = Conn::connect(addr).await?;
    conn.send_get(&format!("/rooms/{room}/events"), &[("accept", "text/event-stream")])
        .await?;
    let head = conn.read_head().await?;
    if head.status != 200 {
        return Err(io::Error::other(format!("/events answered {}", head.status)));
    }
    let (mut parser, mut events, mut times) = (sse::Parser::new(), Vec::new(), Vec::new());
    // The first second is left out: an edge starts following the room on its first spectator.
    let (start, end) = (Instant::now() + Duration::from_secs(1), Instant::now() + window);
    while let Ok(Some(chunk)) = time::timeout_at(end, conn.next_chunk()).await.unwrap_or(Ok(None)) {
        let now = Instant::now();
        parser.push(&chunk, &mut events).map_err(io::Error::other)?;
        for event in events.drain(..) {
            if event.event == "delta"
                && now >= start
                && let Some(tick) = sse::event_tick(&event.id)
            {
                times.push((tick, now));
            }
        }
    }
    Ok(times)
}

/// What a process's own measurement of spectators watches besides them.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Processes whose CPU time is taken at the window's ends.
    pub cpu: Vec<u32>,
    /// Processes whose RSS is taken at the window's end.
    pub rss: Vec<u32>,
}

/// What `count` spectators of one edge received, measured by [`follow_many`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Followed {
    /// Spectators with their stream open at the window's end.
    pub connected: usize,
    /// Events each received per second over the window.
    pub rates: Vec<f64>,
    /// The window's length.
    pub seconds: f64,
    /// CPU times of the watched processes at the window's start and end.
    #[serde(skip)]
    cpu: (Vec<Duration>, Vec<Duration>),
    /// RSS of the watched processes at the window's end, KiB.
    #[serde(skip)]
    rss: Vec<u64>,
}

/// Opens `count` SSE spectators of `room` on `edge` at half [`OPEN_RATE`] a second, waits 3 s,
/// then counts their events over `window`; the spectators stay open for a few more seconds (so
/// a process measuring the same edges beside this one sees them all) unless `watch` is given,
/// whose figures are taken at the window's ends.
pub async fn follow_many(
    edge: SocketAddr,
    room: &str,
    count: usize,
    window: Duration,
    watch: Option<Watch>,
) -> io::Result<Followed> {
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    let (open, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let mut spectators = JoinSet::new();
    let started = Instant::now();
    for i in 0..count {
        let (counts, open, stop, room) = (counts.clone(), open.clone(), stop.clone(), room.to_owned());
        spectators.spawn(async move {
            let _ = follow(edge, &room, &counts[i], &open, &stop).await;
        });
        let due = started + Duration::from_secs_f64((i + 1) as f64 * 2.0 / OPEN_RATE as f64);
        time::sleep_until(due).await;
    }
    time::sleep(Duration::from_secs(3)).await;
    let cpu = |pids: &[u32]| {
        pids.iter()
            .map(|&pid| procinfo::cpu_time(pid))
            .collect::<io::Result<Vec<_>>>()
    };
    let pids = watch.as_ref().map(|w| w.cpu.clone()).unwrap_or_default();
    let window_start = Instant::now();
    let cpu_before = cpu(&pids)?;
    let counts_before: Vec<u64> = counts.iter().map(|c| c.load(Relaxed)).collect();
    time::sleep(window).await;
    let seconds = window_start.elapsed().as_secs_f64();
    let cpu_after = cpu(&pids)?;
    let rates = counts
        .iter()
        .zip(&counts_before)
        .map(|(c, before)| (c.load(Relaxed) - before) as f64 / seconds)
        .collect();
    let connected = open.load(Relaxed) as usize;
    let rss = match &watch {
        Some(watch) => watch
            .rss
            .iter()
            .map(|&pid| procinfo::memory(pid).map(|m| m.rss_kib))
            .collect::<io::Result<_>>()?,
        None => {
            time::sleep(LINGER).await;
            Vec::new()
        }
    };
    stop.store(true, Relaxed);
    spectators.abort_all();
    Ok(Followed {
        connected,
        rates,
        seconds,
        cpu: (cpu_before, cpu_after),
        rss,
    })
}

/// How long a helper's spectators stay open after its window.
const LINGER: Duration = Duration::from_secs(5);

/// A `tickcast-bench cluster-followers` process following one edge's spectators.
struct Followers {
    child: Child,
}

impl Followers {
    fn spawn(edge: SocketAddr, room: &str, count: usize, window: Duration) -> io::Result<Self> {
        let child = Command::new(std::env::current_exe()?)
            .args([
                "cluster-followers".to_owned(),
                format!("--edge={edge}"),
                format!("--room={room}"),
                format!("--count={count}"),
                format!("--seconds={}", window.as_secs()),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        Ok(Self { child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it measured (its one line of JSON on stdout).
    async fn wait(self) -> io::Result<Followed> {
        let output = tokio::task::spawn_blocking(move || self.child.wait_with_output())
            .await
            .map_err(io::Error::other)??;
        if !output.status.success() {
            return Err(io::Error::other(format!("cluster-followers: {}", output.status)));
        }
        serde_json::from_slice(&output.stdout).map_err(io::Error::other)
    }
}

/// One spectator: an SSE stream of `room` on `edge`, counting its events (one chunk each)
/// until `stop`.
async fn follow(
    edge: SocketAddr,
    room: &str,
    count: &AtomicU64,
    open: &AtomicU64,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut conn = Conn::connect(edge).await?;
    conn.send_get(&format!("/rooms/{room}/events"), &[("accept", "text/event-stream")])
        .await?;
    let head = conn.read_head().await?;
    if head.status != 200 {
        return Err(io::Error::other(format!("/events answered {}", head.status)));
    }
    open.fetch_add(1, Relaxed);
    let result = async {
        while !stop.load(Relaxed) {
            match conn.next_chunk().await? {
                // Events are chunks of their own; a keepalive comment is short.
                Some(chunk) if chunk.starts_with(b"id: ") => {
                    count.fetch_add(1, Relaxed);
                }
                Some(_) => {}
                None => break,
            }
        }
        Ok(())
    }
    .await;
    open.fetch_sub(1, Relaxed);
    result
}

impl fmt::Display for ClusterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut table = Table::new(&[("figure", Align::Left), ("value", Align::Left)]);
        table
            .row([
                "create a room through an edge and join it (owner chosen through Redis)".to_owned(),
                self.join_through_edge.to_string(),
            ])
            .row([
                "create a room and join it, lone server (no Redis)".to_owned(),
                self.join_alone.to_string(),
            ])
            .row([
                "spectator event after the player's delta, served by the owner".to_owned(),
                self.delay_owner.to_string(),
            ])
            .row([
                "the same, served by an edge through Redis".to_owned(),
                self.delay_edge.to_string(),
            ])
            .row([
                "SSE spectators over two edges".to_owned(),
                format!(
                    "{} asked, {} connected at the end",
                    self.spectators, self.spectators_connected
                ),
            ])
            .row([
                format!(
                    "events per spectator per second (room sends {:.0})",
                    self.events_per_sec_expected
                ),
                format!(
                    "lowest {:.2}, median {:.2}",
                    self.events_per_sec_min, self.events_per_sec_median
                ),
            ])
            .row([
                "edge RSS per spectator".to_owned(),
                format!(
                    "e1 {:.2} KiB, e2 {:.2} KiB",
                    self.edge_kib_per_spectator[0], self.edge_kib_per_spectator[1]
                ),
            ])
            .row([
                "CPU, seconds per second".to_owned(),
                format!(
                    "e1 {:.2}, e2 {:.2}, Redis {:.3}, this client {:.2}",
                    self.edge_cpu[0], self.edge_cpu[1], self.redis_cpu, self.client_cpu
                ),
            ])
            .row([
                "Redis RSS".to_owned(),
                format!("{:.1} MiB", self.redis_rss_kib as f64 / 1024.0),
            ])
            .row([
                "a node back in the directory after Redis restarted (from Redis listening)".to_owned(),
                self.reregistered.to_string(),
            ]);
        write!(f, "{table}")
    }
}
