//! What a game tells besides its world: events (to every player, one, or a team; the public
//! ones to spectators too) and the end of its match. The engine hands the game a [`Dispatch`]
//! in each call that can tell something, checks each event against the schema as it is told,
//! and sends what was told with the tick's frame.

use std::sync::Arc;

use crate::protocol::{EntityId, GameEvent, Results, Schema, Value};

/// The most events a room's game may tell in one tick; more are refused ([`EventError`]),
/// so a game that loops telling cannot grow the server's memory.
pub const MAX_TOLD_PER_TICK: usize = 4096;

/// Who an event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// Every player (and spectators, if the event's kind is public).
    All,
    /// One player.
    Player(EntityId),
    /// The players of a team, as [`super::Game::team`] says.
    Team(u32),
}

/// An event as told, with who it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    /// Who it is for.
    pub to: To,
    /// The event.
    pub event: GameEvent,
}

/// Why an event was refused (the game gets it back; nothing is sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Its kind is not one of the schema's events.
    #[error("no event kind {0}")]
    UnknownKind(u8),
    /// It has another number of values than its kind has parameters.
    #[error("event {kind} takes {wanted} values, not {given}")]
    Arity {
        /// The kind's name.
        kind: String,
        /// Its parameters.
        wanted: usize,
        /// The values given.
        given: usize,
    },
    /// A value does not fit its parameter.
    #[error("event {kind}: {param} {why}")]
    Value {
        /// The kind's name.
        kind: String,
        /// The parameter.
        param: String,
        /// What is wrong.
        why: String,
    },
    /// The tick has [`MAX_TOLD_PER_TICK`] events already.
    #[error("over {MAX_TOLD_PER_TICK} events in one tick")]
    TooMany,
}

/// Where a game tells events and ends its match.
#[derive(Debug)]
pub struct Dispatch {
    schema: Arc<Schema>,
    told: Vec<Told>,
    ended: Option<Results>,
    refused: u64,
}

impl Dispatch {
    /// A dispatch checking events against `schema`.
    pub fn new(schema: Arc<Schema>) -> Self {
        Self {
            schema,
            told: Vec::new(),
            ended: None,
            refused: 0,
        }
    }

    /// Tells `to` an event of kind `kind` (an index into the schema's events) with `values`,
    /// one per parameter. Refused if it does not fit the schema.
    pub fn tell(&mut self, to: To, kind: u8, values: Vec<Value>) -> Result<(), EventError> {
        let checked = self.check(kind, &values);
        if checked.is_err() {
            self.refused += 1;
            return checked;
        }
        self.told.push(Told {
            to,
            event: GameEvent { kind, values },
        });
        Ok(())
    }

    /// Tells every player (and spectators, for a public kind).
    pub fn tell_all(&mut self, kind: u8, values: Vec<Value>) -> Result<(), EventError> {
        self.tell(To::All, kind, values)
    }

    fn check(&self, kind: u8, values: &[Value]) -> Result<(), EventError> {
        if self.told.len() >= MAX_TOLD_PER_TICK {
            return Err(EventError::TooMany);
        }
        let of = self
            .schema
            .events
            .get(usize::from(kind))
            .ok_or(EventError::UnknownKind(kind))?;
        if of.params.len() != values.len() {
            return Err(EventError::Arity {
                kind: of.name.clone(),
                wanted: of.params.len(),
                given: values.len(),
            });
        }
        for (param, value) in of.params.iter().zip(values) {
            if let Some(why) = param.refuse(value) {
                return Err(EventError::Value {
                    kind: of.name.clone(),
                    param: param.name.clone(),
                    why,
                });
            }
        }
        Ok(())
    }

    /// Ends the match with `results`, after this tick (the first ending told wins).
    pub fn end(&mut self, results: Results) {
        self.ended.get_or_insert(results);
    }

    /// Whether the match was ended.
    pub fn has_ended(&self) -> bool {
        self.ended.is_some()
    }

    /// The events told since the last call, in order (the engine's).
    pub fn take_told(&mut self) -> Vec<Told> {
        std::mem::take(&mut self.told)
    }

    /// Whether any event waits to be sent.
    pub fn has_told(&self) -> bool {
        !self.told.is_empty()
    }

    /// The match's results, once it ended (the engine's).
    pub fn take_ended(&mut self) -> Option<Results> {
        self.ended.take()
    }

    /// Events refused since the last call (the engine counts them).
    pub fn take_refused(&mut self) -> u64 {
        std::mem::take(&mut self.refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{EventKind, Kind, Param};

    #[test]
    fn events_are_checked_against_their_kind() {
        let schema = Schema::new("t", 16, 10, 10)
            .with_kind(Kind::positioned("p", []))
            .with_event(EventKind::new(
                "kill",
                [Param::int("by", 0, 100), Param::text("line", 8)],
                true,
            ));
        let mut out = Dispatch::new(Arc::new(schema));
        assert!(out.tell_all(0, vec![Value::Int(3), Value::text("gg")]).is_ok());
        assert_eq!(out.tell_all(1, vec![]), Err(EventError::UnknownKind(1)));
        assert!(matches!(
            out.tell_all(0, vec![Value::Int(3)]),
            Err(EventError::Arity { .. })
        ));
        assert!(matches!(
            out.tell_all(0, vec![Value::Int(300), Value::text("x")]),
            Err(EventError::Value { .. })
        ));
        assert_eq!(out.take_refused(), 3);
        assert_eq!(out.take_refused(), 0);
        assert_eq!(out.take_told().len(), 1);
    }
}
