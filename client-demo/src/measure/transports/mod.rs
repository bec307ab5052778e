//! `transports`: on one running match, what each way of following it costs and how late it is.
//!
//! The run: start the release server, run [`TransportsConfig::bots`] bots so the world moves,
//! and connect one reference player that stays for the whole run. Then, one phase at a time:
//! nobody else (the baseline), then K followers of each [`Transport`] ([`crate::measure::followers`]),
//! each phase warmed up for 2 s and measured for [`TransportsConfig::window`].
//!
//! - **Update latency**: the server does not put times on the wire, so a tick's time is taken
//!   from the reference player: for tick E, the earliest of `arrival(E') - (E' - E) / hz` over
//!   its deltas E' within a second of E. That is the earliest delivery seen around E, so the
//!   latencies below exclude the fastest delivery path itself (one tick's work and one loopback
//!   write, well under a millisecond) and measure everything above it. A follower's latency for
//!   an update at tick E is the time it first held the world at E or later, minus E's time; the
//!   updates are every tick for the player, and for spectators every spectator event (the ticks
//!   divisible by `tick_hz / 10`), so a poller is charged for the events it learns of late.
//! - **Bytes per update**: bytes read from the socket (HTTP heads, chunk framing, WebSocket
//!   headers included) over the updates received; bytes written (requests) likewise.
//! - **Server CPU per client**: the server's CPU seconds per second in the phase, minus the
//!   baseline's, over K.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::{self, Instant};
use tokio_util::sync::CancellationToken;

use crate::measure::followers::{self, Arrival, Tally, Transport};
use crate::measure::procinfo;
use crate::measure::server_proc::{ServerProcess, StartError};
use crate::stats::{Millis, RttStats, RttSummary};
use crate::swarm::{self, SwarmConfig};

/// Warm-up of each phase before its window.
const WARMUP: Duration = Duration::from_secs(2);
/// The server's spectator event rate (its default, passed explicitly).
const SPECTATOR_HZ: u32 = 10;

/// What `transports` does.
#[derive(Debug, Clone)]
pub struct TransportsConfig {
    /// The server binary.
    pub server_bin: PathBuf,
    /// Bots moving in the match.
    pub bots: usize,
    /// Followers per transport.
    pub clients: usize,
    /// Measured window per phase.
    pub window: Duration,
    /// The server's tick rate.
    pub tick_hz: u32,
}

/// One transport's row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The transport, in words.
    pub transport: String,
    /// Followers run.
    pub clients: usize,
    /// Followers that failed.
    pub errors: u64,
    /// Updates received per second per client.
    pub updates_per_sec: f64,
    /// Update latency (see the module docs), microseconds.
    pub latency_us: RttSummary,
    /// Bytes read per update, headers included.
    pub bytes_down_per_update: f64,
    /// Bytes written per update (requests, acks, pongs).
    pub bytes_up_per_update: f64,
    /// HTTP requests per minute per client.
    pub requests_per_min: f64,
    /// Server CPU microseconds per second per client, above the baseline.
    pub server_cpu_us_per_sec: f64,
}

/// What `transports` measured.
#[derive(Debug, Clone, Serialize)]
pub struct TransportsReport {
    /// Bots moving in the match.
    pub bots: usize,
    /// The server's tick rate.
    pub tick_hz: u32,
    /// Seconds measured per phase.
    pub window_secs: f64,
    /// Server CPU seconds per second with no followers.
    pub baseline_cpu_per_sec: f64,
    /// The smallest difference the CPU column can show: one clock tick over the window and
    /// the clients, µs/s per client.
    pub cpu_resolution_us_per_sec: f64,
    /// One row per transport.
    pub rows: Vec<Row>,
}

/// Why `transports` could not run.
#[derive(Debug, thiserror::Error)]
pub enum TransportsError {
    /// The server would not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The bots or the reference player failed, or /proc could not be read.
    #[error("{0}")]
    Run(String),
}

