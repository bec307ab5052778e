//! The world as the wire sees it: entities in id order, each a kind and its field values, and
//! the deltas between two such views, for any game's [`Schema`].
//!
//! The server captures a [`NetWorld`] from its game every tick and diffs it against the one it
//! sent last; a client applies those deltas to the snapshot it joined with. Because both sides
//! work on the same integers, a client that applies every delta holds exactly the server's
//! [`NetWorld`] for that tick, which the convergence tests check.

use std::cmp::Ordering;

use crate::protocol::{
    Delta, Entity, FieldType, KindUpdates, MAX_FIELDS, Schema, Snapshot, Update, Updates, world_checksum,
};

/// The most updates a kind's group makes room for on its first update (then it grows as
/// vectors do).
const FIRST_RESERVE: usize = 256;

/// Why a delta could not be applied. Any of these means the client must resynchronise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The delta is based on a tick other than the one held.
    #[error("delta to tick {tick} with base gap {base_gap} applied to the world at tick {held}")]
    WrongBase {
        /// The delta's tick.
        tick: u64,
        /// The delta's base gap.
        base_gap: u32,
        /// The tick of the world it was applied to.
        held: u64,
    },
    /// The delta updates or removes an entity that does not exist.
    #[error("delta names unknown entity {0}")]
    UnknownEntity(u32),
    /// The delta updates an entity as another kind than it is.
    #[error("delta updates entity {0} as another kind")]
    WrongKind(u32),
    /// The delta spawns an entity that already exists.
    #[error("delta spawns existing entity {0}")]
    DuplicateEntity(u32),
    /// A coordinate change leaves the representable range.
    #[error("delta moves entity {0} out of range")]
    OutOfRange(u32),
    /// After applying, the world's checksum differs from the one the server sent.
    #[error("world checksum mismatch at tick {tick}: server {server:#010x}, local {local:#010x}")]
    ChecksumMismatch {
        /// The tick checked.
        tick: u64,
        /// The server's checksum.
        server: u32,
        /// This world's checksum.
        local: u32,
    },
    /// A snapshot lists entities out of id order or twice.
    #[error("snapshot entities are not in strictly ascending id order")]
    Unordered,
}

/// The changes between two [`NetWorld`]s, ready to encode as a delta.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Entities new in the later world.
    pub spawned: Vec<Entity>,
    /// Entities present in both whose fields differ.
    pub updated: Updates,
    /// Entities gone from the later world.
    pub removed: Vec<u32>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.spawned.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }
}

/// Entities at one tick, in strictly ascending id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetWorld {
    tick: u64,
    entities: Vec<Entity>,
}

impl NetWorld {
    /// The world at `tick` made of `entities` (in strictly ascending id order).
    pub fn new(tick: u64, entities: Vec<Entity>) -> Self {
        Self { tick, entities }
    }

    /// Empties the world and sets its tick, keeping its allocation for the next capture.
    pub fn reset(&mut self, tick: u64) -> &mut Vec<Entity> {
        self.tick = tick;
        self.entities.clear();
        &mut self.entities
    }

    /// The world a snapshot describes.
    pub fn from_snapshot(snapshot: &Snapshot) -> Result<Self, ApplyError> {
        if !snapshot.entities.windows(2).all(|w| w[0].id < w[1].id) {
            return Err(ApplyError::Unordered);
        }
        Ok(Self {
            tick: snapshot.tick,
            entities: snapshot.entities.clone(),
        })
    }

    /// The tick this world is the state after.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Every entity, in ascending id order.
    pub fn entities(&self) -> &[Entity] {
        &self.entities
    }

    /// The [`world_checksum`] of this world.
    pub fn checksum(&self, schema: &Schema) -> u32 {
        world_checksum(&self.entities, schema)
    }

    /// One entity by id.
    pub fn get(&self, id: u32) -> Option<&Entity> {
        self.entities
            .binary_search_by_key(&id, |e| e.id)
            .ok()
            .map(|i| &self.entities[i])
    }

