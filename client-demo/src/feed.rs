//! The spectator feed's events (`GET /events`, JSON in server-sent events) and the world a
//! spectator rebuilds from them, for any game.
//!
//! The feed is for people and dashboards: entities carry their fields by the names the game's
//! schema gives them (coordinates in world units), a snapshot carries the schema itself, and a
//! delta's `updated` entries carry absolute values, each field only when it changed.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::arena::{self, Standing};
use crate::sse;

/// One entity in full: its id, its kind's name, and its fields by name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Entity {
    /// Unique for the room's life.
    pub id: u32,
    /// Its kind's name in the schema.
    pub kind: String,
    /// Its fields, by the schema's names.
    #[serde(flatten)]
    pub fields: BTreeMap<String, Value>,
}

impl Entity {
    /// A field as a number, if it is one.
    pub fn number(&self, field: &str) -> Option<f64> {
        self.fields.get(field)?.as_f64()
    }
}

/// The part of the game's schema a spectator reads: each kind's fields and their roles.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Schema {
    /// The game's name.
    #[serde(default)]
    pub game: String,
    /// Its entity kinds.
    #[serde(default)]
    pub kinds: Vec<KindSchema>,
}

/// One kind of the schema.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KindSchema {
    /// Its name.
    pub name: String,
    /// Its fields.
    pub fields: Vec<FieldSchema>,
}

/// One field of a kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FieldSchema {
    /// Its name.
    pub name: String,
    /// `x`, `y`, `score` or `label`, when it has a role.
    #[serde(default)]
    pub role: Option<String>,
}

/// `event: snapshot`: the whole world, and the game's schema.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Snapshot {
    /// The tick this is the world after.
    pub tick: u64,
    /// World width in units.
    pub width: f64,
    /// World height in units.
    pub height: f64,
    /// Spectators connected, this one included.
    pub spectators: u32,
    /// The game.
    #[serde(default)]
    pub schema: Schema,
    /// Every entity.
    pub entities: Vec<Entity>,
}

/// `event: delta`: the changes from the world at `base` to the world at `tick`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Delta {
    /// The tick this delta brings the world to.
    pub tick: u64,
    /// The tick it applies to.
    pub base: u64,
    /// Spectators connected.
    pub spectators: u32,
    /// New entities, in full.
    #[serde(default)]
    pub spawned: Vec<Entity>,
    /// Changed entities, with only the changed fields.
    #[serde(default)]
    pub updated: Vec<Update>,
    /// Ids of entities that are gone.
    #[serde(default)]
    pub removed: Vec<u32>,
}

/// The new values of an entity's changed fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Update {
    /// The entity.
    pub id: u32,
    /// The changed fields' new values.
    #[serde(flatten)]
    pub fields: BTreeMap<String, Value>,
}

/// `event: shutdown` (the server is going away) or `event: closed` (the room ended).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Shutdown {
    /// Why, in words.
    pub reason: String,
}

/// A feed event this client understands.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// The whole world.
    Snapshot(Snapshot),
    /// One tick's changes.
    Delta(Delta),
    /// The server is stopping, or the room ended.
    Shutdown(Shutdown),
}

/// Why a feed event could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The event's data is not the JSON its type promises.
    #[error("bad {event} event: {source}")]
    Json {
        /// The SSE event type.
        event: String,
        /// What serde made of it.
        source: serde_json::Error,
    },
    /// A delta arrived for a tick other than the one held (or before any snapshot).
    #[error("delta from tick {base} but the world is at {held:?}")]
    WrongBase {
        /// The delta's base tick.
        base: u64,
        /// The tick held, if any.
        held: Option<u64>,
    },
    /// A delta updates or removes an entity that does not exist.
    #[error("delta names unknown entity {0}")]
    UnknownEntity(u32),
}