/// Runs every phase; `log` gets a line per phase.
pub async fn run(
    config: &TransportsConfig,
    stop: CancellationToken,
    mut log: impl FnMut(&str),
) -> Result<TransportsReport, TransportsError> {
    let transports = [
        Transport::WebSocket,
        Transport::Sse,
        Transport::LongPoll,
        Transport::Poll(Duration::from_secs(1)),
        Transport::Poll(Duration::from_millis(100)),
    ];
    let args = [
        format!("--tick-hz={}", config.tick_hz),
        format!("--spectator-hz={SPECTATOR_HZ}"),
        "--seed=1".into(),
        format!("--max-players={}", config.bots + config.clients + 16),
        format!("--max-spectators={}", config.clients + 16),
    ];
    let server = ServerProcess::start(&config.server_bin, &args).await?;
    let (addr, pid) = (server.addr(), server.pid());
    let halt = stop.child_token();
    let phase_time = WARMUP + config.window + Duration::from_secs(1);
    let total = phase_time * (transports.len() as u32 + 1) + Duration::from_secs(4);
    let swarm_config = SwarmConfig {
        url: server.ws_url(),
        ..SwarmConfig::new(config.bots, total)
    };
    let bots = tokio::spawn({
        let halt = halt.clone();
        async move { swarm::run(&swarm_config, halt, |_| {}).await }
    });
    let reference_tally = Arc::new(Tally::default());
    let reference = tokio::spawn(followers::follow(
        Transport::WebSocket,
        addr,
        "reference".into(),
        reference_tally.clone(),
        halt.clone(),
    ));
    time::sleep(Duration::from_secs(3)).await; // the bots' ramp

    let cpu = |what| procinfo::cpu_time(pid).map_err(|e| TransportsError::Run(format!("{what}: {e}")));
    let mut measured = Vec::new();
    log("baseline: bots only");
    let (c0, t0) = (cpu("server CPU")?, Instant::now());
    time::sleep(config.window).await;
    let baseline = (cpu("server CPU")?.saturating_sub(c0)).as_secs_f64() / t0.elapsed().as_secs_f64();
    for transport in transports {
        if halt.is_cancelled() {
            break;
        }
        log(&format!("{transport}: {} clients", config.clients));
        measured.push(phase(config, transport, addr, pid, &halt).await?);
    }
    halt.cancel();
    let reference_arrivals = reference.await.map_err(|e| TransportsError::Run(e.to_string()))?;
    let _ = bots.await;
    if let Err(err) = server.stop().await {
        log(&format!("stopping the server: {err}"));
    }

    let clock = TickClock::new(&reference_arrivals, config.tick_hz);
    let every = u64::from((config.tick_hz / SPECTATOR_HZ).max(1));
    let rows = measured
        .into_iter()
        .map(|m| {
            m.row(
                config,
                &clock,
                if m.transport == Transport::WebSocket { 1 } else { every },
                baseline,
            )
        })
        .collect();
    Ok(TransportsReport {
        bots: config.bots,
        tick_hz: config.tick_hz,
        window_secs: config.window.as_secs_f64(),
        baseline_cpu_per_sec: baseline,
        cpu_resolution_us_per_sec: 1e6
            / (procinfo::clock_ticks_per_sec() as f64 * config.window.as_secs_f64() * config.clients.max(1) as f64),
        rows,
    })
}

/// One phase's raw measurements.
struct Measured {
    transport: Transport,
    window: (Instant, Instant),
    server_cpu_per_sec: f64,
    traffic: (u64, u64),
    requests: u64,
    errors: u64,
    arrivals: Vec<Vec<Arrival>>,
}

async fn phase(
    config: &TransportsConfig,
    transport: Transport,
    addr: std::net::SocketAddr,
    pid: u32,
    halt: &CancellationToken,
) -> Result<Measured, TransportsError> {
    let tally = Arc::new(Tally::default());
    let stop = halt.child_token();
    let mut clients = JoinSet::new();
    for i in 0..config.clients {
        let name = format!("watch-{i}");
        clients.spawn(followers::follow(transport, addr, name, tally.clone(), stop.clone()));
        // Spread the starts over about a second, as real clients would not arrive together.
        time::sleep(Duration::from_secs(1) / config.clients.max(1) as u32).await;
    }
    time::sleep(WARMUP).await;
    let read = |what| procinfo::cpu_time(pid).map_err(|e| TransportsError::Run(format!("{what}: {e}")));
    let (cpu0, traffic0, requests0, start) = (
        read("server CPU")?,
        tally.traffic.get(),
        tally.requests.load(Relaxed),
        Instant::now(),
    );
    tokio::select! {
        () = halt.cancelled() => {}
        () = time::sleep(config.window) => {}
    }
    let (cpu1, traffic1, requests1, end) = (
        read("server CPU")?,
        tally.traffic.get(),
        tally.requests.load(Relaxed),
        Instant::now(),
    );
    stop.cancel();
    let arrivals = clients.join_all().await;
    time::sleep(Duration::from_secs(1)).await; // let the server notice the departures
    Ok(Measured {
        transport,
        window: (start, end),
        server_cpu_per_sec: cpu1.saturating_sub(cpu0).as_secs_f64() / (end - start).as_secs_f64(),
        traffic: (traffic1.0 - traffic0.0, traffic1.1 - traffic0.1),
        requests: requests1 - requests0,
        errors: tally.errors.load(Relaxed),
        arrivals,
    })
}

