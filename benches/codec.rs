//! Codec: encode and decode of every wire message, one message at a time.
//!
//! Expected: flat, tens of nanoseconds, for the fixed-size messages (hello, move, ping, welcome,
//! pong). Snapshot and delta cost in proportion to their entities, so compare those by
//! throughput (bytes/s, the throughput line) rather than by time. Each message's encoded size
//! is printed before its benchmarks.
//!
//! The snapshot and delta come from a real default world with 50 players all moving (150
//! entities with the 100 orbs); the delta is a busy tick: every player moved and one orb was
//! collected (a score change, a removal and a spawn). The server itself never encodes a whole
//! snapshot or delta: it encodes the shared body once and frames it per player, which the delta
//! and fanout benches measure.
//!
//! Run: `cargo bench --bench codec`

use std::fmt::Debug;
use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use tickcast::delta::NetWorld;
use tickcast::protocol::{
    Ack, ClientMsg, DecodeFailure, Delta, Hello, Move, PROTOCOL_VERSION, Ping, Pong, ServerMsg, Snapshot, Welcome,
};
use tickcast::sim::{Rules, World};

const PLAYERS: usize = 50;

fn codec(c: &mut Criterion) {
    let (snapshot, delta) = busy_tick();
    let mut group = c.benchmark_group("codec");
    message(
        &mut group,
        "hello",
        ClientMsg::Hello(Hello {
            version: PROTOCOL_VERSION,
            name: "a player name".into(),
            token: String::new(),
        }),
    );
    message(
        &mut group,
        "move",
        ClientMsg::Move(Move {
            seq: 1_000,
            dx: 127,
            dy: -64,
        }),
    );
    message(
        &mut group,
        "ping",
        ClientMsg::Ping(Ping {
            nonce: 7,
            client_time_us: 1_700_000_000_000_000,
        }),
    );
    message(
        &mut group,
        "welcome",
        ServerMsg::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            player_id: 1_234,
            tick_hz: 30,
            world_width: 1000,
            world_height: 1000,
            position_scale: 16,
        }),
    );
    message(&mut group, "snapshot", ServerMsg::Snapshot(snapshot));
    message(&mut group, "delta", ServerMsg::Delta(delta));
    message(
        &mut group,
        "pong",
        ServerMsg::Pong(Pong {
            nonce: 7,
            client_time_us: 1_700_000_000_000_000,
            server_tick: 108_000,
            server_time_us: 1_700_000_000_000_250,
        }),
    );
    message(&mut group, "ack", ServerMsg::Ack(Ack { seq: 1_000 }));
    group.finish();
}

/// Benchmarks encoding and decoding `msg`, after checking that it round-trips.
fn message<M: Wire>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, msg: M) {
    let bytes = msg.to_wire();
    let back = M::from_wire(&bytes).expect("a message the server encoded decodes");
    assert_eq!(back, msg, "{name} does not round-trip");
    println!("codec {name}: {} bytes encoded", bytes.len());
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function(BenchmarkId::new("encode", name), |b| {
        b.iter(|| black_box(&msg).to_wire())
    });
    group.bench_function(BenchmarkId::new("decode", name), |b| {
        b.iter(|| M::from_wire(black_box(&bytes)))
    });
}

/// The two message directions, seen alike.
trait Wire: PartialEq + Debug + Sized {
    fn to_wire(&self) -> Vec<u8>;
    fn from_wire(bytes: &[u8]) -> Result<Self, DecodeFailure>;
}

impl Wire for ClientMsg {
    fn to_wire(&self) -> Vec<u8> {
        self.encode()
    }
    fn from_wire(bytes: &[u8]) -> Result<Self, DecodeFailure> {
        Self::decode(bytes)
    }
}

impl Wire for ServerMsg {
    fn to_wire(&self) -> Vec<u8> {
        self.encode()
    }
    fn from_wire(bytes: &[u8]) -> Result<Self, DecodeFailure> {
        Self::decode(bytes)
    }
}

/// The snapshot after, and the delta of, the first tick in which a player collects an orb.
fn busy_tick() -> (Snapshot, Delta) {
    let mut world = World::new(Rules::default(), 1);
    let players: Vec<_> = (0..PLAYERS).map(|_| world.add_player()).collect();
    for (i, id) in players.iter().enumerate() {
        // Spread over eight compass directions, all at full speed.
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
        world.set_direction(*id, dx, dy);
    }
    // Fifty players meet one of 100 orbs within a few hundred ticks for this seed.
    for _ in 0..10_000 {
        let before = NetWorld::capture(&world);
        if world.step().is_empty() {
            continue;
        }
        let after = NetWorld::capture(&world);
        let changes = before.diff(&after);
        let snapshot = Snapshot {
            tick: after.tick(),
            entities: after.entities().to_vec(),
        };
        println!(
            "codec fixture: tick {}, {} entities, delta with {} updated, {} spawned, {} removed",
            after.tick(),
            after.entities().len(),
            changes.updated.0.len(),
            changes.spawned.len(),
            changes.removed.len()
        );
        let delta = Delta {
            tick: after.tick(),
            base_gap: 1,
            spawned: changes.spawned,
            updated: changes.updated,
            removed: changes.removed,
            checksum: None,
        };
        return (snapshot, delta);
    }
    panic!("no orb collected in 10 000 ticks: pick another seed");
}

criterion_group!(benches, codec);
criterion_main!(benches);
