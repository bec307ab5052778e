//! Views: one tick's view pass in a room with a view radius, N players spread at random over a
//! 10 000-unit world seen 250 units around each (the interest-management measurement's world).
//!
//! Timed: what the tick loop does once per tick in such a room instead of the one shared
//! delta: bucket the entities by cell, gather each distinct view's world, and encode one frame
//! per view (and one per player that crossed into another view). Every player moves one tick at
//! full speed at 30 Hz in a direction of its own, so a few cross a cell's edge each tick.
//! Expected curve: linear in the distinct views, which at this density is nearly linear in N.
//!
//! Run: `cargo bench --bench views`

use std::hint::black_box;
use std::sync::LazyLock;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tickcast::game::motion::SCALE;
use tickcast::game::{Arena, Audience, Game, GameConfig};
use tickcast::protocol::delta::NetWorld;
use tickcast::protocol::{Entity, Schema};
use tickcast::room::views::{Viewer, Views};

/// Arena's schema: the entities are its players.
static SCHEMA: LazyLock<Schema> = LazyLock::new(|| Arena::schema(&GameConfig::default()));

const PLAYERS: [u32; 2] = [500, 2_000];
const WORLD: u32 = 10_000;
const RADIUS: u32 = 250;
/// Ticks of motion prepared; the bench walks them in a loop.
const TICKS: u64 = 64;
/// A tick's move at full speed: 150 units/s at 30 Hz is 5 units.
const STEP: f64 = 5.0;

fn views(c: &mut Criterion) {
    let mut group = c.benchmark_group("views");
    for n in PLAYERS {
        let ticks = walk(n);
        let viewers: Vec<Viewer> = (1..=n)
            .map(|id| Viewer {
                id,
                team: None,
                keyed: false,
            })
            .collect();
        let mut views = Views::new(RADIUS, &SCHEMA);
        let mut at = 0;
        group.throughput(Throughput::Elements(u64::from(n)));
        group.bench_function(BenchmarkId::new("tick", n), |b| {
            b.iter(|| {
                at = (at + 1) % ticks.len();
                let frames = views.frames(black_box(&ticks[at]), &SCHEMA, false, &viewers, |_| Audience::Near);
                black_box(frames.encoded)
            })
        });
    }
    group.finish();
}

/// `TICKS` worlds of `n` players walking in straight lines (bouncing off the walls), ticks
/// 1, 2, ...: the bench loops over them, so the first of each loop is a jump back (many
/// crossings at once, one tick in `TICKS`).
fn walk(n: u32) -> Vec<NetWorld> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut players: Vec<(f64, f64, f64, f64)> = (0..n)
        .map(|_| {
            let angle = rng.random_range(0.0..std::f64::consts::TAU);
            let (x, y) = (
                rng.random_range(0.0..f64::from(WORLD)),
                rng.random_range(0.0..f64::from(WORLD)),
            );
            (x, y, angle.cos() * STEP, angle.sin() * STEP)
        })
        .collect();
    (1..=TICKS)
        .map(|tick| {
            let entities = players
                .iter_mut()
                .zip(1..)
                .map(|((x, y, dx, dy), id)| {
                    if !(0.0..f64::from(WORLD)).contains(&(*x + *dx)) {
                        *dx = -*dx;
                    }
                    if !(0.0..f64::from(WORLD)).contains(&(*y + *dy)) {
                        *dy = -*dy;
                    }
                    (*x, *y) = (*x + *dx, *y + *dy);
                    let scaled = |v: f64| (v * f64::from(SCALE)) as u32;
                    Entity::new(id, 0, &[scaled(*x), scaled(*y), 0])
                })
                .collect();
            NetWorld::new(tick, entities)
        })
        .collect()
}

criterion_group!(benches, views);
criterion_main!(benches);
