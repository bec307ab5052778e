//! `load` in a big world, tiny: one step of 20 bots in a 2 000 × 2 000 world, with views of
//! radius 100 and then without, against the real server binary (looked up as in
//! `harness.rs`). With views, a player is sent its part of the world only: several views a
//! tick, fewer entities held, fewer bytes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tickcast_bench::load::report::{LoadReport, Step};
use tickcast_bench::load::{self, LoadConfig};
use tokio_util::sync::CancellationToken;

#[path = "support/server_bin.rs"]
mod support;
use support::server_bin;

/// Bots in the step, watchers beside them, and arena's orbs (the server's default).
const BOTS: usize = 20;
const WATCHERS: usize = 4;
const ORBS: usize = 100;

/// One tiny step in a 2 000-unit world, with views of `radius` or without.
async fn step(bin: PathBuf, radius: Option<u32>) -> (LoadReport, Step) {
    let config = LoadConfig {
        steps: vec![BOTS],
        window: Duration::from_secs(2),
        settle: Duration::from_secs(1),
        floor_rounds: 200,
        fanout_window: Duration::from_millis(400),
        world_size: Some(2000),
        view_radius: radius,
        watchers: WATCHERS,
        ..LoadConfig::new(bin)
    };
    let report = load::run(&config, CancellationToken::new(), |_| {})
        .await
        .expect("load runs");
    let [step] = &report.steps[..] else { panic!("{report}") };
    let step = step.clone();
    (report, step)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_send_each_player_its_part_of_a_big_world_for_fewer_bytes() {
    let Some(bin) = server_bin() else { return };
    let started = Instant::now();
    let (seen, near) = step(bin.clone(), Some(100)).await;
    let (all, everything) = step(bin, None).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    for (report, step) in [(&seen, &near), (&all, &everything)] {
        assert_eq!(step.connected, BOTS, "{report}");
        assert!(step.failed.is_none() && step.tick_rate_held, "{report}");
    }

    // Without views every watcher holds the whole world: every player (the bots, the probe and
    // the watchers, once all are in) and every orb.
    let whole = everything.held.expect("the watchers counted");
    assert_eq!(whole.watchers, WATCHERS, "{all}");
    assert_eq!(whole.most, BOTS + 1 + WATCHERS + ORBS, "{all}");
    assert!(everything.views_per_tick.is_none() && everything.view_frames_per_tick.is_none());

    // With views of radius 100 in 2 000 units, a view is 3 × 3 cells of 100 of the 20 × 20:
    // about 2 % of the world, so a few entities besides the watcher's own.
    let held = near.held.expect("the watchers counted");
    assert_eq!(held.watchers, WATCHERS, "{seen}");
    let entities = near.entities_per_view.expect("entities per view");
    assert!((1.0..20.0).contains(&entities), "{entities} entities per view: {seen}");
    let views = near.views_per_tick.expect("views were read");
    assert!(views > 1.0, "{views} views per tick: {seen}");
    // At least one frame per view a tick (a view with players is sent a delta every tick).
    let frames = near.view_frames_per_tick.expect("view frames were counted");
    assert!(
        frames >= views * 0.9,
        "{frames} frames per tick for {views} views: {seen}"
    );

    // What each bot was sent: its view's few entities instead of the whole world's.
    assert!(
        near.bytes_per_player_per_sec < everything.bytes_per_player_per_sec,
        "{} B/s with views, {} without:\n{seen}\n{all}",
        near.bytes_per_player_per_sec,
        everything.bytes_per_player_per_sec
    );
    let text = seen.to_string();
    assert!(text.contains("radius 100") && text.contains("views/tick"), "{text}");
    assert!(all.to_string().contains("everyone sees the whole world"));
}
