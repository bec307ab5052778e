//! The cluster's directory in Redis: which nodes are alive and how loaded they are, and which
//! node owns each room.
//!
//! Keys (all under `tickcast:`):
//!
//! | key | type | written by | expiry |
//! |---|---|---|---|
//! | `nodes` | set of node ids | each node, every second | none (dead ones are swept) |
//! | `node:{node}` | JSON [`NodeRecord`] | the node, every second | [`EXPIRY`] |
//! | `node:{node}:rooms` | set of room ids | the node, as rooms open and end | none (swept) |
//! | `room:{room}` | JSON [`RoomRecord`] | the owner, at once and every second | [`EXPIRY`] |
//! | `room:{room}:events` | stream of spectator events | the owner ([`super::replica`]) | [`STREAM_TTL`] after the last write |
//! | `node:{node}:requests` | list of requests | other nodes ([`super::requests`]) | 10 s after the last push |
//! | `node:{node}:replies` | list of answers to its requests | other nodes | 10 s after the last push |
//!
//! "Where is room X" is one `GET room:{X}`: the record names the owner and its URL, and it
//! exists only while the owner refreshes it, so a dead node's rooms vanish within [`EXPIRY`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::store::{Store, StoreError};
use crate::protocol::Results;
use crate::protocol::rooms_api::{RoomId, RoomSummary};

/// How long a node's and a room's records outlive their last refresh.
pub(crate) const EXPIRY: Duration = Duration::from_secs(5);
/// How often a node refreshes its records.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);
/// A node whose record is older than this has missed two refreshes: placement passes it over
/// (it may have been killed; its record lives on until [`EXPIRY`]).
pub(crate) const STALE: Duration = Duration::from_millis(2500);
/// How long a room's stream outlives its last event (so that followers read a `closed`).
pub(crate) const STREAM_TTL: Duration = Duration::from_secs(600);

/// Redis key names.
pub(crate) mod keys {
    /// The set of node ids.
    pub(crate) const NODES: &str = "tickcast:nodes";

    pub(crate) fn node(node: &str) -> String {
        format!("tickcast:node:{node}")
    }

    pub(crate) fn node_rooms(node: &str) -> String {
        format!("tickcast:node:{node}:rooms")
    }

    pub(crate) fn requests(node: &str) -> String {
        format!("tickcast:node:{node}:requests")
    }

    pub(crate) fn sweep(node: &str) -> String {
        format!("tickcast:sweep:{node}")
    }

    pub(crate) fn room(room: &str) -> String {
        format!("tickcast:room:{room}")
    }

    pub(crate) fn events(room: &str) -> String {
        format!("tickcast:room:{room}:events")
    }

    pub(crate) fn replies(node: &str) -> String {
        format!("tickcast:node:{node}:replies")
    }
}

/// A live node, as it describes itself every second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NodeRecord {
    pub(crate) id: String,
    /// The base URL clients reach it at (`--public-url`).
    pub(crate) url: String,
    /// Whether it takes new rooms (not a `--no-rooms` spectator edge).
    pub(crate) hosts_rooms: bool,
    pub(crate) players: usize,
    pub(crate) rooms: usize,
    pub(crate) max_rooms: usize,
    /// Spectators connected to it, of its rooms and of others'.
    pub(crate) spectators: usize,
    pub(crate) tick_overruns: u64,
    /// When it wrote this record, Unix milliseconds.
    #[serde(default)]
    pub(crate) beat_ms: u64,
    /// The rooms it owns.
    pub(crate) room_ids: Vec<RoomId>,
    /// Spectators it serves of other nodes' rooms, by room.
    pub(crate) following: BTreeMap<RoomId, usize>,
}

impl NodeRecord {
    /// Whether a new room may be placed on it at `now_ms` (Unix milliseconds): it takes rooms,
    /// has room for one, and its record is fresh.
    pub(crate) fn takes_rooms(&self, now_ms: u64) -> bool {
        self.hosts_rooms
            && self.rooms < self.max_rooms
            && now_ms.saturating_sub(self.beat_ms) <= STALE.as_millis() as u64
    }

