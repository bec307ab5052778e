//! What a bot does: pure decisions from the world it holds and a seeded random source.
//!
//! A [`Brain`] is asked for a direction every time the bot is about to send a move. It reads
//! no clock and does no I/O, so the same seed and the same worlds give the same moves.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tickcast::delta::NetWorld;

use crate::arena::{self, Arena};

/// How a bot moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Behaviour {
    /// Holds a random heading for a while, then picks another; turns away from walls.
    Wander,
    /// Heads for the nearest orb; wanders when there is none.
    Chase,
}

/// Which behaviour each bot of a swarm gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Every bot wanders.
    Wander,
    /// Every bot chases orbs.
    Chase,
    /// Half and half, alternating.
    #[default]
    Mixed,
}

impl Mix {
    /// The behaviour of bot number `index`.
    pub fn for_bot(self, index: usize) -> Behaviour {
        match self {
            Mix::Wander => Behaviour::Wander,
            Mix::Chase => Behaviour::Chase,
            Mix::Mixed if index % 2 == 0 => Behaviour::Wander,
            Mix::Mixed => Behaviour::Chase,
        }
    }
}

/// Decisions between heading changes, for a wanderer: 0.5 to 3 s at one move per 100 ms.
const WANDER_HOLD: std::ops::RangeInclusive<u32> = 5..=30;

/// How close to a wall, in position steps (20 units), a wanderer turns back.
const WALL_MARGIN: u32 = 20 * 16;

/// One bot's decision state.
#[derive(Debug, Clone)]
pub struct Brain {
    behaviour: Behaviour,
    rng: StdRng,
    heading: (i8, i8),
    hold: u32,
}

impl Brain {
    /// A brain with its own seed.
    pub fn new(behaviour: Behaviour, seed: u64) -> Self {
        Self {
            behaviour,
            rng: StdRng::seed_from_u64(seed),
            heading: (0, 0),
            hold: 0,
        }
    }

    /// The behaviour this brain follows.
    pub fn behaviour(&self) -> Behaviour {
        self.behaviour
    }

    /// The direction to move in next, for the player `me` in `world`.
    pub fn decide(&mut self, world: &NetWorld, arena: &Arena, me: u32) -> (i8, i8) {
        let Some(me) = world.get(me) else {
            // Not in the world yet (joined after this tick): nothing to steer.
            return (0, 0);
        };
        let orb = match self.behaviour {
            Behaviour::Chase => arena::nearest_orb(world, me),
            Behaviour::Wander => None,
        };
        if let Some(orb) = orb {
            return arena::heading(me, orb);
        }
        self.wander(arena, me.x, me.y)
    }

    /// The direction to move in next without a world to look at (a bot that keeps none):
    /// wandering headings, with no orbs to chase and no walls to turn from.
    pub fn decide_blind(&mut self) -> (i8, i8) {
        self.hold_or_turn();
        self.heading
    }

    fn wander(&mut self, arena: &Arena, x: u32, y: u32) -> (i8, i8) {
        self.hold_or_turn();
        // Point each axis away from a wall that is close; the server would clamp us against it.
        let away = |pos: u32, size: u32, d: i8| match () {
            _ if pos < WALL_MARGIN => d.saturating_abs(),
            _ if pos > size.saturating_sub(WALL_MARGIN) => -d.saturating_abs(),
            _ => d,
        };
        self.heading = (
            away(x, arena.width, self.heading.0),
            away(y, arena.height, self.heading.1),
        );
        self.heading
    }

    /// Keeps the heading for a while, then picks a new random one.
    fn hold_or_turn(&mut self) {
        if self.hold == 0 || self.heading == (0, 0) {
            self.heading = (self.rng.random_range(-127..=127), self.rng.random_range(-127..=127));
            self.hold = self.rng.random_range(WANDER_HOLD);
        }
        self.hold -= 1;
    }
}

#[cfg(test)]
mod tests {
    use tickcast::protocol::{EntityKind, EntityState, Snapshot};

    use super::*;

    const ARENA: Arena = Arena {
        width: 16_000,
        height: 16_000,
        scale: 16,
    };

    fn world(entities: &[(u32, EntityKind, u32, u32)]) -> NetWorld {
        let entities = entities
            .iter()
            .map(|&(id, kind, x, y)| EntityState {
                id,
                kind,
                x,
                y,
                score: 0,
            })
            .collect();
        NetWorld::from_snapshot(&Snapshot { tick: 1, entities }).unwrap()
    }

    #[test]
    fn a_chaser_heads_for_the_nearest_orb() {
        let w = world(&[
            (1, EntityKind::Orb, 8_000, 5_000),
            (2, EntityKind::Orb, 12_000, 8_000),
            (9, EntityKind::Player, 8_000, 8_000),
        ]);
        let mut brain = Brain::new(Behaviour::Chase, 1);
        assert_eq!(brain.decide(&w, &ARENA, 9), (0, -127));
    }

    #[test]
    fn a_chaser_without_orbs_wanders_and_a_missing_player_stands_still() {
        let w = world(&[(9, EntityKind::Player, 8_000, 8_000)]);
        let mut brain = Brain::new(Behaviour::Chase, 1);
        assert_ne!(brain.decide(&w, &ARENA, 9), (0, 0));
        assert_eq!(brain.decide(&w, &ARENA, 10), (0, 0));
    }

    #[test]
    fn wandering_is_deterministic_for_a_seed_and_turns_away_from_walls() {
        let w = world(&[(9, EntityKind::Player, 8_000, 8_000)]);
        let run = |seed| {
            let mut brain = Brain::new(Behaviour::Wander, seed);
            (0..100).map(|_| brain.decide(&w, &ARENA, 9)).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));

        let cornered = world(&[(9, EntityKind::Player, 0, 16_000)]);
        let mut brain = Brain::new(Behaviour::Wander, 3);
        for _ in 0..100 {
            let (dx, dy) = brain.decide(&cornered, &ARENA, 9);
            assert!(dx >= 0 && dy <= 0, "({dx}, {dy}) heads into the corner");
        }
    }

    #[test]
    fn a_mixed_swarm_alternates() {
        let kinds: Vec<Behaviour> = (0..4).map(|i| Mix::Mixed.for_bot(i)).collect();
        assert_eq!(
            kinds,
            [Behaviour::Wander, Behaviour::Chase, Behaviour::Wander, Behaviour::Chase]
        );
    }
}
