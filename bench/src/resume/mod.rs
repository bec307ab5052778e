//! `resume`: players whose connection drops take their seat back (protocol v5's resume).
//!
//! For each round trip: start the release server, give each of [`ResumeConfig::bots`] bots a
//! [`tickcast_relay`] of its own (half the round trip each way) and play them through it with
//! auto-resume on ([`client_demo::bot`], keeping the world, so every checksum is compared). Each
//! bot's relay is cut ([`Relay::cut`]: no FIN, as a phone leaving its Wi-Fi) at random moments
//! ([`cuts`]), only while that bot is back from its last cut. The bots notice the silence after
//! [`ResumeConfig::silence`] and resume through the same relay. At the end the cuts are paired
//! with the bots' resumes, and the server's seat counters are read from its `/metrics` once the
//! bots have left.
//!
//! Bounds: loopback only (the relays refuse anything else), at most [`MAX_BOTS`] bots for at
//! most [`MAX_DURATION`]; cuts stop [`ResumeConfig::tail`] before the end so the last ones can
//! be answered; every cut connection the relays hold (two sockets) is counted into the open
//! files asked for up front.

mod cuts;
pub mod report;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use client_demo::bot::{self, BotSpec, Live};
use client_demo::connect::Target;
use client_demo::report::Tally;
use client_demo::swarm::{STOP_GRACE, SwarmConfig};
use futures_util::future::join_all;
use tickcast_relay::{Relay, RelayConfig, RelayError};
use tokio::sync::mpsc;
use tokio::time::{self, Instant};
use tokio_util::sync::CancellationToken;

use self::report::ResumeTally;
pub use self::report::{ResumeReport, Round, ServerCounters};
use crate::server::process::{ServerProcess, StartError};
use crate::server::{procinfo, scrape};
use crate::transports::Network;

/// Most bots in a round.
pub const MAX_BOTS: usize = 500;
/// Longest round.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Shortest mean time between cuts: a resume takes the silence limit and a few round trips.
pub const MIN_CUT_EVERY: Duration = Duration::from_millis(100);
/// What the last cut's resume is given beyond the silence limit and four round trips (TCP,
/// upgrade, hello and welcome, snapshot and delta) before the bots stop.
const RESUME_ALLOWANCE: Duration = Duration::from_secs(2);
/// Time for the server to see every bot's departure before its counters are read.
const SETTLE: Duration = Duration::from_secs(1);
/// Descriptors beyond those of the bots and their relays.
const SPARE_FDS: u64 = 256;

/// What `resume` does.
#[derive(Debug, Clone)]
pub struct ResumeConfig {
    /// The server binary, started afresh for each round trip.
    pub server_bin: PathBuf,
    /// Bots, each through a relay of its own.
    pub bots: usize,
    /// How long the bots play in each round.
    pub duration: Duration,
    /// Mean time between two cuts of one bot's connection.
    pub cut_every: Duration,
    /// The round trips, one round each, in order.
    pub rtts: Vec<Duration>,
    /// The bots' silence limit: nothing received this long is a dropped connection.
    pub silence: Duration,
    /// Seed of the cut times (bot `i` uses `seed + i`).
    pub seed: u64,
}

impl ResumeConfig {
    /// The documented run: 50 bots for 30 s, cut every 5 s on average, at 0 and 80 ms round
    /// trip, with a 1 s silence limit.
    pub fn new(server_bin: PathBuf) -> Self {
        Self {
            server_bin,
            bots: 50,
            duration: Duration::from_secs(30),
            cut_every: Duration::from_secs(5),
            rtts: vec![Duration::ZERO, Duration::from_millis(80)],
            silence: Duration::from_secs(1),
            seed: 1,
        }
    }

    /// How long before the end no cut is made, at round trip `rtt`.
    pub fn tail(&self, rtt: Duration) -> Duration {
        self.silence + rtt * 4 + RESUME_ALLOWANCE
    }

    fn check(&self) -> Result<(), ResumeError> {
        let settings = |why: &str| Err(ResumeError::Settings(why.into()));
        let longest = self.rtts.iter().max().copied().unwrap_or_default();
        if !(1..=MAX_BOTS).contains(&self.bots) {
            return settings("1 to 500 bots");
        }
        if self.duration > MAX_DURATION || self.duration < self.tail(longest) + Duration::from_secs(1) {
            return settings("at most 10 minutes, and 1 s more than the silence limit, 4 round trips and 2 s");
        }
        if self.cut_every < MIN_CUT_EVERY || self.silence.is_zero() {
            return settings("cuts at least 100 ms apart on average, and a silence limit above 0");
        }
        Ok(())
    }

    /// Open files a round needs: each bot's socket and its relay's listener and two sockets,
    /// and two more sockets per cut the relay holds (at most one cut per half a mean gap).
    fn descriptors(&self) -> u64 {
        let cuts = self.duration.as_secs_f64() / (self.cut_every.as_secs_f64() / 2.0) + 1.0;
        self.bots as u64 * (4 + 2 * cuts.ceil() as u64) + SPARE_FDS
    }
}

