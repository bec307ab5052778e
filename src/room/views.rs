//! Per-player views of a big world, for rooms with a view radius: each player is sent only the
//! entities near its own (and those the game shows everyone, or its team), and players who see
//! the same part of the world share one encoded frame.
//!
//! The world is cut into square cells as wide as the view radius. A player's view is the 3 x 3
//! cells around the cell its entity is in (so everything within the radius, and a little
//! more), and its team: players in the same cell and team see exactly the same entities, hold
//! the same world, and are sent the same bytes. Each tick the tick loop builds the world of
//! every view someone has ([`Views::frames`]): players that keep their view get the shared
//! delta from its last world to its new one; a player whose view changed (it crossed into
//! another cell) gets the delta from the world it holds to its new view's, which spawns what
//! came into view, in full, and removes what left it (ids never change); a player joining or
//! behind gets its view's keyframe. Every delta's checksum is its view's, so a client that
//! applies its frames holds exactly its view of the server's world.
//!
//! Unpositioned entities (a kind without `x` and `y` roles) are everyone's. Nothing here runs
//! for a room without a view radius.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use bytes::Bytes;
use foldhash::fast::RandomState;

use crate::game::Audience;
use crate::protocol::delta::NetWorld;
use crate::protocol::frames;
use crate::protocol::{Entity, EntityId, Role, Schema};

/// The views' maps, keyed by cells and entity ids the server computes: hashed with foldhash,
/// not SipHash, which was a third of the view pass (a peer cannot choose keys to collide).
type Map<K, V> = HashMap<K, V, RandomState>;

/// Which part of the world a player sees: the 3 x 3 cells around cell `(cx, cy)`, as a player
/// of `team`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    cx: u32,
    cy: u32,
    team: Option<u32>,
}

/// A player, as the views need it.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    /// Its entity.
    pub id: EntityId,
    /// Its team, if its game has teams.
    pub team: Option<u32>,
    /// Whether it is owed a keyframe this tick (it joined, or fell behind).
    pub keyed: bool,
}

/// The views of one room.
#[derive(Debug)]
pub struct Views {
    /// A cell's side, in the world's fixed-point units.
    cell: u32,
    /// Each kind's position fields (x, y), if it has them.
    positions: Vec<Option<(usize, usize)>>,
    /// The view each player holds (as of its last frame).
    held: Map<EntityId, Key>,
    /// Each view's world as of the last tick.
    worlds: Map<Key, NetWorld>,
    /// Worlds of views nobody has any more, kept for their allocations.
    spare: Vec<NetWorld>,
    /// How many views the last tick had (for the gauge over rooms).
    counted: usize,
}

/// This tick's frame for each player of a room with views.
#[derive(Debug, Default)]
pub struct ViewFrames {
    /// The frame for a player that holds its last frame's world (a delta: shared by the
    /// players of a view, or its own when its view changed), and its keyframe (shared by the
    /// view's players), which a player joining or behind gets instead.
    of: Map<EntityId, (Option<Bytes>, Option<Bytes>)>,
    /// Distinct views this tick, and frames encoded for them.
    pub views: usize,
    /// Frames encoded this tick (shared deltas, crossings' deltas, keyframes).
    pub encoded: usize,
}

impl ViewFrames {
    /// The frame for player `id`: its keyframe when `keyed`, else its delta.
    pub fn frame(&self, id: EntityId, keyed: bool) -> Option<&Bytes> {
        let (delta, keyframe) = self.of.get(&id)?;
        if keyed { keyframe.as_ref() } else { delta.as_ref() }
    }
}

impl Views {
    /// Views of `radius` world units over worlds of `schema`.
    pub fn new(radius: u32, schema: &Schema) -> Self {
        let field = |kind: &crate::protocol::Kind, role| kind.fields.iter().position(|f| f.role == role);
        Self {
            cell: radius.saturating_mul(schema.scale).max(1),
            positions: schema
                .kinds
                .iter()
                .map(|kind| field(kind, Role::X).zip(field(kind, Role::Y)))
                .collect(),
            held: Map::default(),
            worlds: Map::default(),
            spare: Vec::new(),
            counted: 0,
        }
    }

