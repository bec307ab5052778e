//! The world as the wire sees it: entities in id order, each a kind and its field values, with
//! the texts its text fields index; the deltas between two such views, for any game's
//! [`Schema`]; and a player's private fields.
//!
//! The server captures a [`NetWorld`] from its game every tick ([`Entities`] is what the game
//! writes it through) and diffs it against the one it sent last; a client applies those deltas
//! to the snapshot it joined with. Because both sides work on the same integers and texts, a
//! client that applies every delta holds exactly the server's [`NetWorld`] for that tick (its
//! public fields, and the private ones of what it owns), which the convergence tests check.

mod packed;

use std::cmp::Ordering;

use crate::protocol::entities::{owner, private_checksum, text_at, write_entities, write_private, write_updates};
use crate::protocol::wire::Writer;
use crate::protocol::{
    Delta, Entity, EntityId, FieldType, KindUpdates, MAX_FIELDS, Private, PrivateUpdate, Schema, Snapshot, Text,
    Update, Updates, world_checksum,
};

pub use self::packed::PackedWorld;

/// The most kinds a schema has (the masks below are per kind).
const KINDS: usize = crate::protocol::schema::MAX_KINDS;

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
    /// After applying a player's private fields, their checksum differs from the server's.
    #[error("private checksum mismatch at tick {tick}: server {server:#010x}, local {local:#010x}")]
    PrivateMismatch {
        /// The tick checked.
        tick: u64,
        /// The server's checksum.
        server: u32,
        /// This player's checksum.
        local: u32,
    },
    /// A snapshot lists entities out of id order or twice.
    #[error("snapshot entities are not in strictly ascending id order")]
    Unordered,
}

/// The changes between two [`NetWorld`]s, ready to encode as a delta. Text fields' values (in
/// spawned entities and updates) index the later world's texts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Entities new in the later world.
    pub spawned: Vec<Entity>,
    /// Entities present in both whose public fields differ (only those fields).
    pub updated: Updates,
    /// Entities gone from the later world.
    pub removed: Vec<u32>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.spawned.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }

    /// These changes as an encoded [`Delta`] from tick `tick - base_gap` to `world` (the world
    /// they lead to, whose texts they index), with `checksum`.
    pub fn encode(&self, world: &NetWorld, base_gap: u32, checksum: Option<u32>, schema: &Schema) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(
            24 + self.spawned.len() * 16
                + self.updated.0.iter().map(|g| 2 + g.updates.len() * 6).sum::<usize>()
                + self.removed.len() * 4,
        ));
        w.u32(2);
        w.varint(world.tick);
        w.u32(base_gap);
        write_entities(&mut w, &self.spawned, &world.texts, schema);
        write_updates(&mut w, &self.updated, &world.texts, schema);
        w.varint(self.removed.len() as u64);
        self.removed.iter().for_each(|id| w.u32(*id));
        w.option_u32(checksum);
        w.0
    }
}

/// Per kind: which fields are texts, and which are public.
#[derive(Debug, Clone, Copy)]
struct Masks {
    texts: [u8; KINDS],
    public: [u8; KINDS],
    /// Each text field's most bytes.
    max_len: [[u8; MAX_FIELDS]; KINDS],
}

impl Masks {
    fn of(schema: &Schema) -> Self {
        let mut masks = Self {
            texts: [0; KINDS],
            public: [0; KINDS],
            max_len: [[0; MAX_FIELDS]; KINDS],
        };
        for (k, kind) in schema.kinds.iter().enumerate().take(KINDS) {
            masks.texts[k] = kind.text_mask();
            masks.public[k] = !kind.private_mask();
            for (f, field) in kind.fields.iter().enumerate().take(MAX_FIELDS) {
                if let FieldType::Text(max) = field.ty {
                    masks.max_len[k][f] = max;
                }
            }
        }
        masks
    }
}

/// Entities at one tick, in strictly ascending id order, and the texts their text fields index
/// (index 0, and any index past the end, reads as "").
#[derive(Debug, Clone, Default)]
pub struct NetWorld {
    tick: u64,
    entities: Vec<Entity>,
    texts: Vec<Text>,
}

/// What a game lists its entities into, once a tick ([`crate::game::Game::entities`]).
#[derive(Debug)]
pub struct Entities<'a> {
    world: &'a mut NetWorld,
    masks: Masks,
}