impl FeedEvent {
    /// The feed event an SSE event carries; `None` for types this client does not know, which
    /// it skips so that a newer server can add events.
    pub fn parse(event: &sse::Event) -> Result<Option<Self>, FeedError> {
        let json = |source| FeedError::Json {
            event: event.event.clone(),
            source,
        };
        let parsed = match event.event.as_str() {
            "snapshot" => FeedEvent::Snapshot(serde_json::from_str(&event.data).map_err(json)?),
            "delta" => FeedEvent::Delta(serde_json::from_str(&event.data).map_err(json)?),
            "shutdown" | "closed" => FeedEvent::Shutdown(serde_json::from_str(&event.data).map_err(json)?),
            _ => return Ok(None),
        };
        Ok(Some(parsed))
    }
}

/// The world as a spectator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    /// The tick it is the world after.
    pub tick: u64,
    /// Spectators connected, as last reported.
    pub spectators: u32,
    /// The game, from the snapshot.
    pub schema: Schema,
    entities: BTreeMap<u32, Entity>,
}

impl World {
    /// The world a snapshot describes.
    pub fn from_snapshot(snapshot: Snapshot) -> Self {
        Self {
            tick: snapshot.tick,
            spectators: snapshot.spectators,
            schema: snapshot.schema,
            entities: snapshot.entities.into_iter().map(|e| (e.id, e)).collect(),
        }
    }