    /// Records `now` views for this tick and returns how many the last one had.
    pub fn last_count(&mut self, now: usize) -> usize {
        std::mem::replace(&mut self.counted, now)
    }

    /// Forgets what every player holds (a new match, or a room that paused: everyone starts
    /// from a keyframe).
    pub fn reset(&mut self) {
        self.held.clear();
        self.worlds.clear();
        self.spare.clear();
    }

    /// The cell `entity` is in, if it has a position.
    fn cell_of(&self, entity: &Entity) -> Option<(u32, u32)> {
        let (x, y) = self.positions.get(usize::from(entity.kind)).copied().flatten()?;
        Some((entity.values[x] / self.cell, entity.values[y] / self.cell))
    }

    /// Builds every player's frame of tick `now` (the whole world), the entities' audiences
    /// told by `audience`; with `checksum`, each delta carries its view's checksum.
    pub fn frames(
        &mut self,
        now: &NetWorld,
        schema: &Schema,
        checksum: bool,
        viewers: &[Viewer],
        audience: impl Fn(&Entity) -> Audience,
    ) -> ViewFrames {
        // Who may see each entity, once: everyone's, and the rest by cell (positions in the
        // world's list, so each view's entities are gathered from 9 cells, not the world).
        let mut everyone: Vec<usize> = Vec::new();
        let mut cells: Map<(u32, u32), Vec<(usize, Audience)>> = Map::default();
        for (i, entity) in now.entities().iter().enumerate() {
            match (self.cell_of(entity), audience(entity)) {
                (None, _) | (_, Audience::Everyone) => everyone.push(i),
                (Some(cell), audience) => cells.entry(cell).or_default().push((i, audience)),
            }
        }
        let key_of = |viewer: &Viewer| -> Key {
            let cell = now.get(viewer.id).and_then(|e| self.cell_of(e));
            let (cx, cy) = cell
                .or_else(|| self.held.get(&viewer.id).map(|k| (k.cx, k.cy)))
                .unwrap_or_default();
            Key {
                cx,
                cy,
                team: viewer.team,
            }
        };
        let keys: Vec<Key> = viewers.iter().map(key_of).collect();
        let previous = std::mem::take(&mut self.worlds);
        let mut worlds: Map<Key, NetWorld> = Map::with_capacity_and_hasher(previous.len(), RandomState::default());
        let mut picked = Vec::new();
        for key in &keys {
            if let Entry::Vacant(slot) = worlds.entry(*key) {
                picked.clear();
                picked.extend_from_slice(&everyone);
                for cx in key.cx.saturating_sub(1)..=key.cx.saturating_add(1) {
                    for cy in key.cy.saturating_sub(1)..=key.cy.saturating_add(1) {
                        let near = cells.get(&(cx, cy)).into_iter().flatten();
                        picked.extend(near.filter(|(_, a)| sees(key, *a)).map(|(i, _)| *i));
                    }
                }
                // The world's order is its ids' order.
                picked.sort_unstable();
                let mut world = self.spare.pop().unwrap_or_default();
                now.pick_into(&mut world, &picked);
                slot.insert(world);
            }
        }
        let mut out = ViewFrames {
            of: Map::with_capacity_and_hasher(viewers.len(), RandomState::default()),
            views: worlds.len(),
            encoded: 0,
        };
        let mut deltas: Map<(Key, Key), Bytes> = Map::with_capacity_and_hasher(worlds.len(), RandomState::default());
        let mut keyframes: Map<Key, Bytes> = Map::default();
        let frame = |from: &NetWorld, to: &NetWorld| {
            let changes = from.diff(to, schema);
            let sum = checksum.then(|| to.checksum(schema));
            frames::binary_frame(changes.encode(to, 1, sum, schema))
        };
        for (viewer, key) in viewers.iter().zip(&keys) {
            let to = &worlds[key];
            let keyframe = viewer.keyed.then(|| {
                keyframes
                    .entry(*key)
                    .or_insert_with(|| {
                        out.encoded += 1;
                        frames::binary_frame(to.encode_snapshot(schema))
                    })
                    .clone()
            });
            let delta = match self
                .held
                .get(&viewer.id)
                .and_then(|old| Some((*old, previous.get(old)?)))
            {
                // It is sent its keyframe: a delta would go unused.
                _ if viewer.keyed => None,
                Some((old, from)) => Some(
                    deltas
                        .entry((old, *key))
                        .or_insert_with(|| {
                            out.encoded += 1;
                            frame(from, to)
                        })
                        .clone(),
                ),
                // It holds no view the views know (the first tick with views): a keyframe.
                None => Some(
                    keyframes
                        .entry(*key)
                        .or_insert_with(|| {
                            out.encoded += 1;
                            frames::binary_frame(to.encode_snapshot(schema))
                        })
                        .clone(),
                ),
            };
            out.of.insert(viewer.id, (delta, keyframe));
        }
        self.held.clear();
        self.held.extend(viewers.iter().zip(&keys).map(|(v, k)| (v.id, *k)));
        self.worlds = worlds;
        // As many as this tick's views: enough for the next tick's if nothing changes, and no
        // more kept after a crowd has spread out or gone.
        self.spare.extend(previous.into_values());
        self.spare.truncate(self.worlds.len());
        out
    }
}

