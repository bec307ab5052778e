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
pub(crate) mod mirror;
pub(crate) mod replica;
pub(crate) mod requests;
pub(crate) mod store;
pub(crate) mod stream;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::directory::{EXPIRY, NodeRecord, REFRESH, RoomRecord, keys};
use self::glance::{Glances, Seen};
use self::mirror::Mirror;
use self::requests::{Answer, Ask, AskError, Asker, Incoming};
use self::store::{Store, StoreError};
use crate::access::budgets::{Bucket, Held, HoldClaim};
use crate::config::Config;
use crate::feed::Feed;
use crate::metrics::Metrics;
use crate::protocol::ended::Ended;
use crate::protocol::unix_micros;
use crate::room::{Opener, Room, RoomId, Settings};
use crate::rooms::{CreateError, Rooms};

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
/// Requests from other nodes handled at once.
const CONCURRENT_REQUESTS: usize = 64;

/// This node's part in the cluster.
pub(crate) struct Cluster {
    node: String,
    /// The base URL clients reach this node at.
    url: String,
    store: Store,
    /// This node's requests to others.
    asker: Arc<Asker>,
    rooms: Arc<Rooms>,
    config: Config,
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
    There(RoomRecord),
}

/// Why a cluster operation failed: the HTTP status to answer and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) message: String,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Self {
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
        node: String,
        public_url: String,
        config: Config,
        rooms: Arc<Rooms>,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, JoinError> {
        let store = Store::connect(url, metrics.clone()).await.map_err(|source| JoinError {
            url: url.into(),
            source,
        })?;
        let cluster = Arc::new(Self {
            asker: Asker::new(node.clone(), store.clone()),
            node,
            url: public_url,
            store,
            rooms,
            config,
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

    /// Puts a room of this node in the directory and starts copying its spectator events to
    /// its stream (once; the heartbeat retries a room whose first registration failed).
    pub(crate) async fn adopt(&self, room: &Arc<Room>) {
        if !room.feed().is_replicated() {
            let keep = self.config.spectator_ring(room.settings().tick_hz) + 64;
            let writer = replica::start(
                self.store.clone(),
                self.node.clone(),
                room.id().to_string(),
                room.feed(),
                room.settings().tick_hz,
                keep,
                self.metrics.clone(),
            );
            self.tasks.spawn(writer);
        }
        let mut pipe = redis::pipe();
        pipe.cmd("SADD")
            .arg(keys::node_rooms(&self.node))
            .arg(room.id().as_str())
            .ignore();
        self.set_room(&mut pipe, room);
        let _ = self.store.pipe::<()>(&pipe).await;
        self.beat.notify_one();
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
            return Ok(record.clone().map(Placed::There));
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
        Ok(record.map(Placed::There))
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
            record.info.spectators += following.get(&record.info.id).copied().unwrap_or(0);
        }
        Ok(records)
    }

    /// Opens a room with `settings` for `opener` on the least-loaded live node that takes rooms
    /// (this one included), holding a place in it for `hold` if given; returns the room and
    /// until when the place is held. A node that does not answer in time is passed over for
    /// the next one, once.
    pub(crate) async fn place(
        &self,
        settings: Settings,
        hold: Option<(&str, HoldClaim)>,
        opener: Opener,
    ) -> Result<(Placed, Option<Instant>), Refusal> {
        let nodes = directory::live_nodes(&self.store).await.map_err(Refusal::unavailable)?;
        // This node's own load is the freshest there is.
        let mut nodes: Vec<NodeRecord> = nodes.into_iter().filter(|n| n.id != self.node).collect();
        nodes.push(self.record());
        let now_ms = unix_micros() / 1000;
        let mut tries = 0;
        loop {
            let Some(target) = directory::least_loaded(&nodes, now_ms).cloned() else {
                return Err(Refusal::new(
                    503,
                    "no node of the cluster can take a room now: try again later",
                ));
            };
            if target.id == self.node {
                let room = self.rooms.create(settings, None, opener)?;
                let until = hold.and_then(|(name, claim)| room.seats().hold(name, Instant::now(), Some(claim)).ok());
                self.adopt(&room).await;
                return Ok((Placed::Here(room), until));
            }
            let ask = Ask::Create {
                settings: settings.clone(),
                hold: hold.as_ref().map(|(name, _)| (*name).to_owned()),
                by: opener.by,
                key: opener.key.clone(),
            };
            match self.ask(&target.id, ask).await {
                Ok(Answer::Done {
                    room: Some(record),
                    held_until_ms,
                }) => {
                    if let Some(budget) = opener.budget {
                        self.lock_placed().insert(record.info.id.clone(), budget);
                    }
                    return Ok((Placed::There(record), held_until_ms.map(instant_of)));
                }
                Ok(Answer::Done { room: None, .. }) => {
                    return Err(Refusal::new(502, "the other node answered without its room"));
                }
                Ok(Answer::Refused { status, message }) => return Err(Refusal::new(status, message)),
                // Killed since its last heartbeat, perhaps: the next node, once.
                Err(AskError::NoAnswer(..)) if tries == 0 => {
                    tries += 1;
                    nodes.retain(|n| n.id != target.id);
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Holds a place for `name` in another node's room; returns the room and until when the
    /// place is held, `Ok(None)` if it has none free.
    pub(crate) async fn hold(&self, record: &RoomRecord, name: &str) -> Result<Option<(RoomRecord, Instant)>, Refusal> {
        let ask = Ask::Hold {
            room: record.info.id.clone(),
            name: name.into(),
        };
        match self.ask(&record.node, ask).await? {
            Answer::Done {
                room: Some(room),
                held_until_ms: Some(until),
            } => Ok(Some((room, instant_of(until)))),
            Answer::Done { .. } => Err(Refusal::new(502, "the other node answered without its room")),
            Answer::Refused { status: 409, .. } => Ok(None),
            Answer::Refused { status, message } => Err(Refusal::new(status, message)),
        }
    }

    /// Closes another node's room, for the admin or the bearer of `key` (the owner checks it).
    pub(crate) async fn close(&self, record: &RoomRecord, admin: bool, key: &str) -> Result<(), Refusal> {
        let ask = Ask::Close {
            room: record.info.id.clone(),
            admin,
            key: key.to_owned(),
        };
        match self.ask(&record.node, ask).await? {
            Answer::Done { .. } => Ok(()),
            Answer::Refused { status, message } => Err(Refusal::new(status, message)),
        }
    }

    /// The feed of another node's room, followed here from its stream.
    /// This node follows at most `--max-followed-rooms` rooms at once; a spectator of one more
    /// gets 503.
    pub(crate) async fn follow(&self, record: &RoomRecord) -> Result<Arc<Feed>, Refusal> {
        let mirror = {
            let mut mirrors = self.lock_mirrors();
            mirrors.retain(|_, m| !m.ended());
            match mirrors.get(&record.info.id) {
                Some(mirror) => mirror.clone(),
                None if mirrors.len() >= self.config.max_followed_rooms => {
                    let message = format!(
                        "this node follows its maximum of {} rooms of other nodes: try again shortly, or watch room {} on its node",
                        self.config.max_followed_rooms, record.info.id
                    );
                    return Err(Refusal::new(503, message));
                }
                None => {
                    let (mirror, reader) = Mirror::start(
                        self.store.clone(),
                        record.info.id.clone(),
                        &self.config,
                        self.metrics.clone(),
                        self.shutdown.clone(),
                    );
                    self.tasks.spawn(reader);
                    mirrors.insert(record.info.id.clone(), mirror.clone());
                    mirror
                }
            }
        };
        mirror.feed(FIRST_KEYFRAME_WITHIN).await.ok_or_else(|| {
            Refusal::new(
                503,
                format!(
                    "room {}'s spectator stream is not available yet: try again",
                    record.info.id
                ),
            )
        })
    }

    /// Another node's room as it is now, for a poll: from this node's follower of it if there
    /// is one, else from a one-off look at its stream ([`glance`]), which follows nothing.
    pub(crate) async fn glance(&self, record: &RoomRecord) -> Result<Seen, Refusal> {
        let followed = self.lock_mirrors().get(&record.info.id).cloned();
        if let Some(feed) = followed.and_then(|mirror| mirror.current_feed()) {
            return Ok(Seen::State(feed.snapshot()));
        }
        self.glances
            .look(&self.store, &record.info.id)
            .await
            .map_err(Refusal::unavailable)
    }

    /// The record of one of this node's rooms.
    pub(crate) fn room_record(&self, room: &Room) -> RoomRecord {
        RoomRecord {
            node: self.node.clone(),
            url: self.url.clone(),
            info: room.info(),
            created_us: room.created_us(),
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
                .arg(room.feed().current().0.as_str())
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
            hosts_rooms: !self.config.no_rooms,
            players: self.metrics.players.get().max(0) as usize,
            rooms: rooms.len(),
            max_rooms: self.config.max_rooms,
            spectators: (self.metrics.spectators_sse.get() + self.metrics.spectators_longpoll.get()).max(0) as usize,
            tick_overruns: self.metrics.tick_overruns.get(),
            beat_ms: unix_micros() / 1000,
            room_ids: rooms.iter().map(|r| r.id().clone()).collect(),
            following,
        }
    }

    /// Adds "SET room:{id} <record> PX <expiry>" to `pipe`.
    fn set_room(&self, pipe: &mut redis::Pipeline, room: &Room) {
        let json = serde_json::to_string(&self.room_record(room)).expect("records serialize");
        pipe.cmd("SET")
            .arg(keys::room(room.id().as_str()))
            .arg(json)
            .arg("PX")
            .arg(EXPIRY.as_millis() as u64)
            .ignore();
    }

    /// Refreshes this node's records (and its rooms'), then sweeps nodes that died.
    async fn heartbeat(&self) -> Result<(), StoreError> {
        let rooms = self.rooms.all();
        for room in rooms.iter().filter(|r| !r.feed().is_replicated()) {
            // Opened while Redis was away, or by a path that did not adopt it.
            self.adopt(room).await;
        }
        let record = serde_json::to_string(&self.record()).expect("records serialize");
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(keys::node(&self.node))
            .arg(record)
            .arg("PX")
            .arg(EXPIRY.as_millis() as u64)
            .ignore()
            .cmd("SADD")
            .arg(keys::NODES)
            .arg(&self.node)
            .ignore();
        for room in &rooms {
            self.set_room(&mut pipe, room);
            pipe.cmd("SADD")
                .arg(keys::node_rooms(&self.node))
                .arg(room.id().as_str())
                .ignore();
        }
        self.store.pipe::<()>(&pipe).await?;
        self.sweep().await
    }

    /// Every [`REFRESH`] (or at once when woken), until the server stops.
    /// While Redis is away, it tries every [`RETRY`] instead, so the node registers again
    /// within a fraction of a second of Redis coming back.
    async fn heartbeats(self: Arc<Self>) {
        const RETRY: Duration = Duration::from_millis(250);
        let mut every = tokio::time::interval(REFRESH);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = every.tick(), if !failing => {}
                () = tokio::time::sleep(RETRY), if failing => {}
                () = self.beat.notified() => {}
                () = self.shutdown.cancelled() => return,
            }
            let beat = self.heartbeat().await;
            if beat.is_ok() {
                self.forget_placed_elsewhere().await;
            }
            match (beat, failing) {
                (Err(err), false) => {
                    failing = true;
                    tracing::warn!(%err, "cluster heartbeat failed: this node's rooms carry on, and it re-registers when Redis is back");
                }
                (Ok(()), true) => {
                    failing = false;
                    tracing::info!(node = %self.node, "cluster heartbeat restored");
                }
                _ => {}
            }
        }
    }

    /// Gives back the budgets of anonymous rooms this node placed on others once those rooms
    /// have left the directory.
    async fn forget_placed_elsewhere(&self) {
        let placed: Vec<RoomId> = self.lock_placed().keys().cloned().collect();
        if placed.is_empty() {
            return;
        }
        let keys: Vec<String> = placed.iter().map(|id| keys::room(id.as_str())).collect();
        let Ok(records) = self
            .store
            .query::<Vec<Option<String>>>(redis::cmd("MGET").arg(&keys))
            .await
        else {
            return;
        };
        let mut budgets = self.lock_placed();
        for (id, record) in placed.iter().zip(records) {
            if record.is_none() {
                budgets.remove(id);
            }
        }
    }

    /// Ends the streams of dead nodes' rooms and forgets those nodes (one node per dead node
    /// does it, under a lock).
    async fn sweep(&self) -> Result<(), StoreError> {
        let ids: Vec<String> = self.store.query(redis::cmd("SMEMBERS").arg(keys::NODES)).await?;
        let records = directory::node_records(&self.store, &ids).await?;
        for (dead, _) in ids
            .iter()
            .zip(&records)
            .filter(|(id, r)| r.is_none() && **id != self.node)
        {
            let locked: Option<String> = self
                .store
                .query(
                    redis::cmd("SET")
                        .arg(keys::sweep(dead))
                        .arg(&self.node)
                        .arg("NX")
                        .arg("PX")
                        .arg(10_000),
                )
                .await?;
            if locked.is_none() {
                continue;
            }
            let rooms: Vec<String> = self
                .store
                .query(redis::cmd("SMEMBERS").arg(keys::node_rooms(dead)))
                .await?;
            let mut pipe = redis::pipe();
            for room in &rooms {
                // Followers end their spectators' streams with this.
                pipe.cmd("XADD")
                    .arg(keys::events(room))
                    .arg("*")
                    .arg("k")
                    .arg("c")
                    .arg("n")
                    .arg("closed")
                    .arg("j")
                    .arg(r#"{"reason":"room lost: its node stopped"}"#)
                    .ignore();
            }
            pipe.cmd("DEL")
                .arg(keys::node_rooms(dead))
                .ignore()
                .cmd("SREM")
                .arg(keys::NODES)
                .arg(dead)
                .ignore();
            self.store.pipe::<()>(&pipe).await?;
            tracing::warn!(node = %dead, rooms = rooms.len(), "a node of the cluster died: its rooms are gone");
        }
        Ok(())
    }

    /// Serves other nodes' requests until the server stops.
    async fn serve_requests(self: Arc<Self>) {
        let places = Arc::new(Semaphore::new(CONCURRENT_REQUESTS));
        let mut backoff = Duration::from_millis(100);
        'connect: loop {
            let mut con = tokio::select! {
                con = self.store.dedicated(requests::BLOCK) => match con {
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
                    next = requests::next(&mut con, &self.node) => next,
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
                    requests::answer(&self.store, &reply, busy).await;
                    continue;
                };
                let cluster = self.clone();
                self.tasks.spawn(async move {
                    let answer = cluster.handle(ask).await;
                    requests::answer(&cluster.store, &reply, answer).await;
                    drop(place);
                });
            }
        }
    }

    /// Does what another node asked.
    async fn handle(&self, ask: Ask) -> Answer {
        let refused = |status: u16, message: String| Answer::Refused { status, message };
        let done = |room: Option<RoomRecord>, until: Option<Instant>| Answer::Done {
            room,
            held_until_ms: until.map(unix_ms_of),
        };
        match ask {
            Ask::Create {
                settings,
                hold,
                by,
                key,
            } => {
                if self.config.no_rooms {
                    return refused(503, format!("node {} takes no rooms", self.node));
                }
                let opener = Opener { by, key, budget: None };
                match self.rooms.create(settings, None, opener) {
                    Ok(room) => {
                        // A hold from another node counts against its caller there.
                        let until = hold.and_then(|name| room.seats().hold(&name, Instant::now(), None).ok());
                        self.adopt(&room).await;
                        done(Some(self.room_record(&room)), until)
                    }
                    Err(err) => refused(err.status(), err.to_string()),
                }
            }
            Ask::Hold { room, name } => match self.rooms.get(&room) {
                Some(room) if room.ended().is_none() => match room.seats().hold(&name, Instant::now(), None) {
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

    async fn ask(&self, node: &str, ask: Ask) -> Result<Answer, AskError> {
        let answer = self.asker.ask(node, ask).await;
        if matches!(answer, Err(AskError::NoAnswer(..))) {
            self.metrics.cluster_requests_unanswered.inc();
        }
        answer
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

/// A room of `node` ended: it leaves the directory (its stream already has its last entry).
pub(crate) async fn forget_room(store: &Store, node: &str, room: &str) {
    let mut pipe = redis::pipe();
    pipe.cmd("DEL")
        .arg(keys::room(room))
        .ignore()
        .cmd("SREM")
        .arg(keys::node_rooms(node))
        .arg(room)
        .ignore();
    // If this fails the record expires by itself.
    let _ = store.pipe::<()>(&pipe).await;
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