impl Entities<'_> {
    /// Adds `entity` (ids must ascend). Its text fields read as "" until [`Entities::text`]
    /// sets them.
    pub fn push(&mut self, mut entity: Entity) -> &mut Self {
        entity.texts = self.masks.texts.get(usize::from(entity.kind)).copied().unwrap_or(0);
        if entity.texts != 0 {
            for (i, value) in entity.values.iter_mut().enumerate() {
                if entity.texts & (1 << i) != 0 {
                    *value = 0;
                }
            }
        }
        self.world.entities.push(entity);
        self
    }

    /// Sets text field `field` of the entity pushed last to `text`, cut to the field's most
    /// bytes (at a character boundary). A field that is not a text is left alone.
    pub fn text(&mut self, field: usize, text: &Text) -> &mut Self {
        let Some(last) = self.world.entities.last_mut() else {
            return self;
        };
        if field >= MAX_FIELDS || last.texts & (1 << field) == 0 || text.is_empty() {
            return self;
        }
        let max = self.masks.max_len.get(usize::from(last.kind)).map_or(0, |m| m[field]);
        last.values[field] = push_text(&mut self.world.texts, text.fit(usize::from(max)));
        self
    }

    /// How many entities are listed so far.
    pub fn len(&self) -> usize {
        self.world.entities.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.world.entities.is_empty()
    }
}

/// Pushes `text` to `texts` (making index 0 the empty text first) and returns its index.
fn push_text(texts: &mut Vec<Text>, text: Text) -> u32 {
    if texts.is_empty() {
        texts.push(Text::empty());
    }
    texts.push(text);
    (texts.len() - 1) as u32
}

impl PartialEq for NetWorld {
    /// The same tick, and the same entities with the same values and texts (whatever indices
    /// the texts are at).
    fn eq(&self, other: &Self) -> bool {
        self.tick == other.tick
            && self.entities.len() == other.entities.len()
            && self
                .entities
                .iter()
                .zip(&other.entities)
                .all(|(a, b)| same_entity(a, &self.texts, b, &other.texts))
    }
}

impl Eq for NetWorld {}

/// Whether `a` (whose texts are `at`) and `b` (in `bt`) are the same entity with the same
/// values.
fn same_entity(a: &Entity, at: &[Text], b: &Entity, bt: &[Text]) -> bool {
    a.id == b.id
        && a.kind == b.kind
        && a.texts == b.texts
        && (0..MAX_FIELDS).all(|i| {
            if a.texts & (1 << i) == 0 {
                a.values[i] == b.values[i]
            } else {
                text_at(at, a.values[i]) == text_at(bt, b.values[i])
            }
        })
}

impl NetWorld {
    /// The world at `tick` made of `entities` (in strictly ascending id order), with no texts.
    pub fn new(tick: u64, entities: Vec<Entity>) -> Self {
        Self {
            tick,
            entities,
            texts: Vec::new(),
        }
    }

    /// Makes `into` the entities of this world at `indices` (ascending positions in
    /// [`NetWorld::entities`]), at this world's tick, texts and all, reusing its allocations:
    /// what one player's view holds.
    pub fn pick_into(&self, into: &mut NetWorld, indices: &[usize]) {
        into.tick = self.tick;
        into.entities.clear();
        into.texts.clear();
        for entity in indices.iter().filter_map(|&i| self.entities.get(i)) {
            let mut copy = *entity;
            if copy.texts != 0 {
                for (i, value) in copy.values.iter_mut().enumerate() {
                    if copy.texts & (1 << i) != 0 {
                        *value = match self.texts.get(*value as usize) {
                            Some(text) if !text.is_empty() => push_text(&mut into.texts, text.clone()),
                            _ => 0,
                        };
                    }
                }
            }
            into.entities.push(copy);
        }
    }