    /// What changed from `self` to `next`, field by field as `schema` says.
    pub fn diff(&self, next: &NetWorld, schema: &Schema) -> Changes {
        let mut changes = Changes::default();
        // A group per kind, indexed by kind, made at the first update (an idle tick allocates
        // nothing); the empty ones are dropped at the end.
        let mut by_kind: Vec<KindUpdates> = Vec::new();
        let groups = || {
            (0..schema.kinds.len())
                .map(|kind| KindUpdates {
                    kind: kind as u8,
                    updates: Vec::new(),
                })
                .collect()
        };
        let (mut a, mut b) = (self.entities.iter().peekable(), next.entities.iter().peekable());
        loop {
            let order = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(x), Some(y)) => x.id.cmp(&y.id),
            };
            match order {
                Ordering::Less => changes.removed.extend(a.next().map(|e| e.id)),
                Ordering::Greater => changes.spawned.extend(b.next().copied()),
                Ordering::Equal => {
                    // Both peeked Some above.
                    let (old, new) = (a.next().unwrap(), b.next().unwrap());
                    if old.values == new.values && old.kind == new.kind {
                        continue;
                    }
                    if by_kind.is_empty() {
                        by_kind = groups();
                    }
                    match (
                        old.kind == new.kind,
                        schema.kind(new.kind),
                        by_kind.get_mut(usize::from(new.kind)),
                    ) {
                        (true, Some(kind), Some(group)) => {
                            if let Some(update) = update(old, new, &kind.fields) {
                                if group.updates.capacity() == 0 {
                                    // Room for a good share of what is left at once, bounded so
                                    // that one mover among thousands does not allocate for all.
                                    group.updates.reserve(b.len().min(FIRST_RESERVE - 1) + 1);
                                }
                                group.updates.push(update);
                            }
                        }
                        // An entity never changes kind; if a game did that, send it anew.
                        _ => {
                            changes.removed.push(old.id);
                            changes.spawned.push(*new);
                        }
                    }
                }
            }
        }
        by_kind.retain(|group| !group.updates.is_empty());
        changes.updated = Updates(by_kind);
        changes
    }

    /// Applies a delta and checks its checksum, if it has one. On any error other than a
    /// checksum mismatch the world is left unchanged; on a mismatch it holds the delta applied
    /// (and is wrong: the caller must resynchronise).
    pub fn apply(&mut self, delta: &Delta, schema: &Schema) -> Result<(), ApplyError> {
        if delta.base_gap == 0 || delta.base_tick() != Some(self.tick) {
            return Err(ApplyError::WrongBase {
                tick: delta.tick,
                base_gap: delta.base_gap,
                held: self.tick,
            });
        }
        let mut next = self.entities.clone();
        for group in &delta.updated.0 {
            let fields = schema.kind(group.kind).map_or(&[][..], |k| k.fields.as_slice());
            let mut from = 0;
            for u in &group.updates {
                // Updates ascend by id within their kind, so each search starts where the last
                // one ended.
                let i = from
                    + next[from..]
                        .binary_search_by_key(&u.id, |e| e.id)
                        .map_err(|_| ApplyError::UnknownEntity(u.id))?;
                let e = &mut next[i];
                if e.kind != group.kind {
                    return Err(ApplyError::WrongKind(u.id));
                }
                for (f, field) in fields.iter().enumerate() {
                    if u.mask & (1 << f) == 0 {
                        continue;
                    }
                    e.values[f] = match field.ty {
                        FieldType::Coord => e.values[f]
                            .checked_add_signed(u.values[f] as i32)
                            .ok_or(ApplyError::OutOfRange(u.id))?,
                        FieldType::Flag => e.values[f] ^ 1,
                        FieldType::Uint | FieldType::Int | FieldType::Enum(_) => u.values[f],
                    };
                }
                from = i + 1;
            }
        }
        for id in &delta.removed {
            let i = next
                .binary_search_by_key(id, |e| e.id)
                .map_err(|_| ApplyError::UnknownEntity(*id))?;
            next.remove(i);
        }
        for s in &delta.spawned {
            match next.binary_search_by_key(&s.id, |e| e.id) {
                Ok(_) => return Err(ApplyError::DuplicateEntity(s.id)),
                Err(i) => next.insert(i, *s),
            }
        }
        self.entities = next;
        self.tick = delta.tick;
        match delta.checksum {
            Some(server) if server != self.checksum(schema) => Err(ApplyError::ChecksumMismatch {
                tick: self.tick,
                server,
                local: self.checksum(schema),
            }),
            _ => Ok(()),
        }
    }
}

