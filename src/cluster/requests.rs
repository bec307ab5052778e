//! Requests from one node to another through Redis: "create a room", "hold a place in your
//! room", "close your room".
//!
//! The asking node pushes the request on the owner's list (`tickcast:node:{node}:requests`),
//! naming itself and a request id, and waits for at most [`ANSWER_WITHIN`]; the owner pops
//! requests, does them and pushes each answer on the asker's reply list
//! (`tickcast:node:{node}:replies`). One reader per node pops its replies, on one connection
//! of its own, and hands each to the request waiting for it: however many HTTP requests ask
//! other nodes at once, a node holds two Redis connections for requests (one to serve, one for
//! replies), never one per request. At most [`MAX_WAITING`] requests wait at once; more are
//! refused at once (503). A request that finds no live owner, or no answer in time, is the
//! caller's 503 with a reason. Lists (unlike pub/sub) keep a request that arrives while the
//! owner is reconnecting, and expire when nobody reads them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::directory::{RoomRecord, keys};
use super::store::{Dedicated, Store, StoreError};
use super::{Cluster, unix_ms_of};
use crate::protocol::ended::Ended;
use crate::room::Opener;
use crate::room::{OpenedBy, RoomId, RoomKey, Settings};

/// How long a node waits for another's answer.
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// How long an unread request or answer stays in Redis.
const LIST_TTL: Duration = Duration::from_secs(10);
/// How long the serving loop and the reply reader block on their list at a time.
pub(crate) const BLOCK: Duration = Duration::from_millis(1000);
/// Requests of this node waiting for their answers at once.
pub(crate) const MAX_WAITING: usize = 256;

/// What one node asks another.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Ask {
    /// Open a room with these settings for `by`, with `key` (and hold a place in it for
    /// `hold`, for matchmaking).
    Create {
        settings: Settings,
        hold: Option<String>,
        by: OpenedBy,
        key: Option<RoomKey>,
    },
    /// Hold a place in room `room` for `name` (matchmaking).
    Hold { room: RoomId, name: String },
    /// Close room `room`: for the admin, or for the bearer of `key` if it is the room's.
    Close { room: RoomId, admin: bool, key: String },
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Answer {
    /// Done; the room as it is now (none for a close), and until when (Unix milliseconds) a
    /// place asked for is held.
    Done {
        room: Option<Box<RoomRecord>>,
        held_until_ms: Option<u64>,
    },
    /// Refused, with the HTTP status the asker should answer and why.
    Refused { status: u16, message: String },
}

/// A request as it travels: what to do, and where the answer goes.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The asking node (its reply list).
    from: String,
    id: u64,
    ask: Ask,
}

/// An answer as it travels back.
#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    id: u64,
    answer: Answer,
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
    /// This node has [`MAX_WAITING`] requests waiting already.
    #[error("this node is waiting on {0} requests to other nodes: try again shortly")]
    Busy(usize),
}

/// A request served: where its answer goes.
#[derive(Debug)]
pub(crate) struct Incoming {
    from: String,
    id: u64,
}

/// This node's requests to others, and the one reader of their answers.
pub(crate) struct Asker {
    node: String,
    store: Store,
    // A std Mutex: inserts and removals only, never held across an await.
    waiting: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    next_id: AtomicU64,
}

impl Asker {
    /// Requests of `node`, through `store`.
    pub(crate) fn new(node: String, store: Store) -> Arc<Self> {
        Arc::new(Self {
            node,
            store,
            waiting: Mutex::default(),
            // A random start: a reply meant for an earlier run of this node id matches nothing.
            next_id: AtomicU64::new(rand::random()),
        })
    }

