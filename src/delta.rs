//! The world as the wire sees it: quantized entities in id order, and the deltas between two
//! such views.
//!
//! The server captures a [`NetWorld`] from the simulation every tick and diffs it against the
//! one it sent last; a client applies those deltas to the snapshot it joined with. Because both
//! sides work on the same integers, a client that applies every delta holds exactly the
//! server's [`NetWorld`] for that tick, which the convergence tests check.

use std::cmp::Ordering;

use crate::protocol::{Delta, EntityKind, EntityState, EntityUpdate, Snapshot, Updates, quantize, world_checksum};
use crate::sim::World;

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
    /// The delta spawns an entity that already exists.
    #[error("delta spawns existing entity {0}")]
    DuplicateEntity(u32),
    /// A position change leaves the representable range.
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
    pub spawned: Vec<EntityState>,
    /// Entities present in both whose fields differ.
    pub updated: Updates,
    /// Entities gone from the later world.
    pub removed: Vec<u32>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.spawned.is_empty() && self.updated.0.is_empty() && self.removed.is_empty()
    }
}

/// Quantized entities at one tick, in strictly ascending id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetWorld {
    tick: u64,
    entities: Vec<EntityState>,
}

impl NetWorld {
    /// Quantizes the simulation's current state.
    pub fn capture(world: &World) -> Self {
        let mut out = Self::default();
        out.recapture(world);
        out
    }

    /// Like [`NetWorld::capture`], reusing this value's allocation.
    pub fn recapture(&mut self, world: &World) {
        self.tick = world.tick();
        self.entities.clear();
        let players = world.players().iter().map(|(&id, p)| EntityState {
            id,
            kind: EntityKind::Player,
            x: quantize(p.pos.x),
            y: quantize(p.pos.y),
            score: p.score,
        });
        let orbs = world.orbs().iter().map(|(&id, o)| EntityState {
            id,
            kind: EntityKind::Orb,
            x: quantize(o.pos.x),
            y: quantize(o.pos.y),
            score: 0,
        });
        merge_by_id(players, orbs, &mut self.entities);
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
    pub fn entities(&self) -> &[EntityState] {
        &self.entities
    }

    /// The [`world_checksum`] of this world.
    pub fn checksum(&self) -> u32 {
        world_checksum(&self.entities)
    }

    /// One entity by id.
    pub fn get(&self, id: u32) -> Option<&EntityState> {
        self.entities
            .binary_search_by_key(&id, |e| e.id)
            .ok()
            .map(|i| &self.entities[i])
    }

    /// What changed from `self` to `next`.
    pub fn diff(&self, next: &NetWorld) -> Changes {
        let mut changes = Changes::default();
        let (mut a, mut b) = (self.entities.iter().peekable(), next.entities.iter().peekable());
        loop {
            let order = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(x), Some(y)) => x.id.cmp(&y.id),
            };
            match order {
                Ordering::Less => changes.removed.push(a.next().map(|e| e.id).unwrap_or_default()),
                Ordering::Greater => changes.spawned.extend(b.next().copied()),
                Ordering::Equal => {
                    // Both peeked Some above.
                    let (old, new) = (a.next().unwrap(), b.next().unwrap());
                    let update = EntityUpdate {
                        id: new.id,
                        dx: (old.x != new.x).then(|| new.x.wrapping_sub(old.x) as i32),
                        dy: (old.y != new.y).then(|| new.y.wrapping_sub(old.y) as i32),
                        score: (old.score != new.score).then_some(new.score),
                    };
                    if update.dx.is_some() || update.dy.is_some() || update.score.is_some() {
                        changes.updated.0.push(update);
                    }
                }
            }
        }
        changes
    }

    /// Applies a delta and checks its checksum, if it has one. On any error other than a
    /// checksum mismatch the world is left unchanged; on a mismatch it holds the delta applied
    /// (and is wrong: the caller must resynchronise).
    pub fn apply(&mut self, delta: &Delta) -> Result<(), ApplyError> {
        if delta.base_gap == 0 || delta.base_tick() != Some(self.tick) {
            return Err(ApplyError::WrongBase {
                tick: delta.tick,
                base_gap: delta.base_gap,
                held: self.tick,
            });
        }
        let mut next = self.entities.clone();
        let mut from = 0;
        for u in &delta.updated.0 {
            // Updates ascend by id, so each search starts where the last one ended.
            let i = from
                + next[from..]
                    .binary_search_by_key(&u.id, |e| e.id)
                    .map_err(|_| ApplyError::UnknownEntity(u.id))?;
            let e = &mut next[i];
            if let Some(dx) = u.dx {
                e.x = e.x.checked_add_signed(dx).ok_or(ApplyError::OutOfRange(u.id))?;
            }
            if let Some(dy) = u.dy {
                e.y = e.y.checked_add_signed(dy).ok_or(ApplyError::OutOfRange(u.id))?;
            }
            if let Some(score) = u.score {
                e.score = score;
            }
            from = i + 1;
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
            Some(server) if server != self.checksum() => Err(ApplyError::ChecksumMismatch {
                tick: self.tick,
                server,
                local: self.checksum(),
            }),
            _ => Ok(()),
        }
    }
}