/// Whether a player of view `key` sees an entity in its 3 x 3 cells with `audience`.
fn sees(key: &Key, audience: Audience) -> bool {
    match audience {
        Audience::Everyone | Audience::Near => true,
        Audience::Team(team) => key.team == Some(team),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::{Arena, Game, GameConfig};

    /// Arena's world (scale 16) with a player at each `(id, x, y)` in world units.
    fn world(tick: u64, players: &[(EntityId, u32, u32)]) -> NetWorld {
        let entities = players
            .iter()
            .map(|&(id, x, y)| Entity::new(id, 0, &[x * 16, y * 16, 0]))
            .collect();
        NetWorld::new(tick, entities)
    }

    fn viewer(id: EntityId) -> Viewer {
        Viewer {
            id,
            team: None,
            keyed: false,
        }
    }

    #[test]
    fn a_view_is_encoded_once_for_all_its_players_and_a_crossing_costs_one_more() {
        let schema = Arena::schema(&GameConfig::default());
        let mut views = Views::new(100, &schema);
        let viewers = [viewer(1), viewer(2), viewer(3)];
        let near = |_: &Entity| Audience::Near;
        // Players 1 and 2 in one cell, 3 far away. The first tick: a keyframe per view.
        let first = views.frames(
            &world(1, &[(1, 10, 10), (2, 20, 20), (3, 900, 900)]),
            &schema,
            false,
            &viewers,
            near,
        );
        assert_eq!((first.views, first.encoded), (2, 2));
        let second = views.frames(
            &world(2, &[(1, 11, 10), (2, 20, 21), (3, 900, 900)]),
            &schema,
            false,
            &viewers,
            near,
        );
        assert_eq!((second.views, second.encoded), (2, 2), "one delta per view");
        let (a, b) = (second.frame(1, false).unwrap(), second.frame(2, false).unwrap());
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same bytes for both");
        assert_ne!(a.as_ptr(), second.frame(3, false).unwrap().as_ptr());
        // Player 3 walks into the others' cell: its own delta (from its old view to the new),
        // and the others' view gets it spawned.
        let third = views.frames(
            &world(3, &[(1, 11, 10), (2, 20, 21), (3, 50, 50)]),
            &schema,
            false,
            &viewers,
            near,
        );
        assert_eq!(
            (third.views, third.encoded),
            (1, 2),
            "the shared delta, and the crossing's"
        );
        assert_ne!(
            third.frame(3, false).unwrap().as_ptr(),
            third.frame(1, false).unwrap().as_ptr()
        );
        // A player owed a keyframe gets its view's.
        let keyed = [
            viewer(1),
            Viewer {
                keyed: true,
                ..viewer(2)
            },
            viewer(3),
        ];
        let fourth = views.frames(
            &world(4, &[(1, 11, 10), (2, 20, 21), (3, 50, 50)]),
            &schema,
            false,
            &keyed,
            near,
        );
        assert!(fourth.frame(2, true).is_some() && fourth.frame(1, true).is_none());
    }
}
