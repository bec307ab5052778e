//! The bot swarm: N bots in one process, ramped up, bounded in time, summed up in a report.
//!
//! The run, in order:
//! 1. Refuse a target that is not on this machine (unless `allow_remote`).
//! 2. Start bot `i` at `i * ramp / count`, each in its own task ([`crate::bot`]).
//! 3. Once a second, hand a [`Progress`] to the caller, read from lock-free counters.
//! 4. Merge each bot's outcome into the report's tally as it finishes.
//! 5. At `duration`, when the caller's token fires, or when every bot has ended on its own
//!    (e.g. the server shut down), tell the rest to stop, give them [`STOP_GRACE`] to close,
//!    and finish the [`Report`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{self, Instant};
use tokio_util::sync::CancellationToken;

use crate::behaviour::Mix;
use crate::bot::{self, BotSpec, Live};
use crate::connect::{self, DEFAULT_WS_URL, Target, TargetError};
use crate::report::{Report, Tally};
use crate::stats::{Millis, RttStats, RttSummary};

/// How long stopped bots get to close before they are abandoned (and counted as such).
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Longest run allowed: load tests are bounded in time.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// RTT samples buffered for the progress line; beyond this a second's samples are dropped
/// (the report's figures come from each bot's own histogram and lose nothing).
const LIVE_RTT_SAMPLES: usize = 8192;

/// What the swarm does.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// The server's player URL.
    pub url: String,
    /// Where the bots join, bot `i` at `spread[i % len]`; empty: every bot joins `url`.
    pub spread: Vec<Target>,
    /// Bots to run.
    pub count: usize,
    /// Total run time, ramp included.
    pub duration: Duration,
    /// Time over which the bots are started, evenly spaced.
    pub ramp: Duration,
    /// Seed of the bots' behaviours (bot `i` uses `seed + i`).
    pub seed: u64,
    /// Which behaviour each bot gets.
    pub mix: Mix,
    /// Time between a bot's move commands.
    pub move_every: Duration,
    /// Time between a bot's pings.
    pub ping_every: Duration,
    /// Allow a target outside 127.0.0.0/8 and ::1.
    pub allow_remote: bool,
    /// Whether each bot keeps the world (decoding every frame, checking checksums) or only
    /// follows the stream by tick and wanders blind, which costs far less per bot.
    pub keep_world: bool,
    /// Whether bots take their seat back when their connection drops, or goes silent for
    /// this long; `None`: a dropped bot stops.
    pub resume: Option<Duration>,
}

impl SwarmConfig {
    /// `count` bots for `duration` against the local default server, with the CLI's defaults.
    pub fn new(count: usize, duration: Duration) -> Self {
        Self {
            url: DEFAULT_WS_URL.into(),
            spread: Vec::new(),
            count,
            duration,
            ramp: Duration::from_secs(2).min(duration / 2),
            seed: 1,
            mix: Mix::default(),
            move_every: Duration::from_millis(100),
            ping_every: Duration::from_millis(500),
            allow_remote: false,
            keep_world: true,
            resume: Some(tickcast::client::DEFAULT_SILENCE_LIMIT),
        }
    }
}

/// Why a swarm did not run.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The target is not one we may load.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The settings contradict each other.
    #[error("{0}")]
    Settings(&'static str),
}

/// The swarm's state once a second.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Time since the start.
    pub elapsed: Duration,
    /// Bots started so far.
    pub started: usize,
    /// Bots connected now.
    pub connected: usize,
    /// Bots whose connection failed.
    pub failed: usize,
    /// Deltas applied by all bots in the last second.
    pub deltas_per_sec: u64,
    /// Payload bytes received by all bots in the last second.
    pub bytes_per_sec: u64,
    /// RTTs of the pongs received in the last second.
    pub rtt: RttSummary,
    /// Desyncs so far.
    pub desyncs: u64,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:>3}s] started {} connected {} failed {} | {} deltas/s | rtt p99 {} | desyncs {}",
            self.elapsed.as_secs(),
            self.started,
            self.connected,
            self.failed,
            self.deltas_per_sec,
            Millis(self.rtt.p99),
            self.desyncs
        )
    }
}

