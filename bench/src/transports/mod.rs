//! `transports`: on one running match, what each way of following it costs and how late it is,
//! over loopback and across a network whose round trip costs something.
//!
//! One run: start the release server, run [`TransportsConfig::bots`] bots so the world moves,
//! and connect one reference player that stays for the whole run; the bots and the reference
//! talk to the server directly. Then measure a baseline with nobody else, and for each network
//! in [`TransportsConfig::networks`] (direct, or through a [`tickcast_relay`] with that round
//! trip) K followers of each [`Transport`] ([`crate::clients::followers`]) in turn, each phase
//! warmed up and measured for [`TransportsConfig::window`]. Then, if asked, the server memory
//! per connection with many clients of one kind ([`memory`]). The whole is repeated
//! [`TransportsConfig::runs`] times and every figure reported is the median of the runs.
//!
//! - **Update latency**: the server does not put times on the wire, so a tick's time is taken
//!   from the reference player ([`clock`]): the earliest delivery seen around it, over
//!   loopback. A follower's latency for an update at tick E is the time it first held the world
//!   at E or later, minus E's time; the updates are every tick for the player, and for
//!   spectators every spectator event (the ticks divisible by `tick_hz / 10`), so a poller is
//!   charged for the events it learns of late. Through the relay this includes the one-way
//!   delay, its jitter, and any round trips the transport waits for.
//! - **Events seen**: of the updates published in the window (less its last second, so a late
//!   delivery still counts), the share each follower received as such. A long-poll that batches
//!   still sees every event, later; a poller sees only the states it happened to fetch.
//! - **Bytes per update**: bytes read from the socket (HTTP heads, chunk framing, WebSocket
//!   headers included) over the updates received; bytes written (requests) likewise. Request
//!   and response heads are also given per request.
//! - **Server CPU per client**: the server's CPU seconds per second in the phase, minus the
//!   baseline's, over K. The relay runs in this process, not the server's.
//!
//! Modules: [`clock`] (when each tick happened), [`compare`] (one run of the comparison),
//! [`memory`] (memory per connection), [`report`] (rows, medians of runs, the markdown tables)
//! and [`chart`] (the latency chart as SVG).

pub mod chart;
pub mod clock;
pub mod compare;
pub mod memory;
pub mod report;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tickcast_relay::Shape;
use tokio_util::sync::CancellationToken;

pub use self::report::{Comparison, Pass, Row, TransportsReport};
use crate::clients::followers::Transport;
use crate::server::process::StartError;
use crate::server::procinfo;

/// The server's spectator event rate (its default, passed explicitly).
pub const SPECTATOR_HZ: u32 = 10;

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
    /// Warm-up of each phase before its window.
    pub warmup: Duration,
    /// Time given for things to happen around the measurements: followers' starts are spread
    /// over it, the server is given it to notice departures, the bots ramp over twice it, and
    /// the memory step lets the server settle for twice it.
    pub settle: Duration,
    /// The server's tick rate.
    pub tick_hz: u32,
    /// The transports compared, in order.
    pub transports: Vec<Transport>,
    /// The paths measured, in order: `None` is a direct loopback connection, `Some` goes
    /// through the relay.
    pub networks: Vec<Option<Network>>,
    /// Clients of each kind for the memory step; 0 skips it.
    pub memory_clients: usize,
    /// Complete runs; figures are their medians.
    pub runs: usize,
}

impl TransportsConfig {
    /// The documented comparison (50 bots, 50 clients per transport, 20 s windows, 30 Hz, all
    /// five transports, direct, one run, no memory step) against `server_bin`.
    pub fn new(server_bin: PathBuf) -> Self {
        Self {
            server_bin,
            bots: 50,
            clients: 50,
            window: Duration::from_secs(20),
            warmup: Duration::from_secs(2),
            settle: Duration::from_secs(1),
            tick_hz: 30,
            transports: vec![
                Transport::WebSocket,
                Transport::Sse,
                Transport::LongPoll,
                Transport::Poll(Duration::from_secs(1)),
                Transport::Poll(Duration::from_millis(100)),
            ],
            networks: vec![None],
            memory_clients: 0,
            runs: 1,
        }
    }

    /// About how long the whole command takes.
    pub fn estimated_duration(&self) -> Duration {
        let phases = (self.transports.len() * self.networks.len()) as u32;
        let phase = compare::phase_duration(self);
        let run = compare::setup_duration(self) + self.window + phase * phases;
        let memory = if self.memory_clients > 0 {
            memory::step_duration(self) * memory::KINDS.len() as u32
        } else {
            Duration::ZERO
        };
        (run + memory) * self.runs as u32
    }
}

/// A simulated network between the followers and the server: the relay's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Network {
    /// Round trip the relay adds (twice its one-way delay), µs.
    pub rtt_us: u64,
    /// How far each one-way delay varies, either way, µs.
    pub jitter_us: u64,
    /// Bandwidth per direction per connection, bytes/s; `None` for no cap.
    pub bandwidth: Option<u64>,
}

impl Network {
    /// A network of round trip `rtt` whose one-way delays vary by `jitter_pct` % either way.
    pub fn new(rtt: Duration, jitter_pct: u32, bandwidth: Option<u64>) -> Self {
        let one_way = rtt.as_micros() as u64 / 2;
        Self {
            rtt_us: one_way * 2,
            jitter_us: one_way * u64::from(jitter_pct) / 100,
            bandwidth,
        }
    }

    /// The round trip in milliseconds.
    pub fn rtt_ms(&self) -> f64 {
        self.rtt_us as f64 / 1000.0
    }

    /// The relay's shape, the same in both directions.
    pub fn shape(&self) -> Shape {
        Shape {
            delay: Duration::from_micros(self.rtt_us / 2),
            jitter: Duration::from_micros(self.jitter_us),
            bandwidth: self.bandwidth,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |us: u64| us as f64 / 1000.0;
        write!(f, "{} ms round trip", ms(self.rtt_us))?;
        if self.rtt_us > 0 {
            write!(f, " ({} ms", ms(self.rtt_us / 2))?;
            if self.jitter_us > 0 {
                write!(f, " ± {} ms", ms(self.jitter_us))?;
            }
            f.write_str(" each way)")?;
        }
        if let Some(rate) = self.bandwidth {
            write!(f, ", {} kbit/s", rate * 8 / 1000)?;
        }
        Ok(())
    }
}

/// Why `transports` could not run.
#[derive(Debug, thiserror::Error)]
pub enum TransportsError {
    /// The server would not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Too few file descriptors for the memory step.
    #[error(transparent)]
    Descriptors(#[from] procinfo::TooFewDescriptors),
    /// The bots, the reference player, the relay or /proc failed.
    #[error("{0}")]
    Run(String),
}

/// Every run, then their medians; `log` gets a line per phase.
pub async fn run(
    config: &TransportsConfig,
    stop: CancellationToken,
    mut log: impl FnMut(&str),
) -> Result<TransportsReport, TransportsError> {
    let load_before = procinfo::load_average().unwrap_or(f64::NAN);
    let mut runs = Vec::new();
    for i in 0..config.runs.max(1) {
        if stop.is_cancelled() {
            break;
        }
        if config.runs > 1 {
            log(&format!("run {} of {}", i + 1, config.runs));
        }
        let mut comparison = compare::run(config, &stop, &mut log).await?;
        if config.memory_clients > 0 && !stop.is_cancelled() {
            comparison.memory = memory::run(config, &stop, &mut log).await?;
        }
        runs.push(comparison);
    }
    Ok(TransportsReport::new(config, runs, load_before))
}