/// The update from `old` to `new` (same id, same kind), if a field changed.
fn update(old: &Entity, new: &Entity, fields: &[crate::protocol::Field]) -> Option<Update> {
    let mut update = Update {
        id: new.id,
        mask: 0,
        values: [0; MAX_FIELDS],
    };
    for (i, field) in fields.iter().enumerate() {
        let (was, is) = (old.values[i], new.values[i]);
        if was == is {
            continue;
        }
        update.mask |= 1 << i;
        update.values[i] = match field.ty {
            FieldType::Coord => is.wrapping_sub(was),
            _ => is,
        };
    }
    (update.mask != 0).then_some(update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::{Arena, Tanks};
    use crate::game::{Game, GameConfig};
    use crate::protocol::ServerMsg;

    fn capture<G: Game>(game: &G, tick: u64) -> NetWorld {
        let mut world = NetWorld::default();
        game.entities(world.reset(tick));
        world
    }

    fn delta_of(base: &NetWorld, next: &NetWorld, schema: &Schema) -> Delta {
        let c = base.diff(next, schema);
        Delta {
            tick: next.tick,
            base_gap: (next.tick - base.tick) as u32,
            spawned: c.spawned,
            updated: c.updated,
            removed: c.removed,
            checksum: Some(next.checksum(schema)),
        }
    }

    /// Plays `game` for 2 000 ticks with players coming and going, applying every diff through
    /// the wire bytes to a replica, which must hold exactly the game's world after each.
    fn replays_exactly<G: Game>(inputs: impl Fn(u32, usize) -> Vec<i32>) {
        let config = GameConfig::default();
        let schema = G::schema(&config);
        let mut game = G::new(&config, 9);
        let mut ids = vec![game.join("a"), game.join("b")];
        let mut base = capture(&game, 0);
        let mut replica = base.clone();
        for t in 0..2_000u32 {
            for (i, id) in ids.iter().enumerate() {
                game.input(*id, &inputs(t, i));
            }
            if t % 200 == 0 {
                ids.push(game.join("c"));
            }
            if t % 300 == 150 {
                game.leave(ids.remove(0));
            }
            game.step();
            let next = capture(&game, u64::from(t) + 1);
            let bytes = ServerMsg::Delta(delta_of(&base, &next, &schema)).encode(&schema);
            let Ok(ServerMsg::Delta(wire)) = ServerMsg::decode(&bytes, Some(&schema)) else {
                panic!("a delta that does not decode");
            };
            replica.apply(&wire, &schema).unwrap();
            assert_eq!(replica, next, "diverged at tick {}", next.tick);
            base = next;
        }
    }

    #[test]
    fn applying_every_diff_rebuilds_an_arena_exactly() {
        replays_exactly::<Arena>(|t, i| {
            vec![
                ((t * 31 + i as u32 * 7) % 255) as i32 - 127,
                ((t * 17) % 255) as i32 - 127,
            ]
        });
    }

    #[test]
    fn applying_every_diff_rebuilds_a_tank_battle_exactly() {
        replays_exactly::<Tanks>(|t, i| {
            let k = ((t * 13 + i as u32 * 29) % 255) as i32;
            vec![k - 127, 127 - k, k, i32::from(t % 4 == 0)]
        });
    }

    #[test]
    fn a_delta_for_another_base_is_refused_and_changes_nothing() {
        let config = GameConfig::default();
        let schema = Arena::schema(&config);
        let mut game = Arena::new(&config, 1);
        let a = capture(&game, 0);
        game.step();
        let b = capture(&game, 1);
        game.step();
        let c = capture(&game, 2);
        let mut held = a.clone();
        let err = held.apply(&delta_of(&b, &c, &schema), &schema).unwrap_err();
        assert_eq!(
            err,
            ApplyError::WrongBase {
                tick: 2,
                base_gap: 1,
                held: 0
            }
        );
        assert_eq!(held, a);
    }

    #[test]
    fn updates_to_unknown_entities_or_as_another_kind_are_refused() {
        let config = GameConfig::default();
        let schema = Arena::schema(&config);
        let game = Arena::new(&config, 1);
        let mut held = capture(&game, 0);
        let orb = held.entities()[0];
        let one = |kind, id| Delta {
            tick: 1,
            base_gap: 1,
            spawned: vec![],
            updated: Updates(vec![KindUpdates {
                kind,
                updates: vec![Update {
                    id,
                    mask: 1,
                    values: [1, 0, 0, 0, 0, 0, 0, 0],
                }],
            }]),
            removed: vec![],
            checksum: None,
        };
        assert_eq!(
            held.apply(&one(1, 9_999), &schema),
            Err(ApplyError::UnknownEntity(9_999))
        );
        assert_eq!(held.apply(&one(0, orb.id), &schema), Err(ApplyError::WrongKind(orb.id)));
    }

    #[test]
    fn a_checksum_that_disagrees_is_reported() {
        let config = GameConfig::default();
        let schema = Arena::schema(&config);
        let mut game = Arena::new(&config, 3);
        let a = capture(&game, 0);
        game.step();
        let b = capture(&game, 1);
        let mut drifted = a.clone();
        drifted.entities[0].values[0] += 1; // a value drift no structural check would notice
        let err = drifted.apply(&delta_of(&a, &b, &schema), &schema).unwrap_err();
        assert!(matches!(err, ApplyError::ChecksumMismatch { tick: 1, .. }), "{err}");
    }
}
