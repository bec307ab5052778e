//! Fan-out: one tick's broadcast to N in-process sessions (10 to 4 000 players).
//!
//! Timed: `Roster::fan_out` queueing this tick's delta to every player, which is per player a
//! reference-count clone of the one encoded frame, the ack if it changed, and one push on
//! its bounded queue. Not timed: the diff and encode before it (the delta
//! bench), waking session tasks (none awaits these queues), their WebSocket writes, and
//! draining the queues, which happens between timed ticks so every queue has room.
//!
//! Two ticks per N, on a default world of N players and 100 orbs:
//! - `idle`: nobody moved; the frame is the same few bytes whatever N. Expected: linear in N.
//! - `all_moving`: every player moved, so the frame holds about 4 bytes per player; it is
//!   shared, not copied, so the cost per player is the same as idle. Expected: linear in N,
//!   close to the idle line. (Before acks moved out of the frame, each player's frame copied
//!   the whole delta, which grew as N²: 36-47 ms at 4 000 players.)
//!
//! The bytes queued per tick are printed before the timings.
//!
//! Run: `cargo bench --bench fanout`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use tickcast::Config;
use tickcast::game::Arena;
use tickcast::game::{Game, GameConfig, Sandbox};
use tickcast::metrics::Metrics;
use tickcast::protocol::delta::NetWorld;
use tickcast::protocol::{Delta, Input, InputValues, Options, Schema, ServerMsg, Text, Updates};
use tickcast::room::extras::Extras;
use tickcast::room::outbox::{Inbox, Next, outbox};
use tickcast::room::roster::{InputSlot, Joined, Link, Roster};

const SESSIONS: [usize; 4] = [10, 100, 1_000, 4_000];

/// An hour into a match at 30 Hz: the tick varint has reached its 5-byte form.
const TICK: u64 = 108_000;

/// Every player's last move, as for a player well into a match.
const ACK: u32 = 1_000;

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    for n in SESSIONS {
        let mut table = Table::new(n);
        for (name, body) in [("idle", table.idle.clone()), ("all_moving", table.moving.clone())] {
            let frame = body.len();
            println!(
                "fanout N = {n}, {name}: {frame} bytes per frame, {} bytes queued per tick",
                frame * n
            );
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter_custom(|iters| table.ticks(&body, iters))
            });
        }
    }
    group.finish();
}

/// A roster of N synced players, the receiving ends of their queues, and two ticks to send.
struct Table {
    roster: Roster,
    queues: Vec<Inbox>,
    /// The world the tick's keyframes would show; only a player behind would get one.
    world: NetWorld,
    schema: Schema,
    idle: Bytes,
    moving: Bytes,
    /// What follows nobody's frame: arena has no private fields, and tells nothing.
    extras: Arc<Extras>,
}

impl Table {
    fn new(n: usize) -> Self {
        let config = Config::defaults();
        let schema = Arena::schema(&GameConfig::default());
        let mut sim = Sandbox::<Arena>::new(&GameConfig::default(), 1);
        let mut roster = Roster::new(config.slow_timeout, Arc::new(Metrics::new()));
        let mut queues = Vec::with_capacity(n);
        for i in 0..n {
            let id = sim.join("bench").expect("joins");
            // Eight compass directions at full speed, so every player moves this tick.
            let (dx, dy) = [
                (127, 0),
                (90, 90),
                (0, 127),
                (-90, 90),
                (-127, 0),
                (-90, -90),
                (0, -127),
                (90, -90),
            ][i % 8];
            sim.game.input(id, &[dx, dy]);
            let input = Arc::new(InputSlot::default());
            input.put(Input {
                seq: ACK,
                values: InputValues::new(&[dx, dy]),
            });
            // No socket: every frame takes the queue, the path of a player whose socket would
            // block. (A player that keeps up is written to directly: `tickcast-bench load` and
            // its fan-out floor measure that, with real sockets.)
            let (out, queue) = outbox(config.player_queue as usize, None);
            let joined = Joined {
                name: Text::empty(),
                options: Options::none(),
            };
            roster.insert(
                id,
                Link {
                    input,
                    out,
                    place: None,
                },
                joined,
            );
            queues.push(queue);
        }
        roster.take_turns(|_, _| {});
        let before = sim.world(0);
        sim.step();
        let world = sim.world(1);
        let c = before.diff(&world, &schema);
        // Numbered as an hour into a match, for realistic varint widths; nothing reads them.
        let (spawned, updated, removed) = (c.spawned, c.updated, c.removed);
        let moving = encode(
            &schema,
            Delta {
                tick: TICK,
                base_gap: 1,
                spawned,
                updated,
                removed,
                checksum: None,
                texts: world.texts().to_vec(),
            },
        );
        let idle = encode(
            &schema,
            Delta {
                tick: TICK,
                base_gap: 1,
                spawned: vec![],
                updated: Updates::default(),
                removed: vec![],
                checksum: None,
                texts: Vec::new(),
            },
        );
        let mut table = Self {
            roster,
            queues,
            world,
            schema,
            idle,
            moving,
            extras: Arc::default(),
        };
        // Everyone is joining: this first tick queues keyframes, after which all are synced.
        let idle = table.idle.clone();
        table.ticks(&idle, 1);
        table
    }

    /// Fans `body` out `iters` times, draining every queue after each, and returns the time
    /// spent in `fan_out` alone.
    fn ticks(&mut self, body: &Bytes, iters: u64) -> Duration {
        let mut spent = Duration::ZERO;
        for _ in 0..iters {
            let now = tokio::time::Instant::now();
            let start = Instant::now();
            let kicked = self
                .roster
                .fan_out(body, &self.world, &self.schema, self.extras.clone(), now);
            spent += start.elapsed();
            assert!(kicked.is_empty(), "nobody can be too slow with drained queues");
            let drained = self.drain();
            assert_eq!(drained, self.queues.len(), "one frame per player per tick");
        }
        spent
    }

    /// Empties every queue, as the session tasks do, and counts the frames.
    fn drain(&mut self) -> usize {
        let mut frames = 0;
        for queue in &mut self.queues {
            while let Some(Next::Frame(_)) = queue.try_next() {
                frames += 1;
            }
        }
        frames
    }
}

fn encode(schema: &Schema, delta: Delta) -> Bytes {
    ServerMsg::Delta(delta).encode(schema).into()
}

criterion_group!(benches, fanout);
criterion_main!(benches);
