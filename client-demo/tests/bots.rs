//! The bot swarm against a real server on 127.0.0.1:0.

mod common;

use std::time::Duration;

use client_demo::swarm::{self, SwarmConfig, SwarmError};
use common::{TestServer, closed_port, within};
use tokio_util::sync::CancellationToken;

fn swarm_for(url: String, count: usize, duration: Duration) -> SwarmConfig {
    SwarmConfig {
        url,
        ramp: Duration::from_millis(500),
        ..SwarmConfig::new(count, duration)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_bots_connect_move_and_stay_in_sync() {
    let server = TestServer::at(30).await;
    let config = swarm_for(server.ws_url(), 20, Duration::from_secs(3));
    let mut progress = Vec::new();
    let report = within(swarm::run(&config, CancellationToken::new(), |p| progress.push(*p)))
        .await
        .expect("the swarm runs");

    assert_eq!((report.bots_connected, report.bots_failed), (20, 0), "{report}");
    assert_eq!(report.desyncs, 0, "{report}");
    // Each bot was connected for 2.5 s or more: two checksum ticks at least, all matched.
    assert!(report.checksums_verified >= 40, "{report}");
    // Pings every 500 ms: four or more round trips per bot.
    assert!(report.rtt_us.samples >= 80, "{report}");
    assert!(report.rtt_us.p50 > 0 && report.rtt_us.p50 <= report.rtt_us.max);
    // One delta per tick is 30 a second; far fewer means deltas went missing.
    assert!(report.deltas_per_sec_per_bot > 10.0, "{report}");
    assert!(report.bytes_per_sec_per_bot > 0.0, "{report}");
    // The bots stopped themselves: nobody was closed by the server.
    assert!(report.close_reasons.is_empty(), "{report}");
    assert!(report.connect_errors.is_empty(), "{report}");
    // Ten moves a second each, over seconds: the server applied plenty.
    assert!(server.metrics.inputs_applied.get() > 200, "few moves were applied");
    assert!(!progress.is_empty(), "no progress was reported");
    assert!(progress.iter().any(|p| p.connected == 20), "{progress:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_bots_follow_every_tick_and_still_move() {
    let server = TestServer::at(30).await;
    let config = SwarmConfig {
        keep_world: false,
        ..swarm_for(server.ws_url(), 10, Duration::from_secs(2))
    };
    let report = within(swarm::run(&config, CancellationToken::new(), |_| {}))
        .await
        .expect("the swarm runs");
    assert_eq!((report.bots_connected, report.bots_failed), (10, 0), "{report}");
    assert!(report.deltas_per_sec_per_bot > 10.0, "{report}");
    assert_eq!(
        report.checksums_verified, 0,
        "nothing is checked without a world: {report}"
    );
    assert!(report.rtt_us.samples >= 20, "{report}");
    assert!(report.close_reasons.is_empty(), "{report}");
    assert!(server.metrics.inputs_applied.get() > 100, "blind bots still move");
}

#[tokio::test]
async fn a_server_that_is_not_running_fails_every_bot_with_the_reason() {
    let url = format!("ws://{}/ws", closed_port().await);
    let config = SwarmConfig {
        ramp: Duration::ZERO,
        ..swarm_for(url, 3, Duration::from_secs(1))
    };
    let report = within(swarm::run(&config, CancellationToken::new(), |_| {}))
        .await
        .expect("the swarm runs");
    assert_eq!((report.bots_connected, report.bots_failed), (0, 3), "{report}");
    let (reason, count) = report.connect_errors.iter().next().expect("a connect error");
    assert_eq!(*count, 3);
    assert!(reason.contains("refused"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_report_the_servers_close_reason() {
    let server = TestServer::at(30).await;
    let shutdown = server.shutdown.clone();
    let config = swarm_for(server.ws_url(), 5, Duration::from_secs(20));
    // Shut the server down as soon as every bot is in; the swarm ends when its bots have.
    let report = within(swarm::run(&config, CancellationToken::new(), |p| {
        if p.connected == 5 {
            shutdown.cancel();
        }
    }));
    let report = report.await.expect("the swarm runs");
    assert_eq!(report.bots_connected, 5, "{report}");
    assert_eq!(
        report.close_reasons.get("1001 server shutting down"),
        Some(&5),
        "{report}"
    );
    assert!(report.duration_secs < 20.0, "the swarm outlived its bots: {report}");
    server.stop().await;
}

#[tokio::test]
async fn only_loopback_targets_are_loaded_unless_allowed() {
    // TEST-NET-1: never routed; the check refuses it before any packet is sent.
    let config = swarm_for("ws://192.0.2.1:8080/ws".into(), 1, Duration::from_secs(1));
    let refused = swarm::run(&config, CancellationToken::new(), |_| {}).await;
    assert!(matches!(refused, Err(SwarmError::Target(_))), "{refused:?}");

    let config = SwarmConfig {
        ramp: Duration::from_secs(5),
        ..swarm_for("ws://127.0.0.1:1/ws".into(), 2, Duration::from_secs(1))
    };
    let refused = swarm::run(&config, CancellationToken::new(), |_| {}).await;
    assert!(matches!(refused, Err(SwarmError::Settings(_))), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_spreads_over_rooms_and_joins_through_matchmaking() {
    use client_demo::connect::Target;
    use tickcast::client::rooms_api::{self, NewRoom};

    let server = TestServer::at(30).await;
    let base = format!("http://{}", server.addr);
    let new_room = NewRoom {
        game: "arena".into(),
        max_players: Some(3),
        ..NewRoom::default()
    };
    let mut spread = Vec::new();
    for _ in 0..2 {
        let room = within(rooms_api::create_room(&base, &new_room, None)).await.unwrap();
        spread.push(Target::Url(room.room.ws));
    }
    let config = SwarmConfig {
        spread,
        ..swarm_for(server.ws_url(), 6, Duration::from_secs(2))
    };
    let report = within(swarm::run(&config, CancellationToken::new(), |_| {}))
        .await
        .expect("the swarm runs");
    assert_eq!((report.bots_connected, report.desyncs), (6, 0), "{report}");
    let rooms = within(rooms_api::rooms(&base)).await.unwrap();
    // Every bot has left by now; what the rooms saw is in their ticks.
    assert_eq!(rooms.len(), 3, "{rooms:?}");

    // Through matchmaking: each bot asks for a place, then joins with what it got.
    let config = SwarmConfig {
        spread: vec![Target::Matchmake {
            server: base.clone(),
            game: "arena".into(),
        }],
        ..swarm_for(server.ws_url(), 4, Duration::from_secs(2))
    };
    let report = within(swarm::run(&config, CancellationToken::new(), |_| {}))
        .await
        .expect("the swarm runs");
    assert_eq!((report.bots_connected, report.desyncs), (4, 0), "{report}");
}

/// Interest management under a swarm: bots wander a big world in which each sees only its
/// part; for a minute every frame applies and every checksum of every bot's view holds, as
/// bots cross from view to view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_in_a_big_world_hold_their_views_for_a_minute() {
    let server = TestServer::with(tickcast::Config {
        world_size: 3000,
        orbs: 600,
        view_radius: Some(150),
        ..tickcast::Config::defaults()
    })
    .await;
    let config = swarm_for(server.ws_url(), 20, Duration::from_secs(60));
    let report = tokio::time::timeout(
        Duration::from_secs(90),
        swarm::run(&config, CancellationToken::new(), |_| {}),
    )
    .await
    .expect("the swarm ends by itself")
    .expect("the swarm runs");
    assert_eq!((report.bots_connected, report.bots_failed), (20, 0), "{report}");
    assert_eq!(report.desyncs, 0, "{report}");
    assert!(report.close_reasons.is_empty(), "{report}");
    // About a checksum a second for each bot, all matched.
    assert!(report.checksums_verified >= 20 * 50, "{report}");
    // Spread over many views: several frames encoded a tick (one per view someone holds).
    let encoded = server.metrics.view_frames_encoded.get();
    assert!(
        encoded > 4 * 60 * 30,
        "{encoded} frames in a minute of 30 ticks a second"
    );
}
