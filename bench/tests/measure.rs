//! The measuring tools' parts against a real in-process server on 127.0.0.1:0: the /metrics
//! scrape and its quantiles, the /proc readers, each transport's follower, and the abusive
//! clients meeting the documented close codes.

// The fixtures client-demo's tests use: one copy for both crates.
#[path = "../../client-demo/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use client_demo::swarm::{self, SwarmConfig};
use common::{TestServer, within};
use tickcast_bench::clients::followers::{self, Tally, Transport};
use tickcast_bench::server::procinfo;
use tickcast_bench::server::scrape;
use tickcast_bench::soak::abuse::{self, Abuse, Outcomes};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_scrape_gives_counters_and_tick_work_quantiles() {
    let server = TestServer::at(60).await;
    // A room ticks while someone plays in it.
    let mut player = within(tickcast::client::Client::connect(&server.ws_url(), "p"))
        .await
        .unwrap();
    within(player.recv()).await.unwrap();
    let first = within(scrape::fetch(server.addr)).await.expect("scrape");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let last = within(scrape::fetch(server.addr)).await.expect("scrape");

    let ticks = last.value("tickcast_ticks_total") - first.value("tickcast_ticks_total");
    assert!(ticks >= 10.0, "{ticks} ticks in half a second at 60 Hz");
    let work = last
        .buckets("tickcast_tick_work_seconds")
        .since(&first.buckets("tickcast_tick_work_seconds"));
    // One observation per tick (a tick may land between the two reads of a scrape).
    assert!(
        (work.count() - ticks).abs() <= 2.0,
        "{} observations, {ticks} ticks",
        work.count()
    );
    let (p50, p99) = (work.quantile(0.5).unwrap(), work.quantile(0.99).unwrap());
    assert!(0.0 < p50 && p50 <= p99 && p99 < 1.0, "p50 {p50} p99 {p99}");
    assert_eq!(last.value("tickcast_players"), 1.0);
    assert_eq!(last.value("tickcast_rooms"), 1.0);
    drop(player);
    server.stop().await;
}

#[test]
fn the_proc_readers_see_this_process() {
    let pid = std::process::id();
    let before = procinfo::thread_cpu_time().unwrap();
    // Burn a little CPU on this thread.
    let mut x = 0u64;
    for i in 0..20_000_000u64 {
        x = x.wrapping_mul(31).wrapping_add(i);
    }
    std::hint::black_box(x);
    assert!(procinfo::thread_cpu_time().unwrap() > before);
    assert!(procinfo::cpu_time(pid).unwrap() > Duration::ZERO);
    let memory = procinfo::memory(pid).unwrap();
    assert!(memory.rss_kib > 0 && memory.peak_kib >= memory.rss_kib, "{memory:?}");
    assert!(procinfo::open_fds(pid).unwrap() >= 3);
    assert!(procinfo::raise_open_files_limit(64).unwrap() >= 64);
    assert_eq!(procinfo::clock_ticks_per_sec(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_follower_sees_the_ticks_advance_and_counts_its_bytes() {
    let server = TestServer::at(30).await;
    let stop = CancellationToken::new();
    // Two bots, so the world changes and spectator events are published.
    let config = SwarmConfig {
        url: server.ws_url(),
        ramp: Duration::ZERO,
        ..SwarmConfig::new(2, Duration::from_secs(10))
    };
    let bots = tokio::spawn({
        let stop = stop.clone();
        async move { swarm::run(&config, stop, |_| {}).await }
    });
    let transports = [
        Transport::WebSocket,
        Transport::Sse,
        Transport::LongPoll,
        Transport::Poll(Duration::from_millis(100)),
    ];
    let mut running = Vec::new();
    for transport in transports {
        let tally = Arc::new(Tally::default());
        let task = tokio::spawn(followers::follow(
            transport,
            server.addr,
            "watcher".into(),
            tally.clone(),
            stop.clone(),
        ));
        running.push((transport, tally, task));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    for (transport, tally, task) in running {
        let arrivals = within(task).await.unwrap();
        assert!(arrivals.len() >= 5, "{transport}: {} arrivals", arrivals.len());
        assert!(arrivals.windows(2).all(|w| w[1].tick > w[0].tick && w[1].at >= w[0].at));
        let (read, written) = tally.traffic.get();
        assert!(
            read > 1000 && written > 50,
            "{transport}: {read} read, {written} written"
        );
        assert!(tally.requests.load(std::sync::atomic::Ordering::Relaxed) >= 1);
        assert_eq!(
            tally.errors.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "{transport}"
        );
    }
    within(bots).await.unwrap().unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abusive_clients_get_the_documented_close_codes() {
    let server = TestServer::at(30).await;
    let outcomes = Outcomes::default();
    let stop = CancellationToken::new();
    let kinds = [
        Abuse::Garbage,
        Abuse::Text,
        Abuse::Oversize,
        Abuse::WrongVersion,
        Abuse::ControlName,
        Abuse::ForeignOrigin,
        Abuse::ProtocolFault,
    ];
    let loops: Vec<_> = kinds
        .into_iter()
        .map(|kind| tokio::spawn(abuse::run(kind, server.addr, 1, outcomes.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    for task in loops {
        within(task).await.unwrap();
    }
    let seen = outcomes.snapshot();
    for (kind, expected) in [
        (Abuse::Garbage, &["close 1003"][..]),
        (Abuse::Text, &["close 1003"]),
        (Abuse::Oversize, &["close 1009"]),
        (Abuse::WrongVersion, &["close 1002"]),
        (Abuse::ControlName, &["close 1008"]),
        (Abuse::ForeignOrigin, &["upgrade answered 403"]),
        (Abuse::ProtocolFault, &["close 1007", "upgrade answered 400"]),
    ] {
        let outcomes: Vec<_> = seen.iter().filter(|((k, _), _)| *k == kind).collect();
        assert!(!outcomes.is_empty(), "{kind} never ran");
        assert!(
            outcomes
                .iter()
                .all(|((_, outcome), _)| expected.iter().any(|e| outcome.starts_with(e))),
            "{kind}: {outcomes:?}"
        );
    }
    server.stop().await;
}
