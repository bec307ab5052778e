//! Delta: one tick's diff and encode for N entities (100 to 10 000) with 0 %, 10 % or 100 % of
//! them moving.
//!
//! Timed: what the tick loop does once per tick before the fan-out: diff the world against the
//! previous tick (`NetWorld::diff`) and encode the delta once (the same bytes go to every
//! player; acks travel in their own small message). Expected curve: linear in N for every share,
//! since the diff walks all entities; steeper the more of them move, since each mover is an
//! update to build and encode. The idle line is the floor.
//!
//! Bytes, printed before the timings: the frame of an idle tick (constant in N: tag, tick,
//! base gap and four empty fields), the ack message a player also gets when one of its moves
//! was applied, and encoded bytes per moving entity,
//! (frame - idle frame) / movers. Expected 4 per mover (id gap, field mask, dx, dy, a byte
//! each) while a tick's move stays within ±125 position steps, which holds at 20 Hz and above;
//! 3 when the move is along one axis. Our goals: at most 5 bytes per moving entity and at most
//! 16 bytes per player for an idle tick, WebSocket frame header included.
//!
//! The worlds are built from snapshots, so exactly the stated share moves: entities have dense
//! ids 1..=N, and the movers (every entity, every tenth, or none) each move one tick at full
//! speed at 30 Hz (80 position steps) in a direction of their own.
//!
//! Then tanks' frames in play (50 tanks moving, turning and firing for 900 ticks): the mean
//! frame, and what updates of tanks and of shells, and shells spawned and removed, cost each.
//!
//! Run: `cargo bench --bench delta`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use std::sync::LazyLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tickcast::game::motion::SCALE;
use tickcast::game::{Arena, Tanks};
use tickcast::game::{Game, GameConfig, Sandbox};
use tickcast::protocol::delta::NetWorld;
use tickcast::protocol::{Ack, Delta, Entity, Schema, ServerMsg, Snapshot, Updates};

/// Arena's schema: the entities are its players.
static SCHEMA: LazyLock<Schema> = LazyLock::new(|| Arena::schema(&GameConfig::default()));

const ENTITIES: [u32; 3] = [100, 1_000, 10_000];

/// One mover in `every` entities: all, a tenth, none.
const SHARES: [(&str, Option<u32>); 3] = [
    ("moving_0pct", None),
    ("moving_10pct", Some(10)),
    ("moving_100pct", Some(1)),
];

/// An hour into a match at 30 Hz: the tick varint has reached its 5-byte form.
const TICK: u64 = 108_000;

/// A tick's move at full speed: 150 units/s at 30 Hz is 5 units, 80 position steps.
const STEP: f64 = 5.0 * SCALE as f64;

fn delta(c: &mut Criterion) {
    let cases: Vec<Case> = ENTITIES
        .into_iter()
        .flat_map(|n| SHARES.into_iter().map(move |(name, every)| Case::new(name, n, every)))
        .collect();
    print_idle_frames();
    print_bytes(&cases);
    print_tanks();
    let mut group = c.benchmark_group("delta");
    for case in &cases {
        group.throughput(Throughput::Elements(u64::from(case.n)));
        group.bench_function(BenchmarkId::new(case.name, case.n), |b| {
            b.iter(|| encode(black_box(&case.base), black_box(&case.next)))
        });
    }
    group.finish();
}

/// One tick to diff and encode: N entities of which `movers` moved.
struct Case {
    name: &'static str,
    n: u32,
    movers: u32,
    base: NetWorld,
    next: NetWorld,
    /// The per-player frame's length.
    bytes: usize,
}

impl Case {
    fn new(name: &'static str, n: u32, every: Option<u32>) -> Self {
        let base = world(n, TICK - 1, None);
        let next = world(n, TICK, every);
        let frame = encode(&base, &next);
        let movers = every.map_or(0, |k| n / k);
        check(&base, &next, &frame, movers);
        Self {
            name,
            n,
            movers,
            base,
            next,
            bytes: frame.len(),
        }
    }
}