    /// Empties the world and sets its tick, keeping its allocations for the next capture, and
    /// returns what the game lists its entities into.
    pub fn capture(&mut self, tick: u64, schema: &Schema) -> Entities<'_> {
        self.tick = tick;
        self.entities.clear();
        self.texts.clear();
        Entities {
            world: self,
            masks: Masks::of(schema),
        }
    }

    /// The world a snapshot describes.
    pub fn from_snapshot(snapshot: &Snapshot) -> Result<Self, ApplyError> {
        if !snapshot.entities.windows(2).all(|w| w[0].id < w[1].id) {
            return Err(ApplyError::Unordered);
        }
        Ok(Self {
            tick: snapshot.tick,
            entities: snapshot.entities.clone(),
            texts: snapshot.texts.clone(),
        })
    }

    /// This world as an encoded [`Snapshot`] (its public fields).
    pub fn encode_snapshot(&self, schema: &Schema) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(16 + self.entities.len() * 16));
        w.u32(1);
        w.varint(self.tick);
        write_entities(&mut w, &self.entities, &self.texts, schema);
        w.0
    }

    /// `entries` (private fields of entities of this world, whose texts they index) as an
    /// encoded [`Private`] message.
    pub fn encode_private(
        &self,
        full: bool,
        entries: &[PrivateUpdate],
        checksum: Option<u32>,
        schema: &Schema,
    ) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(16 + entries.len() * 12));
        w.u32(6);
        w.varint(self.tick);
        w.bool(full);
        write_private(&mut w, entries, &self.texts, schema);
        w.option_u32(checksum);
        w.0
    }

    /// The snapshot of this world (its public fields go on the wire).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            tick: self.tick,
            entities: self.entities.clone(),
            texts: self.texts.clone(),
        }
    }

    /// The tick this world is the state after.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Every entity, in ascending id order.
    pub fn entities(&self) -> &[Entity] {
        &self.entities
    }

    /// The texts the entities' text fields index.
    pub fn texts(&self) -> &[Text] {
        &self.texts
    }

    /// The text at `index` ("" if there is none).
    pub fn text(&self, index: u32) -> &str {
        text_at(&self.texts, index)
    }

    /// The [`world_checksum`] of this world (its public fields).
    pub fn checksum(&self, schema: &Schema) -> u32 {
        world_checksum(&self.entities, &self.texts, schema)
    }

    /// The [`private_checksum`] of what `player` owns in this world.
    pub fn private_checksum(&self, schema: &Schema, player: EntityId) -> u32 {
        private_checksum(&self.entities, &self.texts, schema, player)
    }

    /// The private checksum of every player that owns private fields in this world.
    pub fn private_checksums(&self, schema: &Schema) -> std::collections::HashMap<EntityId, u32> {
        crate::protocol::entities::private_checksums(&self.entities, &self.texts, schema)
    }

    /// One entity by id.
    pub fn get(&self, id: u32) -> Option<&Entity> {
        self.entities
            .binary_search_by_key(&id, |e| e.id)
            .ok()
            .map(|i| &self.entities[i])
    }

    /// What changed from `self` to `next` in public fields, field by field as `schema` says.
    pub fn diff(&self, next: &NetWorld, schema: &Schema) -> Changes {
        let masks = Masks::of(schema);
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
                    if old.values == new.values && old.kind == new.kind && old.texts == 0 {
                        continue;
                    }
                    if old.kind != new.kind || old.texts != new.texts {
                        // An entity never changes kind; if a game did that, send it anew.
                        changes.removed.push(old.id);
                        changes.spawned.push(*new);
                        continue;
                    }
                    let kind = usize::from(new.kind);
                    let public = masks.public.get(kind).copied().unwrap_or(0);
                    let Some(update) = self.update(old, new, next, schema, public) else {
                        continue;
                    };
                    if by_kind.is_empty() {
                        by_kind = groups();
                    }
                    if let Some(group) = by_kind.get_mut(kind) {
                        if group.updates.capacity() == 0 {
                            // Room for a good share of what is left at once, bounded so that one
                            // mover among thousands does not allocate for all.
                            group.updates.reserve(b.len().min(FIRST_RESERVE - 1) + 1);
                        }
                        group.updates.push(update);
                    }
                }
            }
        }
        by_kind.retain(|group| !group.updates.is_empty());
        changes.updated = Updates(by_kind);
        changes
    }

    /// The update from `old` (in `self`) to `new` (in `next`, same id and kind) of the fields in
    /// `mask`, if one of them changed. A text's value is its index in `next`.
    fn update(&self, old: &Entity, new: &Entity, next: &NetWorld, schema: &Schema, mask: u8) -> Option<Update> {
        let fields = schema.kind(new.kind).map_or(&[][..], |k| k.fields.as_slice());
        let mut update = Update {
            id: new.id,
            mask: 0,
            values: [0; MAX_FIELDS],
        };
        for (i, field) in fields.iter().enumerate() {
            if mask & (1 << i) == 0 {
                continue;
            }
            let (was, is) = (old.values[i], new.values[i]);
            let changed = match field.ty {
                FieldType::Text(_) => self.text(was) != next.text(is),
                _ => was != is,
            };
            if !changed {
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

    /// The private fields that changed from `self` to `next`, by owner, ids ascending: every
    /// private field of an entity new to its owner (spawned, or changed hands), the changed ones
    /// of the others. A text's value is its index in `next`. Calls `each(owner, update)`.
    pub fn private_changes(&self, next: &NetWorld, schema: &Schema, mut each: impl FnMut(EntityId, PrivateUpdate)) {
        let mut old = self.entities.iter().peekable();
        for new in &next.entities {
            let Some(kind) = schema.kind(new.kind) else { continue };
            let private = kind.private_mask();
            if private == 0 {
                continue;
            }
            while old.next_if(|e| e.id < new.id).is_some() {}
            let before = old.next_if(|e| e.id == new.id && e.kind == new.kind);
            let to = owner(new, kind);
            let mask = match before {
                Some(was) if owner(was, kind) == to => match self.update(was, new, next, schema, private) {
                    Some(u) => u.mask,
                    None => continue,
                },
                // New to its owner: all of them.
                _ => private,
            };
            // Private values are sent whole (a coordinate too, not as a step).
            each(
                to,
                PrivateUpdate {
                    id: new.id,
                    kind: new.kind,
                    mask,
                    values: new.values,
                },
            );
        }
    }

    /// Every private field `player` owns, for a keyframe. A text's value is its index here.
    pub fn private_of(&self, schema: &Schema, player: EntityId) -> Vec<PrivateUpdate> {
        let mut out = Vec::new();
        for e in &self.entities {
            let Some(kind) = schema.kind(e.kind) else { continue };
            let private = kind.private_mask();
            if private != 0 && owner(e, kind) == player {
                out.push(PrivateUpdate {
                    id: e.id,
                    kind: e.kind,
                    mask: private,
                    values: e.values,
                });
            }
        }
        out
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
        let mut texts = std::mem::take(&mut self.texts);
        let applied = Self::apply_to(&mut next, &mut texts, delta, schema);
        if let Err(err) = applied {
            // Texts pushed for the failed delta are garbage the next compaction drops.
            self.texts = texts;
            return Err(err);
        }
        self.entities = next;
        self.texts = texts;
        self.tick = delta.tick;
        self.compact_texts();
        match delta.checksum {
            Some(server) if server != self.checksum(schema) => Err(ApplyError::ChecksumMismatch {
                tick: self.tick,
                server,
                local: self.checksum(schema),
            }),
            _ => Ok(()),
        }
    }

    fn apply_to(
        next: &mut Vec<Entity>,
        texts: &mut Vec<Text>,
        delta: &Delta,
        schema: &Schema,
    ) -> Result<(), ApplyError> {
        let text = |texts: &mut Vec<Text>, index: u32| match delta.texts.get(index as usize) {
            Some(t) if !t.is_empty() => push_text(texts, t.clone()),
            _ => 0,
        };
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
                        FieldType::Text(_) => text(texts, u.values[f]),
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
                Err(i) => {
                    let mut spawned = *s;
                    for f in 0..MAX_FIELDS {
                        if spawned.texts & (1 << f) != 0 {
                            spawned.values[f] = text(texts, spawned.values[f]);
                        }
                    }
                    next.insert(i, spawned);
                }
            }
        }
        Ok(())
    }

    /// Applies a player's private fields (as `player`: its checksum is over what it owns). An
    /// entry for an entity not held, or of another kind, is an error, and nothing is changed.
    pub fn apply_private(&mut self, private: &Private, schema: &Schema, player: EntityId) -> Result<(), ApplyError> {
        for u in &private.entities {
            match self.get(u.id) {
                Some(e) if e.kind == u.kind => {}
                Some(_) => return Err(ApplyError::WrongKind(u.id)),
                None => return Err(ApplyError::UnknownEntity(u.id)),
            }
        }
        if private.full {
            for e in &mut self.entities {
                let private = schema.kind(e.kind).map_or(0, |k| k.private_mask());
                for f in 0..MAX_FIELDS {
                    if private & (1 << f) != 0 {
                        e.values[f] = 0;
                    }
                }
            }
        }
        let Self { entities, texts, .. } = self;
        for u in &private.entities {
            let Ok(i) = entities.binary_search_by_key(&u.id, |e| e.id) else {
                continue;
            };
            let e = &mut entities[i];
            for f in 0..MAX_FIELDS {
                if u.mask & (1 << f) == 0 {
                    continue;
                }
                e.values[f] = if e.texts & (1 << f) == 0 {
                    u.values[f]
                } else {
                    match private.texts.get(u.values[f] as usize) {
                        Some(t) if !t.is_empty() => push_text(texts, t.clone()),
                        _ => 0,
                    }
                };
            }
        }
        self.compact_texts();
        match private.checksum {
            Some(server) if server != self.private_checksum(schema, player) => Err(ApplyError::PrivateMismatch {
                tick: private.tick,
                server,
                local: self.private_checksum(schema, player),
            }),
            _ => Ok(()),
        }
    }

    /// Drops the texts no entity indexes any more, once they are most of the table.
    fn compact_texts(&mut self) {
        let live: usize = self.entities.iter().map(|e| e.texts.count_ones() as usize).sum();
        if self.texts.len() <= 2 * live + 16 {
            return;
        }
        let old = std::mem::take(&mut self.texts);
        for e in &mut self.entities {
            for f in 0..MAX_FIELDS {
                if e.texts & (1 << f) != 0 {
                    e.values[f] = match old.get(e.values[f] as usize) {
                        Some(t) if !t.is_empty() => push_text(&mut self.texts, t.clone()),
                        _ => 0,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
