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
//!   of an orb collects it (score + 1), and a new orb with a new id spawns at random;
//! - a player shows its name (from its hello). Arena has no messages, events or options and
//!   never ends: it is the workload the benchmarks compare.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg32;

use super::motion::{IVec2, SCALE, UVec2, advance, velocity, within};
use crate::game::{Dispatch, Entities, Game, GameConfig, Join, Refusal};
use crate::protocol::{Entity, EntityId, Field, FieldType, InputField, Kind, MAX_NAME_LEN, Role, Schema, Text};

/// Player speed in world units per second.
pub const PLAYER_SPEED: u32 = 150;
/// How close a player's centre must come to an orb to collect it, in world units.
pub const PICKUP_RADIUS: u32 = 10;
/// Entity kinds, as the schema numbers them.
pub const PLAYER: u8 = 0;
/// See [`PLAYER`].
pub const ORB: u8 = 1;
/// The player kind's name field.
pub const NAME: usize = 3;

/// A player in the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player {
    /// Centre, in coordinate steps.
    pub at: UVec2,
    /// The direction of its latest input.
    pub dir: IVec2,
    /// Its step per tick along `dir` ([`super::motion::velocity`]), worked out when the input comes.
    pub step: IVec2,
    /// Orbs collected.
    pub score: u32,
    /// Its name.
    pub name: Text,
}

/// An orb waiting to be collected, at a position in coordinate steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Orb {
    /// Centre.
    pub at: UVec2,
}

/// The whole game state.
#[derive(Debug, Clone)]
pub struct Arena {
    /// The world's side, in steps.
    size: u32,
    tick_hz: u32,
    rng: Pcg32,
    next_id: EntityId,
    // Both in id order, which makes pickups deterministic: a player collects the orb of the
    // lowest id within reach.
    players: BTreeMap<EntityId, Player>,
    orbs: Vec<(EntityId, Orb)>,
    /// The orbs by `x`, so a player looks only at those in the band of its reach instead of
    /// scanning every orb every tick; kept while anyone plays, empty in an empty room.
    by_x: Vec<(u32, u32, EntityId)>,
}

impl Game for Arena {
    const NAME: &'static str = "arena";

    fn schema(config: &GameConfig) -> Schema {
        let name = FieldType::Text(MAX_NAME_LEN as u8);
        Schema::new(Self::NAME, SCALE, config.world_size, config.world_size)
            .with_kind(Kind::positioned(
                "player",
                [
                    Field::new("score", FieldType::Uint, Role::Score),
                    Field::new("name", name, Role::Name),
                ],
            ))
            .with_kind(Kind::positioned("orb", []))
            .with_input(InputField::axis("dx"))
            .with_input(InputField::axis("dy"))
    }

    fn new(config: &GameConfig, seed: u64) -> Self {
        let mut arena = Self {
            size: config.world_size * SCALE,
            tick_hz: config.tick_hz,
            rng: Pcg32::seed_from_u64(seed),
            next_id: 1,
            players: BTreeMap::new(),
            orbs: Vec::with_capacity(config.orbs as usize),
            by_x: Vec::new(),
        };
        for _ in 0..config.orbs {
            arena.spawn_orb();
        }
        arena
    }

    fn join(&mut self, join: &Join<'_>, _: &mut Dispatch) -> Result<EntityId, Refusal> {
        let id = self.alloc_id();
        let player = Player {
            at: random_orb(&mut self.rng, self.size).at,
            dir: IVec2::ZERO,
            step: IVec2::ZERO,
            score: 0,
            name: join.name.clone(),
        };
        self.players.insert(id, player);
        Ok(id)
    }

    fn leave(&mut self, player: EntityId, _: &mut Dispatch) {
        self.players.remove(&player);
        if self.players.is_empty() {
            // Nobody will collect anything until someone joins: the index is made again then.
            self.by_x = Vec::new();
        }
    }

    fn input(&mut self, player: EntityId, input: &[i32]) {
        if let (Some(p), [dx, dy, ..]) = (self.players.get_mut(&player), input) {
            p.dir = IVec2::new(*dx, *dy);
            p.step = velocity(p.dir, PLAYER_SPEED, self.tick_hz);
        }
    }

