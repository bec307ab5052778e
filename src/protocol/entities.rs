//! Entities on the wire, read and written by the game's schema: full entities, updates grouped
//! by kind, a player's private fields, and the checksums that prove a client holds what the
//! server sent it.
//!
//! Texts travel inline as strings; in memory a text field's value is an index into the texts
//! of the message (or world) that holds the entity, whose index 0 is always the empty text, so
//! a text field nobody set reads as "".

use std::collections::HashMap;

use super::schema::{Field, FieldType, Kind, MAX_FIELDS, Role, Schema};
use super::values::{Text, read_text};
use super::wire::{DecodeError, Reader, Writer};
use super::{Entity, EntityId, KindUpdates, PrivateUpdate, Update, Updates};

/// The fields of `kind`, or an error for a kind the schema lacks.
pub(crate) fn fields(schema: &Schema, kind: u8) -> Result<&Kind, DecodeError> {
    schema.kind(kind).ok_or(DecodeError::Unknown("entity kind"))
}

/// The text at `index` of `texts` ("" when there is none).
pub(crate) fn text_at(texts: &[Text], index: u32) -> &str {
    texts.get(index as usize).map_or("", Text::as_str)
}

/// Texts as a message read from the wire starts them: the empty text at index 0.
pub(crate) fn new_texts() -> Vec<Text> {
    vec![Text::empty()]
}

/// Writes one field's value as a full entity (or a private update) carries it.
fn write_full(w: &mut Writer, field: &Field, value: u32, texts: &[Text]) {
    match field.ty {
        FieldType::Coord | FieldType::Uint => w.u32(value),
        FieldType::Int => w.i32(value as i32),
        FieldType::Flag => w.bool(value != 0),
        FieldType::Enum(_) => w.u8(value as u8),
        FieldType::Text(_) => w.str(text_at(texts, value)),
    }
}

/// Reads what [`write_full`] writes; a text is pushed to `texts` and its index returned.
fn read_full(r: &mut Reader<'_>, field: &Field, texts: &mut Vec<Text>) -> Result<u32, DecodeError> {
    Ok(match field.ty {
        FieldType::Coord | FieldType::Uint => r.u32()?,
        FieldType::Int => r.i32()? as u32,
        FieldType::Flag => u32::from(r.bool()?),
        FieldType::Enum(count) => enum_value(r, count)?,
        FieldType::Text(max) => push_text(texts, read_text(r, usize::from(max))?),
    })
}

fn enum_value(r: &mut Reader<'_>, count: u8) -> Result<u32, DecodeError> {
    let v = r.u8()?;
    if v >= count {
        return Err(DecodeError::OutOfRange("enum value"));
    }
    Ok(u32::from(v))
}

fn push_text(texts: &mut Vec<Text>, text: Text) -> u32 {
    texts.push(text);
    (texts.len() - 1) as u32
}

/// Writes `entities` in full: id, kind, then each public field of the kind.
pub(crate) fn write_entities(w: &mut Writer, entities: &[Entity], texts: &[Text], schema: &Schema) {
    w.varint(entities.len() as u64);
    for e in entities {
        w.u32(e.id);
        w.u32(u32::from(e.kind));
        let fields = schema.kind(e.kind).map_or(&[][..], |k| k.fields.as_slice());
        for (field, value) in fields.iter().zip(e.values).filter(|(f, _)| !f.private) {
            write_full(w, field, value, texts);
        }
    }
}

/// Reads what [`write_entities`] writes; texts go to `texts`, private fields are 0 (whose
/// texts read as "").
pub(crate) fn read_entities(
    r: &mut Reader<'_>,
    schema: &Schema,
    texts: &mut Vec<Text>,
) -> Result<Vec<Entity>, DecodeError> {
    // An entity is at least 2 bytes (id, kind).
    let n = r.count(2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.u32()?;
        if id == 0 {
            return Err(DecodeError::Invalid("entity id 0"));
        }
        let kind = u8::try_from(r.u32()?).map_err(|_| DecodeError::Unknown("entity kind"))?;
        let of = fields(schema, kind)?;
        let mut values = [0; MAX_FIELDS];
        for (field, value) in of.fields.iter().zip(&mut values).filter(|(f, _)| !f.private) {
            *value = read_full(r, field, texts)?;
        }
        out.push(Entity {
            id,
            kind,
            texts: of.text_mask(),
            values,
        });
    }
    Ok(out)
}

