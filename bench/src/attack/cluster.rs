//! The cluster's attack: HTTP requests to a node that does not own the rooms asked for, each
//! of which an older node turned into Redis work (a follower per polled room, a connection
//! per matchmaking, a lookup per unknown room). A `redis-server` of our own (from `PATH` or
//! `--redis-bin`; the attack is skipped without one), an owner node with 400 rooms and a
//! spectator edge (`--no-rooms`), both with an admin secret so that no budget stops the
//! attacker: what is measured is what each request costs Redis and the edge.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{self, Instant};

use super::api::{Api, Tally, create_as_admin};
use super::{ADMIN, Attack, Outcome, io, mib};
use crate::cluster::redis::{RedisConn, RedisProcess, Stat};
use crate::server::process::ServerProcess;
use crate::server::procinfo;

/// Rooms on the owner, each polled once through the edge.
const ROOMS: usize = 400;
/// Matchmakings, and lookups of unknown rooms, through the edge.
const REQUESTS: usize = 1000;
/// Kept-alive connections the matchmakings and lookups go over, at once.
const WORKERS: usize = 16;
/// Polls in flight at once, each on its own connection.
const IN_FLIGHT: usize = 64;

/// Polls of the owner's rooms, matchmakings and lookups of unknown rooms, all on the edge.
pub(super) async fn follower_amplification(bin: &Path, redis_bin: &Path) -> Outcome {
    let redis = match RedisProcess::start(redis_bin).await {
        Ok(redis) => redis,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Ok(format!("skipped: no redis-server ({err}); pass --redis-bin"));
        }
        Err(err) => return Err(io(Attack::FollowerAmplification)(err)),
    };
    let node = |id: &str| {
        vec![
            format!("--redis={}", redis.url()),
            format!("--node-id={id}"),
            format!("--admin-secret={ADMIN}"),
        ]
    };
    let owner = ServerProcess::start(bin, &node("owner")).await?;
    let mut edge_args = node("edge");
    edge_args.push("--no-rooms".into());
    let edge = ServerProcess::start(bin, &edge_args).await?;
    let created = create_as_admin(owner.addr(), ADMIN, ROOMS).await;
    // Every room in the cluster's directory (its heartbeat writes them once a second).
    time::sleep(Duration::from_millis(1500)).await;
    let failed = io(Attack::FollowerAmplification);
    let mut info = RedisConn::connect(redis.addr()).await.map_err(&failed)?;

    let clients_before = info.number(Stat::CLIENTS).await.map_err(&failed)?;
    let rss_before = procinfo::memory(edge.pid()).map_err(&failed)?.rss_kib;
    let paths: Vec<String> = created.ids.iter().map(|id| format!("/rooms/{id}/state")).collect();
    let (polls, polls_took) = all_at_once(edge.addr(), paths).await;
    let clients_after = info.number(Stat::CLIENTS).await.map_err(&failed)?;
    let mirrors = edge.metrics().await.map_err(&failed)?.value("tickcast_cluster_mirrors");
    let rss_after = procinfo::memory(edge.pid()).map_err(&failed)?.rss_kib;

    let connections_before = info.number(Stat::CONNECTIONS).await.map_err(&failed)?;
    let started = Instant::now();
    let matchmakes = over_workers(edge.addr(), REQUESTS, |i| {
        Request::Post("/matchmake".into(), json!({"game": "arena", "name": format!("m{i}")}))
    })
    .await;
    let matchmakes_took = started.elapsed();
    let connections_after = info.number(Stat::CONNECTIONS).await.map_err(&failed)?;

    let gets_before = info.number(Stat::GETS).await.map_err(&failed)?;
    let started = Instant::now();
    // Ids of the right shape, each asked once: none is in the cluster, and none is remembered.
    let unknown = over_workers(edge.addr(), REQUESTS, |_| {
        Request::Get(format!("/rooms/{}", Alphanumeric.sample_string(&mut rand::rng(), 12)))
    })
    .await;
    let unknown_took = started.elapsed();
    let gets_after = info.number(Stat::GETS).await.map_err(&failed)?;

    let _ = edge.stop().await;
    let _ = owner.stop().await;
    Ok(format!(
        "{} rooms on the owner; {} polls of /rooms/{{id}}/state on the edge in {:.2} s ({polls}): Redis clients \
         {clients_before} -> {clients_after}, edge mirrors {mirrors:.0}, edge RSS +{:.1} MiB; {REQUESTS} \
         matchmakings on the edge in {:.2} s ({matchmakes}): Redis connections +{}; {REQUESTS} unknown rooms \
         asked of the edge in {:.2} s ({unknown}): Redis GETs +{}",
        created.ids.len(),
        created.ids.len(),
        polls_took.as_secs_f64(),
        mib(rss_after.saturating_sub(rss_before)),
        matchmakes_took.as_secs_f64(),
        connections_after.saturating_sub(connections_before),
        unknown_took.as_secs_f64(),
        gets_after.saturating_sub(gets_before)
    ))
}

/// One GET of each path on `addr`, [`IN_FLIGHT`] at a time, each on a connection of its own
/// (an attacker wants them in flight together; more at once would only overflow the
/// listener's backlog and wait for SYN retransmits); the answers and how long they took.
async fn all_at_once(addr: SocketAddr, paths: Vec<String>) -> (Tally, Duration) {
    let started = Instant::now();
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut requests = JoinSet::new();
    for path in paths {
        let in_flight = in_flight.clone();
        requests.spawn(async move {
            let _turn = in_flight.acquire_owned().await;
            Api::new(addr, 1).get(&path).await.map(|answer| answer.status)
        });
    }
    let mut answers = Tally::default();
    while let Some(done) = requests.join_next().await {
        match done {
            Ok(Ok(status)) => answers.add_status(status),
            Ok(Err(err)) => answers.add(&Err(err)),
            Err(err) => answers.add(&Err(io::Error::other(err))),
        }
    }
    (answers, started.elapsed())
}

/// A request [`over_workers`] sends.
enum Request {
    Get(String),
    Post(String, serde_json::Value),
}

/// `count` requests made by `make(i)`, as the admin, over [`WORKERS`] kept-alive connections.
async fn over_workers(addr: SocketAddr, count: usize, make: impl Fn(usize) -> Request) -> Tally {
    let mut workers = JoinSet::new();
    for w in 0..WORKERS {
        let mine: Vec<Request> = (w..count).step_by(WORKERS).map(&make).collect();
        workers.spawn(async move {
            let mut api = Api::new(addr, 1).with_bearer(ADMIN);
            let mut answers = Tally::default();
            for request in mine {
                let answer = match request {
                    Request::Get(path) => api.get(&path).await,
                    Request::Post(path, body) => api.post(&path, &body).await,
                };
                answers.add(&answer);
            }
            answers
        });
    }
    let mut answers = Tally::default();
    while let Some(done) = workers.join_next().await {
        if let Ok(tally) = done {
            answers.merge(&tally);
        }
    }
    answers
}
