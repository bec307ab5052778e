//! The spectator feed's events (`GET /events`, JSON in server-sent events) and the world a
//! spectator rebuilds from them.
//!
//! The feed is for people and dashboards: positions are in world units (not position steps)
//! and a delta's `updated` entries carry absolute values, each field only when it changed.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::arena::{self, Standing};
use crate::sse;

/// One entity in full.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Entity {
    /// Unique for the server's life.
    pub id: u32,
    /// What it is.
    pub kind: Kind,
    /// Position in world units.
    pub x: f64,
    /// Position in world units.
    pub y: f64,
    /// Orbs collected (0 for orbs).
    pub score: u32,
}

/// What an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A connected player.
    Player,
    /// A collectible orb.
    Orb,
    /// A kind newer than this client; counted, never drawn.
    #[serde(other)]
    Other,
}

/// `event: snapshot`: the whole world.
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
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Update {
    /// The entity.
    pub id: u32,
    /// New x, if it changed.
    pub x: Option<f64>,
    /// New y, if it changed.
    pub y: Option<f64>,
    /// New score, if it changed.
    pub score: Option<u32>,
}

/// `event: shutdown`: the server is going away.
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
    /// The server is stopping.
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
            "shutdown" => FeedEvent::Shutdown(serde_json::from_str(&event.data).map_err(json)?),
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
    entities: BTreeMap<u32, Entity>,
}

impl World {
    /// The world a snapshot describes.
    pub fn from_snapshot(snapshot: Snapshot) -> Self {
        Self {
            tick: snapshot.tick,
            spectators: snapshot.spectators,
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
                e.x = u.x.unwrap_or(e.x);
                e.y = u.y.unwrap_or(e.y);
                e.score = u.score.unwrap_or(e.score);
            }
        }
        for id in &delta.removed {
            self.entities.remove(id);
        }
        self.entities.extend(delta.spawned.iter().map(|e| (e.id, *e)));
        self.tick = delta.tick;
        self.spectators = delta.spectators;
        Ok(())
    }

    /// One entity by id.
    pub fn get(&self, id: u32) -> Option<&Entity> {
        self.entities.get(&id)
    }

    /// How many entities of a kind there are.
    pub fn count(&self, kind: Kind) -> usize {
        self.entities.values().filter(|e| e.kind == kind).count()
    }

    /// The `n` best players, highest score first, older (lower id) first on a tie.
    pub fn leaderboard(&self, n: usize) -> Vec<Standing> {
        let players = self.entities.values().filter(|e| e.kind == Kind::Player);
        arena::top(
            players.map(|e| Standing {
                id: e.id,
                score: e.score,
            }),
            n,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of the feed's specification, verbatim.
    const SNAPSHOT: &str = r#"{"tick":300,"width":1000,"height":1000,"spectators":2,"entities":[{"id":1,"kind":"orb","x":12.5,"y":40.0625,"score":0},{"id":101,"kind":"player","x":500.0,"y":20.5,"score":3}]}"#;
    const DELTA: &str = r#"{"tick":301,"base":300,"spectators":2,"spawned":[{"id":7,"kind":"orb","x":1.0,"y":2.0,"score":0}],"updated":[{"id":101,"x":13.0,"y":40.0,"score":4}],"removed":[1]}"#;

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

    #[test]
    fn a_snapshot_then_a_delta_rebuild_the_world() {
        let mut world = snapshot();
        assert_eq!(
            (world.tick, world.count(Kind::Orb), world.count(Kind::Player)),
            (300, 1, 1)
        );
        assert_eq!(world.get(1).unwrap().y, 40.0625);
        world.apply(&delta(DELTA)).unwrap();
        assert_eq!(world.tick, 301);
        let p = world.get(101).unwrap();
        assert_eq!((p.x, p.y, p.score), (13.0, 40.0, 4));
        assert!(world.get(1).is_none());
        assert_eq!(world.get(7).unwrap().kind, Kind::Orb);
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
        let p = world.get(101).unwrap();
        assert_eq!((p.x, p.y, p.score), (500.0, 20.5, 9));
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
    fn shutdown_unknown_events_and_bad_json() {
        let shutdown = FeedEvent::parse(&sse("shutdown", r#"{"reason":"server shutting down"}"#)).unwrap();
        assert_eq!(
            shutdown,
            Some(FeedEvent::Shutdown(Shutdown {
                reason: "server shutting down".into()
            }))
        );
        assert!(FeedEvent::parse(&sse("stats", "{}")).unwrap().is_none());
        let err = FeedEvent::parse(&sse("delta", "{\"tick\":")).unwrap_err();
        assert!(err.to_string().starts_with("bad delta event"), "{err}");
        let kind: Entity = serde_json::from_str(r#"{"id":1,"kind":"portal","x":0,"y":0,"score":0}"#).unwrap();
        assert_eq!(kind.kind, Kind::Other);
    }
}