impl Measured {
    fn row(&self, config: &TransportsConfig, clock: &TickClock, every: u64, baseline: f64) -> Row {
        let (start, end) = self.window;
        let secs = (end - start).as_secs_f64();
        let k = config.clients.max(1) as f64;
        let mut latency = RttStats::new();
        let mut updates = 0u64;
        for arrivals in &self.arrivals {
            for pair in arrivals.windows(2) {
                let (before, now) = (pair[0], pair[1]);
                if now.at < start || now.at > end {
                    continue;
                }
                updates += 1;
                for tick in (before.tick + 1..=now.tick).filter(|t| t % every == 0) {
                    if let Some(at) = clock.time_of(tick) {
                        latency.record(now.at.saturating_duration_since(at));
                    }
                }
            }
        }
        let per_update = |bytes: u64| {
            if updates > 0 {
                bytes as f64 / updates as f64
            } else {
                0.0
            }
        };
        Row {
            transport: self.transport.to_string(),
            clients: config.clients,
            errors: self.errors,
            updates_per_sec: updates as f64 / secs / k,
            latency_us: latency.summary(),
            bytes_down_per_update: per_update(self.traffic.0),
            bytes_up_per_update: per_update(self.traffic.1),
            requests_per_min: self.requests as f64 / (secs / 60.0) / k,
            server_cpu_us_per_sec: (self.server_cpu_per_sec - baseline) * 1e6 / k,
        }
    }
}

/// When each tick happened, estimated from the reference player's deltas.
pub struct TickClock {
    arrivals: BTreeMap<u64, Instant>,
    period: Duration,
    span: u64,
}

impl TickClock {
    /// A clock from one follower's arrivals at `tick_hz`.
    pub fn new(arrivals: &[Arrival], tick_hz: u32) -> Self {
        Self {
            arrivals: arrivals.iter().map(|a| (a.tick, a.at)).collect(),
            period: Duration::from_secs(1) / tick_hz.max(1),
            span: u64::from(tick_hz),
        }
    }

    /// The earliest `arrival(E') - (E' - tick) * period` over arrivals within a second.
    pub fn time_of(&self, tick: u64) -> Option<Instant> {
        let range = tick.saturating_sub(self.span)..=tick + self.span;
        self.arrivals
            .range(range)
            .filter_map(|(&t, &at)| {
                if t >= tick {
                    at.checked_sub(self.period * (t - tick) as u32)
                } else {
                    Some(at + self.period * (tick - t) as u32)
                }
            })
            .min()
    }
}

impl TransportsReport {
    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        // Plain structs with string keys: this cannot fail.
        serde_json::to_string(self).expect("a report serializes")
    }
}

impl fmt::Display for TransportsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tickcast transports: {} bots moving at {} Hz, {:.0} s per transport, baseline server CPU {:.3} s/s\n",
            self.bots, self.tick_hz, self.window_secs, self.baseline_cpu_per_sec
        )?;
        writeln!(
            f,
            "{:<20} {:>7} {:>9} {:>9} {:>9} {:>10} {:>8} {:>9} {:>12}",
            "transport",
            "clients",
            "updates/s",
            "lat p50",
            "lat p99",
            "B down/upd",
            "B up/upd",
            "req/min",
            "CPU µs/s/cl"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<20} {:>7} {:>9.1} {:>9} {:>9} {:>10.0} {:>8.0} {:>9.1} {:>12.0}{}",
                r.transport,
                r.clients,
                r.updates_per_sec,
                Millis(r.latency_us.p50).to_string(),
                Millis(r.latency_us.p99).to_string(),
                r.bytes_down_per_update,
                r.bytes_up_per_update,
                r.requests_per_min,
                r.server_cpu_us_per_sec,
                if r.errors > 0 {
                    format!("  ({} failed)", r.errors)
                } else {
                    String::new()
                }
            )?;
        }
        writeln!(
            f,
            "\nnotes: latency is from each tick's earliest observed delivery (a reference player) to the client \
             holding that tick, per tick for the player and per spectator event ({} Hz) for the others; bytes are \
             on the wire, headers and framing included; CPU is the server's utime+stime above the baseline, per client \
             (resolution {:.0} µs/s per client).",
            SPECTATOR_HZ, self.cpu_resolution_us_per_sec
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_takes_the_earliest_delivery_around_a_tick() {
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        // Ticks every 10 ms (100 Hz); tick 3 arrived 4 ms late, tick 5 on time.
        let arrivals: Vec<Arrival> = [(1, 10), (2, 20), (3, 34), (5, 50)]
            .into_iter()
            .map(|(tick, at)| Arrival { tick, at: t0 + ms(at) })
            .collect();
        let clock = TickClock::new(&arrivals, 100);
        assert_eq!(clock.time_of(3), Some(t0 + ms(30)));
        assert_eq!(clock.time_of(4), Some(t0 + ms(40)));
        assert_eq!(clock.time_of(1000), None);
    }
}
