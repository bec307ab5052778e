//! Reading the world a client holds: sizes, distances, the nearest orb and the leaderboard.
//!
//! Everything here works in position steps (1/16 world unit, as the wire sends them), so a bot
//! steering by these numbers and the drawing code agree exactly with the server's world.

use tickcast::delta::NetWorld;
use tickcast::protocol::{EntityKind, EntityState, Welcome};

/// The arena's size in position steps, from the server's welcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arena {
    /// Width in position steps.
    pub width: u32,
    /// Height in position steps.
    pub height: u32,
    /// Position steps per world unit.
    pub scale: u32,
}

impl Arena {
    /// The arena a welcome describes.
    pub fn from_welcome(welcome: &Welcome) -> Self {
        // A scale of 0 would be a server bug; 1 keeps every division below defined.
        let scale = welcome.position_scale.max(1);
        Self {
            width: welcome.world_width.saturating_mul(scale),
            height: welcome.world_height.saturating_mul(scale),
            scale,
        }
    }

    /// A position in world units, for display.
    pub fn units(&self, e: &EntityState) -> (f32, f32) {
        (e.x as f32 / self.scale as f32, e.y as f32 / self.scale as f32)
    }
}

/// One line of the leaderboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The player's entity id.
    pub id: u32,
    /// Orbs collected.
    pub score: u32,
}

/// The `n` best players: highest score first, older players (lower ids) first on a tie.
pub fn leaderboard(world: &NetWorld, n: usize) -> Vec<Standing> {
    let players = world.entities().iter().filter(|e| e.kind == EntityKind::Player);
    top(
        players.map(|e| Standing {
            id: e.id,
            score: e.score,
        }),
        n,
    )
}

/// The `n` best of `players`, ranked as [`leaderboard`] ranks them.
pub fn top(players: impl IntoIterator<Item = Standing>, n: usize) -> Vec<Standing> {
    let mut players: Vec<Standing> = players.into_iter().collect();
    players.sort_by(|a, b| b.score.cmp(&a.score).then(a.id.cmp(&b.id)));
    players.truncate(n);
    players
}

/// How many entities of each kind the world holds: `(players, orbs)`.
pub fn census(world: &NetWorld) -> (usize, usize) {
    let players = world.entities().iter().filter(|e| e.kind == EntityKind::Player).count();
    (players, world.entities().len() - players)
}

/// The orb closest to `from`, if any is left.
pub fn nearest_orb<'w>(world: &'w NetWorld, from: &EntityState) -> Option<&'w EntityState> {
    world
        .entities()
        .iter()
        .filter(|e| e.kind == EntityKind::Orb)
        .min_by_key(|e| distance_squared(from, e))
}

/// Squared distance in position steps (exact: no rounding, no overflow for any u32 positions).
pub fn distance_squared(a: &EntityState, b: &EntityState) -> u64 {
    let dx = u64::from(a.x.abs_diff(b.x));
    let dy = u64::from(a.y.abs_diff(b.y));
    dx * dx + dy * dy
}

/// The move command that heads from `from` straight to `to`: the longer axis at full scale
/// (127), the other in proportion, `(0, 0)` when already there.
pub fn heading(from: &EntityState, to: &EntityState) -> (i8, i8) {
    let dx = i64::from(to.x) - i64::from(from.x);
    let dy = i64::from(to.y) - i64::from(from.y);
    let longest = dx.abs().max(dy.abs());
    if longest == 0 {
        return (0, 0);
    }
    // |d * 127 / longest| <= 127, so the casts cannot truncate.
    ((dx * 127 / longest) as i8, (dy * 127 / longest) as i8)
}

#[cfg(test)]
mod tests {
    use tickcast::protocol::Snapshot;

    use super::*;

    pub(crate) fn entity(id: u32, kind: EntityKind, x: u32, y: u32, score: u32) -> EntityState {
        EntityState { id, kind, x, y, score }
    }

    fn world(entities: Vec<EntityState>) -> NetWorld {
        NetWorld::from_snapshot(&Snapshot { tick: 1, entities }).unwrap()
    }

    #[test]
    fn the_leaderboard_ranks_by_score_then_by_age() {
        let w = world(vec![
            entity(1, EntityKind::Orb, 0, 0, 0),
            entity(10, EntityKind::Player, 0, 0, 2),
            entity(11, EntityKind::Player, 0, 0, 5),
            entity(12, EntityKind::Player, 0, 0, 2),
        ]);
        let ids: Vec<u32> = leaderboard(&w, 2).iter().map(|s| s.id).collect();
        assert_eq!(ids, [11, 10]);
        assert_eq!(census(&w), (3, 1));
    }

    #[test]
    fn the_nearest_orb_wins_and_heading_points_at_it() {
        let me = entity(10, EntityKind::Player, 1000, 1000, 0);
        let w = world(vec![
            entity(1, EntityKind::Orb, 5000, 1000, 0),
            entity(2, EntityKind::Orb, 1000, 900, 0),
            me,
        ]);
        let orb = nearest_orb(&w, &me).unwrap();
        assert_eq!(orb.id, 2);
        assert_eq!(heading(&me, orb), (0, -127));
        assert_eq!(heading(&me, &entity(3, EntityKind::Orb, 1200, 1100, 0)), (127, 63));
        assert_eq!(heading(&me, &me), (0, 0));
    }

    #[test]
    fn the_arena_is_the_welcome_in_position_steps() {
        let arena = Arena::from_welcome(&Welcome {
            version: 1,
            player_id: 1,
            tick_hz: 30,
            world_width: 1000,
            world_height: 500,
            position_scale: 16,
        });
        assert_eq!((arena.width, arena.height), (16_000, 8_000));
        assert_eq!(arena.units(&entity(1, EntityKind::Orb, 200, 8, 0)), (12.5, 0.5));
    }
}