/// The delta frame from `base` to `next`, as the tick loop makes it: the timed work.
fn encode(base: &NetWorld, next: &NetWorld) -> Bytes {
    base.diff(next, &SCHEMA).encode(next, 1, None, &SCHEMA).into()
}

/// N player entities with ids 1..=N at tick `tick`; with `every`, one in `every` has moved one
/// step since the tick before.
fn world(n: u32, tick: u64, every: Option<u32>) -> NetWorld {
    let side = 1000 * SCALE;
    let entities = (1..=n)
        .map(|id| {
            // Scattered, and at least one step away from every wall.
            let mut x = 80 + (id * 7_919) % (side - 160);
            let mut y = 80 + (id * 104_729) % (side - 160);
            if every.is_some_and(|k| id % k == 0) {
                // A direction of its own: successive ids turn by the golden angle.
                let angle = f64::from(id) * 2.399_963;
                x = x.wrapping_add_signed((STEP * angle.cos()).round() as i32);
                y = y.wrapping_add_signed((STEP * angle.sin()).round() as i32);
            }
            Entity::new(id, 0, &[x, y, 0])
        })
        .collect();
    // Built in ascending id order, which is all `from_snapshot` asks.
    NetWorld::from_snapshot(&Snapshot {
        tick,
        entities,
        texts: Vec::new(),
    })
    .expect("ids ascend")
}

/// Checks that `frame` is a delta with exactly `movers` updates that turns `base` into `next`.
fn check(base: &NetWorld, next: &NetWorld, frame: &[u8], movers: u32) {
    let Ok(ServerMsg::Delta(delta)) = ServerMsg::decode(frame, Some(&SCHEMA)) else {
        panic!("the frame is not a delta");
    };
    assert_eq!(delta.updated.iter().count(), movers as usize);
    let mut replica = base.clone();
    replica.apply(&delta, &SCHEMA).expect("the delta applies to its base");
    assert_eq!(&replica, next);
}

/// The idle frame at a few points in a match's life, with and without the once-a-second
/// checksum (its size depends on the tick, never on N), and the ack message a player gets in
/// the same write when one of its moves was applied.
fn print_idle_frames() {
    let idle = |tick, checksum| {
        let delta = Delta {
            tick,
            base_gap: 1,
            spawned: vec![],
            updated: Updates::default(),
            removed: vec![],
            checksum,
            texts: Vec::new(),
        };
        ServerMsg::Delta(delta).encode(&SCHEMA).len()
    };
    println!("delta: idle tick, the frame every player gets");
    println!("  at the start (tick 100): {}", on_the_wire(idle(100, None)));
    println!("  an hour in (tick {TICK}): {}", on_the_wire(idle(TICK, None)));
    println!(
        "  an hour in, checksum tick: {}",
        on_the_wire(idle(TICK, Some(0x9e37_79b9)))
    );
    println!("delta: the ack a player also gets when one of its moves was applied");
    for seq in [10, 1_000, 108_000] {
        println!(
            "  ack {seq}: {}",
            on_the_wire(ServerMsg::Ack(Ack { seq }).encode(&SCHEMA).len())
        );
    }
}

/// Each case's frame and, against the idle frame of the same N, its bytes per moving entity.
fn print_bytes(cases: &[Case]) {
    println!("delta: frame at tick {TICK}, without the WebSocket header");
    println!(
        "  {:>8} {:>8} {:>12} {:>24}",
        "entities", "moving", "frame bytes", "bytes per moving entity"
    );
    for case in cases {
        let idle = cases
            .iter()
            .find(|c| c.n == case.n && c.movers == 0)
            .map_or(0, |c| c.bytes);
        let per_mover = match case.movers {
            0 => "-".to_string(),
            movers => format!("{:.2}", (case.bytes - idle) as f64 / f64::from(movers)),
        };
        println!(
            "  {:>8} {:>8} {:>12} {:>24}",
            case.n, case.movers, case.bytes, per_mover
        );
    }
}

