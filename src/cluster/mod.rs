//! A cluster of tickcast nodes on Redis (`--redis`): rooms placed on the least-loaded node,
//! listed, found, closed and spectated from any node. Without `--redis` none of this runs and
//! the server needs nothing but itself.
//!
//! What each part does:
//! - [`directory`]: every node's liveness and load, and each room's owner, in Redis records
//!   that expire unless refreshed, so a dead node's rooms vanish within [`directory::EXPIRY`];
//! - [`requests`]: one node asking another to create a room, hold a place or close a room;
//! - [`replica`]: an owner copying each room's spectator events to the room's Redis stream;
//! - [`mirror`]: any other node rebuilding a room's feed from that stream for its spectators.
//!
//! A player always connects to the room's owner; no node carries another's player traffic.
//! Nothing in a room's tick loop waits for Redis: a room keeps ticking, and its players
//! playing, while Redis is away; the node re-registers within a second of Redis returning.

pub(crate) mod directory;
pub(crate) mod glance;
mod heartbeat;
pub(crate) mod mirror;
mod placement;
pub(crate) mod replica;
pub(crate) mod requests;
pub(crate) mod store;
pub(crate) mod stream;

pub(crate) use self::heartbeat::forget_room;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::directory::{EXPIRY, NodeRecord, RoomRecord, keys};
use self::glance::Glances;
use self::mirror::Mirror;
use self::requests::{AskError, Asker};
use self::store::{Store, StoreError};
use crate::access::budgets::{Bucket, Held};
use crate::metrics::Metrics;
use crate::protocol::ended::Ended;
use crate::protocol::unix_micros;
use crate::room::{Room, RoomId, Tuning};
use crate::rooms::{CreateError, Rooms};
use crate::runtime::Runtime;

/// How long a spectator request waits for a followed room's first keyframe.
const FIRST_KEYFRAME_WITHIN: Duration = Duration::from_secs(3);
/// How long where a room lives (or that it is nowhere) is remembered: requests for the same
/// room within it ask Redis nothing.
const LOCATED_FOR: Duration = Duration::from_secs(1);
/// Rooms whose place is remembered at once.
const LOCATED: usize = 8192;
/// Directory lookups of rooms not remembered, per second (and at once): a flood of made-up
/// room ids gets 503 beyond it instead of a Redis command each.
const LOOKUPS_PER_SECOND: u32 = 500;

/// This node's part in the cluster.
pub(crate) struct Cluster {
    node: String,
    /// The base URL clients reach this node at.
    url: String,
    /// Whether it takes rooms (not a `--no-rooms` spectator edge).
    hosts_rooms: bool,
    /// `--max-rooms`: the most this node takes.
    max_rooms: usize,
    /// `--max-followed-rooms`.
    max_followed_rooms: usize,
    /// How rooms run (the history a follower keeps, the stream an owner keeps).
    tuning: Tuning,
    store: Store,
    /// This node's requests to others.
    asker: Arc<Asker>,
    rooms: Arc<Rooms>,
    metrics: Arc<Metrics>,
    mirrors: Mutex<HashMap<RoomId, Arc<Mirror>>>,
    /// One-off looks at other nodes' rooms (polls).
    glances: Glances,
    /// Where rooms were found lately (`None`: nowhere), and when.
    located: Mutex<HashMap<RoomId, (Instant, Option<RoomRecord>)>>,
    /// Lookups of rooms not remembered.
    lookups: Mutex<Bucket>,
    /// What rooms placed on other nodes hold of their anonymous creators' budgets here, until
    /// they leave the directory.
    placed_elsewhere: Mutex<HashMap<RoomId, Held>>,
    /// Wakes the heartbeat at once (a room opened or ended).
    beat: Notify,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// This node, as its cluster knows it (from the server's flags).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// `--node-id`.
    pub(crate) id: String,
    /// The base URL clients reach it at (`--public-url`).
    pub(crate) url: String,
    /// Whether it takes rooms (not `--no-rooms`).
    pub(crate) hosts_rooms: bool,
    /// `--max-rooms`.
    pub(crate) max_rooms: usize,
    /// `--max-followed-rooms`.
    pub(crate) max_followed_rooms: usize,
}

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the cluster's Redis at {url}: {source}")]
pub struct JoinError {
    url: String,
    #[source]
    source: StoreError,
}

/// Checks that the cluster's Redis at `url` answers, before a node opens its port: a node that
/// cannot join its cluster exits without ever accepting a connection.
pub(crate) async fn reachable(url: &str) -> Result<(), JoinError> {
    Store::connect(url, Arc::default())
        .await
        .map(drop)
        .map_err(|source| JoinError {
            url: url.into(),
            source,
        })
}