/// Runs the swarm to the end and reports; `on_progress` is called once a second.
pub async fn run(
    config: &SwarmConfig,
    stop: CancellationToken,
    mut on_progress: impl FnMut(&Progress),
) -> Result<Report, SwarmError> {
    run_observed(config, stop, |progress, _| on_progress(progress)).await
}

/// [`run`], with each second's RTT samples handed over too, so a measurement can merge exactly
/// the seconds of its own window (the `load` command does).
pub async fn run_observed(
    config: &SwarmConfig,
    stop: CancellationToken,
    mut on_progress: impl FnMut(&Progress, &RttStats),
) -> Result<Report, SwarmError> {
    let targets = if config.spread.is_empty() {
        vec![Target::Url(config.url.clone())]
    } else {
        config.spread.clone()
    };
    if !config.allow_remote {
        for target in &targets {
            connect::ensure_loopback(target.url()).await?;
        }
    }
    if config.duration.is_zero() || config.duration > MAX_DURATION {
        return Err(SwarmError::Settings(
            "the duration must be above zero and at most an hour",
        ));
    }
    if config.ramp >= config.duration && config.count > 1 {
        return Err(SwarmError::Settings("the ramp must be shorter than the duration"));
    }
    if config.move_every.is_zero() || config.ping_every.is_zero() {
        return Err(SwarmError::Settings("move and ping intervals must be above zero"));
    }

    // The bots' own token: the deadline cancels it without touching the caller's.
    let halt = stop.child_token();
    let live = Arc::new(Live::default());
    let (rtt_tx, mut rtt_rx) = mpsc::channel(LIVE_RTT_SAMPLES);
    let mut tally = Tally::new(&config.url, config.count);
    let started = Instant::now();
    let deadline = started + config.duration;
    let mut bots = JoinSet::new();
    let mut window = RttStats::new();
    let (mut last_deltas, mut last_bytes) = (0, 0);
    let mut progress = time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    let start_at = |i: usize| started + config.ramp.mul_f64(i as f64 / config.count.max(1) as f64);
    let mut spawned = 0;

    // Until the deadline, the caller's stop, or every bot having ended on its own.
    while !halt.is_cancelled() && (spawned < config.count || !bots.is_empty()) {
        tokio::select! {
            () = halt.cancelled() => {}
            () = time::sleep_until(deadline) => halt.cancel(),
            () = time::sleep_until(start_at(spawned)), if spawned < config.count => {
                let spec = BotSpec {
                    index: spawned,
                    target: targets[spawned % targets.len()].clone(),
                    behaviour: config.mix.for_bot(spawned),
                    seed: config.seed.wrapping_add(spawned as u64),
                    move_every: config.move_every,
                    ping_every: config.ping_every,
                    keep_world: config.keep_world,
                    resume: config.resume,
                };
                bots.spawn(bot::run(spec, live.clone(), rtt_tx.clone(), halt.clone()));
                spawned += 1;
            }
            Some(joined) = bots.join_next() => tally.joined(joined),
            Some(rtt) = rtt_rx.recv() => window.record(rtt),
            _ = progress.tick() => {
                let (deltas, bytes) = (live.deltas.load(Relaxed), live.bytes.load(Relaxed));
                let second = Progress {
                    elapsed: started.elapsed(),
                    started: spawned,
                    connected: live.connected.load(Relaxed),
                    failed: live.failed.load(Relaxed),
                    deltas_per_sec: deltas - last_deltas,
                    bytes_per_sec: bytes - last_bytes,
                    rtt: window.summary(),
                    desyncs: live.desyncs.load(Relaxed),
                };
                on_progress(&second, &window);
                (last_deltas, last_bytes) = (deltas, bytes);
                window.clear();
            }
        }
    }
    let elapsed = started.elapsed();
    halt.cancel();
    drop(rtt_rx);

    let gathered = time::timeout(STOP_GRACE, async {
        while let Some(joined) = bots.join_next().await {
            tally.joined(joined);
        }
    })
    .await;
    if gathered.is_err() {
        tracing::warn!(
            left = bots.len(),
            "bots did not stop within {STOP_GRACE:?}: abandoning them"
        );
        for _ in 0..bots.len() {
            tally.lost_task("did not stop in time");
        }
        bots.abort_all();
    }
    Ok(tally.finish(elapsed))
}
