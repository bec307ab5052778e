//! tanks: top-down tanks that move, aim a turret and fire shells. The second game, there to
//! prove the plug-in boundary where arena does not test it: a four-field input (a direction,
//! an angle, a button), entities of seven fields with a flag and a small enumeration, and
//! shells spawned and removed many times a second.
//!
//! Rules:
//! - the world spans `0..=size` units; a tank moves at 120 units/s along its input's
//!   direction, as arena's players do ([`super::motion::velocity`]);
//! - `aim` (0..=255) turns the turret to `aim / 256` of a full turn (0 is +x, 64 is +y);
//! - `fire` launches a shell from the tank along the turret at 600 units/s, unless the gun is
//!   reloading (half a second after each shot: the `reloading` flag);
//! - a shell flies for one second; it hits the first tank other than its owner whose centre is
//!   within 16 units, taking 25 health; a tank at 0 health respawns at random with full health
//!   (`state` 2, for a tick) and its shooter scores 1; a tank hit but alive shows `state` 1
//!   for a tick;
//! - all of it in integer coordinate steps (1/16 unit); directions from a 256-entry table of
//!   sines scaled by 4096, built once from `f64::sin` and rounded.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::arena::merge_by_id;
use super::motion::{MAX_AXIS, SCALE, advance, velocity};
use crate::game::{Game, GameConfig};
use crate::protocol::{Entity, EntityId, Field, FieldType, InputField, InputType, Kind, Role, Schema};

