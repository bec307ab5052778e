//! Reading the world a client holds, for any game: where entities are, their scores, the
//! nearest entity of a kind, the leaderboard. What each field means comes from the game's
//! schema (its roles: x, y, score, label, name), so nothing here knows arena or tanks by heart.
//!
//! Everything here works in coordinate steps (as the wire sends them), so a bot steering by
//! these numbers and the drawing code agree exactly with the server's world.

use tickcast::protocol::delta::NetWorld;
use tickcast::protocol::{Entity, Role, Schema};

/// The world's size and what each kind's fields mean, from the game's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arena {
    /// Width in coordinate steps.
    pub width: u32,
    /// Height in coordinate steps.
    pub height: u32,
    /// Coordinate steps per world unit.
    pub scale: u32,
    kinds: Vec<Roles>,
}

/// Where a kind keeps the fields a generic client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Roles {
    name: String,
    x: Option<usize>,
    y: Option<usize>,
    score: Option<usize>,
    label: Option<usize>,
    display_name: Option<usize>,
}

impl Arena {
    /// The arena a schema describes.
    pub fn from_schema(schema: &Schema) -> Self {
        // A scale of 0 is refused by the schema's checks; 1 keeps every division defined anyway.
        let scale = schema.scale.max(1);
        let kinds = schema
            .kinds
            .iter()
            .map(|kind| {
                let role = |role| kind.fields.iter().position(|f| f.role == role);
                Roles {
                    name: kind.name.clone(),
                    x: role(Role::X),
                    y: role(Role::Y),
                    score: role(Role::Score),
                    label: role(Role::Label),
                    display_name: role(Role::Name),
                }
            })
            .collect();
        Self {
            width: schema.width.saturating_mul(scale),
            height: schema.height.saturating_mul(scale),
            scale,
            kinds,
        }
    }

    fn roles(&self, e: &Entity) -> Option<&Roles> {
        self.kinds.get(usize::from(e.kind))
    }

    /// An entity's position in coordinate steps, if its kind has one.
    pub fn position(&self, e: &Entity) -> Option<(u32, u32)> {
        let roles = self.roles(e)?;
        Some((e.values[roles.x?], e.values[roles.y?]))
    }

    /// An entity's score, if its kind has one.
    pub fn score(&self, e: &Entity) -> Option<u32> {
        Some(e.values[self.roles(e)?.score?])
    }

    /// An entity's label value, if its kind has one.
    pub fn label(&self, e: &Entity) -> Option<u32> {
        Some(e.values[self.roles(e)?.label?])
    }

    /// An entity's display name, if its kind has one and it is not empty.
    pub fn name<'w>(&self, world: &'w NetWorld, e: &Entity) -> Option<&'w str> {
        Some(world.text(e.values[self.roles(e)?.display_name?])).filter(|n| !n.is_empty())
    }

    /// A position in world units, for display.
    pub fn units(&self, e: &Entity) -> Option<(f32, f32)> {
        let (x, y) = self.position(e)?;
        Some((x as f32 / self.scale as f32, y as f32 / self.scale as f32))
    }

    /// The kind named `name`.
    pub fn kind_named(&self, name: &str) -> Option<u8> {
        self.kinds.iter().position(|k| k.name == name).map(|i| i as u8)
    }

    /// The name of `kind`.
    pub fn kind_name(&self, kind: u8) -> &str {
        self.kinds.get(usize::from(kind)).map_or("?", |k| k.name.as_str())
    }

    /// How many kinds the game has.
    pub fn kinds(&self) -> usize {
        self.kinds.len()
    }
}

/// One line of the leaderboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The entity's id.
    pub id: u32,
    /// Its score.
    pub score: u32,
}

/// The `n` best-scoring entities (those whose kind has a score): highest first, older ones
/// (lower ids) first on a tie.
pub fn leaderboard(world: &NetWorld, arena: &Arena, n: usize) -> Vec<Standing> {
    let scored = world.entities().iter().filter_map(|e| {
        Some(Standing {
            id: e.id,
            score: arena.score(e)?,
        })
    });
    top(scored, n)
}

/// The `n` best of `players`, ranked as [`leaderboard`] ranks them.
pub fn top(players: impl IntoIterator<Item = Standing>, n: usize) -> Vec<Standing> {
    let mut players: Vec<Standing> = players.into_iter().collect();
    players.sort_by(|a, b| b.score.cmp(&a.score).then(a.id.cmp(&b.id)));
    players.truncate(n);
    players
}

/// How many entities of each kind the world holds, by kind index.
pub fn census(world: &NetWorld, arena: &Arena) -> Vec<usize> {
    let mut counts = vec![0; arena.kinds()];
    for e in world.entities() {
        if let Some(count) = counts.get_mut(usize::from(e.kind)) {
            *count += 1;
        }
    }
    counts
}

/// The entity of `kind` closest to `from` (other than `from` itself), if any.
pub fn nearest<'w>(world: &'w NetWorld, arena: &Arena, from: &Entity, kind: u8) -> Option<&'w Entity> {
    world
        .entities()
        .iter()
        .filter(|e| e.kind == kind && e.id != from.id)
        .filter_map(|e| Some((distance_squared(arena, from, e)?, e)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, e)| e)
}

