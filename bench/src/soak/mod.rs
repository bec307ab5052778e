//! `soak`: a bounded run of everything at once, watching the server's memory and descriptors.
//!
//! For [`SoakConfig::duration`], against one release server: bots playing ([`client_demo::swarm`]),
//! SSE spectators (a quarter of them reconnecting every 10 s with `Last-Event-ID`),
//! long-pollers, pollers of `/state`, and every kind of misbehaving client ([`crate::soak::abuse`]).
//! Every [`SoakConfig::sample_every`] the server's resident memory, open descriptors, ticks,
//! overruns and players are sampled, and whether it is still alive.
//!
//! Verdicts: memory must plateau (growth from the first to the last sample of the second half
//! under [`crate::soak::report::PLATEAU_TOLERANCE`]); the server must not crash; the bots must see no desync.

pub mod abuse;
pub mod report;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use client_demo::sse;
use client_demo::swarm::{self, SwarmConfig};
use tokio::task::JoinSet;
use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use self::abuse::{Abuse, Outcomes};
use crate::clients::counted::{Dial, Traffic};
use crate::clients::followers::{self, Tally, Transport};
use crate::clients::http1::Conn;
use crate::server::process::{ServerProcess, StartError};
use crate::soak::report::{Sample, SoakReport};

/// Longest soak: the bots' own bound.
pub const MAX_DURATION: Duration = swarm::MAX_DURATION;

/// What `soak` does.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The server binary.
    pub server_bin: PathBuf,
    /// How long everything runs.
    pub duration: Duration,
    /// Time between samples.
    pub sample_every: Duration,
    /// Bots playing.
    pub bots: usize,
    /// SSE spectators.
    pub spectators: usize,
    /// Long-pollers.
    pub long_pollers: usize,
    /// Pollers of `/state` (every 500 ms).
    pub pollers: usize,
}

impl SoakConfig {
    /// The documented soak: `minutes` with 100 bots, 20 SSE spectators, 10 long-pollers,
    /// 10 pollers and every abuse, sampled every 10 s.
    pub fn new(server_bin: PathBuf, duration: Duration) -> Self {
        Self {
            server_bin,
            duration,
            sample_every: Duration::from_secs(10),
            bots: 100,
            spectators: 20,
            long_pollers: 10,
            pollers: 10,
        }
    }
}

/// Why the soak could not run.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// The server would not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The settings are out of bounds.
    #[error("{0}")]
    Settings(String),
}

