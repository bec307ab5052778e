//! A client's world as plain values, for the apply targets' models of PROTOCOL.md's rules: each
//! entity's fields by the schema's types, a text field as its string, so that two worlds
//! compare whatever indices their texts are at.

use std::collections::BTreeMap;

use tickcast::protocol::delta::NetWorld;
use tickcast::protocol::{Entity, EntityId, Field, FieldType, MAX_FIELDS, Schema, Text};

/// One field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    /// A number field (or a value past the kind's fields, which stays 0).
    Num(u32),
    /// A text field's string.
    Text(String),
}

impl Cell {
    /// The number; a text here means the model lost track of a field's type.
    pub(crate) fn num(&self) -> u32 {
        match self {
            Cell::Num(v) => *v,
            Cell::Text(t) => panic!("a number field holds the text {t:?}"),
        }
    }

    /// What a field holds before it is set: 0, or "" for a text.
    pub(crate) fn unset(field: &Field) -> Self {
        match field.ty {
            FieldType::Text(_) => Cell::Text(String::new()),
            _ => Cell::Num(0),
        }
    }
}

/// An entity as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plain {
    /// Its kind.
    pub(crate) kind: u8,
    /// Its values, by field.
    pub(crate) cells: [Cell; MAX_FIELDS],
}

impl Plain {
    /// `entity`, its text fields looked up in `texts` (index 0, or one past the end: "").
    /// Asserts that its text mask is its kind's, which the world relies on.
    pub(crate) fn of(entity: &Entity, texts: &[Text], schema: &Schema) -> Self {
        let fields = schema.kind(entity.kind).map_or(&[][..], |k| k.fields.as_slice());
        let text_mask = schema.kind(entity.kind).map_or(0, |k| k.text_mask());
        assert_eq!(entity.texts, text_mask, "entity {} has another text mask than its kind", entity.id);
        Self {
            kind: entity.kind,
            cells: std::array::from_fn(|i| match fields.get(i).map(|f| f.ty) {
                Some(FieldType::Text(_)) => Cell::Text(text(texts, entity.values[i])),
                _ => Cell::Num(entity.values[i]),
            }),
        }
    }

    /// Unsets the fields whose bits are in `mask`.
    pub(crate) fn unset(&mut self, mask: u8, schema: &Schema) {
        let fields = schema.kind(self.kind).map_or(&[][..], |k| k.fields.as_slice());
        for (i, field) in fields.iter().enumerate() {
            if mask & (1 << i) != 0 {
                self.cells[i] = Cell::unset(field);
            }
        }
    }
}

/// The text at `index` of a message's or world's texts ("" when there is none).
pub(crate) fn text(texts: &[Text], index: u32) -> String {
    texts.get(index as usize).map_or("", Text::as_str).to_owned()
}

/// A world as plain entities, by id.
pub(crate) type Model = BTreeMap<EntityId, Plain>;

/// `world` as plain entities.
pub(crate) fn of_world(world: &NetWorld, schema: &Schema) -> Model {
    world.entities().iter().map(|e| (e.id, Plain::of(e, world.texts(), schema))).collect()
}