/// Tank speed, units per second.
pub const TANK_SPEED: u32 = 120;
/// Shell speed, units per second.
pub const SHELL_SPEED: u32 = 600;
/// How close a shell must come to a tank's centre to hit it, in units.
pub const HIT_RADIUS: u32 = 16;
/// Health of a fresh tank; each hit takes [`DAMAGE`].
pub const HEALTH: u32 = 100;
/// Health a hit takes.
pub const DAMAGE: u32 = 25;
/// Entity kinds, as the schema numbers them.
pub const TANK: u8 = 0;
/// See [`TANK`].
pub const SHELL: u8 = 1;
/// A tank's `state`: nothing happened to it this tick.
pub const ALIVE: u32 = 0;
/// A tank's `state`: hit this tick, still alive.
pub const HIT: u32 = 1;
/// A tank's `state`: destroyed and respawned elsewhere this tick (a teleport).
pub const RESPAWNED: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tank {
    x: u32,
    y: u32,
    dir: (i32, i32),
    aim: u32,
    fire: bool,
    health: u32,
    score: u32,
    /// Ticks until the gun can fire again.
    reload: u32,
    state: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shell {
    x: u32,
    y: u32,
    vx: i32,
    vy: i32,
    owner: EntityId,
    /// Ticks left to fly.
    life: u32,
}

/// The whole game state.
#[derive(Debug, Clone)]
pub struct Tanks {
    size: u32,
    tick_hz: u32,
    rng: StdRng,
    next_id: EntityId,
    tanks: BTreeMap<EntityId, Tank>,
    shells: BTreeMap<EntityId, Shell>,
}

impl Game for Tanks {
    const NAME: &'static str = "tanks";

    fn schema(config: &GameConfig) -> Schema {
        let field = Field::new;
        Schema {
            game: Self::NAME.into(),
            scale: SCALE,
            width: config.world_size,
            height: config.world_size,
            kinds: vec![
                Kind::positioned(
                    "tank",
                    [
                        field("aim", FieldType::Uint, Role::None),
                        field("health", FieldType::Uint, Role::Label),
                        field("score", FieldType::Uint, Role::Score),
                        field("reloading", FieldType::Flag, Role::None),
                        field("state", FieldType::Enum(3), Role::None),
                    ],
                ),
                Kind::positioned(
                    "shell",
                    [
                        field("vx", FieldType::Int, Role::None),
                        field("vy", FieldType::Int, Role::None),
                        field("owner", FieldType::Uint, Role::None),
                    ],
                ),
            ],
            input: vec![
                InputField::axis("dx"),
                InputField::axis("dy"),
                InputField::new("aim", InputType::U8, 0, 255),
                InputField::new("fire", InputType::Bool, 0, 1),
            ],
        }
    }

    fn new(config: &GameConfig, seed: u64) -> Self {
        Self {
            size: config.world_size * SCALE,
            tick_hz: config.tick_hz,
            rng: StdRng::seed_from_u64(seed),
            next_id: 1,
            tanks: BTreeMap::new(),
            shells: BTreeMap::new(),
        }
    }

    fn join(&mut self, _name: &str) -> EntityId {
        let id = self.alloc_id();
        let (x, y) = self.random_pos();
        let tank = Tank {
            x,
            y,
            dir: (0, 0),
            aim: 0,
            fire: false,
            health: HEALTH,
            score: 0,
            reload: 0,
            state: ALIVE,
        };
        self.tanks.insert(id, tank);
        id
    }

    fn leave(&mut self, player: EntityId) {
        self.tanks.remove(&player);
    }

    fn input(&mut self, player: EntityId, input: &[i32]) {
        if let (Some(t), [dx, dy, aim, fire, ..]) = (self.tanks.get_mut(&player), input) {
            t.dir = (*dx, *dy);
            t.aim = *aim as u32 & 0xff;
            t.fire = *fire != 0;
        }
    }

    fn step(&mut self) {
        let shell_life = self.tick_hz.max(1);
        let mut fired = Vec::new();
        for (&id, t) in &mut self.tanks {
            t.state = ALIVE;
            let (vx, vy) = velocity(t.dir.0, t.dir.1, TANK_SPEED, self.tick_hz);
            t.x = advance(t.x, vx, self.size);
            t.y = advance(t.y, vy, self.size);
            t.reload = t.reload.saturating_sub(1);
            if t.fire && t.reload == 0 {
                t.reload = (self.tick_hz / 2).max(1);
                let (cos, sin) = direction(t.aim);
                let (vx, vy) = velocity(cos, sin, SHELL_SPEED, self.tick_hz);
                fired.push(Shell {
                    x: t.x,
                    y: t.y,
                    vx,
                    vy,
                    owner: id,
                    life: shell_life,
                });
            }
        }
        for shell in fired {
            let id = self.alloc_id();
            self.shells.insert(id, shell);
        }
        self.fly_shells();
    }

    fn entities(&self, out: &mut Vec<Entity>) {
        let tanks = self.tanks.iter().map(|(&id, t)| {
            let reloading = u32::from(t.reload > 0);
            Entity::new(id, TANK, &[t.x, t.y, t.aim, t.health, t.score, reloading, t.state])
        });
        let shells = self
            .shells
            .iter()
            .map(|(&id, s)| Entity::new(id, SHELL, &[s.x, s.y, s.vx as u32, s.vy as u32, s.owner]));
        merge_by_id(tanks, shells, out);
    }
}

impl Tanks {
    /// Moves every shell; removes those that hit, left the world or flew their time.
    fn fly_shells(&mut self) {
        let reach = i64::from(HIT_RADIUS * SCALE).pow(2);
        let mut gone = Vec::new();
        let mut hits = Vec::new();
        for (&id, s) in &mut self.shells {
            let (x, y) = (i64::from(s.x) + i64::from(s.vx), i64::from(s.y) + i64::from(s.vy));
            s.life -= 1;
            if s.life == 0 || x < 0 || y < 0 || x > i64::from(self.size) || y > i64::from(self.size) {
                gone.push(id);
                continue;
            }
            (s.x, s.y) = (x as u32, y as u32);
            let near = |t: &Tank| (i64::from(t.x) - x).pow(2) + (i64::from(t.y) - y).pow(2) <= reach;
            let target = self.tanks.iter().find(|(tid, t)| **tid != s.owner && near(t));
            if let Some((&target, _)) = target {
                gone.push(id);
                hits.push((target, s.owner));
            }
        }
        for id in gone {
            self.shells.remove(&id);
        }
        for (target, shooter) in hits {
            self.hit(target, shooter);
        }
    }

    fn hit(&mut self, target: EntityId, shooter: EntityId) {
        let respawn_at = self.random_pos();
        let Some(t) = self.tanks.get_mut(&target) else { return };
        if t.state == RESPAWNED {
            return; // already destroyed this tick
        }
        t.health = t.health.saturating_sub(DAMAGE);
        t.state = HIT;
        if t.health > 0 {
            return;
        }
        (t.x, t.y) = respawn_at;
        t.health = HEALTH;
        t.state = RESPAWNED;
        if let Some(s) = self.tanks.get_mut(&shooter) {
            s.score += 1;
        }
    }

    fn alloc_id(&mut self) -> EntityId {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn random_pos(&mut self) -> (u32, u32) {
        (
            self.rng.random_range(0..=self.size),
            self.rng.random_range(0..=self.size),
        )
    }
}

/// The turret's direction for `aim` (0..=255 of a turn), as an input-style direction
/// (components within ±127).
pub fn direction(aim: u32) -> (i32, i32) {
    static TABLE: OnceLock<[(i32, i32); 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        std::array::from_fn(|i| {
            let angle = i as f64 * std::f64::consts::TAU / 256.0;
            let unit = |v: f64| (v * f64::from(MAX_AXIS)).round() as i32;
            (unit(angle.cos()), unit(angle.sin()))
        })
    })[(aim & 0xff) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GameConfig {
        GameConfig {
            tick_hz: 30,
            world_size: 1000,
            orbs: 0,
        }
    }

    #[test]
    fn a_shell_flies_along_the_turret_and_is_gone_after_a_second() {
        let mut game = Tanks::new(&config(), 1);
        let a = game.join("a");
        let t = game.tanks.get_mut(&a).unwrap();
        (t.x, t.y) = (8000, 8000);
        game.input(a, &[0, 0, 64, 1]); // aim +y, fire
        game.step();
        let shells: Vec<_> = game.shells.values().copied().collect();
        assert_eq!(shells.len(), 1);
        assert_eq!(
            (shells[0].vx, shells[0].vy, shells[0].owner),
            (0, 320, a),
            "600 u/s at 30 Hz is 320 steps"
        );
        assert!(game.tanks[&a].reload > 0, "the gun reloads");
        game.input(a, &[0, 0, 64, 0]);
        for _ in 0..30 {
            game.step();
        }
        assert!(game.shells.is_empty(), "shells live one second at most");
    }

    #[test]
    fn four_hits_destroy_a_tank_respawn_it_and_score_for_the_shooter() {
        let mut game = Tanks::new(&config(), 2);
        let (a, b) = (game.join("a"), game.join("b"));
        let ta = game.tanks.get_mut(&a).unwrap();
        (ta.x, ta.y) = (8000, 8000);
        for hit in 1..=4 {
            // Put b in the path of a's next shell, a little ahead of a; the shell flies in the
            // tick it is fired.
            let tb = game.tanks.get_mut(&b).unwrap();
            (tb.x, tb.y) = (8400, 8000);
            game.tanks.get_mut(&a).unwrap().reload = 0;
            game.input(a, &[0, 0, 0, 1]);
            game.step();
            let state = game.tanks[&b].state;
            if hit < 4 {
                assert_eq!(
                    (game.tanks[&b].health, state),
                    (HEALTH - DAMAGE * hit, HIT),
                    "hit {hit}"
                );
            } else {
                assert_eq!((game.tanks[&b].health, state), (HEALTH, RESPAWNED));
            }
        }
        assert_eq!((game.tanks[&a].score, game.tanks[&b].score), (1, 0));
    }

    #[test]
    fn same_seed_and_inputs_give_the_same_world() {
        let run = |seed| {
            let mut game = Tanks::new(&config(), seed);
            let ids: Vec<_> = (0..8).map(|i| game.join(&format!("t{i}"))).collect();
            for t in 0..300 {
                for (i, id) in ids.iter().enumerate() {
                    let k = (t * 13 + i as i32 * 29) % 255;
                    game.input(*id, &[k - 127, 127 - k, k, i32::from(k % 3 == 0)]);
                }
                game.step();
            }
            let mut out = Vec::new();
            game.entities(&mut out);
            out
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
        Tanks::schema(&config()).validate().unwrap();
    }

    #[test]
    fn the_turret_points_where_aim_says() {
        assert_eq!(direction(0), (127, 0));
        assert_eq!(direction(64), (0, 127));
        assert_eq!(direction(128), (-127, 0));
        assert_eq!(direction(192), (0, -127));
    }
}
