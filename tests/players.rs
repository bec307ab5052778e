//! Players against the real server on 127.0.0.1:0, over real WebSockets.

mod common;

use std::collections::BTreeMap;

use common::{TestServer, until_snapshot, until_tick, within};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tickcast::client::Received;
use tickcast::protocol::PROTOCOL_VERSION;
use tickcast::protocol::delta::NetWorld;
use tokio::sync::{mpsc, watch};

#[tokio::test]
async fn join_gives_welcome_then_a_snapshot_holding_the_player() {
    let server = TestServer::at(30).await;
    let mut player = server.player("ann").await;
    let welcome = player.welcome().clone();
    assert_eq!(welcome.version, PROTOCOL_VERSION);
    assert_eq!(
        (welcome.tick_hz, welcome.schema.width, welcome.schema.height),
        (30, 1000, 1000)
    );
    assert_eq!((welcome.schema.game.as_str(), welcome.schema.scale), ("arena", 16));

    until_snapshot(&mut player).await;
    let world = player.world().unwrap();
    let me = world.get(player.player_id()).expect("own entity in the snapshot");
    assert_eq!(player.schema().kinds[usize::from(me.kind)].name, "player");
    assert_eq!(common::count_of(&player, "orb"), 100);
}

#[tokio::test]
async fn a_move_shows_in_the_deltas_within_two_ticks_with_its_ack() {
    let server = TestServer::at(30).await;
    let mut player = server.player("mover").await;
    let id = player.player_id();
    let sent_at = until_snapshot(&mut player).await;
    let x0 = player.world().unwrap().get(id).unwrap().values[0];
    // Head away from the nearer wall so the move cannot be clamped to nothing.
    let dx = if x0 > 8000 { -127 } else { 127 };
    let seq = player.send_move(dx, 0).await.unwrap();

    loop {
        match within(player.recv()).await.unwrap() {
            Received::Delta { tick, ack } if ack == seq => {
                assert!(
                    tick <= sent_at + 2,
                    "move applied at tick {tick}, sent after tick {sent_at}"
                );
                let x = player.world().unwrap().get(id).unwrap().values[0];
                assert_eq!(x > x0, dx > 0, "x went from {x0} to {x} for dx {dx}");
                break;
            }
            Received::Delta { tick, ack } => {
                assert_eq!(ack, 0);
                assert!(tick < sent_at + 2, "no ack by tick {tick}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Keeps the worlds of the last ticks so one can be compared with a snapshot taken later.
fn remember(history: &mut BTreeMap<u64, NetWorld>, world: &NetWorld) {
    history.insert(world.tick(), world.clone());
    while history.len() > 256 {
        history.pop_first();
    }
}

#[tokio::test]
async fn three_players_moving_at_random_rebuild_exactly_the_servers_world() {
    const TICKS: u64 = 300;
    let server = TestServer::at(120).await;
    let (done_tx, mut done_rx) = mpsc::channel(3);
    let (target_tx, target_rx) = watch::channel(None::<u64>);

    let mut movers = Vec::new();
    for n in 0..3u64 {
        let mut client = server.player(&format!("p{n}")).await;
        let (done_tx, mut target_rx) = (done_tx.clone(), target_rx.clone());
        movers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(n);
            let mut history = BTreeMap::new();
            let first = until_snapshot(&mut client).await;
            let mut reported = false;
            loop {
                let Received::Delta { tick, .. } = client.recv().await.expect("recv") else {
                    continue;
                };
                remember(&mut history, client.world().unwrap());
                if tick < first + TICKS {
                    if rng.random_bool(0.3) {
                        client
                            .send_move(rng.random_range(-127..=127), rng.random_range(-127..=127))
                            .await
                            .unwrap();
                    }
                } else if !reported {
                    reported = true;
                    done_tx.send(()).await.unwrap();
                }
                let target = *target_rx.borrow_and_update();
                if let Some(target) = target {
                    until_tick(&mut client, target).await;
                    remember(&mut history, client.world().unwrap());
                    let world = history
                        .remove(&target)
                        .expect("target tick within the remembered window");
                    return (client.player_id(), world);
                }
            }
        }));
    }
    for _ in 0..3 {
        within(done_rx.recv()).await.unwrap();
    }

    // The server's own word on the world: a keyframe given to a newcomer.
    let mut observer = server.player("observer").await;
    let target = until_snapshot(&mut observer).await;
    let truth = observer.world().unwrap().clone();
    target_tx.send(Some(target)).unwrap();

    for mover in movers {
        let (id, rebuilt) = within(mover).await.unwrap();
        assert!(rebuilt.get(id).is_some(), "player {id} missing from its own world");
        // Including the observer itself, which the same tick's delta spawned for the movers.
        assert_eq!(rebuilt, truth, "player {id} diverged at tick {target}");
    }
    // Arena's players are kind 0, with x and y first.
    let mut players = truth.entities().iter().filter(|e| e.kind == 0);
    assert!(
        players.any(|e| e.values[0] % 16 != 0 || e.values[1] % 16 != 0),
        "positions look unmoved"
    );
    assert!(server.metrics.inputs_applied.get() > 50, "few moves were applied");
}

#[tokio::test]
async fn a_ping_is_answered_at_once_not_at_the_next_tick() {
    // One tick a second: a pong that waited for a tick would come after the next delta.
    let server = TestServer::at(1).await;
    let mut player = server.player("pinger").await;
    let tick = until_snapshot(&mut player).await;
    for nonce in 1..=3 {
        player.send_ping(nonce).await.unwrap();
        match within(player.recv()).await.unwrap() {
            Received::Pong { pong, .. } => {
                assert_eq!(pong.nonce, nonce);
                assert_eq!(pong.server_tick, tick, "the pong waited for a tick");
            }
            other => panic!("expected the pong before anything else, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_player_that_leaves_is_removed_for_everyone_else() {
    let server = TestServer::at(60).await;
    let mut stayer = server.player("stayer").await;
    let leaver = server.player("leaver").await;
    let gone = leaver.player_id();
    until_snapshot(&mut stayer).await;
    let tick = stayer.world().unwrap().tick();
    until_tick(&mut stayer, tick + 2).await;
    assert!(stayer.world().unwrap().get(gone).is_some());
    leaver.close().await.unwrap();
    while stayer.world().unwrap().get(gone).is_some() {
        within(stayer.recv()).await.unwrap();
    }
}

#[tokio::test]
async fn shutdown_closes_players_with_1001() {
    let server = TestServer::at(30).await;
    let mut player = server.player("p").await;
    until_snapshot(&mut player).await;
    server.shutdown().await.unwrap();
    let err = loop {
        if let Err(err) = within(player.recv()).await {
            break err;
        }
    };
    assert!(
        matches!(&err, tickcast::client::ClientError::Closed { code: 1001, reason } if reason == "server shutting down"),
        "{err}"
    );
}

#[tokio::test]
async fn the_delta_stream_is_small_when_nothing_moves() {
    let server = TestServer::start(tickcast::Config {
        orbs: 0,
        ..tickcast::Config::defaults()
    })
    .await;
    let mut player = server.player("still").await;
    until_snapshot(&mut player).await;
    let before = player.bytes_received();
    let tick = player.world().unwrap().tick();
    until_tick(&mut player, tick + 10).await;
    let per_tick = (player.bytes_received() - before) / 10;
    assert!(per_tick <= 8, "an idle delta took {per_tick} bytes");
}

#[tokio::test]
async fn a_client_without_a_world_still_sees_every_tick_and_its_acks() {
    let server = TestServer::at(60).await;
    let mut player = server.player("light").await;
    player.keep_world(false);
    let mut last = match within(player.recv()).await.unwrap() {
        Received::Snapshot { tick, .. } => tick,
        other => panic!("expected the keyframe first, got {other:?}"),
    };
    let seq = player.send_move(50, 50).await.unwrap();
    let mut acked = false;
    for _ in 0..10 {
        match within(player.recv()).await.unwrap() {
            Received::Delta { tick, ack } => {
                assert_eq!(tick, last + 1, "a tick went missing");
                acked |= ack == seq;
                last = tick;
            }
            other => panic!("expected deltas, got {other:?}"),
        }
    }
    assert!(acked, "the move's ack arrived");
    assert!(player.world().is_none());
}
