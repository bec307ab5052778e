//! The game, "arena v1": players move around a square world and collect orbs.
//!
//! This module is pure. It does no I/O and reads no clock: time advances by one fixed step per
//! [`World::step`], and all randomness comes from a seeded generator, so the same seed and the
//! same calls give the same world, bit for bit. The networking layer feeds it and carries its
//! output; benches and tests drive it directly.
//!
//! Rules (kept exactly; benchmarks compare them with other servers):
//! - the world spans `0..=width` by `0..=height` (1000 by 1000 by default);
//! - a move command's direction `(dx, dy)`, each in [-127, 127], is scaled by 1/127 and
//!   normalized to length at most 1; the player moves at 150 units/s along it, clamped to the
//!   world, until the next command;
//! - 100 orbs lie at random positions; a player whose centre is within 10 units of an orb
//!   collects it (score + 1), and a new orb with a new id spawns at a random position.

use std::collections::BTreeMap;

use glam::Vec2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Player speed in world units per second.
pub const PLAYER_SPEED: f32 = 150.0;
/// How close a player's centre must come to an orb to collect it.
pub const PICKUP_RADIUS: f32 = 10.0;
/// The largest magnitude of a move command's components.
pub const MAX_AXIS: i8 = 127;

/// An entity id: unique for the life of a world, never reused.
pub type EntityId = u32;

/// The world's fixed parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// World width in units.
    pub width: f32,
    /// World height in units.
    pub height: f32,
    /// Steps per second; one step advances time by `1 / tick_hz` seconds.
    pub tick_hz: u32,
    /// How many orbs are in the world at all times.
    pub orbs: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            width: 1000.0,
            height: 1000.0,
            tick_hz: 30,
            orbs: 100,
        }
    }
}

/// A player in the world.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Player {
    /// Centre position.
    pub pos: Vec2,
    /// Current direction, length at most 1.
    pub dir: Vec2,
    /// Orbs collected.
    pub score: u32,
}

/// An orb waiting to be collected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Orb {
    /// Centre position.
    pub pos: Vec2,
}

/// One orb collected during a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pickup {
    /// Who collected it.
    pub player: EntityId,
    /// The orb that was removed.
    pub orb: EntityId,
    /// The orb spawned in its place.
    pub respawned: EntityId,
}

/// The whole game state.
#[derive(Debug, Clone)]
pub struct World {
    rules: Rules,
    rng: StdRng,
    next_id: EntityId,
    tick: u64,
    // BTreeMaps keep iteration in id order, which makes pickups deterministic.
    players: BTreeMap<EntityId, Player>,
    orbs: BTreeMap<EntityId, Orb>,
}

impl World {
    /// A new world at tick 0 with its orbs placed from `seed`.
    pub fn new(rules: Rules, seed: u64) -> Self {
        let mut world = Self {
            rules,
            rng: StdRng::seed_from_u64(seed),
            next_id: 1,
            tick: 0,
            players: BTreeMap::new(),
            orbs: BTreeMap::new(),
        };
        for _ in 0..rules.orbs {
            world.spawn_orb();
        }
        world
    }

    /// The world's parameters.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// How many steps have run.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// The players, by id.
    pub fn players(&self) -> &BTreeMap<EntityId, Player> {
        &self.players
    }

    /// The orbs, by id.
    pub fn orbs(&self) -> &BTreeMap<EntityId, Orb> {
        &self.orbs
    }

    /// Adds a player at a random position, standing still, and returns its id.
    pub fn add_player(&mut self) -> EntityId {
        let id = self.alloc_id();
        let pos = self.random_pos();
        self.players.insert(
            id,
            Player {
                pos,
                dir: Vec2::ZERO,
                score: 0,
            },
        );
        id
    }

    /// Removes a player; unknown ids are ignored.
    pub fn remove_player(&mut self, id: EntityId) {
        self.players.remove(&id);
    }

    /// Sets a player's direction from a move command. Components outside [-127, 127] are
    /// clamped (the protocol layer rejects them before they get here).
    pub fn set_direction(&mut self, id: EntityId, dx: i8, dy: i8) {
        if let Some(p) = self.players.get_mut(&id) {
            p.dir = direction(dx, dy);
        }
    }

