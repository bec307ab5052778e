//! `load`: how much one server holds on this machine, step by step in player count.
//!
//! The run, in order:
//! 1. Measure the floors ([`crate::floors`]): TCP and WebSocket echo RTT on loopback; then
//!    the tickcast client's ping RTT against a fresh server with no bots ("quiet ping").
//! 2. For each N: start a fresh release server ([`ServerProcess`]), note its idle memory, run
//!    N bots in this process ([`client_demo::swarm`], following the stream by tick without keeping
//!    a world, see `Client::keep_world`) ramped over `max(2 s, N / 400 s)`, wait
//!    [`LoadConfig::settle`], then measure a window of [`LoadConfig::window`]: the server's CPU
//!    (`/proc/<pid>/stat`) and `/metrics` at both ends, memory at the end, and the bots' RTTs,
//!    bytes and deltas of exactly the seconds in the window.
//! 3. Stop that server (SIGTERM), then measure the fan-out floor at N, writing what the server
//!    wrote per player-tick, on the now quiet machine, and the serving floor, which does the
//!    same writes and also reads and answers what N players send at the bots' rates: each
//!    twice, in the order fan-out, serving, serving, fan-out.
//! 4. Stop after the first N that fails: fewer than 95 % of the ticks, RTT p99 over the limit,
//!    bots that could not connect, or a server that died.
//!
//! In a big world ([`LoadConfig::world_size`], [`LoadConfig::view_radius`]) the server gets
//! the world's side and each player's view radius, and each step also measures what the views
//! cost and save: [`LoadConfig::watchers`] more players that keep the world count the entities
//! a player holds ([`watch`]), and `/metrics` is read once a second through the window for the
//! distinct views per tick (`tickcast_views`, a gauge) beside the frames encoded for them
//! (`tickcast_view_frames_encoded_total`).
//!
//! In rooms mode ([`LoadConfig::rooms`]) each step is R rooms of P players instead: the rooms
//! are created through the rooms API (the server runs without a default room), the bots are
//! spread P to a room, and the figures are per room where that is what they mean (ticks per
//! second of each room, RSS per room) and per player-tick where the rooms add up (CPU).

mod probe;
pub mod report;
pub mod watch;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use client_demo::connect::Target;
use client_demo::stats::{RttStats, RttSummary};
use client_demo::swarm::{self, SwarmConfig, SwarmError};
use tickcast::client::rooms_api::{self, NewRoom};
use tickcast::client::{Client, ClientError, Received};
use tokio::time::{self, Instant};
use tokio_util::sync::CancellationToken;

use crate::floors::{self, Placement};
use crate::load::probe::Probe;
use crate::load::report::{Floors, LoadReport, Step};
use crate::load::watch::{Held, Watchers};
use crate::server::process::{ServerProcess, StartError};
use crate::server::procinfo::{self, Memory, PinnedProcess};
use crate::server::scrape::Scrape;

/// What `load` does.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server binary to start for each step.
    pub server_bin: PathBuf,
    /// Player counts, in the order to run them (in the default room).
    pub steps: Vec<usize>,
    /// Rooms mode: `(rooms, players per room)` layouts, run instead of `steps`.
    pub rooms: Vec<(usize, usize)>,
    /// The server's tick rate.
    pub tick_hz: u32,
    /// The measured window of each step.
    pub window: Duration,
    /// Time between the end of the ramp and the window.
    pub settle: Duration,
    /// RTT p99 above which a step fails.
    pub rtt_limit: Duration,
    /// Round trips per RTT floor.
    pub floor_rounds: usize,
    /// Time each floor (fan-out, serving) is measured: two runs of half of it each.
    pub fanout_window: Duration,
    /// Pin the server to CPU 0 and the bots to CPU 1 while a step is measured, so neither
    /// preempts the other; the floors, measured on the quiet machine after the step, then
    /// write from CPU 0 to readers on CPU 1 ([`Placement::Apart`]).
    pub pin: bool,
    /// The world's side in units (the server's `--world-size`); the server's default (1 000)
    /// when `None`.
    pub world_size: Option<u32>,
    /// How far each player sees, in units (`--view-radius` for the default room, each created
    /// room's `view_radius` in rooms mode); everyone sees everything when `None`.
    pub view_radius: Option<u32>,
    /// Orbs in the world (the server's `--orbs`); the server's default (100) when `None`.
    pub orbs: Option<u32>,
    /// Players in the (first) room that keep the world and count its entities through the
    /// window ([`watch`]); none by default, [`watch::WATCHERS`] from the command in a big
    /// world. They count as players in CPU per player-tick, as the probes do.
    pub watchers: usize,
}

