//! The measuring commands end to end, tiny: `load` at N = 10 for 2 s and in 3 rooms of 4,
//! `idle` with 40 connections from two source addresses, a `soak` of a few seconds, and
//! `transports` over two round trips with a small memory step, and a node timed back into the
//! directory after Redis restarts, each against the real server binary started as a child
//! process (and a real redis-server).
//!
//! The binary is the root package's, so `CARGO_BIN_EXE_tickcast` is not available here: it is
//! looked up beside this test in the target directory, where `cargo test` of the workspace
//! builds it. Run alone (`cargo test -p client-demo`), build it first with
//! `cargo build -p tickcast`; without it these tests say so and pass.

use std::time::Duration;

use tickcast_bench::clients::followers::Transport;
use tickcast_bench::cluster::redis::RedisProcess;
use tickcast_bench::cluster::restarts;
use tickcast_bench::idle::{self, IdleConfig};
use tickcast_bench::load::{self, LoadConfig};
use tickcast_bench::server::process::ServerProcess;
use tickcast_bench::soak::{self, SoakConfig};
use tickcast_bench::transports::{self, Network, TransportsConfig, chart};
use tokio_util::sync::CancellationToken;

#[path = "support/server_bin.rs"]
mod support;
use support::server_bin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_load_step_measures_everything_and_leaves_no_server() {
    let Some(bin) = server_bin() else { return };
    let config = LoadConfig {
        steps: vec![10],
        window: Duration::from_secs(2),
        settle: Duration::from_secs(1),
        floor_rounds: 200,
        fanout_window: Duration::from_millis(600),
        ..LoadConfig::new(bin)
    };
    let mut lines = Vec::new();
    let report = load::run(&config, CancellationToken::new(), |l| lines.push(l.to_owned()))
        .await
        .expect("load runs");
    assert!(report.floors.tcp_rtt_us.samples == 200 && report.floors.websocket_rtt_us.samples == 200);
    // Every quiet ping was answered (the first round per player is warm-up).
    assert_eq!(report.quiet_ping_us.samples, 2000 - 40, "{report}");
    assert!(report.quiet_ping_vs_tcp > 0.0, "{report}");
    let [step] = &report.steps[..] else { panic!("{report}") };
    assert_eq!((step.players, step.connected), (10, 10), "{report}");
    assert!(step.ticks_per_sec > 15.0 && step.window_secs >= 1.9, "{report}");
    assert!(
        step.server_cpu_per_sec > 0.0 && step.us_per_player_tick > 0.0,
        "{report}"
    );
    assert!(step.peak_rss_kib >= step.rss_kib && step.idle_rss_kib > 0, "{report}");
    // Pings every 500 ms, 10 bots, a 2 s window.
    assert!(step.rtt_us.samples >= 20, "{report}");
    assert!(
        step.bytes_per_player_per_sec > 0.0 && step.mean_frame_bytes > 0.0,
        "{report}"
    );
    let floor = step.fanout_floor.expect("the fan-out floor was measured");
    assert!(step.tick_work_p50_us.is_some(), "{report}");
    // The floor writes what a player-tick's one write carried: the tick's frame with any ack,
    // more than the mean message (the bots' moves every 100 ms make an ack every third tick,
    // a message of a few bytes that pulls the mean down).
    assert_eq!(
        floor.frame_bytes,
        step.bytes_per_player_tick.round() as usize,
        "{report}"
    );
    assert!(step.bytes_per_player_tick > step.mean_frame_bytes, "{report}");
    // Each bot received about that: less the frames' headers (it counts payload), and the
    // probe's 40 pongs a second (about 10 % more in all, at N = 10). The mean message, the
    // floor's size before, was about 0.75 of it.
    let received = step.bytes_per_player_per_sec / step.ticks_per_sec;
    assert!(
        (received * 0.95..received * 1.3).contains(&step.bytes_per_player_tick),
        "received {received} B per tick: {report}"
    );
    // The serving floor wrote the same and took the bots' traffic: a move every 100 ms and a
    // ping every 500 ms are 0.4 messages per player-tick at 30 Hz, each ping answered.
    let serving = step.serving_floor.expect("the serving floor was measured");
    assert_eq!(serving.frame_bytes, floor.frame_bytes, "{report}");
    let messages = serving.messages as f64 / serving.writes as f64;
    assert!(
        (0.25..0.6).contains(&messages),
        "{messages} messages per player-tick: {report}"
    );
    assert!(serving.pings > 0 && serving.pongs == serving.pings, "{report}");
    assert!(step.cpu_vs_serving.is_some_and(|r| r > 0.0), "{report}");
    assert_eq!(step.desyncs, 0);
    let text = report.to_string();
    assert!(
        text.contains("ratios to the floors") && text.contains("serving:") && text.contains("bucket-resolution"),
        "{text}"
    );
    assert!(report.to_json().starts_with('{'));
}

