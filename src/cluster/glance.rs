//! A one-off look at another node's room, for `GET /rooms/{id}/state`: its world now, read
//! from its stream (the newest keyframe and the deltas after it) without following the room.
//!
//! Following a room costs a reader with a Redis connection of its own for as long as it is
//! watched, so only streaming spectators (SSE, long-poll) start one. A poll is answered from
//! the room's follower when this node has one, else from a look that is kept for
//! [`FRESH_FOR`] and shared by every poll of the room meanwhile; looks are made one at a time,
//! so however many rooms are polled, polling adds at most one Redis command at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::directory::keys;
use super::store::{Store, StoreError};
use super::stream::{Keyframe, entries};
use crate::feed::{Event, Feed};
use crate::room::RoomId;

/// How long a look at a room is served before the next poll looks again.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(1);
/// Entries read at a time, newest first, while looking for the newest keyframe.
const PAGE: usize = 128;
/// How far back a keyframe is looked for, in entries (the owner writes one every 5 s).
const SEARCH: usize = 2048;
/// Rooms whose last look is kept.
const KEPT: usize = 1024;

/// What a look found.
#[derive(Debug, Clone)]
pub(crate) enum Seen {
    /// The room's snapshot now.
    State(Arc<Event>),
    /// The room has ended.
    Ended,
    /// Its stream holds no keyframe yet (it just opened).
    NotYet,
}

/// The looks of one node.
#[derive(Debug, Default)]
pub(crate) struct Glances {
    // A tokio Mutex, held across the read: looks are made one at a time.
    kept: tokio::sync::Mutex<HashMap<RoomId, (Instant, Seen)>>,
}

impl Glances {
    /// Room `room`'s state now, from a look at most [`FRESH_FOR`] old.
    pub(crate) async fn look(&self, store: &Store, room: &RoomId) -> Result<Seen, StoreError> {
        let mut kept = self.kept.lock().await;
        if let Some((at, seen)) = kept.get(room)
            && at.elapsed() < FRESH_FOR
        {
            return Ok(seen.clone());
        }
        let seen = read(store, room).await?;
        if kept.len() >= KEPT {
            kept.retain(|_, (at, _)| at.elapsed() < FRESH_FOR);
            if kept.len() >= KEPT {
                kept.clear();
            }
        }
        kept.insert(room.clone(), (Instant::now(), seen.clone()));
        Ok(seen)
    }
}

/// Reads room `room`'s stream back to its newest keyframe and applies what follows it.
async fn read(store: &Store, room: &RoomId) -> Result<Seen, StoreError> {
    let key = keys::events(room.as_str());
    // Newest first, a page at a time, until a keyframe.
    let mut newest_first = Vec::new();
    let mut end = "+".to_owned();
    let keyframe_at = loop {
        let reply: Value = store
            .query(
                redis::cmd("XREVRANGE")
                    .arg(&key)
                    .arg(&end)
                    .arg("-")
                    .arg("COUNT")
                    .arg(PAGE),
            )
            .await?;
        let page = entries(&reply);
        let full = page.len() == PAGE;
        if newest_first.is_empty() && page.first().is_some_and(|last| last.get("k") == Some(b"c")) {
            return Ok(Seen::Ended);
        }
        let before = newest_first.len();
        newest_first.extend(page);
        if let Some(i) = newest_first[before..].iter().position(|e| e.get("k") == Some(b"s")) {
            break before + i;
        }
        let Some(oldest) = newest_first.last() else {
            return Ok(Seen::NotYet);
        };
        if !full || newest_first.len() >= SEARCH {
            return Ok(Seen::NotYet);
        }
        // The next page ends just before the oldest entry read (`(` excludes it).
        end = format!("({}", oldest.id);
    };
    let Some(Keyframe {
        epoch,
        schema,
        mut world,
        ..
    }) = newest_first[keyframe_at].keyframe()
    else {
        return Ok(Seen::NotYet);
    };
    for entry in newest_first[..keyframe_at].iter().rev() {
        if entry.get("k") != Some(b"d") {
            continue;
        }
        // A gap after the keyframe: the world as of the keyframe is the newest known whole.
        let Some((_, next)) = entry.applied(&epoch, &world, &schema) else {
            break;
        };
        world = Arc::new(next);
    }
    // The snapshot is encoded as a feed encodes its own: same JSON, same id.
    let feed = Feed::new(epoch, world, 1, 0, schema, CancellationToken::new());
    Ok(Seen::State(feed.snapshot()))
}
