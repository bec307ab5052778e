//! arena v1: players move around a square world and collect orbs. The benchmark workload.
//!
//! Pure: no I/O, no clock; one [`Game::step`] is one tick, and all randomness comes from the
//! seed, so the same seed and inputs give the same world, bit for bit. All arithmetic is on
//! integer coordinate steps (1/16 unit), so a client can predict its own player exactly.
//!
//! Rules (kept exactly; benchmarks compare them with other servers):
//! - the world spans `0..=size` by `0..=size` units (1000 by default);
//! - an input `(dx, dy)`, each in [-127, 127], is a direction scaled by 1/127 and normalized
//!   to length at most 1; the player moves at 150 units/s along it (in steps:
//!   [`super::motion::velocity`]), clamped to the world, until the next input;
//! - `--orbs` orbs (100) lie at random positions; a player whose centre comes within 10 units
//!   of an orb collects it (score + 1), and a new orb with a new id spawns at random.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::motion::{SCALE, advance, velocity};
use crate::game::{Game, GameConfig};
use crate::protocol::{Entity, EntityId, Field, FieldType, InputField, Kind, Role, Schema};

/// Player speed in world units per second.
pub const PLAYER_SPEED: u32 = 150;
/// How close a player's centre must come to an orb to collect it, in world units.
pub const PICKUP_RADIUS: u32 = 10;
/// Entity kinds, as the schema numbers them.
pub const PLAYER: u8 = 0;
/// See [`PLAYER`].
pub const ORB: u8 = 1;

/// A player in the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Player {
    /// Centre, in coordinate steps.
    pub x: u32,
    /// See `x`.
    pub y: u32,
    /// The direction of its latest input.
    pub dir: (i32, i32),
    /// Its step per tick along `dir` ([`super::motion::velocity`]), worked out when the input comes.
    pub step: (i32, i32),
    /// Orbs collected.
    pub score: u32,
}

/// An orb waiting to be collected, at a position in coordinate steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Orb {
    /// Centre.
    pub x: u32,
    /// See `x`.
    pub y: u32,
}

/// The whole game state.
#[derive(Debug, Clone)]
pub struct Arena {
    /// The world's side, in steps.
    size: u32,
    tick_hz: u32,
    rng: StdRng,
    next_id: EntityId,
    // Both in id order, which makes pickups deterministic. Orbs are a vector: every player
    // scans them every tick, and a pickup (which removes one) is rare next to a scan.
    players: BTreeMap<EntityId, Player>,
    orbs: Vec<(EntityId, Orb)>,
}

impl Game for Arena {
    const NAME: &'static str = "arena";

    fn schema(config: &GameConfig) -> Schema {
        Schema {
            game: Self::NAME.into(),
            scale: SCALE,
            width: config.world_size,
            height: config.world_size,
            kinds: vec![
                Kind::positioned("player", [Field::new("score", FieldType::Uint, Role::Score)]),
                Kind::positioned("orb", []),
            ],
            input: vec![InputField::axis("dx"), InputField::axis("dy")],
        }
    }

    fn new(config: &GameConfig, seed: u64) -> Self {
        let mut arena = Self {
            size: config.world_size * SCALE,
            tick_hz: config.tick_hz,
            rng: StdRng::seed_from_u64(seed),
            next_id: 1,
            players: BTreeMap::new(),
            orbs: Vec::with_capacity(config.orbs as usize),
        };
        for _ in 0..config.orbs {
            arena.spawn_orb();
        }
        arena
    }

    fn join(&mut self, _name: &str) -> EntityId {
        let id = self.alloc_id();
        let (x, y) = self.random_pos();
        let player = Player {
            x,
            y,
            dir: (0, 0),
            step: (0, 0),
            score: 0,
        };
        self.players.insert(id, player);
        id
    }

    fn leave(&mut self, player: EntityId) {
        self.players.remove(&player);
    }

    fn input(&mut self, player: EntityId, input: &[i32]) {
        if let (Some(p), [dx, dy, ..]) = (self.players.get_mut(&player), input) {
            p.dir = (*dx, *dy);
            p.step = velocity(*dx, *dy, PLAYER_SPEED, self.tick_hz);
        }
    }

    fn step(&mut self) {
        let radius = PICKUP_RADIUS * SCALE;
        let reach = u64::from(radius).pow(2);
        for p in self.players.values_mut() {
            p.x = advance(p.x, p.step.0, self.size);
            p.y = advance(p.y, p.step.1, self.size);
            let (x, y) = (p.x, p.y);
            // The cheap test on each axis first: most orbs are far away on one of them.
            let near = |o: &Orb| {
                let (dx, dy) = (o.x.abs_diff(x), o.y.abs_diff(y));
                dx <= radius && dy <= radius && u64::from(dx).pow(2) + u64::from(dy).pow(2) <= reach
            };
            let Some(at) = self.orbs.iter().position(|(_, o)| near(o)) else {
                continue;
            };
            p.score += 1;
            self.orbs.remove(at);
            // The new orb may be collected by a player later in this same step.
            let id = alloc_id(&mut self.next_id);
            let orb = random_orb(&mut self.rng, self.size);
            insert_orb(&mut self.orbs, id, orb);
        }
    }

