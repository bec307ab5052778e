//! What a game says besides its world, and what a player says besides its input (protocol
//! v4): a player's [`Message`]s, the [`Events`] of a tick, a player's [`Private`] fields, and
//! the end of a match ([`MatchEnded`]). Each is read by the schema, as entities are.

use serde::{Deserialize, Serialize};

use super::EntityId;
use super::entities::{new_texts, read_private, write_private};
use super::schema::{MAX_FIELDS, Schema};
use super::values::{MAX_TEXT, Text, Value, read_text, read_values, write_values};
use super::wire::{DecodeError, Reader, Writer};

/// A message from a player besides its input: one of the schema's message kinds, with its
/// parameters' values. Never merged with another, never dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its kind: an index into the schema's messages.
    pub kind: u8,
    /// One value per parameter of the kind, in order.
    pub values: Vec<Value>,
}

/// One thing that happened, as a game tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameEvent {
    /// Its kind: an index into the schema's events.
    pub kind: u8,
    /// One value per parameter of the kind, in order.
    pub values: Vec<Value>,
}

/// The events of one tick that a player is told, in the order the game told them. Follows the
/// tick's frame (and the player's private fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events {
    /// The tick they happened in.
    pub tick: u64,
    /// The events, in order.
    pub events: Vec<GameEvent>,
}

/// One entity's private fields: its id and kind, which of its private fields follow, and their
/// values in full (a text as an index into the message's texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrivateUpdate {
    /// The entity's id.
    pub id: EntityId,
    /// Its kind.
    pub kind: u8,
    /// Bit `i` says private field `i` follows.
    pub mask: u8,
    /// The values, by field.
    pub values: [u32; MAX_FIELDS],
}

/// The private fields a player is sent for the entities it owns: after the tick's frame, when
/// any changed (or all of them, after a keyframe), and on checksum ticks with their checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Private {
    /// The tick of the frame it follows.
    pub tick: u64,
    /// Whether it holds every private field the player owns (after a keyframe): what the
    /// player held before is dropped first.
    pub full: bool,
    /// Entities with changed private fields, ids strictly ascending.
    pub entities: Vec<PrivateUpdate>,
    /// The texts its text fields index (index 0 is "").
    pub texts: Vec<Text>,
    /// When present, the private checksum of everything the player holds after applying it.
    pub checksum: Option<u32>,
}

/// One player's place in a match's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// The player's entity id in the match.
    pub player: EntityId,
    /// Its name.
    pub name: Text,
    /// Its rank, 1 for the first; players who tie share a rank.
    pub rank: u32,
    /// Its score, as the game counts it.
    pub score: i32,
}

/// How a match ended.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Results {
    /// One line for people ("red wins 10 to 7").
    pub summary: Text,
    /// The players, best first.
    pub standings: Vec<Standing>,
}

/// The match is over: sent after its last tick's frame and events. The room then closes, or
/// the next match starts with a new `Welcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchEnded {
    /// The last tick of the match.
    pub tick: u64,
    /// The results.
    pub results: Results,
}

impl Message {
    pub(crate) fn write(&self, w: &mut Writer, schema: &Schema) {
        w.u32(u32::from(self.kind));
        let params = schema
            .messages
            .get(usize::from(self.kind))
            .map_or(&[][..], |m| &m.params);
        write_values(w, params, &self.values);
    }

    pub(crate) fn read(r: &mut Reader<'_>, schema: &Schema) -> Result<Self, DecodeError> {
        let kind = r.u32()?;
        let params = usize::try_from(kind)
            .ok()
            .and_then(|k| schema.messages.get(k))
            .ok_or(DecodeError::Unknown("message kind"))?;
        Ok(Self {
            kind: kind as u8,
            values: read_values(r, &params.params)?,
        })
    }
}

impl Events {
    pub(crate) fn write(&self, w: &mut Writer, schema: &Schema) {
        w.varint(self.tick);
        w.varint(self.events.len() as u64);
        for event in &self.events {
            w.u32(u32::from(event.kind));
            let params = schema
                .events
                .get(usize::from(event.kind))
                .map_or(&[][..], |e| &e.params);
            write_values(w, params, &event.values);
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>, schema: &Schema) -> Result<Self, DecodeError> {
        let tick = r.varint()?;
        let n = r.count(1)?;
        if n == 0 {
            return Err(DecodeError::Invalid("an events message with no event"));
        }
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            let kind = r.u32()?;
            let params = usize::try_from(kind)
                .ok()
                .and_then(|k| schema.events.get(k))
                .ok_or(DecodeError::Unknown("event kind"))?;
            events.push(GameEvent {
                kind: kind as u8,
                values: read_values(r, &params.params)?,
            });
        }
        Ok(Self { tick, events })
    }
}

impl Private {
    pub(crate) fn write(&self, w: &mut Writer, schema: &Schema) {
        w.varint(self.tick);
        w.bool(self.full);
        write_private(w, &self.entities, &self.texts, schema);
        w.option_u32(self.checksum);
    }

    pub(crate) fn read(r: &mut Reader<'_>, schema: &Schema) -> Result<Self, DecodeError> {
        let tick = r.varint()?;
        let full = r.bool()?;
        let mut texts = new_texts();
        let entities = read_private(r, schema, &mut texts)?;
        let checksum = if r.option()? { Some(r.u32()?) } else { None };
        Ok(Self {
            tick,
            full,
            entities,
            texts,
            checksum,
        })
    }
}

impl MatchEnded {
    pub(crate) fn write(&self, w: &mut Writer) {
        w.varint(self.tick);
        w.str(&self.results.summary);
        w.varint(self.results.standings.len() as u64);
        for s in &self.results.standings {
            w.u32(s.player);
            w.str(&s.name);
            w.u32(s.rank);
            w.i32(s.score);
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let tick = r.varint()?;
        let summary = read_text(r, MAX_TEXT)?;
        // A standing is at least 4 bytes (player, name length, rank, score).
        let n = r.count(4)?;
        let mut standings = Vec::with_capacity(n);
        for _ in 0..n {
            standings.push(Standing {
                player: r.u32()?,
                name: read_text(r, MAX_TEXT)?,
                rank: r.u32()?,
                score: r.i32()?,
            });
        }
        Ok(Self {
            tick,
            results: Results { summary, standings },
        })
    }
}
