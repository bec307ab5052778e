use super::*;
use crate::config::Config;
use crate::game::Arena;
use crate::game::GameConfig;
use crate::protocol::{Input, InputValues, Options, ServerMsg, Text};
use crate::room::joins::JoinRequest;
use tokio::sync::oneshot;

use crate::room::outbox::{Inbox, outbox};
use crate::room::roster::{InputSlot, Link};

/// A player by this name makes its room's tick loop panic when it is admitted (test
/// builds only).
pub(crate) const CRASH_NAME: &str = "crash-the-room";

pub(crate) fn maybe_crash(name: &str) {
    assert!(name != CRASH_NAME, "injected tick loop failure");
}

fn tick_loop(config: &Config) -> TickLoop<Arena> {
    let settings = Settings {
        seed: 1,
        ..config.room_settings()
    };
    TickLoop::new(TickParts {
        room: RoomId::parse("test").unwrap(),
        settings: &settings,
        status: Arc::default(),
        tuning: &config.tuning(),
        schema: Arc::new(Arena::schema(&settings.game_config())),
        joins: Arc::default(),
        clock: Arc::default(),
        metrics: Arc::default(),
        phase: Duration::ZERO,
        idle_close: None,
        stop: CancellationToken::new(),
    })
}

#[test]
fn ticks_a_late_one_made_the_room_skip_are_counted() {
    let t0 = Instant::now();
    let period = Duration::from_millis(30);
    assert_eq!(skipped_between(t0, t0 + period, period), 0, "on time");
    assert_eq!(skipped_between(t0, t0 + period * 4, period), 3);
}

#[test]
fn ticks_fall_on_the_rooms_phase_after_a_pause() {
    let origin = Instant::now();
    let period = Duration::from_millis(30);
    assert_eq!(next_tick(origin, period, origin - period), origin);
    assert_eq!(
        next_tick(origin, period, origin + Duration::from_millis(45)),
        origin + period * 2
    );
    assert_eq!(next_tick(origin, period, origin + period), origin + period * 2);
}

fn join(tick: &mut TickLoop<Arena>, queue: usize) -> (Inbox, Arc<InputSlot>) {
    let (out, rx) = outbox(queue, None);
    let (reply, _) = oneshot::channel();
    let input = Arc::new(InputSlot::default());
    tick.admit(JoinRequest {
        name: Text::lossy("p", 32),
        options: Options::none(),
        resume: None,
        link: Link {
            input: input.clone(),
            out,
            place: None,
        },
        reply,
    });
    (rx, input)
}

/// The next queued item, decoded, with its ack.
fn next(rx: &mut Inbox) -> (Option<u32>, ServerMsg) {
    let out = rx.try_frame().expect("a queued frame");
    let schema = Arena::schema(&GameConfig::default());
    (
        out.ack,
        ServerMsg::decode(frames::tests::parse(&out.frame).1, Some(&schema)).unwrap(),
    )
}

#[test]
fn a_player_that_falls_behind_gets_a_keyframe_then_is_kicked_when_it_stays_full() {
    let config = Config {
        slow_timeout: Duration::from_secs(1),
        ..Config::defaults()
    };
    let mut tick = tick_loop(&config);
    let (mut rx, _) = join(&mut tick, 2);
    let t0 = Instant::now();
    tick.tick(t0); // welcome (not a tick's frame) + keyframe
    tick.tick(t0); // delta; the queue is now full
    tick.tick(t0); // dropped
    assert!(matches!(next(&mut rx), (None, ServerMsg::Welcome(_))));
    assert!(matches!(next(&mut rx), (None, ServerMsg::Snapshot(s)) if s.tick == 1));
    assert!(matches!(next(&mut rx), (None, ServerMsg::Delta(d)) if d.tick == 2));
    tick.tick(t0); // room again: a keyframe at tick 4, not the delta 3 -> 4
    assert!(matches!(next(&mut rx), (None, ServerMsg::Snapshot(s)) if s.tick == 4));
    assert_eq!(tick.metrics.deltas_dropped.get(), 1);
    assert_eq!(tick.metrics.resync_keyframes.get(), 1);

    for _ in 0..4 {
        tick.tick(t0); // fill the queue again
    }
    assert!(!rx.is_kicked());
    tick.tick(t0 + Duration::from_secs(1));
    assert!(rx.is_kicked(), "a player full past the deadline is kicked");
    assert!(tick.roster.is_empty());
    // A connection that takes nothing is most often one the network dropped: its seat is
    // kept for the grace (15 s: 450 ticks), then given up.
    assert_eq!(tick.game.players().len(), 1, "kept away");
    assert_eq!(tick.metrics.players_away.get(), 1);
    for _ in 0..450 {
        tick.tick(t0 + Duration::from_secs(1));
    }
    assert!(tick.game.players().is_empty(), "the grace is over: it left");
    assert_eq!(tick.metrics.seats_expired.get(), 1);
    assert_eq!(tick.metrics.players_away.get(), 0);
}