    fn entities(&self, out: &mut Vec<Entity>) {
        let players = self
            .players
            .iter()
            .map(|(&id, p)| Entity::new(id, PLAYER, &[p.x, p.y, p.score]));
        let orbs = self.orbs.iter().map(|&(id, o)| Entity::new(id, ORB, &[o.x, o.y]));
        merge_by_id(players, orbs, out);
    }
}

impl Arena {
    /// The players, by id.
    pub fn players(&self) -> &BTreeMap<EntityId, Player> {
        &self.players
    }

    /// The orbs, in id order.
    pub fn orbs(&self) -> &[(EntityId, Orb)] {
        &self.orbs
    }

    fn spawn_orb(&mut self) {
        let id = alloc_id(&mut self.next_id);
        let orb = random_orb(&mut self.rng, self.size);
        insert_orb(&mut self.orbs, id, orb);
    }

    fn alloc_id(&mut self) -> EntityId {
        alloc_id(&mut self.next_id)
    }

    fn random_pos(&mut self) -> (u32, u32) {
        let Orb { x, y } = random_orb(&mut self.rng, self.size);
        (x, y)
    }
}

/// The next entity id (ids start at 1; 0 is never given).
fn alloc_id(next: &mut EntityId) -> EntityId {
    let id = *next;
    // 2^32 ids at thousands of pickups a second is still years of uptime.
    *next = next.wrapping_add(1).max(1);
    id
}

fn random_orb(rng: &mut StdRng, size: u32) -> Orb {
    Orb {
        x: rng.random_range(0..=size),
        y: rng.random_range(0..=size),
    }
}

/// Adds an orb, keeping the list in id order (a new id is the largest until ids wrap).
fn insert_orb(orbs: &mut Vec<(EntityId, Orb)>, id: EntityId, orb: Orb) {
    let at = orbs.partition_point(|(other, _)| *other < id);
    orbs.insert(at, (id, orb));
}

/// Merges two id-ascending entity streams into `out`.
pub(crate) fn merge_by_id(a: impl Iterator<Item = Entity>, b: impl Iterator<Item = Entity>, out: &mut Vec<Entity>) {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
        let next = if x.id < y.id { a.next() } else { b.next() };
        out.extend(next);
    }
    out.extend(a);
    out.extend(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64) -> Arena {
        let mut w = Arena::new(&GameConfig::default(), seed);
        let ids: Vec<_> = (0..20).map(|_| w.join("p")).collect();
        for t in 0..600i32 {
            for (i, id) in ids.iter().enumerate() {
                let k = (t * 7 + i as i32 * 13) % 255;
                w.input(*id, &[k - 127, (k * 3 % 255) - 127]);
            }
            if t == 300 {
                w.leave(ids[3]);
            }
            w.step();
        }
        w
    }

    #[test]
    fn same_seed_and_inputs_give_the_same_world() {
        let (a, b) = (run(42), run(42));
        assert_eq!((&a.players, &a.orbs, a.next_id), (&b.players, &b.orbs, b.next_id));
        assert!(
            a.players.values().map(|p| p.score).sum::<u32>() > 0,
            "nobody collected anything"
        );
        assert_ne!(a.orbs, run(43).orbs, "the seed has no effect");
    }

    #[test]
    fn players_move_at_the_rule_speed_and_stay_inside() {
        let config = GameConfig {
            orbs: 0,
            ..GameConfig::default()
        };
        let mut w = Arena::new(&config, 1);
        let id = w.join("p");
        let start = w.players[&id];
        // Diagonal at full deflection is normalized, not sqrt(2) times faster.
        w.input(id, &[127, 127]);
        w.step();
        let p = w.players[&id];
        let moved = (i64::from(p.x) - i64::from(start.x)).pow(2) + (i64::from(p.y) - i64::from(start.y)).pow(2);
        let rule = i64::from(PLAYER_SPEED * SCALE / config.tick_hz);
        assert!(
            moved <= rule * rule,
            "moved {moved} squared steps, the rule allows {rule}²"
        );
        for _ in 0..1000 {
            w.step();
        }
        assert_eq!((w.players[&id].x, w.players[&id].y), (16_000, 16_000));
    }

    #[test]
    fn collecting_an_orb_scores_and_respawns_it_with_a_new_id() {
        let config = GameConfig {
            orbs: 1,
            ..GameConfig::default()
        };
        let mut w = Arena::new(&config, 7);
        let id = w.join("p");
        let (orb, o) = w.orbs[0];
        let (ox, oy) = (o.x, o.y);
        let p = w.players.get_mut(&id).unwrap();
        (p.x, p.y) = (ox.saturating_sub(PICKUP_RADIUS * SCALE - 8), oy);
        w.step();
        assert_eq!(w.players[&id].score, 1);
        assert_eq!(w.orbs.len(), 1);
        assert_ne!(w.orbs[0].0, orb, "the orb got a new id");
    }

    #[test]
    fn entities_come_in_id_order_with_the_schemas_fields() {
        let mut w = Arena::new(&GameConfig::default(), 3);
        let id = w.join("p");
        let mut out = Vec::new();
        w.entities(&mut out);
        assert!(out.windows(2).all(|e| e[0].id < e[1].id));
        let me = out.iter().find(|e| e.id == id).unwrap();
        assert_eq!((me.kind, me.values[2], me.values[3]), (PLAYER, 0, 0));
        Arena::schema(&GameConfig::default()).validate().unwrap();
    }
}