/// Merges two id-ascending entity streams into `out`.
fn merge_by_id(a: impl Iterator<Item = EntityState>, b: impl Iterator<Item = EntityState>, out: &mut Vec<EntityState>) {
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
    use crate::protocol::ServerMsg;
    use crate::sim::Rules;

    fn delta_of(base: &NetWorld, next: &NetWorld) -> Delta {
        let c = base.diff(next);
        Delta {
            tick: next.tick,
            base_gap: (next.tick - base.tick) as u32,
            spawned: c.spawned,
            updated: c.updated,
            removed: c.removed,
            checksum: Some(next.checksum()),
        }
    }

    #[test]
    fn applying_every_diff_rebuilds_the_world_exactly() {
        let mut world = World::new(Rules::default(), 9);
        let mut ids = vec![world.add_player(), world.add_player()];
        let mut base = NetWorld::capture(&world);
        let mut replica = base.clone();
        for t in 0..2_000u32 {
            for (i, id) in ids.iter().enumerate() {
                world.set_direction(*id, ((t * 31 + i as u32 * 7) % 255) as i8, ((t * 17) % 255) as i8);
            }
            if t % 200 == 0 {
                ids.push(world.add_player());
            }
            if t % 300 == 150 {
                world.remove_player(ids.remove(0));
            }
            world.step();
            let next = NetWorld::capture(&world);
            // Through the wire bytes, as a client would receive it.
            let d = delta_of(&base, &next);
            let bytes = ServerMsg::Delta(d).encode();
            let ServerMsg::Delta(wire) = ServerMsg::decode(&bytes).unwrap() else {
                panic!()
            };
            replica.apply(&wire).unwrap();
            assert_eq!(replica, next, "diverged at tick {}", next.tick);
            base = next;
        }
    }

    #[test]
    fn a_delta_for_another_base_is_refused_and_changes_nothing() {
        let mut world = World::new(Rules::default(), 1);
        let a = NetWorld::capture(&world);
        world.step();
        let b = NetWorld::capture(&world);
        world.step();
        let c = NetWorld::capture(&world);
        let mut held = a.clone();
        let err = held.apply(&delta_of(&b, &c)).unwrap_err();
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
    fn updates_to_unknown_entities_are_refused() {
        let world = World::new(Rules::default(), 1);
        let mut held = NetWorld::capture(&world);
        let delta = Delta {
            tick: 1,
            base_gap: 1,
            spawned: vec![],
            updated: Updates(vec![EntityUpdate {
                id: 9_999,
                score: Some(1),
                ..Default::default()
            }]),
            removed: vec![],
            checksum: None,
        };
        assert_eq!(held.apply(&delta), Err(ApplyError::UnknownEntity(9_999)));
    }

    #[test]
    fn a_checksum_that_disagrees_is_reported() {
        let mut world = World::new(Rules::default(), 3);
        let a = NetWorld::capture(&world);
        world.step();
        let b = NetWorld::capture(&world);
        let mut drifted = a.clone();
        drifted.entities[0].x += 1; // a value drift no structural check would notice
        let err = drifted.apply(&delta_of(&a, &b)).unwrap_err();
        assert!(matches!(err, ApplyError::ChecksumMismatch { tick: 1, .. }), "{err}");
    }
}
