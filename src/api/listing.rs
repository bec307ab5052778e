//! `GET /rooms`: the public rooms, oldest first, a page at a time.
//!
//! The list is built at most once per [`FRESH_FOR`] for every caller (each room encoded once
//! per build), however many ask: a flood of listings costs a copy of the pages it reads, not
//! a walk of every room and an encoding of each per request. A page is at most [`MAX_LIMIT`]
//! rooms, so no answer grows with the number of rooms. Pages are found by a cursor that names
//! the last room of the previous page (its creation time and id): rooms that open or close
//! meanwhile never make a page repeat or skip a room that stays. Rooms are in the order they
//! were created (to the microsecond, then by id), on whichever node.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use tokio::time::Instant;

use super::ApiError;
use crate::cluster::Refusal;
use crate::cluster::directory::RoomRecord;
use crate::protocol::rooms_api::Labels;
use crate::room::RoomId;
use crate::state::AppState;

/// How long a built list is served before the next request builds it again.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(1);
/// Rooms per page when the caller names no `limit`, and the most it may ask for.
pub(crate) const MAX_LIMIT: usize = 100;

/// What `GET /rooms` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
    game: Option<String>,
    joinable: Option<bool>,
    /// `key:value` pairs, comma-separated: only rooms with all these labels.
    labels: Option<String>,
}

/// Reads `labels=mode:duel,map:desert`.
fn parse_labels(text: &str) -> Option<Labels> {
    let mut labels = Labels::default();
    for pair in text.split(',') {
        let (key, value) = pair.split_once(':')?;
        if !labels.set(key, value) {
            return None;
        }
    }
    Some(labels)
}

/// One public room, encoded.
#[derive(Debug)]
struct Listed {
    /// Unix microseconds.
    created: u64,
    id: RoomId,
    game: String,
    joinable: bool,
    labels: Labels,
    json: Bytes,
}

/// The public rooms as of one build, oldest first.
#[derive(Debug)]
struct Built {
    at: Instant,
    rooms: Vec<Listed>,
}

/// The room list, rebuilt at most once per [`FRESH_FOR`].
#[derive(Debug, Default)]
pub(crate) struct RoomList {
    // A tokio Mutex, held across the build: callers that arrive during a build wait for it and
    // share it, instead of building one each.
    built: tokio::sync::Mutex<Option<Arc<Built>>>,
}

impl RoomList {
    /// The page `query` asks for, as the JSON body `{"rooms": [...], "next": "<cursor>"}`
    /// (`next` only when more rooms follow).
    pub(crate) async fn page(&self, state: &AppState, query: &ListQuery) -> Result<Bytes, ApiError> {
        let limit = match query.limit {
            None => MAX_LIMIT,
            Some(n @ 1..=MAX_LIMIT) => n,
            Some(n) => return Err(ApiError::bad(format!("limit {n} is outside 1..={MAX_LIMIT}"))),
        };
        let after = match &query.cursor {
            None => None,
            Some(text) => Some(
                parse_cursor(text)
                    .ok_or_else(|| ApiError::bad("cursor is not one a listing gave: start again without it"))?,
            ),
        };
        let labels = match &query.labels {
            None => Labels::default(),
            Some(text) => parse_labels(text).ok_or_else(|| {
                ApiError::bad("labels must be key:value pairs, comma-separated, each 1 to 32 of a-z 0-9 _ -")
            })?,
        };
        let built = self.built(state).await?;
        let start = after.map_or(0, |after| {
            built
                .rooms
                .partition_point(|room| (room.created, &room.id) <= (after.0, &after.1))
        });
        let wanted = |room: &&Listed| {
            query.game.as_ref().is_none_or(|game| room.game == *game)
                && query.joinable.is_none_or(|joinable| room.joinable == joinable)
                && room.labels.matches(&labels)
        };
        let mut matching = built.rooms[start..].iter().filter(wanted);
        let page: Vec<&Listed> = matching.by_ref().take(limit).collect();
        let more = matching.next().is_some();
        let mut body = BytesMut::with_capacity(page.iter().map(|r| r.json.len() + 1).sum::<usize>() + 64);
        body.put_slice(b"{\"rooms\":[");
        for (i, room) in page.iter().enumerate() {
            if i > 0 {
                body.put_u8(b',');
            }
            body.put_slice(&room.json);
        }
        body.put_u8(b']');
        if let (true, Some(last)) = (more, page.last()) {
            body.put_slice(format!(",\"next\":\"{}.{}\"", last.created, last.id).as_bytes());
        }
        body.put_u8(b'}');
        Ok(body.freeze())
    }

    async fn built(&self, state: &AppState) -> Result<Arc<Built>, Refusal> {
        let mut built = self.built.lock().await;
        if let Some(fresh) = built.as_ref().filter(|b| b.at.elapsed() < FRESH_FOR) {
            return Ok(fresh.clone());
        }
        state.metrics.room_list_builds.inc();
        let records = match state.cluster() {
            Some(cluster) => cluster.list().await?,
            None => state.rooms.all().iter().map(|room| state.record(room)).collect(),
        };
        let mut rooms: Vec<Listed> = records
            .into_iter()
            .filter(|record| !record.summary.private)
            .map(|record| listed(state, record))
            .collect();
        // Every node's rooms together, oldest first (ids break ties).
        rooms.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let fresh = Arc::new(Built {
            at: Instant::now(),
            rooms,
        });
        *built = Some(fresh.clone());
        Ok(fresh)
    }
}

fn listed(state: &AppState, mut record: RoomRecord) -> Listed {
    let (created, id, game, joinable, labels) = (
        record.created_us,
        record.summary.id.clone(),
        record.summary.game.clone(),
        record.summary.joinable,
        record.summary.labels.clone(),
    );
    // A listing says where rooms are; their last results are `GET /rooms/{id}`'s.
    record.last_results = None;
    let json = serde_json::to_vec(&super::room_json(state, record)).expect("rooms serialize");
    Listed {
        created,
        id,
        game,
        joinable,
        labels,
        json: json.into(),
    }
}

/// `<created>.<id>`, as [`RoomList::page`] writes it.
fn parse_cursor(text: &str) -> Option<(u64, RoomId)> {
    let (created, id) = text.split_once('.')?;
    Some((created.parse().ok()?, RoomId::parse(id)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_read_back_as_written_and_nothing_else_is() {
        let id = RoomId::parse("k3Xq9TzA1bWm").unwrap();
        assert_eq!(
            parse_cursor("1764530000123456.k3Xq9TzA1bWm"),
            Some((1_764_530_000_123_456, id))
        );
        for bad in ["", "1764530000", ".abc", "x.abc", "1.a/b", "-1.abc"] {
            assert_eq!(parse_cursor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn label_filters_are_key_value_pairs() {
        let labels = parse_labels("mode:duel,map:desert-2").unwrap();
        assert_eq!(
            (labels.get("mode"), labels.get("map")),
            (Some("duel"), Some("desert-2"))
        );
        for bad in ["", "mode", "mode:", "Mode:duel", "mode:duel,", "a:b c"] {
            assert!(parse_labels(bad).is_none(), "{bad:?}");
        }
    }
}
