//! Simulation: one `Game::step` with every player moving, for 10 to 10 000 players: arena
//! (`sim/step`, the benchmark game) and tanks (`sim/tanks`, every tank firing when it can).
//!
//! Expected curve: linear in players. An arena step moves each player and looks for a pickup
//! among the orbs in the band of its reach (an index of the 100 orbs by `x`: a binary search
//! and a few distance tests, where a scan of every orb cost 2.3-2.8x as much at 10-10 000
//! players); the time per player (criterion's throughput line, in players/s) should stay
//! flat across the sweep. A
//! tanks step tests each shell against each tank: players × shells, so it grows faster.
//!
//! Only `step` is timed. Every 64 steps, outside the timing, each player gets a new random
//! direction (never standing still), as a crowd of real players would; without it they would
//! all pile into the corners and stop meeting orbs.
//!
//! Run: `cargo bench --bench sim`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use tickcast::game::motion::MAX_AXIS;
use tickcast::game::{Arena, Tanks};
use tickcast::game::{Game, GameConfig, Sandbox};
use tickcast::protocol::{EntityId, Options, Value};

const PLAYERS: [usize; 4] = [10, 100, 1_000, 10_000];

/// Steps between new directions: 64 steps of 5 units keep players crossing the world.
const REAIM_EVERY: u64 = 64;

fn step(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim");
    for players in PLAYERS {
        group.throughput(Throughput::Elements(players as u64));
        let mut arena = Crowd::<Arena>::new(players, GameConfig::default());
        group.bench_function(BenchmarkId::new("step", players), |b| {
            b.iter_custom(|iters| arena.run(iters))
        });
        // Everyone for themselves (two teams hold 64 tanks), and a match too long to end here.
        let options = [("mode", Value::text("ffa")), ("kills", Value::Int(1000))];
        let params = Tanks::schema(&GameConfig::default()).room_options;
        let config = GameConfig {
            options: Options::checked(&params, options.map(|(k, v)| (k.to_owned(), v))).expect("valid"),
            ..GameConfig::default()
        };
        let mut tanks = Crowd::<Tanks>::new(players, config);
        group.bench_function(BenchmarkId::new("tanks", players), |b| {
            b.iter_custom(|iters| tanks.run(iters))
        });
    }
    group.finish();
}

/// A default world of game `G` full of moving players.
struct Crowd<G> {
    world: Sandbox<G>,
    players: Vec<EntityId>,
    rng: StdRng,
    steps_since_reaim: u64,
}

impl<G: Game> Crowd<G> {
    fn new(players: usize, config: GameConfig) -> Self {
        let mut world = Sandbox::<G>::new(&config, 1);
        let players = (0..players).map(|_| world.join("bench").expect("joins")).collect();
        let mut arena = Self {
            world,
            players,
            rng: StdRng::seed_from_u64(2),
            steps_since_reaim: 0,
        };
        arena.reaim();
        arena
    }

    /// Steps `iters` times and returns the time spent in `step` alone.
    fn run(&mut self, iters: u64) -> Duration {
        let mut spent = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let burst = left.min(REAIM_EVERY - self.steps_since_reaim);
            let start = Instant::now();
            for _ in 0..burst {
                self.world.step();
                black_box(&self.world);
            }
            spent += start.elapsed();
            left -= burst;
            self.steps_since_reaim += burst;
            if self.steps_since_reaim == REAIM_EVERY {
                self.reaim();
                self.steps_since_reaim = 0;
            }
        }
        spent
    }

    fn reaim(&mut self) {
        for &id in &self.players {
            let (dx, dy) = loop {
                let axis = -MAX_AXIS..=MAX_AXIS;
                let d = (self.rng.random_range(axis.clone()), self.rng.random_range(axis));
                if d != (0, 0) {
                    break d;
                }
            };
            // Arena reads (dx, dy); tanks also aims at random and keeps firing.
            let aim = self.rng.random_range(0..=255);
            self.world.game.input(id, &[dx, dy, aim, 1]);
        }
    }
}

criterion_group!(benches, step);
criterion_main!(benches);