/// Where a room lives, as the directory says.
#[derive(Debug, Clone)]
pub(crate) enum Placed {
    /// On this node.
    Here(Arc<Room>),
    /// On another node.
    There(Box<RoomRecord>),
}

/// Why a cluster operation failed: the HTTP status to answer and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn unavailable(err: impl std::fmt::Display) -> Self {
        Self::new(503, err.to_string())
    }
}

impl From<CreateError> for Refusal {
    fn from(err: CreateError) -> Self {
        Self::new(err.status(), err.to_string())
    }
}

impl From<AskError> for Refusal {
    fn from(err: AskError) -> Self {
        Self::unavailable(err)
    }
}

impl Cluster {
    /// Joins the cluster on `url` (`--redis`) as node `node`, reachable at `public_url`:
    /// registers at once and starts the heartbeat and the request loop on `tasks`. Fails if
    /// Redis does not answer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn join(
        url: &str,
        node: Node,
        rooms: Arc<Rooms>,
        runtime: Runtime,
    ) -> Result<Arc<Self>, JoinError> {
        let Runtime {
            metrics,
            tasks,
            shutdown,
        } = runtime;
        let store = Store::connect(url, metrics.clone()).await.map_err(|source| JoinError {
            url: url.into(),
            source,
        })?;
        let cluster = Arc::new(Self {
            asker: Asker::new(node.id.clone(), store.clone()),
            node: node.id,
            url: node.url,
            hosts_rooms: node.hosts_rooms,
            max_rooms: node.max_rooms,
            max_followed_rooms: node.max_followed_rooms,
            tuning: *rooms.tuning(),
            store,
            rooms,
            metrics,
            mirrors: Mutex::default(),
            glances: Glances::default(),
            located: Mutex::default(),
            lookups: Mutex::new(Bucket::new(
                f64::from(LOOKUPS_PER_SECOND),
                LOOKUPS_PER_SECOND,
                Instant::now(),
            )),
            placed_elsewhere: Mutex::default(),
            beat: Notify::new(),
            tasks: tasks.clone(),
            shutdown,
        });
        cluster.heartbeat().await.map_err(|source| JoinError {
            url: url.into(),
            source,
        })?;
        tasks.spawn(cluster.clone().heartbeats());
        tasks.spawn(cluster.clone().serve_requests());
        tasks.spawn(cluster.asker.clone().read_replies(cluster.shutdown.clone()));
        tracing::info!(node = %cluster.node, "joined the cluster");
        Ok(cluster)
    }

    /// This node's id.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// Where room `id` lives: here, on another live node, or nowhere.
    /// What was found is remembered for [`LOCATED_FOR`]; lookups of rooms not remembered are
    /// bounded by [`LOOKUPS_PER_SECOND`] (503 beyond).
    pub(crate) async fn locate(&self, id: &RoomId) -> Result<Option<Placed>, Refusal> {
        if let Some(room) = self.rooms.get(id) {
            return Ok(Some(Placed::Here(room)));
        }
        let now = Instant::now();
        if let Some((at, record)) = lock(&self.located).get(id)
            && now.saturating_duration_since(*at) < LOCATED_FOR
        {
            return Ok(record.clone().map(|r| Placed::There(Box::new(r))));
        }
        if let Err(wait) = lock(&self.lookups).take(now) {
            let message = format!(
                "too many lookups of rooms right now: try again in {}ms",
                wait.as_millis()
            );
            return Err(Refusal::new(503, message));
        }
        let record = directory::room(&self.store, id).await.map_err(Refusal::unavailable)?;
        let record = record.filter(|r| r.node != self.node);
        let mut located = lock(&self.located);
        if located.len() >= LOCATED {
            located.retain(|_, (at, _)| now.saturating_duration_since(*at) < LOCATED_FOR);
            if located.len() >= LOCATED {
                located.clear();
            }
        }
        located.insert(id.clone(), (now, record.clone()));
        Ok(record.map(|r| Placed::There(Box::new(r))))
    }

    /// Every room of the cluster (this node's as they are now, the others' as their owners
    /// last said), with the spectators every node serves of each counted in.
    pub(crate) async fn list(&self) -> Result<Vec<RoomRecord>, Refusal> {
        let nodes = directory::live_nodes(&self.store).await.map_err(Refusal::unavailable)?;
        let others: Vec<NodeRecord> = nodes.iter().filter(|n| n.id != self.node).cloned().collect();
        let mut following: BTreeMap<&RoomId, usize> = BTreeMap::new();
        for node in &nodes {
            for (room, n) in &node.following {
                *following.entry(room).or_default() += n;
            }
        }
        let remote = directory::rooms_of(&self.store, &others)
            .await
            .map_err(Refusal::unavailable)?;
        let mut records: Vec<RoomRecord> = self.rooms.all().iter().map(|room| self.room_record(room)).collect();
        records.extend(remote);
        for record in &mut records {
            record.summary.spectators += following.get(&record.summary.id).copied().unwrap_or(0);
        }
        Ok(records)
    }

    /// The record of one of this node's rooms.
    pub(crate) fn room_record(&self, room: &Room) -> RoomRecord {
        RoomRecord {
            node: self.node.clone(),
            url: self.url.clone(),
            summary: room.summary(),
            created_us: room.created_us(),
            last_results: room.results().map(|r| (*r).clone()),
        }
    }

    /// Leaves the cluster cleanly (the server is stopping): this node's rooms end their
    /// streams and leave the directory, and the node's records go at once.
    pub(crate) async fn leave(&self) {
        let rooms = self.rooms.all();
        let mut pipe = redis::pipe();
        for room in &rooms {
            let json = format!(r#"{{"reason":"{}"}}"#, Ended::Shutdown.close().1);
            pipe.cmd("XADD")
                .arg(keys::events(room.id().as_str()))
                .arg("*")
                .arg("e")
                .arg(room.feed().epoch().as_str())
                .arg("k")
                .arg("c")
                .arg("n")
                .arg("closed")
                .arg("j")
                .arg(json)
                .ignore();
            pipe.cmd("DEL").arg(keys::room(room.id().as_str())).ignore();
        }
        pipe.cmd("DEL")
            .arg(keys::node(&self.node))
            .arg(keys::node_rooms(&self.node))
            .ignore()
            .cmd("SREM")
            .arg(keys::NODES)
            .arg(&self.node)
            .ignore();
        match self.store.pipe::<()>(&pipe).await {
            Ok(()) => tracing::info!(node = %self.node, "left the cluster"),
            Err(err) => tracing::warn!(%err, "could not leave the cluster cleanly: its records expire in {EXPIRY:?}"),
        }
    }

    /// This node as the directory shows it.
    fn record(&self) -> NodeRecord {
        let rooms = self.rooms.all();
        let following = self
            .lock_mirrors()
            .iter()
            .filter(|(_, m)| !m.ended())
            .filter_map(|(id, m)| m.spectators().map(|n| (id.clone(), n)))
            .collect();
        NodeRecord {
            id: self.node.clone(),
            url: self.url.clone(),
            hosts_rooms: self.hosts_rooms,
            players: self.metrics.players.get().max(0) as usize,
            rooms: rooms.len(),
            max_rooms: self.max_rooms,
            spectators: (self.metrics.spectators_sse.get() + self.metrics.spectators_longpoll.get()).max(0) as usize,
            tick_overruns: self.metrics.tick_overruns.get(),
            beat_ms: unix_micros() / 1000,
            room_ids: rooms.iter().map(|r| r.id().clone()).collect(),
            following,
        }
    }

    fn lock_placed(&self) -> MutexGuard<'_, HashMap<RoomId, Held>> {
        // Nothing panics while holding it (map inserts and removals).
        self.placed_elsewhere
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_mirrors(&self) -> MutexGuard<'_, HashMap<RoomId, Arc<Mirror>>> {
        // Nothing panics while holding it (map lookups and inserts).
        self.mirrors.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these (map lookups, inserts and removals, a bucket update).
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The instant of `unix_ms` (Unix milliseconds) on this node's monotonic clock.
fn instant_of(unix_ms: u64) -> Instant {
    let now_ms = unix_micros() / 1000;
    let now = Instant::now();
    match unix_ms.checked_sub(now_ms) {
        Some(ahead) => now + Duration::from_millis(ahead),
        None => now.checked_sub(Duration::from_millis(now_ms - unix_ms)).unwrap_or(now),
    }
}

/// `at` as Unix milliseconds.
fn unix_ms_of(at: Instant) -> u64 {
    let now = Instant::now();
    let now_ms = unix_micros() / 1000;
    if at >= now {
        now_ms + (at - now).as_millis() as u64
    } else {
        now_ms.saturating_sub((now - at).as_millis() as u64)
    }
}

/// A fresh node id: `node-` and 8 hex digits.
pub(crate) fn generated_node_id() -> String {
    format!("node-{:08x}", rand::random::<u32>())
}

/// Checks a `--node-id`: 1 to 24 of `A-Z a-z 0-9 _ -` (so that `default-<node>` is a room id).
pub(crate) fn valid_node_id(id: &str) -> bool {
    (1..=24).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