/// Why `resume` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The settings are out of bounds.
    #[error("{0}")]
    Settings(String),
    /// Not enough file descriptors.
    #[error(transparent)]
    Descriptors(#[from] procinfo::TooFewDescriptors),
    /// The server would not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A relay would not start.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The server's `/metrics` did not answer at the end.
    #[error("the server's /metrics: {0}")]
    Metrics(#[source] std::io::Error),
}

/// One round per round trip, each against a fresh server; `log` gets a line per round.
pub async fn run(
    config: &ResumeConfig,
    stop: CancellationToken,
    mut log: impl FnMut(&str),
) -> Result<ResumeReport, ResumeError> {
    config.check()?;
    let args = ["--seed=1".to_owned(), format!("--max-players={}", config.bots + 16)];
    let mut rounds = Vec::new();
    for &rtt in &config.rtts {
        if stop.is_cancelled() {
            break;
        }
        log(&format!(
            "{}: {} bots for {:?}",
            Network::new(rtt, 0, None),
            config.bots,
            config.duration
        ));
        let server = ServerProcess::start(&config.server_bin, &args).await?;
        let round = measure(server.addr(), rtt, config, &stop).await;
        // It logs at warn: a resume should cost it nothing worth a line.
        for line in server.log_text().lines().take(5) {
            log(&format!("  the server logged: {line}"));
        }
        if let Err(err) = server.stop().await {
            log(&format!("stopping the server: {err}"));
        }
        let round = round?;
        log(&format!(
            "  {} cuts, {} resumed, {} unanswered, {} desyncs",
            round.cuts, round.resumed, round.unanswered, round.bots.desyncs
        ));
        rounds.push(round);
    }
    Ok(ResumeReport::new(config, rounds))
}

/// One round against the server at `server` (its default room), through relays of round trip
/// `rtt`.
pub async fn measure(
    server: SocketAddr,
    rtt: Duration,
    config: &ResumeConfig,
    stop: &CancellationToken,
) -> Result<Round, ResumeError> {
    config.check()?;
    procinfo::ensure_open_files(config.descriptors())?;
    let network = Network::new(rtt, 0, None);
    // The relays outlive the bots, so that stopped bots leave politely through them.
    let (relays_stop, bots_stop) = (stop.child_token(), stop.child_token());
    let mut relays = Vec::with_capacity(config.bots);
    for _ in 0..config.bots {
        let relay_config = RelayConfig {
            shape: network.shape(),
            ..RelayConfig::new(server, Duration::ZERO)
        };
        relays.push(Relay::start(relay_config, relays_stop.clone()).await?);
    }
    let lives: Vec<Arc<Live>> = (0..config.bots).map(|_| Arc::default()).collect();
    let started = Instant::now();
    let mut bots: Vec<_> = relays
        .iter()
        .zip(&lives)
        .enumerate()
        .map(|(i, (relay, live))| {
            let spec = bot_spec(i, relay.addr(), config);
            // Each sample is for a swarm's progress line, which this command does not print:
            // with the receiver gone, the bots' `try_send` drops them.
            let (rtt_samples, _) = mpsc::channel(1);
            tokio::spawn(bot::run(spec, live.clone(), rtt_samples, bots_stop.clone()))
        })
        .collect();

    let until = started + config.duration.saturating_sub(config.tail(rtt));
    let cutters = relays.iter().zip(&lives).enumerate().map(|(i, (relay, live))| {
        let plan = cuts::Plan {
            every: config.cut_every,
            until,
            seed: config.seed.wrapping_add(i as u64),
        };
        cuts::cut_at_random(relay, live, plan, stop)
    });
    let cuts = join_all(cutters).await;
    tokio::select! {
        () = stop.cancelled() => {}
        () = time::sleep_until(started + config.duration) => {}
    }

    bots_stop.cancel();
    let deadline = Instant::now() + STOP_GRACE;
    let (mut tally, mut resumes) = (
        Tally::new(&format!("ws://{server}/ws"), config.bots),
        ResumeTally::default(),
    );
    for (bot, cuts) in bots.iter_mut().zip(&cuts) {
        match time::timeout_at(deadline, &mut *bot).await {
            Ok(Ok(outcome)) => {
                resumes.add(&outcome, cuts);
                tally.add(outcome);
            }
            Ok(Err(err)) => tally.lost_task(&err.to_string()),
            Err(_) => {
                bot.abort();
                tally.lost_task("did not stop in time");
            }
        }
    }
    let bots = tally.finish(started.elapsed());
    join_all(relays.into_iter().map(Relay::stop)).await;
    time::sleep(SETTLE).await;
    let counters = ServerCounters::read(&scrape::fetch(server).await.map_err(ResumeError::Metrics)?);
    Ok(resumes.finish(network, bots, counters))
}

/// Bot `index`, through the relay at `relay`, with the swarm's defaults and auto-resume on.
fn bot_spec(index: usize, relay: SocketAddr, config: &ResumeConfig) -> BotSpec {
    let swarm = SwarmConfig::new(config.bots, config.duration);
    BotSpec {
        index,
        target: Target::Url(format!("ws://{relay}/ws")),
        behaviour: swarm.mix.for_bot(index),
        seed: swarm.seed.wrapping_add(index as u64),
        move_every: swarm.move_every,
        ping_every: swarm.ping_every,
        keep_world: true,
        resume: Some(config.silence),
    }
}