/// Runs the soak; `log` gets each sample as it is taken.
pub async fn run(
    config: &SoakConfig,
    stop: CancellationToken,
    mut log: impl FnMut(&str),
) -> Result<SoakReport, SoakError> {
    if config.duration.is_zero() || config.duration > MAX_DURATION {
        return Err(SoakError::Settings(
            "the soak lasts more than 0 and at most 60 minutes".into(),
        ));
    }
    let args = [
        "--seed=1".to_owned(),
        format!("--max-players={}", config.bots + 200),
        format!("--max-spectators={}", config.spectators + config.long_pollers + 100),
        // The honest spectators all come from this machine, to one room: the shares are for
        // attackers, and the soak's abusive clients are counted apart.
        format!(
            "--max-spectators-per-room={}",
            config.spectators + config.long_pollers + 100
        ),
        format!(
            "--max-spectators-per-address={}",
            config.spectators + config.long_pollers + 100
        ),
    ];
    let mut server = ServerProcess::start(&config.server_bin, &args).await?;
    let (addr, pid) = (server.addr(), server.pid());
    let halt = stop.child_token();
    let started = Instant::now();
    let mut tasks = JoinSet::new();

    let swarm_config = SwarmConfig {
        url: server.ws_url(),
        ..SwarmConfig::new(config.bots, config.duration)
    };
    let bots = tokio::spawn({
        let halt = halt.clone();
        async move { swarm::run(&swarm_config, halt, |_| {}).await }
    });
    let resumes = Arc::new(AtomicU64::new(0));
    for i in 0..config.spectators {
        let reconnect = (i % 4 == 0).then_some(Duration::from_secs(10));
        tasks.spawn(spectator(addr, reconnect, resumes.clone(), halt.clone()));
    }
    let followers = Arc::new(Tally::default());
    let polling = (0..config.long_pollers)
        .map(|_| Transport::LongPoll)
        .chain((0..config.pollers).map(|_| Transport::Poll(Duration::from_millis(500))));
    for (i, transport) in polling.enumerate() {
        tasks.spawn(keep_following(
            transport,
            addr,
            format!("soak-{i}"),
            followers.clone(),
            halt.clone(),
        ));
    }
    let outcomes = Outcomes::default();
    for (k, kind) in Abuse::ALL.into_iter().enumerate() {
        for j in 0..kind.parallel() {
            let seed = (k * 100 + j) as u64;
            tasks.spawn(abuse::run(kind, addr, seed, outcomes.clone(), halt.clone()));
        }
    }

    let first_metrics = server.metrics().await.unwrap_or_default();
    let mut samples = Vec::new();
    let mut every = time::interval(config.sample_every);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let deadline = started + config.duration;
    let mut crashed = None;
    loop {
        tokio::select! {
            () = halt.cancelled() => break,
            () = time::sleep_until(deadline) => break,
            _ = every.tick() => {}
        }
        if let Some(status) = server.exited() {
            crashed = Some(format!("{status}; its log ends with:\n{}", server.log_tail()));
            log(&format!("the server exited: {status}"));
            break;
        }
        let sample = Sample::take(&server, started).await;
        log(&sample.to_string());
        samples.push(sample);
    }
    let interrupted = halt.is_cancelled() && Instant::now() < deadline;
    halt.cancel();
    // Everything watches `halt` and every attempt is bounded; this is a backstop.
    if time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tasks.shutdown().await;
    }
    let bots = bots.await.ok().and_then(Result::ok);
    time::sleep(Duration::from_secs(2)).await; // for the server to notice every departure
    let after = if crashed.is_none() {
        Some(Sample::take(&server, started).await)
    } else {
        None
    };
    let last_metrics = server.metrics().await.unwrap_or_default();
    let exit = if crashed.is_none() {
        server
            .stop()
            .await
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string())
    } else {
        "crashed".into()
    };
    let close_reasons: BTreeMap<String, f64> = last_metrics
        .labelled("tickcast_closes_total")
        .into_iter()
        .map(|(labels, n)| (labels.trim_start_matches("reason=").trim_matches('"').to_owned(), n))
        .collect();
    let counter = |name: &str| (last_metrics.value(name) - first_metrics.value(name)).max(0.0) as u64;
    Ok(SoakReport {
        minutes: started.elapsed().as_secs_f64() / 60.0,
        interrupted,
        pid,
        samples,
        after,
        crashed,
        exit,
        overruns: counter("tickcast_tick_overruns_total"),
        ticks: counter("tickcast_ticks_total"),
        close_reasons,
        rate_limited: counter("tickcast_rate_limited_total"),
        spectator_resyncs: counter("tickcast_spectator_resyncs_total"),
        resumed_streams: resumes.load(Relaxed),
        follower_requests: followers.requests.load(Relaxed),
        follower_errors: followers.errors.load(Relaxed),
        abuse: outcomes.snapshot(),
        bots,
    })
}

/// Follows over `transport` until `stop`, starting again a second after any failure.
async fn keep_following(
    transport: Transport,
    addr: SocketAddr,
    name: String,
    tally: Arc<Tally>,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        followers::follow(transport, addr, name.clone(), tally.clone(), stop.clone()).await;
        tokio::select! {
            () = stop.cancelled() => {}
            () = time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// An SSE spectator that, with `reconnect`, drops its stream that often and resumes it with
/// `Last-Event-ID`; it also reconnects (after a second) when the stream fails.
async fn spectator(addr: SocketAddr, reconnect: Option<Duration>, resumes: Arc<AtomicU64>, stop: CancellationToken) {
    let mut parser = sse::Parser::new();
    while !stop.is_cancelled() {
        // Without reconnections, a stream is only ever left when it fails or at the stop.
        let until = reconnect.unwrap_or(Duration::from_secs(86_400));
        let stream = async {
            let mut conn = Conn::dial(addr, Dial::default(), Arc::new(Traffic::default())).await?;
            let id = parser.last_event_id().to_owned();
            let mut headers = vec![("accept", "text/event-stream")];
            if !id.is_empty() {
                headers.push(("last-event-id", &id));
                resumes.fetch_add(1, Relaxed);
            }
            conn.send_get("/events", &headers).await?;
            let head = conn.read_head().await?;
            if head.status != 200 {
                return Err(std::io::Error::other(format!("/events answered {}", head.status)));
            }
            parser.restart();
            let mut events = Vec::new();
            while let Some(chunk) = conn.next_chunk().await? {
                parser.push(&chunk, &mut events).map_err(std::io::Error::other)?;
                events.clear();
            }
            Ok(())
        };
        // A planned reconnection goes at once; a failed or ended stream waits a second.
        let pause = tokio::select! {
            () = stop.cancelled() => break,
            followed = time::timeout(until, stream) => followed.is_ok(),
        };
        if pause {
            tokio::select! {
                () = stop.cancelled() => break,
                () = time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}