    fn step(&mut self, _: &mut Dispatch) {
        let radius = PICKUP_RADIUS * SCALE;
        if self.by_x.len() != self.orbs.len() {
            self.by_x = self.orbs.iter().map(|(id, o)| (o.at.x, o.at.y, *id)).collect();
            self.by_x.sort_unstable();
        }
        for p in self.players.values_mut() {
            p.at = advance(p.at, p.step, self.size);
            let Some(orb) = reachable(&self.by_x, p.at, radius) else {
                continue;
            };
            p.score += 1;
            remove_orb(&mut self.orbs, &mut self.by_x, orb);
            // The new orb may be collected by a player later in this same step.
            let id = alloc_id(&mut self.next_id);
            let orb = random_orb(&mut self.rng, self.size);
            insert_orb(&mut self.orbs, id, orb);
            let at = self.by_x.partition_point(|e| *e < (orb.at.x, orb.at.y, id));
            self.by_x.insert(at, (orb.at.x, orb.at.y, id));
        }
    }

    fn entities(&self, out: &mut Entities<'_>) {
        let mut orbs = self.orbs.iter().peekable();
        for (&id, p) in &self.players {
            while let Some((orb, o)) = orbs.next_if(|(orb, _)| *orb < id) {
                out.push(Entity::new(*orb, ORB, &o.at.to_array()));
            }
            out.push(Entity::new(id, PLAYER, &[p.at.x, p.at.y, p.score]))
                .text(NAME, &p.name);
        }
        for (orb, o) in orbs {
            out.push(Entity::new(*orb, ORB, &o.at.to_array()));
        }
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

    /// Renames a player (for tests: names otherwise change only at a join).
    #[cfg(test)]
    pub(crate) fn rename(&mut self, id: EntityId, name: Text) {
        if let Some(p) = self.players.get_mut(&id) {
            p.name = name;
        }
    }

    fn spawn_orb(&mut self) {
        let id = alloc_id(&mut self.next_id);
        let orb = random_orb(&mut self.rng, self.size);
        insert_orb(&mut self.orbs, id, orb);
    }

    fn alloc_id(&mut self) -> EntityId {
        alloc_id(&mut self.next_id)
    }
}

/// The next entity id (ids start at 1; 0 is never given).
fn alloc_id(next: &mut EntityId) -> EntityId {
    let id = *next;
    // 2^32 ids at thousands of pickups a second is still years of uptime.
    *next = next.wrapping_add(1).max(1);
    id
}

fn random_orb(rng: &mut Pcg32, size: u32) -> Orb {
    Orb {
        at: UVec2::new(rng.random_range(0..=size), rng.random_range(0..=size)),
    }
}

/// The orb of the lowest id within `radius` of `at`, looked for among the orbs `by_x` in the
/// band `at.x ± radius` (any orb within reach is in it).
fn reachable(by_x: &[(u32, u32, EntityId)], at: UVec2, radius: u32) -> Option<EntityId> {
    let from = by_x.partition_point(|(x, _, _)| *x < at.x.saturating_sub(radius));
    by_x[from..]
        .iter()
        .take_while(|(x, _, _)| *x <= at.x.saturating_add(radius))
        .filter(|(x, y, _)| within(at, UVec2::new(*x, *y), radius))
        .map(|(_, _, id)| *id)
        .min()
}

/// Takes orb `id` out of the list and the index.
fn remove_orb(orbs: &mut Vec<(EntityId, Orb)>, by_x: &mut Vec<(u32, u32, EntityId)>, id: EntityId) {
    let at = orbs.partition_point(|(other, _)| *other < id);
    let (_, orb) = orbs.remove(at);
    let at = by_x.partition_point(|e| *e < (orb.at.x, orb.at.y, id));
    by_x.remove(at);
}

/// Adds an orb, keeping the list in id order (a new id is the largest until ids wrap).
fn insert_orb(orbs: &mut Vec<(EntityId, Orb)>, id: EntityId, orb: Orb) {
    let at = orbs.partition_point(|(other, _)| *other < id);
    orbs.insert(at, (id, orb));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Sandbox;

    fn run(seed: u64) -> Arena {
        let mut w = Sandbox::<Arena>::new(&GameConfig::default(), seed);
        let ids: Vec<_> = (0..20).map(|_| w.join("p").unwrap()).collect();
        for t in 0..600i32 {
            for (i, id) in ids.iter().enumerate() {
                let k = (t * 7 + i as i32 * 13) % 255;
                w.game.input(*id, &[k - 127, (k * 3 % 255) - 127]);
            }
            if t == 300 {
                w.leave(ids[3]);
            }
            w.step();
        }
        w.game
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

    /// The rule as first written: each player scans every orb, in id order.
    fn step_by_scan(arena: &mut Arena) {
        let radius = PICKUP_RADIUS * SCALE;
        for p in arena.players.values_mut() {
            p.at = advance(p.at, p.step, arena.size);
            let Some(at) = arena.orbs.iter().position(|(_, o)| within(p.at, o.at, radius)) else {
                continue;
            };
            p.score += 1;
            arena.orbs.remove(at);
            let id = alloc_id(&mut arena.next_id);
            let orb = random_orb(&mut arena.rng, arena.size);
            insert_orb(&mut arena.orbs, id, orb);
        }
    }

    #[test]
    fn the_orb_index_collects_what_a_scan_of_every_orb_would() {
        // A crowded small world, so that pickups are frequent and several orbs are often
        // within one player's reach; players leave and join, and the room empties once.
        let config = GameConfig {
            orbs: 300,
            world_size: 300,
            ..GameConfig::default()
        };
        let mut w = Sandbox::<Arena>::new(&config, 9);
        let mut ids: Vec<_> = (0..60).map(|_| w.join("p").unwrap()).collect();
        let mut scanned = w.game.clone();
        let mut pickups = 0;
        for t in 0..1500i32 {
            if t == 700 {
                for id in ids.drain(..) {
                    w.leave(id);
                }
                scanned.players.clear();
            }
            if ids.len() < 60 && t % 3 == 0 {
                let id = w.join("p").unwrap();
                scanned.players.insert(id, w.game.players[&id].clone());
                scanned.next_id = w.game.next_id;
                scanned.rng = w.game.rng.clone();
                ids.push(id);
            }
            for (i, id) in ids.iter().enumerate() {
                let k = (t * 7 + i as i32 * 13) % 255;
                let input = [k - 127, (k * 3 % 255) - 127];
                w.game.input(*id, &input);
                scanned.input(*id, &input);
            }
            let before = w.game.next_id;
            w.step();
            step_by_scan(&mut scanned);
            pickups += w.game.next_id - before;
            assert_eq!(
                (&w.game.players, &w.game.orbs, w.game.next_id),
                (&scanned.players, &scanned.orbs, scanned.next_id),
                "tick {t}"
            );
        }
        assert!(pickups > 500, "only {pickups} pickups: the test would not tell");
    }

    #[test]
    fn players_move_at_the_rule_speed_and_stay_inside() {
        let config = GameConfig {
            orbs: 0,
            ..GameConfig::default()
        };
        let mut w = Sandbox::<Arena>::new(&config, 1);
        let id = w.join("p").unwrap();
        let start = w.game.players[&id].clone();
        // Diagonal at full deflection is normalized, not sqrt(2) times faster.
        w.game.input(id, &[127, 127]);
        w.step();
        let p = &w.game.players[&id];
        let moved = crate::game::motion::distance_squared(p.at, start.at);
        let rule = u64::from(PLAYER_SPEED * SCALE / config.tick_hz);
        assert!(
            moved <= rule * rule,
            "moved {moved} squared steps, the rule allows {rule}²"
        );
        for _ in 0..1000 {
            w.step();
        }
        assert_eq!(w.game.players[&id].at, UVec2::splat(16_000));
    }

    #[test]
    fn collecting_an_orb_scores_and_respawns_it_with_a_new_id() {
        let config = GameConfig {
            orbs: 1,
            ..GameConfig::default()
        };
        let mut w = Sandbox::<Arena>::new(&config, 7);
        let id = w.join("p").unwrap();
        let (orb, o) = w.game.orbs[0];
        let p = w.game.players.get_mut(&id).unwrap();
        p.at = UVec2::new(o.at.x.saturating_sub(PICKUP_RADIUS * SCALE - 8), o.at.y);
        w.step();
        assert_eq!(w.game.players[&id].score, 1);
        assert_eq!(w.game.orbs.len(), 1);
        assert_ne!(w.game.orbs[0].0, orb, "the orb got a new id");
    }

    #[test]
    fn entities_come_in_id_order_with_the_schemas_fields_and_names() {
        let mut w = Sandbox::<Arena>::new(&GameConfig::default(), 3);
        let id = w.join("ann").unwrap();
        let world = w.world(0);
        let out = world.entities();
        assert!(out.windows(2).all(|e| e[0].id < e[1].id));
        let me = out.iter().find(|e| e.id == id).unwrap();
        assert_eq!((me.kind, me.values[2]), (PLAYER, 0));
        assert_eq!(world.text(me.values[NAME]), "ann");
        Arena::schema(&GameConfig::default()).validate().unwrap();
    }
}