/// Writes `updates`: groups by kind, each update its id gap, mask and changed fields (public
/// ones: the engine never puts a private field in a shared update).
pub(crate) fn write_updates(w: &mut Writer, updates: &Updates, texts: &[Text], schema: &Schema) {
    let groups = || updates.0.iter().filter(|g| !g.updates.is_empty());
    w.varint(groups().count() as u64);
    for group in groups() {
        w.u32(u32::from(group.kind));
        w.varint(group.updates.len() as u64);
        let fields = schema.kind(group.kind).map_or(&[][..], |k| k.fields.as_slice());
        let mut prev = 0;
        for u in &group.updates {
            w.u32(u.id.wrapping_sub(prev));
            prev = u.id;
            w.u8(u.mask);
            for (i, field) in fields.iter().enumerate() {
                if u.mask & (1 << i) == 0 {
                    continue;
                }
                let value = u.values[i];
                match field.ty {
                    FieldType::Coord | FieldType::Int => w.i32(value as i32),
                    FieldType::Uint => w.u32(value),
                    FieldType::Flag => {}
                    FieldType::Enum(_) => w.u8(value as u8),
                    FieldType::Text(_) => w.str(text_at(texts, value)),
                }
            }
        }
    }
}

/// Reads what [`write_updates`] writes, refusing what PROTOCOL.md rules out (kinds out of
/// order, empty groups, ids not ascending, masks naming no field, a field past the kind's, or a
/// private one).
pub(crate) fn read_updates(r: &mut Reader<'_>, schema: &Schema, texts: &mut Vec<Text>) -> Result<Updates, DecodeError> {
    // A group is at least 3 bytes (kind, count, one update's gap); an update at least 2.
    let n = r.count(3)?;
    let mut groups: Vec<KindUpdates> = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = u8::try_from(r.u32()?).map_err(|_| DecodeError::Unknown("entity kind"))?;
        if groups.last().is_some_and(|g| g.kind >= kind) {
            return Err(DecodeError::Invalid("update groups must have strictly ascending kinds"));
        }
        let of = fields(schema, kind)?;
        let count = r.count(2)?;
        if count == 0 {
            return Err(DecodeError::Invalid("an empty update group"));
        }
        let all_fields = u8::try_from((1u16 << of.fields.len()) - 1).unwrap_or(u8::MAX);
        let public = all_fields & !of.private_mask();
        let mut group = Vec::with_capacity(count);
        let mut prev = 0u32;
        for _ in 0..count {
            let gap = r.u32()?;
            if gap == 0 {
                return Err(DecodeError::Invalid("update ids must strictly ascend from 1"));
            }
            let id = prev.checked_add(gap).ok_or(DecodeError::OutOfRange("update id"))?;
            prev = id;
            let mask = r.u8()?;
            if mask == 0 || mask & !public != 0 {
                return Err(DecodeError::Invalid("bad update field mask"));
            }
            let mut values = [0; MAX_FIELDS];
            for (i, field) in of.fields.iter().enumerate() {
                if mask & (1 << i) == 0 {
                    continue;
                }
                values[i] = match field.ty {
                    FieldType::Coord | FieldType::Int => r.i32()? as u32,
                    FieldType::Uint => r.u32()?,
                    FieldType::Flag => 0,
                    FieldType::Enum(count) => enum_value(r, count)?,
                    FieldType::Text(max) => push_text(texts, read_text(r, usize::from(max))?),
                };
            }
            group.push(Update { id, mask, values });
        }
        groups.push(KindUpdates { kind, updates: group });
    }
    Ok(Updates(groups))
}

/// Writes a player's private fields: for each entity (ids ascending), its id, its kind, a mask
/// of the private fields that follow, and their values in full.
pub(crate) fn write_private(w: &mut Writer, entries: &[PrivateUpdate], texts: &[Text], schema: &Schema) {
    w.varint(entries.len() as u64);
    for u in entries {
        w.u32(u.id);
        w.u32(u32::from(u.kind));
        w.u8(u.mask);
        let fields = schema.kind(u.kind).map_or(&[][..], |k| k.fields.as_slice());
        for (i, field) in fields.iter().enumerate() {
            if u.mask & (1 << i) != 0 {
                write_full(w, field, u.values[i], texts);
            }
        }
    }
}