#[test]
fn a_room_nobody_has_played_in_makes_its_world_again_for_spectators() {
    let tick = tick_loop(&Config::defaults());
    let mut world = NetWorld::default();
    tick.game.entities(&mut world.capture(0, &tick.schema));
    let remade = tick.feed.latest_world();
    assert!(!world.entities().is_empty());
    assert_eq!(remade.entities(), world.entities(), "the same orbs as the room's game");
    assert_eq!(remade.tick(), 0);
}

#[test]
fn the_last_player_to_leave_is_gone_from_the_spectators_world_before_the_room_pauses() {
    let mut tick = tick_loop(&Config::defaults());
    let alone = tick.feed.latest_world().entities().len();
    let (gone, _) = join(&mut tick, 8);
    tick.tick(Instant::now());
    assert_eq!(tick.sent.entities().len(), alone + 1, "in the world");
    drop(gone);
    tick.tick(Instant::now());
    assert!(tick.roster.is_empty());
    assert_eq!(
        tick.feed.latest_world().entities().len(),
        alone,
        "the last event before the pause shows it left"
    );
}

#[test]
fn a_player_whose_session_ended_is_found_by_its_write_and_leaves_the_world() {
    let mut tick = tick_loop(&Config::defaults());
    let (gone, _) = join(&mut tick, 8);
    let (mut stays, _) = join(&mut tick, 8);
    let now = Instant::now();
    tick.tick(now); // welcomes and keyframes
    drop(gone);
    tick.tick(now);
    assert_eq!(tick.roster.len(), 1, "out of the roster");
    assert_eq!(tick.game.players().len(), 1, "and out of the world");
    assert_eq!(tick.metrics.players.get(), 1);
    tick.tick(now);
    assert!(matches!(next(&mut stays), (None, ServerMsg::Welcome(_))));
    assert!(matches!(next(&mut stays), (None, ServerMsg::Snapshot(s)) if s.tick == 1));
    assert!(matches!(next(&mut stays), (None, ServerMsg::Delta(d)) if d.removed.is_empty()));
    assert!(
        matches!(next(&mut stays), (None, ServerMsg::Delta(d)) if d.tick == 3 && d.removed.len() == 1),
        "the others see it removed in the next tick's delta"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_room_s_fan_out_split_over_the_workers_reaches_every_player_once() {
    let mut tick = tick_loop(&Config::defaults());
    let players: Vec<_> = (0..PARALLEL_FAN_OUT + 45).map(|_| join(&mut tick, 8)).collect();
    let now = Instant::now();
    tick.tick_fanned_out(now).await; // keyframes
    tick.tick_fanned_out(now).await; // deltas
    assert_eq!(tick.roster.len(), players.len(), "every player is back in the roster");
    for (mut rx, _) in players {
        assert!(matches!(next(&mut rx), (None, ServerMsg::Welcome(_))));
        assert!(matches!(next(&mut rx), (None, ServerMsg::Snapshot(s)) if s.tick == 1));
        assert!(matches!(next(&mut rx), (None, ServerMsg::Delta(d)) if d.tick == 2));
        assert!(rx.try_next().is_none(), "one frame per tick");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_big_room_s_fan_out_lets_other_tasks_run_between_chunks() {
    let mut tick = tick_loop(&Config::defaults());
    let mut inboxes: Vec<_> = (0..3 * FAN_OUT_CHUNK).map(|_| join(&mut tick, 8).0).collect();
    let now = Instant::now();
    tick.tick_fanned_out(now).await; // keyframes
    for rx in &mut inboxes {
        next(rx); // welcome
        next(rx); // keyframe
    }
    // On this one thread, a task that is ready during the next tick runs whenever the tick
    // yields: it counts the players written by the first time it finds any.
    let (seen, counted) = oneshot::channel();
    tokio::spawn(async move {
        loop {
            let written = inboxes.iter_mut().filter_map(|rx| rx.try_next()).count();
            if written > 0 {
                return seen.send(written);
            }
            tokio::task::yield_now().await;
        }
    });
    tick.tick_fanned_out(now).await;
    assert_eq!(
        counted.await.unwrap(),
        FAN_OUT_CHUNK,
        "the other task ran after the first chunk, not after the whole room"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_player_full_in_a_later_chunk_falls_behind_and_is_kicked_after_the_yields() {
    let config = Config {
        slow_timeout: Duration::from_secs(1),
        ..Config::defaults()
    };
    let mut tick = tick_loop(&config);
    let others = FAN_OUT_CHUNK + 8;
    let mut keeping_up: Vec<_> = (0..others).map(|_| join(&mut tick, 8).0).collect();
    // The last to join has the highest id: it is written in the second chunk. Its queue
    // holds its welcome and first keyframe, then stays full (nobody drains it).
    let (stuck, _) = join(&mut tick, 2);
    let t0 = Instant::now();
    for _ in 0..3 {
        tick.tick_fanned_out(t0).await;
        for rx in &mut keeping_up {
            while rx.try_frame().is_some() {}
        }
    }
    assert_eq!(tick.metrics.deltas_dropped.get(), 1, "one delta dropped, then behind");
    assert!(!stuck.is_kicked());
    tick.tick_fanned_out(t0 + Duration::from_secs(1)).await;
    assert!(stuck.is_kicked(), "full for the slow timeout: kicked");
    assert_eq!(tick.roster.len(), others, "and out of the roster");
    assert_eq!(tick.game.players().len(), others + 1, "its seat kept for the grace");
    assert_eq!(tick.metrics.players_away.get(), 1);
}

#[test]
fn every_player_gets_the_same_delta_bytes_and_only_changed_acks() {
    let mut tick = tick_loop(&Config::defaults());
    let (mut a, a_input) = join(&mut tick, 8);
    let (mut b, _) = join(&mut tick, 8);
    let now = Instant::now();
    tick.tick(now);
    a_input.put(Input {
        seq: 5,
        values: InputValues::new(&[1, 0]),
    });
    tick.tick(now);
    tick.tick(now);
    for rx in [&mut a, &mut b] {
        next(rx); // welcome
        next(rx); // keyframe
    }
    let (a2, b2) = (a.try_frame().unwrap(), b.try_frame().unwrap());
    assert_eq!(a2.ack, Some(5), "the applied move is acked with the tick's frame");
    assert_eq!(b2.ack, None);
    assert!(
        a2.frame.as_ptr() == b2.frame.as_ptr(),
        "the delta is shared, not copied"
    );
    assert_eq!(a.try_frame().unwrap().ack, None, "an unchanged ack is not resent");
}

#[test]
fn the_next_match_welcomes_a_player_whose_queue_is_full_and_takes_no_input_over() {
    let mut tick = tick_loop(&Config::defaults());
    let (mut rx, input) = join(&mut tick, 2);
    let t0 = Instant::now();
    tick.tick(t0); // welcome + keyframe
    tick.tick(t0); // delta: the queue is full
    input.put(Input {
        seq: 9,
        values: InputValues::new(&[127, 0]),
    });
    tick.end_match(crate::protocol::Results::default());
    let drain = |rx: &mut Inbox| {
        let mut seen = Vec::new();
        while let Some(out) = rx.try_frame() {
            let schema = Arena::schema(&GameConfig::default());
            let msg = ServerMsg::decode(frames::tests::parse(&out.frame).1, Some(&schema)).unwrap();
            let kind = match msg {
                ServerMsg::Welcome(_) => "welcome",
                ServerMsg::Snapshot(_) => "snapshot",
                ServerMsg::Delta(_) => "delta",
                ServerMsg::MatchEnded(_) => "ended",
                _ => "other",
            };
            seen.push((out.ack, kind));
        }
        seen
    };
    let kinds: Vec<_> = drain(&mut rx).into_iter().map(|(_, kind)| kind).collect();
    assert_eq!(
        kinds,
        ["welcome", "snapshot", "delta", "ended", "welcome"],
        "a full queue still gets its new id"
    );
    tick.tick(t0);
    assert_eq!(
        drain(&mut rx),
        [(None, "snapshot")],
        "the new match's keyframe acknowledges no input from the old one"
    );
}
