//! tanks: top-down tanks in two teams that move, aim a turret, fire shells and chat; the first
//! team to a number of kills wins the match. The second game, there to use the whole plug-in
//! API where arena uses the least of it: a four-field input, entities with a text, an
//! enumeration and a private field, shells spawned and removed many times a second, messages,
//! events, join options that may be refused, room options and labels, and an end.
//!
//! Rules:
//! - the world spans `0..=size` units; a tank moves at 120 units/s along its input's
//!   direction, as arena's players do ([`super::motion::velocity`]);
//! - `aim` (0..=255) turns the turret to `aim / 256` of a full turn (0 is +x, 64 is +y);
//! - `fire` launches a shell from the tank along the turret at 600 units/s, if the tank has
//!   ammunition (`ammo`, private: only its player sees it; at most 5, one back every second)
//!   and its gun has cooled down (half a second after each shot);
//! - a shell flies for one second; it hits the first tank other than its owner (and, in
//!   `teams` mode, not of its owner's team) whose centre is within 16 units, taking 25 health
//!   (event `hit`); a tank at 0 health respawns at random with full health and ammunition, and
//!   its shooter scores 1 (event `kill`, the kill feed);
//! - a player joins the team its `team` option names (0 red, 1 blue), or the smaller one; a
//!   full team (room option `team_size`, 32) refuses the join;
//! - the `chat` message tells everyone (or, with `team` 1, the sender's team) a line;
//! - room options: `mode` (`teams`, the default, or `ffa`: everyone for themselves, also the
//!   room's label `mode`), `kills` (20): the first team (in `ffa`, tank) to that many kills
//!   ends the match, with every tank ranked by its score;
//! - all of it in integer coordinate steps (1/16 unit); directions from a 256-entry table of
//!   sines scaled by 4096, built once from `f64::sin` and rounded.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg32;