/// Reads what [`write_private`] writes.
pub(crate) fn read_private(
    r: &mut Reader<'_>,
    schema: &Schema,
    texts: &mut Vec<Text>,
) -> Result<Vec<PrivateUpdate>, DecodeError> {
    // An entry is at least 4 bytes (id, kind, mask, one value).
    let n = r.count(4)?;
    let mut out: Vec<PrivateUpdate> = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.u32()?;
        if id == 0 || out.last().is_some_and(|u| u.id >= id) {
            return Err(DecodeError::Invalid(
                "private entries must have strictly ascending ids from 1",
            ));
        }
        let kind = u8::try_from(r.u32()?).map_err(|_| DecodeError::Unknown("entity kind"))?;
        let of = fields(schema, kind)?;
        let mask = r.u8()?;
        if mask == 0 || mask & !of.private_mask() != 0 {
            return Err(DecodeError::Invalid("bad private field mask"));
        }
        let mut values = [0; MAX_FIELDS];
        for (i, field) in of.fields.iter().enumerate() {
            if mask & (1 << i) != 0 {
                values[i] = read_full(r, field, texts)?;
            }
        }
        out.push(PrivateUpdate { id, kind, mask, values });
    }
    Ok(out)
}

/// FNV-1a, 32-bit.
struct Fnv(u32);

impl Fnv {
    fn new() -> Self {
        Self(0x811c_9dc5)
    }

    fn eat(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
    }

    /// One field: 4 bytes LE, or for a text its length as 4 bytes LE then its bytes.
    fn field(&mut self, field: &Field, value: u32, texts: &[Text]) {
        match field.ty {
            FieldType::Text(_) => {
                let text = text_at(texts, value);
                self.eat(&(text.len() as u32).to_le_bytes());
                self.eat(text.as_bytes());
            }
            _ => self.eat(&value.to_le_bytes()),
        }
    }
}

/// The world checksum: FNV-1a (32-bit) over each entity, in id order: `id` (4 bytes LE),
/// `kind` (1 byte), then each public field of its kind, in schema order, as 4 bytes LE (flags 0
/// or 1, signed fields as their two's complement bits), a text as its length (4 bytes LE) then
/// its bytes.
pub fn world_checksum<'a>(entities: impl IntoIterator<Item = &'a Entity>, texts: &[Text], schema: &Schema) -> u32 {
    let mut hash = Fnv::new();
    for e in entities {
        hash.eat(&e.id.to_le_bytes());
        hash.eat(&[e.kind]);
        let fields = schema.kind(e.kind).map_or(&[][..], |k| k.fields.as_slice());
        for (field, value) in fields.iter().zip(e.values).filter(|(f, _)| !f.private) {
            hash.field(field, value, texts);
        }
    }
    hash.0
}

/// The private checksum of `player`: FNV-1a over each entity it owns that has private fields,
/// in id order: `id` (4 bytes LE), then each private field as [`world_checksum`] writes a field.
pub fn private_checksum<'a>(
    entities: impl IntoIterator<Item = &'a Entity>,
    texts: &[Text],
    schema: &Schema,
    player: EntityId,
) -> u32 {
    let mut hash = Fnv::new();
    for e in entities {
        let Some(kind) = schema.kind(e.kind) else { continue };
        if kind.private_mask() == 0 || owner(e, kind) != player {
            continue;
        }
        hash.eat(&e.id.to_le_bytes());
        for (field, value) in kind.fields.iter().zip(e.values).filter(|(f, _)| f.private) {
            hash.field(field, value, texts);
        }
    }
    hash.0
}

/// The [`private_checksum`] of every player that owns private fields, in one pass.
pub fn private_checksums<'a>(
    entities: impl IntoIterator<Item = &'a Entity>,
    texts: &[Text],
    schema: &Schema,
) -> HashMap<EntityId, u32> {
    let mut hashes: HashMap<EntityId, Fnv> = HashMap::new();
    for e in entities {
        let Some(kind) = schema.kind(e.kind) else { continue };
        if kind.private_mask() == 0 {
            continue;
        }
        let hash = hashes.entry(owner(e, kind)).or_insert_with(Fnv::new);
        hash.eat(&e.id.to_le_bytes());
        for (field, value) in kind.fields.iter().zip(e.values).filter(|(f, _)| f.private) {
            hash.field(field, value, texts);
        }
    }
    hashes.into_iter().map(|(owner, hash)| (owner, hash.0)).collect()
}

/// The player that owns `entity` (of `kind`): the value of its owner field, or itself.
pub fn owner(entity: &Entity, kind: &Kind) -> EntityId {
    kind.owner_field().map_or(entity.id, |i| entity.values[i])
}

/// Whether a field with role `role` exists in `kind` (for clients that look for a name).
pub fn field_with(kind: &Kind, role: Role) -> Option<usize> {
    kind.fields.iter().position(|f| f.role == role)
}
