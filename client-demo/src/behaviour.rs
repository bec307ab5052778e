//! What a bot does: pure decisions from the world it holds and a seeded random source.
//!
//! A [`Brain`] is asked for a [`Decision`] every time the bot is about to send an input. It
//! reads no clock and does no I/O, so the same seed and the same worlds give the same inputs.
//! It plays any game by the schema's kinds: a chaser heads for the nearest orb, or in a game
//! without orbs for the nearest other entity of its own kind (the nearest tank); in a game
//! whose input has `aim` and `fire`, every bot turns its turret to the nearest other entity of
//! its kind and fires when it is within range.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tickcast::protocol::delta::NetWorld;

use crate::arena::{self, Arena};

/// How a bot moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Behaviour {
    /// Holds a random heading for a while, then picks another; turns away from walls.
    Wander,
    /// Heads for the nearest orb (or, without orbs, the nearest rival); wanders when there is
    /// none.
    Chase,
}

/// One input's worth of decisions, by what the inputs mean; the bot sends the ones its game's
/// input has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decision {
    /// Direction, x.
    pub dx: i8,
    /// Direction, y.
    pub dy: i8,
    /// Turret angle, 256ths of a turn.
    pub aim: u8,
    /// Whether to fire.
    pub fire: bool,
}

/// Within this distance (coordinate steps: 400 units) a rival is worth a shell.
const FIRING_RANGE: u64 = 400 * 16;

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

    /// What to do next, as the player `me` in `world`.
    pub fn decide(&mut self, world: &NetWorld, arena: &Arena, me: u32) -> Decision {
        let Some(me) = world.get(me) else {
            // Not in the world yet (joined after this tick): nothing to steer.
            return Decision::default();
        };
        let rival = arena::nearest(world, arena, me, me.kind);
        let prey = match (self.behaviour, arena.kind_named("orb")) {
            (Behaviour::Chase, Some(orb)) => arena::nearest(world, arena, me, orb),
            (Behaviour::Chase, None) => rival,
            (Behaviour::Wander, _) => None,
        };
        let (dx, dy) = match (prey, arena.position(me)) {
            (Some(prey), _) => arena::heading(arena, me, prey),
            (None, Some((x, y))) => self.wander(arena, x, y),
            (None, None) => self.decide_blind(),
        };
        let mut decision = Decision {
            dx,
            dy,
            ..Decision::default()
        };
        if let Some(rival) = rival {
            decision.aim = arena::bearing(arena, me, rival).unwrap_or_default();
            let distance = arena::distance_squared(arena, me, rival).unwrap_or(u64::MAX);
            decision.fire = distance <= FIRING_RANGE * FIRING_RANGE;
        }
        decision
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
    use tickcast::game::Tanks;
    use tickcast::game::{Game, GameConfig};
    use tickcast::protocol::Entity;

    use super::*;
    use crate::arena::tests::{arena_schema, orb, player, world};

    fn arena() -> Arena {
        Arena::from_schema(&arena_schema())
    }

    fn direction(d: Decision) -> (i8, i8) {
        (d.dx, d.dy)
    }

    #[test]
    fn a_chaser_heads_for_the_nearest_orb() {
        let w = world(vec![
            orb(1, 8_000, 5_000),
            orb(2, 12_000, 8_000),
            player(9, 8_000, 8_000, 0),
        ]);
        let mut brain = Brain::new(Behaviour::Chase, 1);
        assert_eq!(direction(brain.decide(&w, &arena(), 9)), (0, -127));
    }

    #[test]
    fn a_chaser_without_orbs_wanders_and_a_missing_player_stands_still() {
        let w = world(vec![player(9, 8_000, 8_000, 0)]);
        let mut brain = Brain::new(Behaviour::Chase, 1);
        assert_ne!(direction(brain.decide(&w, &arena(), 9)), (0, 0));
        assert_eq!(brain.decide(&w, &arena(), 10), Decision::default());
    }

    #[test]
    fn wandering_is_deterministic_for_a_seed_and_turns_away_from_walls() {
        let w = world(vec![player(9, 8_000, 8_000, 0)]);
        let run = |seed| {
            let mut brain = Brain::new(Behaviour::Wander, seed);
            (0..100).map(|_| brain.decide(&w, &arena(), 9)).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));

        let cornered = world(vec![player(9, 0, 16_000, 0)]);
        let mut brain = Brain::new(Behaviour::Wander, 3);
        for _ in 0..100 {
            let (dx, dy) = direction(brain.decide(&cornered, &arena(), 9));
            assert!(dx >= 0 && dy <= 0, "({dx}, {dy}) heads into the corner");
        }
    }

    #[test]
    fn a_tank_aims_at_the_nearest_rival_and_fires_in_range() {
        let tanks = Arena::from_schema(&Tanks::schema(&GameConfig::default()));
        let tank = |id, x, y| Entity::new(id, 0, &[x, y, 0, 100, 0, 0, 0]);
        let w = world(vec![tank(1, 8_000, 8_000), tank(2, 8_000, 9_600), tank(3, 0, 0)]);
        let mut brain = Brain::new(Behaviour::Chase, 1);
        let d = brain.decide(&w, &tanks, 1);
        assert_eq!((d.dx, d.dy, d.aim, d.fire), (0, 127, 64, true));
        let far = world(vec![tank(1, 0, 0), tank(2, 16_000, 16_000)]);
        assert!(!brain.decide(&far, &tanks, 1).fire, "out of range");
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