impl LoadConfig {
    /// The documented run: N = 100 .. 4000 at 30 Hz, 20 s windows.
    pub fn new(server_bin: PathBuf) -> Self {
        Self {
            server_bin,
            steps: vec![100, 500, 1000, 2000, 4000],
            rooms: Vec::new(),
            tick_hz: 30,
            window: Duration::from_secs(20),
            settle: Duration::from_secs(3),
            rtt_limit: Duration::from_millis(50),
            floor_rounds: 5000,
            fanout_window: Duration::from_secs(5),
            pin: false,
            world_size: None,
            view_radius: None,
            orbs: None,
            watchers: 0,
        }
    }

    /// The server's flags for the world: its side and orbs, and the default room's views.
    fn world_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(size) = self.world_size {
            args.push(format!("--world-size={size}"));
        }
        if let Some(orbs) = self.orbs {
            args.push(format!("--orbs={orbs}"));
        }
        if let (Some(radius), true) = (self.view_radius, self.rooms.is_empty()) {
            args.push(format!("--view-radius={radius}"));
        }
        args
    }
}

/// Why `load` could not run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The server would not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Not enough file descriptors.
    #[error(transparent)]
    Descriptors(#[from] procinfo::TooFewDescriptors),
    /// The bots could not be configured.
    #[error(transparent)]
    Swarm(#[from] SwarmError),
    /// Reading /proc, a floor socket, or /metrics failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
}

/// Runs every step until one fails or `stop` fires; `log` gets a line per stage.
pub async fn run(
    config: &LoadConfig,
    stop: CancellationToken,
    mut log: impl FnMut(&str),
) -> Result<LoadReport, LoadError> {
    if !config.server_bin.is_file() {
        return Err(StartError::NoBinary(config.server_bin.clone()).into());
    }
    // The fan-out floor holds both ends of N connections here; the server (which inherits our
    // limit) one per bot.
    let layouts = config.layouts();
    let most = layouts.iter().map(|(r, p)| r * p).max().unwrap_or(0) as u64;
    procinfo::ensure_open_files(2 * most + 512)?;
    log("measuring the loopback floors");
    let floors = Floors {
        tcp_rtt_us: floors::tcp_echo(config.floor_rounds)
            .await
            .map_err(io("tcp echo floor"))?,
        websocket_rtt_us: floors::websocket_echo(config.floor_rounds)
            .await
            .map_err(io("websocket echo floor"))?,
    };
    log("measuring ping RTT against a quiet server");
    let quiet_ping_us = quiet_ping(config).await?;
    let mut report = LoadReport {
        server_bin: config.server_bin.display().to_string(),
        tick_hz: config.tick_hz,
        window_secs: config.window.as_secs_f64(),
        clock_ticks_per_sec: procinfo::clock_ticks_per_sec(),
        rtt_limit_us: config.rtt_limit.as_micros() as u64,
        pinned: config.pin,
        world_size: config.world_size,
        view_radius: config.view_radius,
        orbs: config.orbs,
        watchers: config.watchers,
        floor_placement: floor_placement(config),
        floors,
        quiet_ping_us,
        quiet_ping_vs_tcp: ratio(quiet_ping_us.p50 as f64, floors.tcp_rtt_us.p50 as f64),
        steps: Vec::new(),
        stopped: None,
    };
    for (rooms, per_room) in layouts {
        let players = rooms * per_room;
        let name = if config.rooms.is_empty() {
            format!("N = {players}")
        } else {
            format!("{rooms} × {per_room}")
        };
        log(&format!("{name}: starting the server and the bots"));
        let Some(mut step) = run_step(config, rooms, per_room, &stop, &mut log).await? else {
            report.stopped = Some(format!("interrupted during {name}"));
            break;
        };
        step.rtt_p50_vs_tcp = ratio(step.rtt_us.p50 as f64, floors.tcp_rtt_us.p50 as f64);
        if step.bytes_per_player_tick > 0.0 && !stop.is_cancelled() {
            log(&format!("{name}: fan-out and serving floors"));
            // What the server wrote per player-tick (acks and pongs included, as framed): a
            // player-tick's one write, not the mean message, which the few-byte acks pull down.
            let frame = step.bytes_per_player_tick.round() as usize;
            let (hz, half) = (config.tick_hz, config.fanout_window / 2);
            let placement = floor_placement(config);
            // Each floor twice, in the order fan-out, serving, serving, fan-out, so a drift of
            // the machine over the four runs weighs on both alike.
            let fanout = || async {
                floors::fanout(players, frame, hz, half, placement)
                    .await
                    .map_err(io("fan-out floor"))
            };
            let serving = || async {
                floors::serving(players, frame, hz, half, placement, bots_traffic())
                    .await
                    .map_err(io("serving floor"))
            };
            let (first, serving_first) = (fanout().await?, serving().await?);
            let (serving_second, second) = (serving().await?, fanout().await?);
            let (floor, serving) = (first.pooled(&second), serving_first.pooled(&serving_second));
            step.cpu_vs_fanout = Some(ratio(step.us_per_player_tick, floor.us_per_write));
            step.fanout_floor = Some(floor);
            step.cpu_vs_serving = Some(ratio(step.us_per_player_tick, serving.us_per_player_tick));
            step.serving_floor = Some(serving);
        }
        let failed = step.failed.clone();
        report.steps.push(step);
        // Player counts grow, so the first that fails ends the run; room layouts are compared
        // with each other, so each one runs.
        if let Some(why) = failed
            && config.rooms.is_empty()
        {
            report.stopped = Some(format!("at {name}: {why}"));
            break;
        }
        if stop.is_cancelled() {
            report.stopped = Some("interrupted".into());
            break;
        }
    }
    Ok(report)
}

/// Where the fan-out and serving floors run: as the step's server and bots did, so that, pinned,
/// the floor's writes reach sockets the other CPU reads, as the server's do.
fn floor_placement(config: &LoadConfig) -> Placement {
    if config.pin {
        Placement::Apart
    } else {
        Placement::Anywhere
    }
}

/// What the load's bots send ([`SwarmConfig::new`]'s rates), which [`run_step`] gives them
/// and the serving floor's players send.
fn bots_traffic() -> floors::Traffic {
    let bots = SwarmConfig::new(1, Duration::ZERO);
    floors::Traffic {
        move_every: bots.move_every,
        ping_every: bots.ping_every,
    }
}

/// The server on CPU 0 and this process (the bots) on CPU 1, until dropped (then this process
/// runs on the CPUs it had before again; the floors place their threads themselves, the same
/// way: [`Placement::Apart`]).
struct Pinned(PinnedProcess);

impl Pinned {
    /// This process on CPU 0 for now: a server started meanwhile inherits it, so its runtime
    /// sizes itself to the one CPU it has (one worker thread), as under `taskset -c 0`.
    fn for_server_start() -> io::Result<Self> {
        PinnedProcess::to(procinfo::SERVER_CPU).map(Self)
    }

    /// The server on CPU 0 (every thread it has), this process on CPU 1.
    fn apart(&self, server: u32) -> io::Result<()> {
        procinfo::pin(server, procinfo::SERVER_CPU)?;
        self.0.move_to(procinfo::BOTS_CPU)
    }
}

/// Pings answered by a fresh server with nobody else on it, and how many of them each player
/// sends: within the one-second burst the rate limit allows, so none is dropped.
const QUIET_PINGS: usize = 2000;
const PINGS_PER_PLAYER: usize = 50;

/// Ping RTT of the tickcast client against a fresh server with no bots: what the goal
/// compares with the TCP echo floor. The bots' RTTs are this plus the load of N players on
/// the same two cores.
async fn quiet_ping(config: &LoadConfig) -> Result<RttSummary, LoadError> {
    let args = [format!("--tick-hz={}", config.tick_hz), "--seed=1".into()];
    let server = ServerProcess::start(&config.server_bin, &args).await?;
    let mut players = Vec::new();
    for i in 0..QUIET_PINGS.div_ceil(PINGS_PER_PLAYER) {
        let mut player = Client::connect(&server.ws_url(), &format!("pinger-{i}"))
            .await
            .map_err(|err| LoadError::Io {
                what: "connecting a pinger",
                source: io::Error::other(err),
            })?;
        player.keep_world(false);
        players.push(player);
    }
    let mut rtt = RttStats::new();
    let count = players.len();
    for round in 0..QUIET_PINGS {
        let player = &mut players[round % count];
        let pinged = async {
            player.send_ping(round as u32).await?;
            loop {
                if let Received::Pong { rtt, .. } = player.recv().await? {
                    return Ok::<_, ClientError>(rtt);
                }
            }
        };
        let sample = pinged.await.map_err(|err| LoadError::Io {
            what: "pinging the quiet server",
            source: io::Error::other(err),
        })?;
        // The first round trips warm the connections up.
        if round >= count {
            rtt.record(sample);
        }
    }
    drop(players);
    server.stop().await.map_err(io("stopping the quiet server"))?;
    Ok(rtt.summary())
}

/// What is read at each end of the window.
struct Sample {
    at: Instant,
    server_cpu: Duration,
    own_cpu: Duration,
    metrics: Scrape,
    memory: Memory,
}

/// The bots' figures summed over the seconds in the window.
#[derive(Default)]
struct BotWindow {
    rtt: RttStats,
    deltas: u64,
    bytes: u64,
    connected: usize,
}

impl LoadConfig {
    /// The steps as `(rooms, players per room)`.
    fn layouts(&self) -> Vec<(usize, usize)> {
        if self.rooms.is_empty() {
            self.steps.iter().map(|&n| (1, n)).collect()
        } else {
            self.rooms.clone()
        }
    }
}

/// The admin secret of the servers `load` starts in rooms mode (they listen on loopback only).
const ADMIN: &str = "load-harness";

/// One step of `rooms` rooms of `per_room` players; `None` when interrupted.
async fn run_step(
    config: &LoadConfig,
    rooms: usize,
    per_room: usize,
    stop: &CancellationToken,
    log: &mut impl FnMut(&str),
) -> Result<Option<Step>, LoadError> {
    let players = rooms * per_room;
    let mut args = vec![
        format!("--tick-hz={}", config.tick_hz),
        "--seed=1".into(),
        format!("--max-players={}", per_room + 64),
        format!("--max-connections={}", players + 1024),
    ];
    args.extend(config.world_args());
    let rooms_mode = !config.rooms.is_empty();
    if rooms_mode {
        args.extend([
            "--no-default-room".into(),
            format!("--admin-secret={ADMIN}"),
            format!("--max-rooms={rooms}"),
            "--room-idle=10m".into(),
        ]);
    }
    let pinned = if config.pin {
        Some(Pinned::for_server_start().map_err(io("pinning to CPUs"))?)
    } else {
        None
    };
    let mut server = ServerProcess::start(&config.server_bin, &args).await?;
    let pid = server.pid();
    if let Some(pinned) = &pinned {
        pinned.apart(pid).map_err(io("pinning to CPUs"))?;
    }
    let mut spread = Vec::new();
    if rooms_mode {
        let base = format!("http://{}", server.addr());
        for _ in 0..rooms {
            let room = NewRoom {
                game: "arena".into(),
                seed: Some(1),
                view_radius: config.view_radius,
                ..NewRoom::default()
            };
            let created = rooms_api::create_room(&base, &room, Some(ADMIN))
                .await
                .map_err(|err| LoadError::Io {
                    what: "creating a room",
                    source: io::Error::other(err),
                })?;
            spread.push(Target::Url(created.room.ws));
        }
    }
    time::sleep(Duration::from_secs(1)).await;
    let idle = procinfo::memory(pid).map_err(io("reading the server's memory"))?;

    let ramp = Duration::from_secs(2).max(Duration::from_secs_f64(players as f64 / 400.0));
    // Whole seconds, so the window is made of the swarm's one-second progress reports.
    let window_start = (ramp + config.settle).as_secs_f64().ceil() as u64;
    let window_secs = config.window.as_secs().max(1);
    let window_end = window_start + window_secs;
    let probe_url = match spread.first() {
        Some(Target::Url(url)) => url.clone(),
        _ => server.ws_url(),
    };
    let traffic = bots_traffic();
    let swarm_config = SwarmConfig {
        url: server.ws_url(),
        spread,
        ramp,
        // On the server's own cores, N bots that each decode and apply every delta (O(N)
        // per delta, so O(N²) in all) saturate the machine long before the server does.
        keep_world: false,
        move_every: traffic.move_every,
        ping_every: traffic.ping_every,
        ..SwarmConfig::new(players, Duration::from_secs(window_end + 1))
    };
    let halt = stop.child_token();
    let t0 = Instant::now();
    let mut bots = BotWindow::default();
    let swarm = swarm::run_observed(&swarm_config, halt.clone(), |progress, rtt| {
        let second = progress.elapsed.as_secs_f64().round() as u64;
        if second > window_start && second <= window_end {
            bots.rtt.merge(rtt);
            bots.deltas += progress.deltas_per_sec;
            bots.bytes += progress.bytes_per_sec;
            bots.connected = progress.connected;
        }
        if progress.elapsed.as_secs() % 5 == 0 {
            log(&format!("  {progress}"));
        }
    });
    let measure = async {
        let window = async {
            time::sleep_until(t0 + Duration::from_secs(window_start)).await;
            // Pinned: one on the server's CPU, one on the bots'.
            let cpus: &[Option<usize>] = if config.pin {
                &[Some(procinfo::SERVER_CPU), Some(procinfo::BOTS_CPU)]
            } else {
                &[None]
            };
            let probes: Vec<_> = cpus
                .iter()
                .map(|&cpu| Probe::start(probe_url.clone(), config.window, cpu))
                .collect();
            let watchers = (config.watchers > 0).then(|| {
                let cpu = config.pin.then_some(procinfo::BOTS_CPU);
                Watchers::start(probe_url.clone(), config.watchers, config.window, cpu)
            });
            let first = sample(&server).await?;
            // The views gauge is the last tick's: read once a second through the window.
            let mut views = vec![first.metrics.value(VIEWS)];
            let end = t0 + Duration::from_secs(window_end);
            while config.view_radius.is_some() && Instant::now() + VIEWS_EVERY < end {
                time::sleep(VIEWS_EVERY).await;
                if let Ok(scrape) = server.metrics().await {
                    views.push(scrape.value(VIEWS));
                }
            }
            time::sleep_until(end).await;
            let last = sample(&server).await?;
            views.push(last.metrics.value(VIEWS));
            Ok::<_, LoadError>((first, last, probes, watchers, views))
        };
        tokio::select! {
            () = halt.cancelled() => None,
            measured = window => Some(measured),
        }
    };
    let (report, measured) = tokio::join!(swarm, measure);
    let report = report?;
    let died = server.exited();
    let Some(measured) = measured else {
        return Ok(None);
    };
    let (first, last, probes, watchers, views) = match measured {
        Ok(pair) => pair,
        Err(err) if died.is_some() => {
            log(&format!("the server died: {err}\n{}", server.log_tail()));
            let status = died.map_or_else(String::new, |s| s.to_string());
            return Ok(Some(Step::unmeasured(players, format!("the server exited ({status})"))));
        }
        Err(err) => return Err(err),
    };
    if let Err(err) = server.stop().await {
        log(&format!("stopping the server: {err}"));
    }

    let served = Served {
        rooms,
        per_room,
        probes: probes.len() + config.watchers,
    };
    let mut step = compute(config, served, idle, &first, &last, &bots);
    if config.view_radius.is_some() {
        step.views_per_tick = Some(views.iter().sum::<f64>() / views.len() as f64 / rooms as f64);
    }
    if let Some(watchers) = watchers {
        let held: Held = watchers.finish(log).await;
        step.entities_per_view = (held.frames > 0).then_some(held.mean);
        step.held = Some(held);
    }
    step.desyncs = report.desyncs;
    let mut probed = Vec::new();
    for probe in probes {
        probed.push(probe.finish(log).await);
    }
    step.probe_lost = probed.iter().map(|p| p.lost).sum();
    step.probe_rtt_us = probed.first().map(|p| p.rtt).unwrap_or_default();
    step.probe_split_us = probed.first().map(|p| (p.there, p.back));
    step.probe_bots_cpu_rtt_us = probed.get(1).map(|p| p.rtt);
    step.failed = verdict(config, &step, died.map(|s| s.to_string()));
    Ok(Some(step))
}

/// Server CPU, own CPU, /metrics and memory, now.
async fn sample(server: &ServerProcess) -> Result<Sample, LoadError> {
    let pid = server.pid();
    Ok(Sample {
        at: Instant::now(),
        server_cpu: procinfo::cpu_time(pid).map_err(io("reading the server's CPU time"))?,
        own_cpu: procinfo::cpu_time(std::process::id()).map_err(io("reading our CPU time"))?,
        metrics: server.metrics().await.map_err(io("scraping /metrics"))?,
        memory: procinfo::memory(pid).map_err(io("reading the server's memory"))?,
    })
}

/// The gauge of distinct views in the last tick, and how often the window reads it.
const VIEWS: &str = "tickcast_views";
const VIEWS_EVERY: Duration = Duration::from_secs(1);

/// Who a step's server wrote to: `rooms` rooms of `per_room` bots, and the ping probes and
/// watchers (all in the first room).
#[derive(Debug, Clone, Copy)]
struct Served {
    rooms: usize,
    per_room: usize,
    probes: usize,
}

/// The step's figures from the samples at both ends of the window.
fn compute(
    config: &LoadConfig,
    Served {
        rooms,
        per_room,
        probes,
    }: Served,
    idle: Memory,
    first: &Sample,
    last: &Sample,
    bots: &BotWindow,
) -> Step {
    let players = rooms * per_room;
    let secs = (last.at - first.at).as_secs_f64();
    let counter = |name: &str| last.metrics.value(name) - first.metrics.value(name);
    let ticks = counter("tickcast_ticks_total");
    let work = last
        .metrics
        .buckets("tickcast_tick_work_seconds")
        .since(&first.metrics.buckets("tickcast_tick_work_seconds"));
    let fan_out = last
        .metrics
        .buckets("tickcast_fan_out_seconds")
        .since(&first.metrics.buckets("tickcast_fan_out_seconds"));
    let server_cpu = (last.server_cpu.saturating_sub(first.server_cpu)).as_secs_f64();
    let own_cpu = (last.own_cpu.saturating_sub(first.own_cpu)).as_secs_f64();
    let ws_messages = counter("tickcast_messages_sent_total{transport=\"Websocket\"}");
    let ws_bytes = counter("tickcast_bytes_sent_total{transport=\"Websocket\"}");
    let window = config.window.as_secs().max(1) as f64;
    let per_player = |total: u64| total as f64 / players as f64 / window;
    let grown = last.memory.rss_kib.saturating_sub(idle.rss_kib) as f64;
    // Every room ticks `ticks / rooms` times, each tick serving its players: the bots, and the
    // probes in the first room.
    let player_ticks = ticks / rooms as f64 * (players + probes) as f64;
    Step {
        players,
        rooms,
        connected: bots.connected,
        window_secs: secs,
        // Each room's: every room ticks at the rate, so all of them tick `rooms` times as often.
        ticks_per_sec: ticks / secs / rooms as f64,
        tick_rate_held: ticks >= 0.95 * f64::from(config.tick_hz) * secs * rooms as f64,
        overruns: counter("tickcast_tick_overruns_total") as u64,
        tick_work_p50_us: work.quantile(0.5).map(|s| s * 1e6),
        tick_work_p99_us: work.quantile(0.99).map(|s| s * 1e6),
        fan_out_p50_us: fan_out.quantile(0.5).map(|s| s * 1e6),
        fan_out_p99_us: fan_out.quantile(0.99).map(|s| s * 1e6),
        server_cpu_per_sec: server_cpu / secs,
        us_per_player_tick: ratio(server_cpu * 1e6, player_ticks),
        idle_rss_kib: idle.rss_kib,
        rss_kib: last.memory.rss_kib,
        peak_rss_kib: last.memory.peak_kib,
        kib_per_player: grown / players as f64,
        kib_per_room: grown / rooms as f64,
        rtt_us: bots.rtt.summary(),
        bytes_per_player_per_sec: per_player(bots.bytes),
        deltas_per_player_per_sec: per_player(bots.deltas),
        mean_frame_bytes: ratio(ws_bytes, ws_messages),
        bytes_per_player_tick: ratio(ws_bytes, player_ticks),
        bots_cpu_per_sec: own_cpu / secs,
        // Per room-tick, as the views gauge is read per room.
        view_frames_per_tick: config
            .view_radius
            .map(|_| ratio(counter("tickcast_view_frames_encoded_total"), ticks)),
        ..Step::unmeasured(players, String::new())
    }
}

/// Why a measured step does not count as held, if it does not.
fn verdict(config: &LoadConfig, step: &Step, died: Option<String>) -> Option<String> {
    if let Some(status) = died {
        return Some(format!("the server exited ({status})"));
    }
    if step.connected < step.players {
        return Some(format!("only {} of {} bots connected", step.connected, step.players));
    }
    if !step.tick_rate_held {
        return Some(format!(
            "tick rate not held ({:.1} of {} ticks/s)",
            step.ticks_per_sec, config.tick_hz
        ));
    }
    let limit = config.rtt_limit.as_micros() as u64;
    if step.rtt_us.p99 > limit {
        return Some(format!(
            "RTT p99 {:.1} ms over {} ms",
            step.rtt_us.p99 as f64 / 1000.0,
            limit / 1000
        ));
    }
    None
}

/// What a measuring thread of a step (the probe, the watchers) found, once it ends; one that
/// failed or panicked is logged as `what` and found nothing.
async fn joined<T: Default + Send + 'static>(
    thread: std::thread::JoinHandle<io::Result<T>>,
    what: &str,
    log: &mut impl FnMut(&str),
) -> T {
    match tokio::task::spawn_blocking(move || thread.join()).await {
        Ok(Ok(Ok(found))) => found,
        Ok(Ok(Err(err))) => {
            log(&format!("  {what} failed: {err}"));
            T::default()
        }
        Ok(Err(_)) | Err(_) => {
            log(&format!("  {what} panicked"));
            T::default()
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn io(what: &'static str) -> impl FnOnce(io::Error) -> LoadError {
    move |source| LoadError::Io { what, source }
}