/// Tanks' frames in play: 50 tanks moving (a new direction every second), turning and firing
/// whenever they can for 30 s of ticks at 30 Hz, each tick diffed and encoded as the tick loop
/// does. Prints the mean frame and what it is made of, each part's bytes measured by encoding
/// it alone (its frame minus the idle frame).
fn print_tanks() {
    const TANKS: u32 = 50;
    const TICKS: u64 = 900;
    let schema = Tanks::schema(&GameConfig::default());
    let mut game = Sandbox::<Tanks>::new(&GameConfig::default(), 7);
    let ids: Vec<_> = (0..TANKS).map(|_| game.join("bench").expect("joins")).collect();
    let mut rng = StdRng::seed_from_u64(3);
    let mut world = game.world(0);
    let encode = |delta: Delta| ServerMsg::Delta(delta).encode(&schema).len();
    let empty = |tick| Delta {
        tick,
        base_gap: 1,
        spawned: vec![],
        updated: Updates::default(),
        removed: vec![],
        checksum: None,
        texts: Vec::new(),
    };
    let (mut frames, mut spawns, mut removals) = (0, 0, 0);
    let (mut spawn_bytes, mut removal_bytes) = (0, 0);
    // Per kind (tank, shell): updates, and their bytes with their group's header.
    let mut updates = [(0, 0); 2];
    for tick in 1..=TICKS {
        for (i, id) in ids.iter().enumerate() {
            if tick % 30 == (i as u64) % 30 {
                let (dx, dy) = (rng.random_range(-127..=127), rng.random_range(-127..=127));
                game.game.input(*id, &[dx, dy, ((tick * 3 + i as u64) % 256) as i32, 1]);
            }
        }
        game.step();
        let next = game.world(tick);
        let c = world.diff(&next, &schema);
        let idle = encode(empty(tick));
        spawns += c.spawned.len();
        removals += c.removed.len();
        for group in &c.updated.0 {
            let (count, bytes) = &mut updates[usize::from(group.kind)];
            *count += group.updates.len();
            *bytes += encode(Delta {
                updated: Updates(vec![group.clone()]),
                ..empty(tick)
            }) - idle;
        }
        spawn_bytes += encode(Delta {
            spawned: c.spawned.clone(),
            texts: next.texts().to_vec(),
            ..empty(tick)
        }) - idle;
        removal_bytes += encode(Delta {
            removed: c.removed.clone(),
            ..empty(tick)
        }) - idle;
        frames += c.encode(&next, 1, None, &schema).len();
        world = next;
    }
    let per_tick = |n: usize| n as f64 / TICKS as f64;
    let each = |bytes: usize, n: usize| bytes as f64 / n.max(1) as f64;
    println!("delta: tanks, {TANKS} tanks moving, turning and firing, {TICKS} ticks at 30 Hz");
    println!("  mean frame: {:.1} bytes", per_tick(frames));
    let [(tanks, tank_bytes), (shells, shell_bytes)] = updates;
    println!(
        "  per tick: {:.1} tanks updated ({:.2} bytes each), {:.1} shells moved ({:.2} bytes each), \
         {:.2} shells spawned ({:.2} bytes each), {:.2} removed ({:.2} bytes each)",
        per_tick(tanks),
        each(tank_bytes, tanks),
        per_tick(shells),
        each(shell_bytes, shells),
        per_tick(spawns),
        each(spawn_bytes, spawns),
        per_tick(removals),
        each(removal_bytes, removals)
    );
}

/// "N bytes + H header = T bytes" for a server-to-client WebSocket message of `len` bytes.
fn on_the_wire(len: usize) -> String {
    // RFC 6455: unmasked (server to client) frames have a 2-byte header up to 125 bytes of
    // payload, 4 up to 65 535, and 10 beyond.
    let header = match len {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    format!("{len} bytes + {header} WebSocket header = {} bytes", len + header)
}

criterion_group!(benches, delta);
criterion_main!(benches);