    /// Applies a delta: updates, then removals, then spawns. On error the world is unchanged.
    pub fn apply(&mut self, delta: &Delta) -> Result<(), FeedError> {
        if delta.base != self.tick {
            return Err(FeedError::WrongBase {
                base: delta.base,
                held: Some(self.tick),
            });
        }
        let mut named = delta.updated.iter().map(|u| u.id).chain(delta.removed.iter().copied());
        if let Some(id) = named.find(|id| !self.entities.contains_key(id)) {
            return Err(FeedError::UnknownEntity(id));
        }
        for u in &delta.updated {
            if let Some(e) = self.entities.get_mut(&u.id) {
                e.fields.extend(u.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        for id in &delta.removed {
            self.entities.remove(id);
        }
        self.entities.extend(delta.spawned.iter().map(|e| (e.id, e.clone())));
        self.tick = delta.tick;
        self.spectators = delta.spectators;
        Ok(())
    }

    /// One entity by id.
    pub fn get(&self, id: u32) -> Option<&Entity> {
        self.entities.get(&id)
    }

    /// How many entities of each kind there are, in the schema's kind order.
    pub fn census(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = self.schema.kinds.iter().map(|k| (k.name.clone(), 0)).collect();
        for e in self.entities.values() {
            if let Some(count) = counts.iter_mut().find(|(name, _)| *name == e.kind) {
                count.1 += 1;
            }
        }
        counts
    }

    /// The `n` best-scoring entities (of kinds with a score field), highest first, older
    /// (lower id) first on a tie.
    pub fn leaderboard(&self, n: usize) -> Vec<Standing> {
        let score_field = |kind: &str| {
            let kind = self.schema.kinds.iter().find(|k| k.name == kind)?;
            kind.fields
                .iter()
                .find(|f| f.role.as_deref() == Some("score"))
                .map(|f| f.name.as_str())
        };
        let scored = self.entities.values().filter_map(|e| {
            Some(Standing {
                id: e.id,
                score: e.number(score_field(&e.kind)?)? as u32,
            })
        });
        arena::top(scored, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of the feed's specification (README, "Spectators"), for arena.
    const SNAPSHOT: &str = r#"{"tick":300,"width":1000,"height":1000,"spectators":2,"schema":{"game":"arena","kinds":[{"name":"player","fields":[{"name":"x","type":"coord","role":"x"},{"name":"y","type":"coord","role":"y"},{"name":"score","type":"uint","role":"score"}]},{"name":"orb","fields":[{"name":"x","type":"coord","role":"x"},{"name":"y","type":"coord","role":"y"}]}]},"entities":[{"id":1,"kind":"orb","x":12.5,"y":40.0625},{"id":101,"kind":"player","x":500.0,"y":20.5,"score":3}]}"#;
    const DELTA: &str = r#"{"tick":301,"base":300,"spectators":2,"spawned":[{"id":7,"kind":"orb","x":1.0,"y":2.0}],"updated":[{"id":101,"x":13.0,"y":40.0,"score":4}],"removed":[1]}"#;

    fn sse(event: &str, data: &str) -> sse::Event {
        sse::Event {
            event: event.into(),
            data: data.into(),
            id: String::new(),
        }
    }

    fn snapshot() -> World {
        match FeedEvent::parse(&sse("snapshot", SNAPSHOT)).unwrap() {
            Some(FeedEvent::Snapshot(s)) => World::from_snapshot(s),
            other => panic!("{other:?}"),
        }
    }

    fn delta(json: &str) -> Delta {
        match FeedEvent::parse(&sse("delta", json)).unwrap() {
            Some(FeedEvent::Delta(d)) => d,
            other => panic!("{other:?}"),
        }
    }

    fn xys(e: &Entity) -> (Option<f64>, Option<f64>, Option<f64>) {
        (e.number("x"), e.number("y"), e.number("score"))
    }

    #[test]
    fn a_snapshot_then_a_delta_rebuild_the_world() {
        let mut world = snapshot();
        assert_eq!(world.tick, 300);
        assert_eq!(world.census(), [("player".into(), 1), ("orb".into(), 1)]);
        assert_eq!(world.get(1).unwrap().number("y"), Some(40.0625));
        world.apply(&delta(DELTA)).unwrap();
        assert_eq!(world.tick, 301);
        assert_eq!(xys(world.get(101).unwrap()), (Some(13.0), Some(40.0), Some(4.0)));
        assert!(world.get(1).is_none());
        assert_eq!(world.get(7).unwrap().kind, "orb");
        assert_eq!(world.leaderboard(5), [Standing { id: 101, score: 4 }]);
    }

    #[test]
    fn an_update_keeps_the_fields_it_does_not_name() {
        let mut world = snapshot();
        world
            .apply(&delta(
                r#"{"tick":301,"base":300,"spectators":1,"updated":[{"id":101,"score":9}]}"#,
            ))
            .unwrap();
        assert_eq!(xys(world.get(101).unwrap()), (Some(500.0), Some(20.5), Some(9.0)));
        assert_eq!(world.spectators, 1);
    }

    #[test]
    fn gaps_and_unknown_entities_are_refused_and_change_nothing() {
        let mut world = snapshot();
        let before = world.clone();
        let err = world
            .apply(&delta(&DELTA.replace("\"base\":300", "\"base\":299")))
            .unwrap_err();
        assert!(matches!(err, FeedError::WrongBase { base: 299, .. }), "{err}");
        let err = world
            .apply(&delta(&DELTA.replace("\"removed\":[1]", "\"removed\":[1,55]")))
            .unwrap_err();
        assert!(matches!(err, FeedError::UnknownEntity(55)), "{err}");
        assert_eq!(world, before);
    }

    #[test]
    fn shutdown_closed_unknown_events_and_bad_json() {
        let shutdown = FeedEvent::parse(&sse("shutdown", r#"{"reason":"server shutting down"}"#)).unwrap();
        assert_eq!(
            shutdown,
            Some(FeedEvent::Shutdown(Shutdown {
                reason: "server shutting down".into()
            }))
        );
        let closed = FeedEvent::parse(&sse("closed", r#"{"reason":"room closed"}"#)).unwrap();
        assert!(matches!(closed, Some(FeedEvent::Shutdown(s)) if s.reason == "room closed"));
        assert!(FeedEvent::parse(&sse("stats", "{}")).unwrap().is_none());
        let err = FeedEvent::parse(&sse("delta", "{\"tick\":")).unwrap_err();
        assert!(err.to_string().starts_with("bad delta event"), "{err}");
    }
}