    /// What placement minimizes: players first, then rooms.
    fn load(&self) -> (usize, usize, &str) {
        (self.players, self.rooms, &self.id)
    }
}

/// A room, as its owner describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RoomRecord {
    /// The owner's id.
    pub(crate) node: String,
    /// The owner's base URL.
    pub(crate) url: String,
    pub(crate) summary: RoomSummary,
    /// When it was created, Unix microseconds (the listing's order; `info.created` is seconds).
    #[serde(default)]
    pub(crate) created_us: u64,
    /// How its last match ended, once one has (`GET /rooms/{id}` shows it; listings do not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_results: Option<Results>,
}

/// The live nodes (those whose record has not expired), by id.
pub(crate) async fn live_nodes(store: &Store) -> Result<Vec<NodeRecord>, StoreError> {
    let ids: Vec<String> = store.query(redis::cmd("SMEMBERS").arg(keys::NODES)).await?;
    Ok(node_records(store, &ids).await?.into_iter().flatten().collect())
}

/// The records of nodes `ids`, `None` for those that expired.
pub(crate) async fn node_records(store: &Store, ids: &[String]) -> Result<Vec<Option<NodeRecord>>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = ids.iter().map(|id| keys::node(id)).collect();
    let records: Vec<Option<String>> = store.query(redis::cmd("MGET").arg(&keys)).await?;
    Ok(records.iter().map(|r| r.as_deref().and_then(parse)).collect())
}

/// Where room `id` lives, if anywhere.
pub(crate) async fn room(store: &Store, id: &RoomId) -> Result<Option<RoomRecord>, StoreError> {
    let record: Option<String> = store.query(redis::cmd("GET").arg(keys::room(id.as_str()))).await?;
    Ok(record.as_deref().and_then(parse))
}

/// The rooms of `nodes`, as their owners last described them.
pub(crate) async fn rooms_of(store: &Store, nodes: &[NodeRecord]) -> Result<Vec<RoomRecord>, StoreError> {
    let keys: Vec<String> = nodes
        .iter()
        .flat_map(|n| n.room_ids.iter().map(|id| keys::room(id.as_str())))
        .collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let records: Vec<Option<String>> = store.query(redis::cmd("MGET").arg(&keys)).await?;
    Ok(records.iter().filter_map(|r| r.as_deref().and_then(parse)).collect())
}

/// The node a new room should go to at `now_ms`: the least loaded that takes rooms.
pub(crate) fn least_loaded(nodes: &[NodeRecord], now_ms: u64) -> Option<&NodeRecord> {
    nodes
        .iter()
        .filter(|n| n.takes_rooms(now_ms))
        .min_by(|a, b| a.load().cmp(&b.load()))
}

fn parse<T: for<'de> Deserialize<'de>>(json: &str) -> Option<T> {
    // A record another version wrote, or garbage: as if it were not there.
    serde_json::from_str(json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, players: usize, rooms: usize, hosts_rooms: bool) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            url: format!("http://{id}"),
            hosts_rooms,
            players,
            rooms,
            max_rooms: 10,
            spectators: 0,
            tick_overruns: 0,
            beat_ms: 10_000,
            room_ids: Vec::new(),
            following: BTreeMap::new(),
        }
    }

    #[test]
    fn placement_takes_the_fewest_players_then_rooms_and_skips_edges_full_and_silent_nodes() {
        let mut silent = node("silent", 0, 0, true);
        silent.beat_ms = 7_000;
        let nodes = [
            node("a", 10, 1, true),
            node("b", 3, 5, true),
            node("c", 3, 2, true),
            node("edge", 0, 0, false),
            node("full", 0, 10, true),
            silent,
        ];
        let now_ms = 10_500;
        assert_eq!(least_loaded(&nodes, now_ms).map(|n| n.id.as_str()), Some("c"));
        assert_eq!(least_loaded(&nodes[3..], now_ms), None, "silent for 3.5 s: passed over");
        assert_eq!(least_loaded(&nodes[5..], 9_000).map(|n| n.id.as_str()), Some("silent"));
    }
}