/// Squared distance in coordinate steps (exact: no rounding, no overflow for any u32
/// positions), if both have a position.
pub fn distance_squared(arena: &Arena, a: &Entity, b: &Entity) -> Option<u64> {
    let ((ax, ay), (bx, by)) = (arena.position(a)?, arena.position(b)?);
    let (dx, dy) = (u64::from(ax.abs_diff(bx)), u64::from(ay.abs_diff(by)));
    Some(dx * dx + dy * dy)
}

/// The direction that heads from `from` straight to `to`: the longer axis at full scale
/// (127), the other in proportion, `(0, 0)` when already there (or either has no position).
pub fn heading(arena: &Arena, from: &Entity, to: &Entity) -> (i8, i8) {
    let (Some((fx, fy)), Some((tx, ty))) = (arena.position(from), arena.position(to)) else {
        return (0, 0);
    };
    let (dx, dy) = (i64::from(tx) - i64::from(fx), i64::from(ty) - i64::from(fy));
    let longest = dx.abs().max(dy.abs());
    if longest == 0 {
        return (0, 0);
    }
    // |d * 127 / longest| <= 127, so the casts cannot truncate.
    ((dx * 127 / longest) as i8, (dy * 127 / longest) as i8)
}

/// The angle from `from` to `to` in 256ths of a turn (0 is +x, 64 is +y), as tanks aim.
pub fn bearing(arena: &Arena, from: &Entity, to: &Entity) -> Option<u8> {
    let ((fx, fy), (tx, ty)) = (arena.position(from)?, arena.position(to)?);
    let (dx, dy) = (f64::from(tx) - f64::from(fx), f64::from(ty) - f64::from(fy));
    let turns = dy.atan2(dx) / std::f64::consts::TAU;
    Some((turns * 256.0).round().rem_euclid(256.0) as u8)
}

#[cfg(test)]
pub(crate) mod tests {
    use tickcast::game::{Arena as ArenaGame, Tanks};
    use tickcast::game::{Game, GameConfig};
    use tickcast::protocol::Snapshot;

    use super::*;

    /// Arena's schema, as a welcome carries it.
    pub(crate) fn arena_schema() -> Schema {
        ArenaGame::schema(&GameConfig::default())
    }

    /// An arena player or orb.
    pub(crate) fn player(id: u32, x: u32, y: u32, score: u32) -> Entity {
        Entity::new(id, 0, &[x, y, score])
    }

    /// See [`player`].
    pub(crate) fn orb(id: u32, x: u32, y: u32) -> Entity {
        Entity::new(id, 1, &[x, y])
    }

    pub(crate) fn world(entities: Vec<Entity>) -> NetWorld {
        NetWorld::from_snapshot(&Snapshot {
            tick: 1,
            entities,
            texts: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn the_leaderboard_ranks_by_score_then_by_age() {
        let arena = Arena::from_schema(&arena_schema());
        let w = world(vec![
            orb(1, 0, 0),
            player(10, 0, 0, 2),
            player(11, 0, 0, 5),
            player(12, 0, 0, 2),
        ]);
        let ids: Vec<u32> = leaderboard(&w, &arena, 2).iter().map(|s| s.id).collect();
        assert_eq!(ids, [11, 10]);
        assert_eq!(census(&w, &arena), [3, 1]);
    }

    #[test]
    fn the_nearest_orb_wins_and_heading_points_at_it() {
        let arena = Arena::from_schema(&arena_schema());
        let me = player(10, 1000, 1000, 0);
        let w = world(vec![orb(1, 5000, 1000), orb(2, 1000, 900), me]);
        let found = nearest(&w, &arena, &me, 1).unwrap();
        assert_eq!(found.id, 2);
        assert_eq!(heading(&arena, &me, found), (0, -127));
        assert_eq!(heading(&arena, &me, &orb(3, 1200, 1100)), (127, 63));
        assert_eq!(heading(&arena, &me, &me), (0, 0));
        assert_eq!(bearing(&arena, &me, &orb(3, 1000, 2000)), Some(64));
    }

    #[test]
    fn roles_come_from_the_schema() {
        let arena = Arena::from_schema(&arena_schema());
        assert_eq!((arena.width, arena.height), (16_000, 16_000));
        assert_eq!(arena.units(&orb(1, 200, 8)), Some((12.5, 0.5)));
        assert_eq!(arena.score(&orb(1, 200, 8)), None, "orbs have no score");
        let tanks = Arena::from_schema(&Tanks::schema(&GameConfig::default()));
        let tank = Entity::new(3, 0, &[16, 32, 0, 75, 4, 0, 0]);
        assert_eq!(
            (tanks.position(&tank), tanks.score(&tank), tanks.label(&tank)),
            (Some((16, 32)), Some(4), Some(75))
        );
        assert_eq!(tanks.kind_named("shell"), Some(1));
    }
}
