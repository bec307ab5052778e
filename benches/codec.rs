//! Codec: encode and decode of every wire message, one message at a time.
//!
//! Expected: flat, tens of nanoseconds, for the fixed-size messages (hello, move (arena's input),
//! ping, pong, ack); the welcome carries the game's schema (a few hundred bytes). Snapshot and delta cost in proportion to their entities, so compare those by
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

use tickcast::game::Arena;
use tickcast::game::{Game, GameConfig, Sandbox};
use tickcast::protocol::{
    Ack, ClientMsg, DecodeFailure, Delta, Hello, Input, InputValues, PROTOCOL_VERSION, Ping, Pong, Schema, ServerMsg,
    Snapshot, Welcome,
};

const PLAYERS: usize = 50;

fn codec(c: &mut Criterion) {
    let schema = Arena::schema(&GameConfig::default());
    let (snapshot, delta) = busy_tick(&schema);
    let mut group = c.benchmark_group("codec");
    let s = &schema;
    message(
        &mut group,
        s,
        "hello",
        ClientMsg::Hello(Hello {
            version: PROTOCOL_VERSION,
            name: "a player name".into(),
            token: String::new(),
            resume: String::new(),
            options: Vec::new(),
        }),
    );
    message(
        &mut group,
        s,
        "move",
        ClientMsg::Input(Input {
            seq: 1_000,
            values: InputValues::new(&[127, -64]),
        }),
    );
    message(
        &mut group,
        s,
        "ping",
        ClientMsg::Ping(Ping {
            nonce: 7,
            client_time_us: 1_700_000_000_000_000,
        }),
    );
    message(
        &mut group,
        s,
        "welcome",
        ServerMsg::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            player_id: 1_234,
            tick_hz: 30,
            resume: String::new(),
            grace_ms: 0,
            schema: schema.clone(),
        }),
    );
    message(&mut group, s, "snapshot", ServerMsg::Snapshot(snapshot));
    message(&mut group, s, "delta", ServerMsg::Delta(delta));
    message(
        &mut group,
        s,
        "pong",
        ServerMsg::Pong(Pong {
            nonce: 7,
            client_time_us: 1_700_000_000_000_000,
            server_tick: 108_000,
            server_time_us: 1_700_000_000_000_250,
        }),
    );
    message(&mut group, s, "ack", ServerMsg::Ack(Ack { seq: 1_000 }));
    group.finish();
}

/// Benchmarks encoding and decoding `msg`, after checking that it round-trips.
fn message<M: Wire>(group: &mut BenchmarkGroup<'_, WallTime>, schema: &Schema, name: &str, msg: M) {
    let bytes = msg.to_wire(schema);
    let back = M::from_wire(&bytes, schema).expect("a message the server encoded decodes");
    assert_eq!(back, msg, "{name} does not round-trip");
    println!("codec {name}: {} bytes encoded", bytes.len());
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function(BenchmarkId::new("encode", name), |b| {
        b.iter(|| black_box(&msg).to_wire(schema))
    });
    group.bench_function(BenchmarkId::new("decode", name), |b| {
        b.iter(|| M::from_wire(black_box(&bytes), schema))
    });
}

/// The two message directions, seen alike (each read and written with the game's schema).
trait Wire: PartialEq + Debug + Sized {
    fn to_wire(&self, schema: &Schema) -> Vec<u8>;
    fn from_wire(bytes: &[u8], schema: &Schema) -> Result<Self, DecodeFailure>;
}

impl Wire for ClientMsg {
    fn to_wire(&self, schema: &Schema) -> Vec<u8> {
        self.encode(Some(schema))
    }
    fn from_wire(bytes: &[u8], schema: &Schema) -> Result<Self, DecodeFailure> {
        Self::decode(bytes, Some(schema))
    }
}

impl Wire for ServerMsg {
    fn to_wire(&self, schema: &Schema) -> Vec<u8> {
        self.encode(schema)
    }
    fn from_wire(bytes: &[u8], schema: &Schema) -> Result<Self, DecodeFailure> {
        Self::decode(bytes, Some(schema))
    }
}

/// The snapshot after, and the delta of, the first tick in which a player collects an orb.
fn busy_tick(schema: &Schema) -> (Snapshot, Delta) {
    let mut world = Sandbox::<Arena>::new(&GameConfig::default(), 1);
    let players: Vec<_> = (0..PLAYERS).map(|_| world.join("bench").expect("joins")).collect();
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
        world.game.input(*id, &[dx, dy]);
    }
    // Fifty players meet one of 100 orbs within a few hundred ticks for this seed.
    let mut before = world.world(0);
    for tick in 1..10_000 {
        world.step();
        let after = world.world(tick);
        let changes = before.diff(&after, schema);
        if changes.removed.is_empty() {
            before = after;
            continue;
        }
        let snapshot = after.snapshot();
        println!(
            "codec fixture: tick {}, {} entities, delta with {} updated, {} spawned, {} removed",
            after.tick(),
            after.entities().len(),
            changes.updated.iter().count(),
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
            texts: after.texts().to_vec(),
        };
        return (snapshot, delta);
    }
    panic!("no orb collected in 10 000 ticks: pick another seed");
}

criterion_group!(benches, codec);
criterion_main!(benches);