    /// Asks `node` and waits for its answer.
    pub(crate) async fn ask(&self, node: &str, ask: Ask) -> Result<Answer, AskError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut waiting = self.lock();
            if waiting.len() >= MAX_WAITING {
                return Err(AskError::Busy(MAX_WAITING));
            }
            waiting.insert(id, tx);
        }
        // Removes the entry however this ends (answered, timed out, the caller gone).
        let _forget = Forget { asker: self, id };
        let envelope = Envelope {
            from: self.node.clone(),
            id,
            ask,
        };
        let list = keys::requests(node);
        push(
            &self.store,
            &list,
            &serde_json::to_string(&envelope).expect("requests serialize"),
        )
        .await
        .map_err(|e| AskError::Redis(e.to_string()))?;
        match tokio::time::timeout(ANSWER_WITHIN, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => Err(AskError::NoAnswer(node.into(), ANSWER_WITHIN)),
        }
    }

    /// Reads this node's replies and hands each to its request, until `stop`.
    pub(crate) async fn read_replies(self: Arc<Self>, stop: CancellationToken) {
        let list = keys::replies(&self.node);
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut con = tokio::select! {
                con = self.store.dedicated(BLOCK) => con,
                () = stop.cancelled() => return,
            };
            let Ok(con) = con.as_mut() else {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            };
            backoff = Duration::from_millis(100);
            loop {
                let popped = tokio::select! {
                    popped = pop(con, &list) => popped,
                    () = stop.cancelled() => return,
                };
                match popped {
                    Ok(Some(json)) => {
                        // A reply that does not parse (another version's) is dropped: its asker
                        // times out.
                        if let Ok(reply) = serde_json::from_str::<Reply>(&json)
                            && let Some(waiter) = self.lock().remove(&reply.id)
                        {
                            let _ = waiter.send(reply.answer);
                        }
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<Answer>>> {
        // Nothing panics while holding it (map inserts and removals).
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Forgets a waiting request when dropped.
struct Forget<'a> {
    asker: &'a Asker,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.asker.lock().remove(&self.id);
    }
}

/// Waits for the next request to `node` (up to [`BLOCK`]); `Ok(None)` if none came.
pub(crate) async fn next(con: &mut Dedicated, node: &str) -> Result<Option<(Incoming, Ask)>, StoreError> {
    let json = pop(con, &keys::requests(node)).await?;
    // A request that does not parse (another version's) is dropped: its asker times out.
    Ok(json
        .and_then(|json| serde_json::from_str::<Envelope>(&json).ok())
        .map(|e| (Incoming { from: e.from, id: e.id }, e.ask)))
}

/// Sends `answer` to the node that asked.
pub(crate) async fn answer(store: &Store, to: &Incoming, answer: Answer) {
    let reply = Reply { id: to.id, answer };
    let json = serde_json::to_string(&reply).expect("answers serialize");
    // If this fails the asker times out and says so.
    let _ = push(store, &keys::replies(&to.from), &json).await;
}

/// Pushes `json` on `list`, which expires unless read.
async fn push(store: &Store, list: &str, json: &str) -> Result<(), StoreError> {
    let mut pipe = redis::pipe();
    pipe.cmd("RPUSH")
        .arg(list)
        .arg(json)
        .ignore()
        .cmd("PEXPIRE")
        .arg(list)
        .arg(LIST_TTL.as_millis() as u64)
        .ignore();
    store.pipe::<()>(&pipe).await
}

/// Pops the head of `list`, waiting up to [`BLOCK`].
async fn pop(con: &mut Dedicated, list: &str) -> Result<Option<String>, StoreError> {
    let popped: Option<(String, String)> = con
        .query(redis::cmd("BLPOP").arg(list).arg(BLOCK.as_secs_f64()))
        .await?;
    Ok(popped.map(|(_, json)| json))
}

/// Requests from other nodes handled at once.
const CONCURRENT_REQUESTS: usize = 64;

impl Cluster {
    /// Serves other nodes' requests until the server stops.
    pub(super) async fn serve_requests(self: Arc<Self>) {
        let places = Arc::new(Semaphore::new(CONCURRENT_REQUESTS));
        let mut backoff = Duration::from_millis(100);
        'connect: loop {
            let mut con = tokio::select! {
                con = self.store.dedicated(BLOCK) => match con {
                    Ok(con) => con,
                    Err(_) => {
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = self.shutdown.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue 'connect;
                    }
                },
                () = self.shutdown.cancelled() => return,
            };
            backoff = Duration::from_millis(100);
            loop {
                let next = tokio::select! {
                    next = next(&mut con, &self.node) => next,
                    () = self.shutdown.cancelled() => return,
                };
                let (reply, ask): (Incoming, Ask) = match next {
                    Ok(Some(request)) => request,
                    Ok(None) => continue,
                    Err(_) => continue 'connect,
                };
                let Ok(place) = places.clone().try_acquire_owned() else {
                    let busy = Answer::Refused {
                        status: 503,
                        message: format!("node {} is busy: try again", self.node),
                    };
                    answer(&self.store, &reply, busy).await;
                    continue;
                };
                let cluster = self.clone();
                self.tasks.spawn(async move {
                    let answered = cluster.handle(ask).await;
                    answer(&cluster.store, &reply, answered).await;
                    drop(place);
                });
            }
        }
    }

    /// Does what another node asked.
    async fn handle(&self, ask: Ask) -> Answer {
        let refused = |status: u16, message: String| Answer::Refused { status, message };
        let done = |room: Option<RoomRecord>, until: Option<Instant>| Answer::Done {
            room: room.map(Box::new),
            held_until_ms: until.map(unix_ms_of),
        };
        match ask {
            Ask::Create {
                settings,
                hold,
                by,
                key,
            } => {
                if !self.hosts_rooms {
                    return refused(503, format!("node {} takes no rooms", self.node));
                }
                let opener = Opener { by, key, budget: None };
                match self.rooms.create(settings, None, opener) {
                    Ok(room) => {
                        // A hold from another node counts against its caller there.
                        let until = hold.and_then(|name| room.places().hold(&name, Instant::now(), None).ok());
                        self.adopt(&room).await;
                        done(Some(self.room_record(&room)), until)
                    }
                    Err(err) => refused(err.status(), err.to_string()),
                }
            }
            Ask::Hold { room, name } => match self.rooms.get(&room) {
                Some(room) if room.ended().is_none() => match room.places().hold(&name, Instant::now(), None) {
                    Ok(until) => done(Some(self.room_record(&room)), Some(until)),
                    Err(err) => refused(409, format!("room {}: {err}", room.id())),
                },
                _ => refused(404, format!("no room {room}")),
            },
            Ask::Close { room, admin, key } => match self.rooms.get(&room) {
                Some(r) if r.is_default() && admin => refused(409, "the default room cannot be closed".into()),
                Some(r) if admin || r.opens_with(&key) => {
                    r.end(Ended::Closed);
                    done(None, None)
                }
                Some(r) => refused(
                    403,
                    format!(
                        "that credential does not close room {}: it takes the room's key or the admin secret",
                        r.id()
                    ),
                ),
                None => refused(404, format!("no room {room}")),
            },
        }
    }
}