/// Rooms mode: the bots spread over rooms created through the API, every room ticking, and
/// both floors measured at all the rooms' players, as in BENCHMARKS' many-rooms batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_step_in_rooms_spreads_the_bots_over_rooms_and_measures_the_floors() {
    let Some(bin) = server_bin() else { return };
    let config = LoadConfig {
        rooms: vec![(3, 4)],
        window: Duration::from_secs(2),
        settle: Duration::from_secs(1),
        floor_rounds: 200,
        fanout_window: Duration::from_millis(600),
        ..LoadConfig::new(bin)
    };
    let report = load::run(&config, CancellationToken::new(), |_| {})
        .await
        .expect("load runs");
    let [step] = &report.steps[..] else { panic!("{report}") };
    assert_eq!((step.rooms, step.players, step.connected), (3, 12, 12), "{report}");
    // Each room's rate: a room without players does not tick, so bots crowded into fewer
    // rooms would leave the three a share of it.
    assert!(step.tick_rate_held, "{report}");
    assert!(step.us_per_player_tick > 0.0, "{report}");
    let (floor, serving) = (
        step.fanout_floor.expect("the fan-out floor was measured"),
        step.serving_floor.expect("the serving floor was measured"),
    );
    assert_eq!((floor.sockets, serving.sockets), (12, 12), "{report}");
    assert_eq!(
        floor.frame_bytes,
        step.bytes_per_player_tick.round() as usize,
        "{report}"
    );
    assert!(serving.pings > 0 && serving.pongs == serving.pings, "{report}");
    assert!(step.cpu_vs_fanout.is_some_and(|r| r > 0.0), "{report}");
    assert_eq!(step.desyncs, 0);
    assert!(report.to_string().contains("3 × 4"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_counted_from_several_source_addresses() {
    let Some(bin) = server_bin() else { return };
    let config = IdleConfig {
        per_source: 20,
        settle: Duration::from_secs(1),
        ..IdleConfig::new(bin, 40)
    };
    let report = idle::run(&config, CancellationToken::new(), |_| {})
        .await
        .expect("idle runs");
    assert_eq!((report.joined, report.sources), (40, 2), "{report}");
    assert!(report.failures.is_empty(), "{report}");
    assert_eq!(report.players_gauge, 40.0, "{report}");
    assert!(
        report.server_fds >= 40 && report.rss_after_kib >= report.rss_before_kib,
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_samples_stops_by_itself_and_the_server_exits_cleanly() {
    let Some(bin) = server_bin() else { return };
    let config = SoakConfig {
        sample_every: Duration::from_secs(1),
        bots: 5,
        spectators: 4,
        long_pollers: 2,
        pollers: 2,
        ..SoakConfig::new(bin, Duration::from_secs(4))
    };
    let started = std::time::Instant::now();
    let report = soak::run(&config, CancellationToken::new(), |_| {})
        .await
        .expect("soak runs");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(report.samples.len() >= 3 && report.crashed.is_none(), "{report}");
    assert!(report.exit.contains("exit status: 0"), "{report}");
    assert!(report.samples.iter().all(|s| s.answered && s.rss_kib > 0), "{report}");
    assert!(report.bots.as_ref().is_some_and(|b| b.desyncs == 0), "{report}");
    // The quick abuses have had time for several attempts each.
    assert!(
        report.close_reasons.get("TextFrame").is_some_and(|&n| n >= 1.0),
        "{report}"
    );
    // Every client gone, the server holds a handful of descriptors again.
    assert!(report.after.as_ref().is_some_and(|s| s.fds < 40), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transports_across_a_round_trip_show_the_delay_and_batched_long_polls() {
    let Some(bin) = server_bin() else { return };
    // 200 ms: a long-poll's next request arrives after the next event, so answers batch.
    let networks = [0, 200].map(|ms| Some(Network::new(Duration::from_millis(ms), 0, None)));
    let config = TransportsConfig {
        bots: 4,
        clients: 3,
        window: Duration::from_millis(1500),
        warmup: Duration::from_millis(300),
        settle: Duration::from_millis(250),
        transports: vec![Transport::Sse, Transport::LongPoll],
        networks: networks.to_vec(),
        memory_clients: 20,
        ..TransportsConfig::new(bin)
    };
    let started = std::time::Instant::now();
    let report = transports::run(&config, CancellationToken::new(), |l| eprintln!("{l}"))
        .await
        .expect("transports runs");
    assert!(started.elapsed() < config.estimated_duration() + Duration::from_secs(10));
    let [direct, far] = &report.median.passes[..] else {
        panic!("{report}")
    };
    let [sse, long_poll] = &far.rows[..] else {
        panic!("{report}")
    };
    for row in direct.rows.iter().chain(&far.rows) {
        assert_eq!(row.errors, 0, "{report}");
        assert!(row.seen_pct > 99.0, "every event reaches every follower: {report}");
    }
    // A stream pays the one-way delay; a long-poll at 200 ms also waits for its next request,
    // and so makes fewer requests than there are events.
    let (sse_p50, long_poll_p50) = (sse.latency_us.p50, long_poll.latency_us.p50);
    assert!((100_000..150_000).contains(&sse_p50), "{report}");
    assert!(long_poll_p50 > sse_p50 + 30_000, "{report}");
    assert!(
        long_poll.requests_per_min < 60.0 * long_poll.updates_per_sec * 0.9,
        "{report}"
    );
    let check = report.median.relay_check.expect("the 0 ms pass checks the relay");
    assert!(check.relayed.p50 < check.direct.p50 + 1000, "{report}");
    let kinds: Vec<_> = report
        .median
        .memory
        .iter()
        .map(|m| (m.kind.as_str(), m.counted))
        .collect();
    assert_eq!(
        kinds,
        [("WebSocket player", 20), ("SSE", 20), ("long-poll", 20)],
        "{report}"
    );
    let text = report.to_string();
    assert!(
        text.contains("| long-poll |") && text.contains("What is often claimed"),
        "{text}"
    );
    let svg = chart::svg(&report.median, "test").expect("a chart");
    assert_eq!(svg.matches("<polygon").count(), 2, "a band per transport");
}

#[tokio::test]
async fn a_dropped_server_process_is_stopped_and_reaped() {
    let Some(bin) = server_bin() else { return };
    let server = ServerProcess::start(&bin, &[]).await.expect("the server starts");
    let pid = server.pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(server);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} is still there"
    );
}

#[tokio::test]
async fn a_node_is_timed_back_into_the_directory_after_redis_restarts() {
    let Some(bin) = server_bin() else { return };
    let mut redis = match RedisProcess::start(std::path::Path::new("redis-server")).await {
        Ok(redis) => redis,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {err}");
            return;
        }
        Err(err) => panic!("redis-server: {err}"),
    };
    let node = ServerProcess::start(&bin, &[format!("--redis={}", redis.url()), "--node-id=n".into()])
        .await
        .expect("the node starts");
    let back = restarts::reregistration(&mut redis, &["n"], 2)
        .await
        .expect("the node comes back");
    assert_eq!(back.n, 2, "one sample per restart");
    // The node retries every 250 ms while Redis is away; well inside the harness's patience.
    assert!(back.p99_ms < 5_000.0, "{back}");
    node.stop().await.expect("the node stops");
}