use super::motion::{IVec2, MAX_AXIS, SCALE, UVec2, advance, inside, velocity, within};
use crate::game::{Dispatch, Entities, Game, GameConfig, Join, Labels, Refusal, To};
use crate::protocol::{
    Entity, EntityId, EventKind, Field, FieldType, InputField, InputType, Kind, MAX_NAME_LEN, Message, MessageKind,
    Param, Results, Role, Schema, Standing, Text, Value,
};

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
/// Shells a tank carries at most.
pub const AMMO: u32 = 5;
/// Entity kinds, as the schema numbers them.
pub const TANK: u8 = 0;
/// See [`TANK`].
pub const SHELL: u8 = 1;
/// The tank kind's fields, by index.
pub mod field {
    /// The turret's direction.
    pub const AIM: usize = 2;
    /// Health, 0 to 100.
    pub const HEALTH: usize = 3;
    /// Kills.
    pub const SCORE: usize = 4;
    /// 0 red, 1 blue.
    pub const TEAM: usize = 5;
    /// The player's name.
    pub const NAME: usize = 6;
    /// Shells left (private).
    pub const AMMO: usize = 7;
}
/// Event kinds, as the schema numbers them.
pub mod event {
    /// A tank was hit and lives on: `target`, `by`.
    pub const HIT: u8 = 0;
    /// A tank was destroyed: `victim`, `by`, and both names.
    pub const KILL: u8 = 1;
    /// A chat line: `from`, `name`, `line`, `team` (1 if told to the sender's team only).
    pub const CHAT: u8 = 2;
}
/// The chat message kind.
pub const CHAT: u8 = 0;
/// The longest chat line, in bytes.
pub const CHAT_LEN: u8 = 100;
/// The teams' names.
pub const TEAMS: [&str; 2] = ["red", "blue"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Tank {
    at: UVec2,
    dir: IVec2,
    aim: u32,
    fire: bool,
    health: u32,
    score: u32,
    team: u32,
    name: Text,
    ammo: u32,
    /// Ticks until the gun can fire again.
    cooldown: u32,
    /// Ticks until the next shell is back.
    refill: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shell {
    at: UVec2,
    /// Its step per tick.
    v: IVec2,
    owner: EntityId,
    /// Ticks left to fly.
    life: u32,
}

/// How a room of tanks is played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Two teams.
    Teams,
    /// Everyone for themselves.
    Ffa,
}

/// The whole game state.
#[derive(Debug, Clone)]
pub struct Tanks {
    size: u32,
    tick_hz: u32,
    rng: Pcg32,
    next_id: EntityId,
    tanks: BTreeMap<EntityId, Tank>,
    shells: BTreeMap<EntityId, Shell>,
    mode: Mode,
    /// Kills that win.
    kills: u32,
    team_size: u32,
    /// Kills by team.
    team_kills: [u32; 2],
    over: bool,
}

impl Game for Tanks {
    const NAME: &'static str = "tanks";

    fn schema(config: &GameConfig) -> Schema {
        let field = Field::new;
        let id = |name| Param::int(name, 0, i32::MAX);
        let name = |name| Param::text(name, MAX_NAME_LEN as u8);
        Schema::new(Self::NAME, SCALE, config.world_size, config.world_size)
            .with_kind(Kind::positioned(
                "tank",
                [
                    field("aim", FieldType::Uint, Role::None),
                    field("health", FieldType::Uint, Role::Label),
                    field("score", FieldType::Uint, Role::Score),
                    field("team", FieldType::Enum(2), Role::None),
                    field("name", FieldType::Text(MAX_NAME_LEN as u8), Role::Name),
                    field("ammo", FieldType::Uint, Role::None).private(),
                ],
            ))
            .with_kind(Kind::positioned(
                "shell",
                [
                    field("vx", FieldType::Int, Role::None),
                    field("vy", FieldType::Int, Role::None),
                    field("owner", FieldType::Uint, Role::Owner),
                ],
            ))
            .with_input(InputField::axis("dx"))
            .with_input(InputField::axis("dy"))
            .with_input(InputField::new("aim", InputType::U8, 0, 255))
            .with_input(InputField::new("fire", InputType::Bool, 0, 1))
            .with_message(MessageKind::new(
                "chat",
                [Param::text("line", CHAT_LEN), Param::flag("team")],
                2,
            ))
            .with_event(EventKind::new("hit", [id("target"), id("by")], true))
            .with_event(EventKind::new(
                "kill",
                [id("victim"), id("by"), name("victim_name"), name("by_name")],
                true,
            ))
            .with_event(EventKind::new(
                "chat",
                [
                    id("from"),
                    name("name"),
                    Param::text("line", CHAT_LEN),
                    Param::flag("team"),
                ],
                true,
            ))
            .with_option(Param::int("team", 0, 1))
            .with_room_option(Param::text("mode", 8))
            .with_room_option(Param::int("kills", 1, 1000))
            .with_room_option(Param::int("team_size", 1, 1000))
    }

    fn new(config: &GameConfig, seed: u64) -> Self {
        let options = &config.options;
        let mode = match options.text("mode").map(Text::as_str) {
            Some("ffa") => Mode::Ffa,
            _ => Mode::Teams,
        };
        Self {
            size: config.world_size * SCALE,
            tick_hz: config.tick_hz,
            rng: Pcg32::seed_from_u64(seed),
            next_id: 1,
            tanks: BTreeMap::new(),
            shells: BTreeMap::new(),
            mode,
            kills: options.int("kills").map_or(20, |k| k.max(1) as u32),
            team_size: options.int("team_size").map_or(32, |k| k.max(1) as u32),
            team_kills: [0; 2],
            over: false,
        }
    }

    fn join(&mut self, join: &Join<'_>, _: &mut Dispatch) -> Result<EntityId, Refusal> {
        let team = self.team_for(join.options.int("team"))?;
        let id = self.alloc_id();
        let tank = Tank {
            at: self.random_pos(),
            dir: IVec2::ZERO,
            aim: 0,
            fire: false,
            health: HEALTH,
            score: 0,
            team,
            name: join.name.clone(),
            ammo: AMMO,
            cooldown: 0,
            refill: 0,
        };
        self.tanks.insert(id, tank);
        Ok(id)
    }

    fn leave(&mut self, player: EntityId, _: &mut Dispatch) {
        self.tanks.remove(&player);
    }

    fn message(&mut self, player: EntityId, message: &Message, out: &mut Dispatch) {
        let (Some(tank), CHAT, [Value::Text(line), Value::Int(team_only)]) =
            (self.tanks.get(&player), message.kind, message.values.as_slice())
        else {
            return;
        };
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        let to = if *team_only == 1 { To::Team(tank.team) } else { To::All };
        let values = vec![
            Value::Int(player as i32),
            Value::Text(tank.name.clone()),
            Value::text(line),
            Value::Int(*team_only),
        ];
        // The values fit the schema: the line came through the same limits.
        let _ = out.tell(to, event::CHAT, values);
    }

    fn input(&mut self, player: EntityId, input: &[i32]) {
        if let (Some(t), [dx, dy, aim, fire, ..]) = (self.tanks.get_mut(&player), input) {
            t.dir = IVec2::new(*dx, *dy);
            t.aim = *aim as u32 & 0xff;
            t.fire = *fire != 0;
        }
    }

    fn step(&mut self, out: &mut Dispatch) {
        if self.over {
            return;
        }
        let shell_life = self.tick_hz.max(1);
        let mut fired = Vec::new();
        for (&id, t) in &mut self.tanks {
            t.at = advance(t.at, velocity(t.dir, TANK_SPEED, self.tick_hz), self.size);
            t.cooldown = t.cooldown.saturating_sub(1);
            if t.ammo < AMMO {
                t.refill = t.refill.saturating_sub(1);
                if t.refill == 0 {
                    t.ammo += 1;
                    t.refill = self.tick_hz.max(1);
                }
            }
            if t.fire && t.cooldown == 0 && t.ammo > 0 {
                t.cooldown = (self.tick_hz / 2).max(1);
                if t.ammo == AMMO {
                    t.refill = self.tick_hz.max(1);
                }
                t.ammo -= 1;
                fired.push(Shell {
                    at: t.at,
                    v: velocity(direction(t.aim), SHELL_SPEED, self.tick_hz),
                    owner: id,
                    life: shell_life,
                });
            }
        }
        for shell in fired {
            let id = self.alloc_id();
            self.shells.insert(id, shell);
        }
        self.fly_shells(out);
        self.maybe_end(out);
    }

    fn entities(&self, out: &mut Entities<'_>) {
        let mut shells = self.shells.iter().peekable();
        let shell =
            |id: EntityId, s: &Shell| Entity::new(id, SHELL, &[s.at.x, s.at.y, s.v.x as u32, s.v.y as u32, s.owner]);
        for (&id, t) in &self.tanks {
            while let Some((&sid, s)) = shells.next_if(|(sid, _)| **sid < id) {
                out.push(shell(sid, s));
            }
            let values = [t.at.x, t.at.y, t.aim, t.health, t.score, t.team, 0, t.ammo];
            out.push(Entity::new(id, TANK, &values)).text(field::NAME, &t.name);
        }
        for (&sid, s) in shells {
            out.push(shell(sid, s));
        }
    }

    /// `mode` and `kills`: the room options a matchmaking filter may name.
    fn labels(&self, out: &mut Labels) {
        let mode = match self.mode {
            Mode::Teams => "teams",
            Mode::Ffa => "ffa",
        };
        out.set("mode", mode);
        out.set("kills", &self.kills.to_string());
    }

    fn team(&self, player: EntityId) -> Option<u32> {
        self.tanks.get(&player).map(|t| t.team)
    }
}

impl Tanks {
    /// The team a newcomer plays in: the one it asked for, or the smaller; refused when full.
    fn team_for(&self, asked: Option<i32>) -> Result<u32, Refusal> {
        if self.mode == Mode::Ffa {
            return Ok(0);
        }
        let size = |team: u32| self.tanks.values().filter(|t| t.team == team).count() as u32;
        let team = match asked {
            Some(team) => team.clamp(0, 1) as u32,
            None => u32::from(size(1) < size(0)),
        };
        if size(team) >= self.team_size {
            return Err(Refusal::new(&format!(
                "team {} is full ({} players)",
                TEAMS[team as usize], self.team_size
            )));
        }
        Ok(team)
    }

    /// Moves every shell; removes those that hit, left the world or flew their time.
    fn fly_shells(&mut self, out: &mut Dispatch) {
        let mut gone = Vec::new();
        let mut hits = Vec::new();
        for (&id, s) in &mut self.shells {
            s.life -= 1;
            let Some(at) = inside(s.at, s.v, self.size).filter(|_| s.life > 0) else {
                gone.push(id);
                continue;
            };
            s.at = at;
            let shooter_team = self.tanks.get(&s.owner).map(|t| t.team);
            let friendly = |t: &Tank| self.mode == Mode::Teams && Some(t.team) == shooter_team;
            let near = |t: &Tank| within(t.at, at, HIT_RADIUS * SCALE);
            let target = self
                .tanks
                .iter()
                .find(|(tid, t)| **tid != s.owner && !friendly(t) && near(t));
            if let Some((&target, _)) = target {
                gone.push(id);
                hits.push((target, s.owner));
            }
        }
        for id in gone {
            self.shells.remove(&id);
        }
        for (target, shooter) in hits {
            self.hit(target, shooter, out);
        }
    }

    fn hit(&mut self, target: EntityId, shooter: EntityId, out: &mut Dispatch) {
        let respawn_at = self.random_pos();
        let Some(t) = self.tanks.get_mut(&target) else { return };
        t.health = t.health.saturating_sub(DAMAGE);
        if t.health > 0 {
            let _ = out.tell_all(event::HIT, vec![Value::Int(target as i32), Value::Int(shooter as i32)]);
            return;
        }
        t.at = respawn_at;
        (t.health, t.ammo) = (HEALTH, AMMO);
        let victim_name = t.name.clone();
        let Some(s) = self.tanks.get_mut(&shooter) else { return };
        s.score += 1;
        self.team_kills[s.team.min(1) as usize] += 1;
        let values = vec![
            Value::Int(target as i32),
            Value::Int(shooter as i32),
            Value::Text(victim_name),
            Value::Text(s.name.clone()),
        ];
        let _ = out.tell_all(event::KILL, values);
    }

    /// Ends the match once a team (or, in `ffa`, a tank) has the kills that win.
    fn maybe_end(&mut self, out: &mut Dispatch) {
        let summary = match self.mode {
            Mode::Teams => {
                let [red, blue] = self.team_kills;
                if red.max(blue) < self.kills {
                    return;
                }
                let (won, lost) = (red.max(blue), red.min(blue));
                format!("{} wins {won} to {lost}", TEAMS[usize::from(blue > red)])
            }
            Mode::Ffa => match self.tanks.values().find(|t| t.score >= self.kills) {
                Some(best) => format!("{} wins with {} kills", best.name, best.score),
                None => return,
            },
        };
        self.over = true;
        let mut by_score: Vec<(&EntityId, &Tank)> = self.tanks.iter().collect();
        by_score.sort_by(|a, b| b.1.score.cmp(&a.1.score).then(a.0.cmp(b.0)));
        let mut standings: Vec<Standing> = Vec::with_capacity(by_score.len());
        for (i, (&id, t)) in by_score.into_iter().enumerate() {
            let rank = match standings.last() {
                Some(last) if last.score == t.score as i32 => last.rank,
                _ => i as u32 + 1,
            };
            standings.push(Standing {
                player: id,
                name: t.name.clone(),
                rank,
                score: t.score as i32,
            });
        }
        out.end(Results {
            summary: Text::lossy(&summary, 255),
            standings,
        });
    }

    fn alloc_id(&mut self) -> EntityId {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn random_pos(&mut self) -> UVec2 {
        let x = self.rng.random_range(0..=self.size);
        UVec2::new(x, self.rng.random_range(0..=self.size))
    }
}

/// The turret's direction for `aim` (0..=255 of a turn), as an input-style direction
/// (components within ±127).
pub fn direction(aim: u32) -> IVec2 {
    static TABLE: OnceLock<[IVec2; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        std::array::from_fn(|i| {
            let angle = i as f64 * std::f64::consts::TAU / 256.0;
            let unit = |v: f64| (v * f64::from(MAX_AXIS)).round() as i32;
            IVec2::new(unit(angle.cos()), unit(angle.sin()))
        })
    })[(aim & 0xff) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Sandbox;
    use crate::protocol::Options;

    fn config(options: &[(&str, Value)]) -> GameConfig {
        GameConfig {
            tick_hz: 30,
            world_size: 1000,
            orbs: 0,
            options: Options::checked(
                &Tanks::schema(&GameConfig::default()).room_options,
                options.iter().map(|(k, v)| ((*k).to_owned(), v.clone())),
            )
            .unwrap(),
        }
    }

    fn team(team: i32) -> Options {
        let params = Tanks::schema(&GameConfig::default()).options;
        Options::checked(&params, [("team".to_owned(), Value::Int(team))]).unwrap()
    }

    fn place(game: &mut Tanks, id: EntityId, x: u32, y: u32) {
        let t = game.tanks.get_mut(&id).unwrap();
        t.at = UVec2::new(x, y);
    }

    #[test]
    fn a_shell_flies_along_the_turret_and_is_gone_after_a_second() {
        let mut s = Sandbox::<Tanks>::new(&config(&[]), 1);
        let a = s.join("a").unwrap();
        place(&mut s.game, a, 8000, 8000);
        s.game.input(a, &[0, 0, 64, 1]); // aim +y, fire
        s.step();
        let shells: Vec<_> = s.game.shells.values().copied().collect();
        assert_eq!(shells.len(), 1);
        assert_eq!(
            (shells[0].v, shells[0].owner),
            (IVec2::new(0, 320), a),
            "600 u/s at 30 Hz is 320 steps"
        );
        assert_eq!(s.game.tanks[&a].ammo, AMMO - 1, "a shell used");
        s.game.input(a, &[0, 0, 64, 0]);
        for _ in 0..30 {
            s.step();
        }
        assert!(s.game.shells.is_empty(), "shells live one second at most");
        assert_eq!(s.game.tanks[&a].ammo, AMMO, "and the ammunition came back");
    }

    #[test]
    fn four_hits_destroy_a_tank_and_tell_the_kill_feed() {
        let mut s = Sandbox::<Tanks>::new(&config(&[]), 2);
        let (a, b) = (
            s.join_with("ann", &team(0)).unwrap(),
            s.join_with("bob", &team(1)).unwrap(),
        );
        place(&mut s.game, a, 8000, 8000);
        for hit in 1..=4 {
            // Put b in the path of a's next shell, a little ahead of a; the shell flies in the
            // tick it is fired.
            place(&mut s.game, b, 8400, 8000);
            let t = s.game.tanks.get_mut(&a).unwrap();
            (t.cooldown, t.ammo) = (0, AMMO);
            s.game.input(a, &[0, 0, 0, 1]);
            s.step();
            let told = s.out.take_told();
            let kinds: Vec<u8> = told.iter().map(|t| t.event.kind).collect();
            if hit < 4 {
                assert_eq!(s.game.tanks[&b].health, HEALTH - DAMAGE * hit, "hit {hit}");
                assert_eq!(kinds, [event::HIT]);
            } else {
                assert_eq!(s.game.tanks[&b].health, HEALTH, "respawned");
                assert_eq!(kinds, [event::KILL]);
                assert_eq!(told[0].event.values[2], Value::text("bob"));
                assert_eq!(told[0].to, To::All);
            }
        }
        assert_eq!((s.game.tanks[&a].score, s.game.tanks[&b].score), (1, 0));
    }

    #[test]
    fn teammates_are_not_hit_and_a_full_team_refuses() {
        let mut s = Sandbox::<Tanks>::new(&config(&[("team_size", Value::Int(1))]), 3);
        let a = s.join_with("a", &team(0)).unwrap();
        let refused = s.join_with("b", &team(0)).unwrap_err();
        assert_eq!(refused.reason(), "team red is full (1 players)");
        let b = s.join("b").unwrap();
        assert_eq!(s.game.tanks[&b].team, 1, "the smaller team");
        assert!(s.join("c").is_err(), "both full");
        place(&mut s.game, a, 8000, 8000);
        place(&mut s.game, b, 8400, 8000);
        s.game.tanks.get_mut(&b).unwrap().team = 0;
        s.game.input(a, &[0, 0, 0, 1]);
        s.step();
        assert_eq!(s.game.tanks[&b].health, HEALTH, "friendly fire is off");
    }

    #[test]
    fn the_first_team_to_the_kills_ends_the_match_with_everyone_ranked() {
        let mut s = Sandbox::<Tanks>::new(&config(&[("kills", Value::Int(1))]), 4);
        let (a, b) = (
            s.join_with("ann", &team(0)).unwrap(),
            s.join_with("bob", &team(1)).unwrap(),
        );
        place(&mut s.game, a, 8000, 8000);
        s.game.tanks.get_mut(&b).unwrap().health = DAMAGE;
        place(&mut s.game, b, 8400, 8000);
        s.game.input(a, &[0, 0, 0, 1]);
        s.step();
        let results = s.out.take_ended().expect("the match ended");
        assert_eq!(results.summary.as_str(), "red wins 1 to 0");
        let ranks: Vec<_> = results.standings.iter().map(|r| (r.player, r.rank, r.score)).collect();
        assert_eq!(ranks, [(a, 1, 1), (b, 2, 0)]);
        let mut labels = Labels::default();
        s.game.labels(&mut labels);
        assert_eq!((labels.get("mode"), labels.get("kills")), (Some("teams"), Some("1")));
    }

    #[test]
    fn chat_goes_to_everyone_or_to_the_team() {
        let mut s = Sandbox::<Tanks>::new(&config(&[]), 5);
        let a = s.join_with("ann", &team(1)).unwrap();
        let chat = |line: &str, team: i32| Message {
            kind: CHAT,
            values: vec![Value::text(line), Value::Int(team)],
        };
        s.message(a, &chat("  hello ", 0));
        s.message(a, &chat("blue only", 1));
        s.message(a, &chat("   ", 0));
        let told = s.out.take_told();
        assert_eq!(told.len(), 2, "a blank line is not told");
        assert_eq!((told[0].to, &told[0].event.values[2]), (To::All, &Value::text("hello")));
        assert_eq!(told[1].to, To::Team(1));
    }

    #[test]
    fn same_seed_and_inputs_give_the_same_world() {
        let run = |seed| {
            let mut s = Sandbox::<Tanks>::new(&config(&[]), seed);
            let ids: Vec<_> = (0..8).map(|i| s.join(&format!("t{i}")).unwrap()).collect();
            for t in 0..300 {
                for (i, id) in ids.iter().enumerate() {
                    let k = (t * 13 + i as i32 * 29) % 255;
                    s.game.input(*id, &[k - 127, 127 - k, k, i32::from(k % 3 == 0)]);
                }
                s.step();
            }
            s.world(300)
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
        Tanks::schema(&GameConfig::default()).validate().unwrap();
    }

    #[test]
    fn the_turret_points_where_aim_says() {
        assert_eq!(direction(0), IVec2::new(127, 0));
        assert_eq!(direction(64), IVec2::new(0, 127));
        assert_eq!(direction(128), IVec2::new(-127, 0));
        assert_eq!(direction(192), IVec2::new(0, -127));
    }
}
