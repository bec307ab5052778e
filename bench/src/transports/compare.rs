//! One run of the comparison: one server, one match, a baseline, then every transport over
//! every network (see the parent module for what is measured and how).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use client_demo::stats::RttStats;
use client_demo::swarm::{self, SwarmConfig};
use tickcast::client::{Client, Received};
use tickcast_relay::{Relay, RelayConfig};
use tokio::task::JoinSet;
use tokio::time::{self, Instant};
use tokio_util::sync::CancellationToken;

use super::clock::TickClock;
use super::report::{Comparison, Pass, RelayCheck, Row};
use super::{Network, SPECTATOR_HZ, TransportsConfig, TransportsError};
use crate::clients::followers::{self, Arrival, Tally, Transport};
use crate::server::process::ServerProcess;
use crate::server::procinfo;

/// The end of a window whose events are not counted as published: a follower must have had
/// the time to receive them (a long-poll at 150 ms round trip needs about 250 ms).
const GRACE: Duration = Duration::from_secs(1);
/// Player pings each way in the relay check, and the time between them: the server drops a
/// player's messages beyond 2 a tick (60/s at 30 Hz), so the check takes its time (2 s).
const RELAY_CHECK_ROUNDS: u32 = 80;
const RELAY_CHECK_EVERY: Duration = Duration::from_millis(25);

/// Time from the server's start to the baseline: the bots' ramp, then as long again to settle.
pub(super) fn setup_duration(config: &TransportsConfig) -> Duration {
    config.settle * 4
}

/// One phase's length: the followers' starts (spread out, as real clients would not arrive
/// together), the warm-up, the window, and the server's notice of their departure.
pub(super) fn phase_duration(config: &TransportsConfig) -> Duration {
    config.settle + config.warmup + config.window + config.settle
}

/// One complete run.
pub(super) async fn run(
    config: &TransportsConfig,
    stop: &CancellationToken,
    log: &mut impl FnMut(&str),
) -> Result<Comparison, TransportsError> {
    let args = [
        format!("--tick-hz={}", config.tick_hz),
        format!("--spectator-hz={SPECTATOR_HZ}"),
        "--seed=1".into(),
        format!("--max-players={}", config.bots + config.clients + 16),
        format!("--max-spectators={}", config.clients + 16),
        // One machine's clients, all in one room: this measures delivery, not the shares.
        format!("--max-spectators-per-room={}", config.clients + 16),
        format!("--max-spectators-per-address={}", config.clients + 16),
    ];
    let server = ServerProcess::start(&config.server_bin, &args).await?;
    let (addr, pid) = (server.addr(), server.pid());
    let halt = stop.child_token();
    // The bots stop when the run does; this only bounds them if it never did.
    let total = config.estimated_duration() * 2 + Duration::from_secs(60);
    let swarm_config = SwarmConfig {
        url: server.ws_url(),
        ramp: config.settle * 2,
        ..SwarmConfig::new(config.bots, total)
    };
    let bots = tokio::spawn({
        let halt = halt.clone();
        async move { swarm::run(&swarm_config, halt, |_| {}).await }
    });
    let reference = tokio::spawn(followers::follow(
        Transport::WebSocket,
        addr,
        "reference".into(),
        Arc::new(Tally::default()),
        halt.clone(),
    ));
    time::sleep(setup_duration(config)).await;

    let cpu = |what| procinfo::cpu_time(pid).map_err(|e| TransportsError::Run(format!("{what}: {e}")));
    log("baseline: bots only");
    let (c0, t0) = (cpu("server CPU")?, Instant::now());
    time::sleep(config.window).await;
    let baseline = (cpu("server CPU")?.saturating_sub(c0)).as_secs_f64() / t0.elapsed().as_secs_f64();
    let mut measured: Vec<(Option<Network>, Vec<Measured>)> = Vec::new();
    let mut relay_checked = None;
    for &network in &config.networks {
        let relay = match network {
            Some(network) => {
                let relay_config = RelayConfig {
                    shape: network.shape(),
                    max_connections: config.clients + 16,
                    ..RelayConfig::new(addr, Duration::ZERO)
                };
                let started = Relay::start(relay_config, halt.child_token()).await;
                Some(started.map_err(|e| TransportsError::Run(e.to_string()))?)
            }
            None => None,
        };
        let target = relay.as_ref().map_or(addr, Relay::addr);
        let path = network.map_or_else(|| "direct".to_owned(), |n| n.to_string());
        // At 0 ms the relay must add nothing measurable: check it against a direct connection.
        if network.is_some_and(|n| n.rtt_us == 0 && n.bandwidth.is_none()) && relay_checked.is_none() {
            let checked = relay_check(addr, target).await?;
            log(&format!("{path}: {checked}"));
            relay_checked = Some(checked);
        }
        let mut phases = Vec::new();
        for &transport in &config.transports {
            if halt.is_cancelled() {
                break;
            }
            log(&format!("{path}: {transport}, {} clients", config.clients));
            phases.push(phase(config, transport, target, pid, &halt).await?);
        }
        if let Some(relay) = relay {
            log(&format!("{path}: the relay carried {}", relay.stop().await));
        }
        measured.push((network, phases));
    }
    halt.cancel();
    let reference_arrivals = reference.await.map_err(|e| TransportsError::Run(e.to_string()))?;
    let _ = bots.await;
    if let Err(err) = server.stop().await {
        log(&format!("stopping the server: {err}"));
    }

    let clock = TickClock::new(&reference_arrivals, config.tick_hz);
    let every = u64::from((config.tick_hz / SPECTATOR_HZ).max(1));
    let passes = measured
        .into_iter()
        .map(|(network, phases)| Pass {
            network,
            rows: phases
                .iter()
                .map(|m| {
                    let every = if m.transport == Transport::WebSocket { 1 } else { every };
                    m.row(config, &clock, every, baseline)
                })
                .collect(),
        })
        .collect();
    Ok(Comparison {
        baseline_cpu_per_sec: baseline,
        passes,
        relay_check: relay_checked,
        memory: Vec::new(),
    })
}

