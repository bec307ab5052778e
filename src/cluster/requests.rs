//! Requests from one node to another through Redis: "create a room", "hold a place in your
//! room", "close your room". The asking node pushes the request on the owner's list
//! (`tickcast:node:{node}:requests`) with a reply key of its own, and waits on that key for at
//! most [`ANSWER_WITHIN`]; the owner pops requests, does them and pushes the answer. A request
//! that finds no live owner, or no answer in time, is the caller's 503 with a reason. Lists
//! (unlike pub/sub) keep a request that arrives while the owner is reconnecting, and expire
//! when nobody reads them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::directory::{RoomRecord, keys};
use super::store::Store;
use crate::room::{RoomId, Settings};

/// How long a node waits for another's answer.
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// How long an unread request or answer stays in Redis.
const LIST_TTL: Duration = Duration::from_secs(10);
/// How long the serving loop blocks on its list at a time.
pub(crate) const BLOCK: Duration = Duration::from_millis(1000);

/// What one node asks another.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Ask {
    /// Open a room with these settings (and hold a place in it for `hold`, for matchmaking).
    Create { settings: Settings, hold: Option<String> },
    /// Hold a place in room `room` for `name` (matchmaking).
    Hold { room: RoomId, name: String },
    /// Close room `room`.
    Close { room: RoomId },
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Answer {
    /// Done; the room as it is now (none for a close).
    Done(Option<RoomRecord>),
    /// Refused, with the HTTP status the asker should answer and why.
    Refused { status: u16, message: String },
}

/// A request as it travels: what to do and where to answer.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    reply: String,
    ask: Ask,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AskError {
    /// Redis failed.
    #[error("the cluster's Redis is unavailable: {0}")]
    Redis(String),
    /// The other node did not answer in time.
    #[error("node {0} did not answer within {1:?}")]
    NoAnswer(String, Duration),
}

/// Asks `node` and waits for its answer.
pub(crate) async fn ask(store: &Store, node: &str, ask: Ask) -> Result<Answer, AskError> {
    let reply = keys::reply(&format!("{:032x}", rand::random::<u128>()));
    let envelope = serde_json::to_string(&Envelope {
        reply: reply.clone(),
        ask,
    })
    .expect("requests serialize");
    let redis_err = |e: super::store::StoreError| AskError::Redis(e.to_string());
    let list = keys::requests(node);
    let mut pipe = redis::pipe();
    pipe.cmd("RPUSH")
        .arg(&list)
        .arg(envelope)
        .ignore()
        .cmd("PEXPIRE")
        .arg(&list)
        .arg(LIST_TTL.as_millis() as u64)
        .ignore();
    store.pipe::<()>(&pipe).await.map_err(redis_err)?;
    let mut con = store.dedicated(ANSWER_WITHIN).await.map_err(redis_err)?;
    let popped: Option<(String, String)> = con
        .query(redis::cmd("BLPOP").arg(&reply).arg(ANSWER_WITHIN.as_secs_f64()))
        .await
        .map_err(redis_err)?;
    let Some((_, answer)) = popped else {
        return Err(AskError::NoAnswer(node.into(), ANSWER_WITHIN));
    };
    serde_json::from_str(&answer).map_err(|e| AskError::Redis(format!("a malformed answer: {e}")))
}

/// Waits for the next request to `node` (up to [`BLOCK`]); `Ok(None)` if none came.
pub(crate) async fn next(
    con: &mut super::store::Dedicated,
    node: &str,
) -> Result<Option<(String, Ask)>, super::store::StoreError> {
    let popped: Option<(String, String)> = con
        .query(redis::cmd("BLPOP").arg(keys::requests(node)).arg(BLOCK.as_secs_f64()))
        .await?;
    // A request that does not parse (another version's) is dropped: its asker times out.
    Ok(popped
        .and_then(|(_, json)| serde_json::from_str::<Envelope>(&json).ok())
        .map(|e| (e.reply, e.ask)))
}

/// Sends `answer` to the asker waiting on `reply`.
pub(crate) async fn answer(store: &Store, reply: &str, answer: &Answer) {
    let json = serde_json::to_string(answer).expect("answers serialize");
    let mut pipe = redis::pipe();
    pipe.cmd("RPUSH")
        .arg(reply)
        .arg(json)
        .ignore()
        .cmd("PEXPIRE")
        .arg(reply)
        .arg(LIST_TTL.as_millis() as u64)
        .ignore();
    // If this fails the asker times out and says so.
    let _ = store.pipe::<()>(&pipe).await;
}