    /// Advances the world by one tick and reports the orbs collected in it.
    pub fn step(&mut self) -> Vec<Pickup> {
        self.tick += 1;
        let dt = 1.0 / self.rules.tick_hz as f32;
        let max = Vec2::new(self.rules.width, self.rules.height);
        let mut pickups = Vec::new();
        let ids: Vec<EntityId> = self.players.keys().copied().collect();
        for id in ids {
            let Some(p) = self.players.get_mut(&id) else { continue };
            p.pos = (p.pos + p.dir * PLAYER_SPEED * dt).clamp(Vec2::ZERO, max);
            let pos = p.pos;
            let hit = self
                .orbs
                .iter()
                .find(|(_, orb)| orb.pos.distance_squared(pos) <= PICKUP_RADIUS * PICKUP_RADIUS)
                .map(|(orb_id, _)| *orb_id);
            if let Some(orb) = hit {
                self.orbs.remove(&orb);
                if let Some(p) = self.players.get_mut(&id) {
                    p.score += 1;
                }
                let respawned = self.spawn_orb();
                pickups.push(Pickup {
                    player: id,
                    orb,
                    respawned,
                });
            }
        }
        pickups
    }

    fn spawn_orb(&mut self) -> EntityId {
        let id = self.alloc_id();
        let pos = self.random_pos();
        self.orbs.insert(id, Orb { pos });
        id
    }

    fn alloc_id(&mut self) -> EntityId {
        let id = self.next_id;
        // 2^32 ids at thousands of pickups a second is still years of uptime.
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn random_pos(&mut self) -> Vec2 {
        Vec2::new(
            self.rng.random_range(0.0..=self.rules.width),
            self.rng.random_range(0.0..=self.rules.height),
        )
    }
}

/// The unit-or-shorter direction a move command asks for.
pub fn direction(dx: i8, dy: i8) -> Vec2 {
    let max = f32::from(MAX_AXIS);
    let v = Vec2::new(f32::from(dx).clamp(-max, max), f32::from(dy).clamp(-max, max)) / max;
    if v.length_squared() > 1.0 { v.normalize() } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64) -> World {
        let mut w = World::new(Rules::default(), seed);
        let ids: Vec<_> = (0..20).map(|_| w.add_player()).collect();
        for t in 0..600u32 {
            for (i, id) in ids.iter().enumerate() {
                let k = (t as usize * 7 + i * 13) % 255;
                w.set_direction(*id, (k as i32 - 127) as i8, ((k * 3 % 255) as i32 - 127) as i8);
            }
            if t == 300 {
                w.remove_player(ids[3]);
            }
            w.step();
        }
        w
    }

    #[test]
    fn same_seed_and_inputs_give_the_same_world() {
        let (a, b) = (run(42), run(42));
        assert_eq!(a.players, b.players);
        assert_eq!(a.orbs, b.orbs);
        assert_eq!(a.next_id, b.next_id);
        assert!(
            a.players.values().map(|p| p.score).sum::<u32>() > 0,
            "nobody collected anything"
        );
        let c = run(43);
        assert_ne!(a.orbs, c.orbs, "the seed has no effect");
    }

    #[test]
    fn players_move_at_the_rule_speed_and_stay_inside() {
        let rules = Rules {
            orbs: 0,
            ..Rules::default()
        };
        let mut w = World::new(rules, 1);
        let id = w.add_player();
        let start = w.players[&id].pos;
        // Diagonal at full deflection is normalized, not sqrt(2) times faster.
        w.set_direction(id, 127, 127);
        w.step();
        let moved = w.players[&id].pos.distance(start);
        let step = PLAYER_SPEED / rules.tick_hz as f32;
        assert!(moved <= step + 1e-3, "moved {moved}, rule allows {step}");
        for _ in 0..1000 {
            w.step();
        }
        assert_eq!(w.players[&id].pos, Vec2::new(1000.0, 1000.0));
    }

    #[test]
    fn collecting_an_orb_scores_and_respawns_it_with_a_new_id() {
        let mut w = World::new(
            Rules {
                orbs: 1,
                ..Rules::default()
            },
            7,
        );
        let id = w.add_player();
        let (&orb, o) = w.orbs.iter().next().unwrap();
        w.players.get_mut(&id).unwrap().pos = o.pos + Vec2::new(PICKUP_RADIUS - 0.5, 0.0);
        let pickups = w.step();
        assert_eq!(pickups.len(), 1);
        assert_eq!((pickups[0].player, pickups[0].orb), (id, orb));
        assert_eq!(w.players[&id].score, 1);
        assert_eq!(w.orbs.len(), 1);
        assert!(!w.orbs.contains_key(&orb));
        assert!(w.orbs.contains_key(&pickups[0].respawned));
    }

    #[test]
    fn direction_is_at_most_unit_length() {
        assert_eq!(direction(0, 0), Vec2::ZERO);
        assert!((direction(127, 127).length() - 1.0).abs() < 1e-6);
        assert!((direction(-127, 0).x + 1.0).abs() < 1e-6);
        assert!(direction(-128, -128).length() <= 1.0 + 1e-6);
        assert!((direction(64, 0).x - 64.0 / 127.0).abs() < 1e-6);
    }
}