/// Player ping round trips to the server, directly and through the 0 ms relay, interleaved so
/// both see the same machine: the relay must not add a measurable delay of its own.
async fn relay_check(direct: SocketAddr, relayed: SocketAddr) -> Result<RelayCheck, TransportsError> {
    let failed = |e: &dyn std::fmt::Display| TransportsError::Run(format!("relay check: {e}"));
    let mut clients = Vec::new();
    for addr in [direct, relayed] {
        let mut client = Client::connect(&format!("ws://{addr}/ws"), "relay-check")
            .await
            .map_err(|e| failed(&e))?;
        client.keep_world(false);
        clients.push(client);
    }
    let mut stats = [RttStats::new(), RttStats::new()];
    let mut pace = time::interval(RELAY_CHECK_EVERY);
    for nonce in 0..RELAY_CHECK_ROUNDS {
        pace.tick().await;
        for (client, stats) in clients.iter_mut().zip(&mut stats) {
            client.send_ping(nonce).await.map_err(|e| failed(&e))?;
            // A pong that does not come within a second is not counted.
            let deadline = Instant::now() + Duration::from_secs(1);
            while let Ok(received) = time::timeout_at(deadline, client.recv()).await {
                if let Received::Pong { pong, rtt } = received.map_err(|e| failed(&e))?
                    && pong.nonce == nonce
                {
                    stats.record(rtt);
                    break;
                }
            }
        }
    }
    for client in clients {
        let _ = client.close().await;
    }

    let [direct, relayed] = stats.map(|s| s.summary());
    Ok(RelayCheck { direct, relayed })
}

/// One phase's raw measurements.
struct Measured {
    transport: Transport,
    window: (Instant, Instant),
    server_cpu_per_sec: f64,
    traffic: (u64, u64),
    requests: u64,
    responses: (u64, u64),
    errors: u64,
    arrivals: Vec<Vec<Arrival>>,
}

async fn phase(
    config: &TransportsConfig,
    transport: Transport,
    addr: SocketAddr,
    pid: u32,
    halt: &CancellationToken,
) -> Result<Measured, TransportsError> {
    let tally = Arc::new(Tally::default());
    let stop = halt.child_token();
    let mut clients = JoinSet::new();
    for i in 0..config.clients {
        let name = format!("watch-{i}");
        clients.spawn(followers::follow(transport, addr, name, tally.clone(), stop.clone()));
        time::sleep(config.settle / config.clients.max(1) as u32).await;
    }
    time::sleep(config.warmup).await;
    let read = |what| procinfo::cpu_time(pid).map_err(|e| TransportsError::Run(format!("{what}: {e}")));
    let counters = |tally: &Tally| {
        (
            tally.traffic.get(),
            tally.requests.load(Relaxed),
            (tally.responses.load(Relaxed), tally.response_heads.load(Relaxed)),
        )
    };
    let (cpu0, (traffic0, requests0, responses0), start) = (read("server CPU")?, counters(&tally), Instant::now());
    tokio::select! {
        () = halt.cancelled() => {}
        () = time::sleep(config.window) => {}
    }
    let (cpu1, (traffic1, requests1, responses1), end) = (read("server CPU")?, counters(&tally), Instant::now());
    stop.cancel();
    let arrivals = clients.join_all().await;
    time::sleep(config.settle).await; // let the server notice the departures
    Ok(Measured {
        transport,
        window: (start, end),
        server_cpu_per_sec: cpu1.saturating_sub(cpu0).as_secs_f64() / (end - start).as_secs_f64(),
        traffic: (traffic1.0 - traffic0.0, traffic1.1 - traffic0.1),
        requests: requests1 - requests0,
        responses: (responses1.0 - responses0.0, responses1.1 - responses0.1),
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
        let published = clock.ticks_between(start, end.checked_sub(GRACE).unwrap_or(start), every);
        let seen: usize = self
            .arrivals
            .iter()
            .map(|arrivals| {
                published
                    .iter()
                    .filter(|&&tick| arrivals.binary_search_by_key(&tick, |a| a.tick).is_ok())
                    .count()
            })
            .sum();
        let per = |bytes: u64, count: u64| (count > 0).then(|| bytes as f64 / count as f64);
        let http = self.transport != Transport::WebSocket;
        Row {
            transport: self.transport.to_string(),
            clients: config.clients,
            errors: self.errors,
            updates_per_sec: updates as f64 / secs / k,
            published_per_client: published.len() as u64,
            seen_pct: 100.0 * seen as f64 / (published.len() as f64 * k).max(1.0),
            latency_us: latency.summary(),
            bytes_down_per_update: per(self.traffic.0, updates).unwrap_or(0.0),
            bytes_up_per_update: per(self.traffic.1, updates).unwrap_or(0.0),
            request_bytes: per(self.traffic.1, self.requests).filter(|_| http),
            response_head_bytes: per(self.responses.1, self.responses.0).filter(|_| http),
            requests_per_min: self.requests as f64 / (secs / 60.0) / k,
            server_cpu_us_per_sec: (self.server_cpu_per_sec - baseline) * 1e6 / k,
        }
    }
}
