//! The rooms of this server, and where to find one.
//!
//! [`Rooms::get`] finds a room of this process. "Where does room X live" is answered one
//! level up, by `AppState::locate`: here, or (with `--redis`) on the node the cluster's
//! directory names (`crate::cluster`).
//!
//! Each room runs as one tracked task: its tick loop, and when the loop ends (closed, idle,
//! crashed, or the server stopping) the end of the room with that reason (players closed with
//! its code, spectators told) and forgetting it. A panic in one room's tick is caught there
//! and ends that room only.
//!
//! An empty room holds no timer: one sweep for all of them, every tenth of `--room-idle`
//! (from 10 ms to 1 s), wakes those whose idle time is over, and each closes itself (so a
//! room closes up to that much after its idle time).

pub mod registry;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::time::Instant;

use crate::access::budgets::HoldClaim;
use crate::config::Config;
use crate::feed::Feed;
use crate::protocol::Results;
use crate::protocol::ended::Ended;
use crate::protocol::rooms_api::Labels;
use crate::room::tick::Stopped;
use crate::room::{OpenedBy, Opener, Opening, Room, RoomId, Settings, Tuning};
use crate::rooms::registry::SharedGames;
use crate::runtime::Runtime;

/// Why a room could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// `--max-rooms` rooms are open.
    #[error("the server has its maximum of {0} rooms open: try again later")]
    Full(usize),
    /// Rooms opened without a credential fill their share of `--max-rooms`.
    #[error("rooms opened without a credential fill their share ({0}) of this server: try again later")]
    AnonymousFull(usize),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    Stopping,
    /// This client address has created rooms faster than it may.
    #[error("too many rooms created from this address: try again later")]
    RateLimited,
    /// No game of that name is registered.
    #[error("unknown game {0:?}: this server plays {1}")]
    UnknownGame(String, String),
}

impl CreateError {
    /// The HTTP status a request that got it is answered.
    pub fn status(&self) -> u16 {
        match self {
            CreateError::Full(_) | CreateError::AnonymousFull(_) | CreateError::Stopping => 503,
            CreateError::RateLimited => 429,
            CreateError::UnknownGame(..) => 400,
        }
    }
}

/// The rooms of this server.
#[derive(Debug)]
pub struct Rooms {
    // A std Mutex: lookups and inserts only, never held across an await.
    rooms: Mutex<HashMap<RoomId, Arc<Room>>>,
    /// `--max-rooms`.
    max_rooms: usize,
    /// `--max-anonymous-rooms`.
    max_anonymous_rooms: usize,
    /// How every room runs (from the flags, once).
    tuning: Tuning,
    games: SharedGames,
    runtime: Runtime,
    /// Rooms created so far: places each new room's ticks in the tick period.
    created: AtomicU64,
    /// Whether the sweep of idle rooms runs (from the first room on).
    sweeping: AtomicBool,
    /// The id of the default room (behind the old paths): `default`, or in a cluster
    /// `default-<node>` so that every node's default room has an id of its own.
    default_id: RoomId,
    /// The results of rooms that closed after their match, newest last (at most
    /// [`ENDED_KEPT`], for [`ENDED_FOR`]).
    ended: Mutex<VecDeque<(RoomId, Arc<Results>, Instant)>>,
    /// The feeds of rooms that closed, newest last (at most [`CLOSED_FEEDS_KEPT`], for
    /// [`CLOSED_FEED_FOR`]): a spectator that comes back for the rest gets it, and the end.
    closed_feeds: Mutex<VecDeque<(RoomId, Arc<Feed>, Instant)>>,
}

/// How many closed rooms' spectator feeds are kept, and for how long: a long-poll (or an SSE
/// resume) that arrives after its room closed gets the events it missed and the final one.
pub const CLOSED_FEEDS_KEPT: usize = 64;
/// See [`CLOSED_FEEDS_KEPT`].
pub const CLOSED_FEED_FOR: Duration = Duration::from_secs(30);

/// How many closed rooms' results are kept, and for how long: `GET /rooms/{id}` shows them.
pub const ENDED_KEPT: usize = 1024;
/// See [`ENDED_KEPT`].
pub const ENDED_FOR: Duration = Duration::from_secs(300);

impl Rooms {
    /// No rooms yet; rooms created later play one of `games`, within `config`'s caps, and run
    /// on `runtime`.
    pub(crate) fn new(config: &Config, default_id: RoomId, games: SharedGames, runtime: Runtime) -> Arc<Self> {
        Arc::new(Self {
            default_id,
            rooms: Mutex::default(),
            max_rooms: config.max_rooms,
            max_anonymous_rooms: config.max_anonymous_rooms(),
            tuning: config.tuning(),
            games,
            runtime,
            created: AtomicU64::new(0),
            sweeping: AtomicBool::new(false),
            ended: Mutex::default(),
            closed_feeds: Mutex::default(),
        })
    }

    /// The results of room `id`, if it closed after its match not long ago.
    pub fn ended_results(&self, id: &RoomId) -> Option<Arc<Results>> {
        let ended = self.ended.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        ended
            .iter()
            .rev()
            .find(|(ended_id, _, at)| ended_id == id && at.elapsed() < ENDED_FOR)
            .map(|(_, results, _)| results.clone())
    }

    /// The spectator feed of room `id`, if it closed not long ago.
    pub(crate) fn closed_feed(&self, id: &RoomId) -> Option<Arc<Feed>> {
        let mut feeds = self
            .closed_feeds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Those past their time go now, not only when the next room closes.
        feeds.retain(|(_, _, at)| at.elapsed() < CLOSED_FEED_FOR);
        feeds
            .iter()
            .rev()
            .find(|(closed_id, ..)| closed_id == id)
            .map(|(_, feed, _)| feed.clone())
    }

    /// Whether rooms opened without a credential fill their share of this server.
    pub fn anonymous_full(&self) -> bool {
        let rooms = self.lock();
        rooms.values().filter(|r| r.opened_by() == OpenedBy::Anonymous).count() >= self.max_anonymous_rooms
    }

    /// How every room of this server runs.
    pub(crate) fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    /// Room `id`, if it lives in this process.
    pub fn get(&self, id: &RoomId) -> Option<Arc<Room>> {
        self.lock().get(id).cloned()
    }

    /// The id the default room has (or would have).
    pub fn default_id(&self) -> &RoomId {
        &self.default_id
    }

    /// Every open room (public and private), by creation time.
    pub fn all(&self) -> Vec<Arc<Room>> {
        let mut rooms: Vec<_> = self.lock().values().cloned().collect();
        rooms.sort_by(|a, b| (a.created(), a.id()).cmp(&(b.created(), b.id())));
        rooms
    }

    /// How many rooms are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no room is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Opens a room for `opener` with a fresh id (or `id`, for the default room) and starts it.
    pub fn create(
        self: &Arc<Self>,
        settings: Settings,
        id: Option<RoomId>,
        opener: Opener,
    ) -> Result<Arc<Room>, CreateError> {
        if self.runtime.shutdown.is_cancelled() {
            return Err(CreateError::Stopping);
        }
        let Some(game) = self.games.get(&settings.game) else {
            let known = self.games.names().join(", ");
            return Err(CreateError::UnknownGame(settings.game, known));
        };
        let mut rooms = self.lock();
        if rooms.len() >= self.max_rooms {
            return Err(CreateError::Full(self.max_rooms));
        }
        let share = self.max_anonymous_rooms;
        if opener.by == OpenedBy::Anonymous
            && rooms.values().filter(|r| r.opened_by() == OpenedBy::Anonymous).count() >= share
        {
            return Err(CreateError::AnonymousFull(share));
        }
        let id = id.unwrap_or_else(|| {
            loop {
                // 71 random bits: a collision is as unlikely as guessing a private room.
                let id = RoomId::random();
                if !rooms.contains_key(&id) {
                    break id;
                }
            }
        });
        let phase = self.phase(settings.tick_period());
        let (room, running) = Room::open(Opening {
            id: id.clone(),
            schema: game.schema_for(&settings.schema_config()),
            start: game.start,
            settings,
            opener,
            tuning: &self.tuning,
            phase,
            metrics: self.runtime.metrics.clone(),
            parent: &self.runtime.shutdown,
        });
        rooms.insert(id, room.clone());
        drop(rooms);
        self.start_sweep();
        self.runtime.metrics.rooms.inc();
        self.runtime.metrics.rooms_created.inc();
        let (rooms, watched) = (self.clone(), room.clone());
        // One task per room: its tick loop, and what ends the room when the loop stops (a
        // panic included, caught here).
        self.runtime.tasks.spawn(async move {
            let ended = match std::panic::AssertUnwindSafe(running).catch_unwind().await {
                Ok(Stopped::Idle) => Ended::Idle,
                Ok(Stopped::MatchOver) => Ended::MatchOver,
                Ok(Stopped::Told) => watched.ended().unwrap_or(Ended::Shutdown),
                Err(_) => Ended::Crashed,
            };
            rooms.ended(&watched, ended);
        });
        tracing::debug!(room = %room.id(), "room opened");
        Ok(room)
    }

    /// Starts the sweep that wakes the empty rooms whose idle time is over, once; it stops with
    /// the server.
    fn start_sweep(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let every = (self.tuning.room_idle / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let (rooms, shutdown) = (Arc::downgrade(self), self.runtime.shutdown.clone());
        self.runtime.tasks.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let Some(rooms) = rooms.upgrade() else { return };
                let now = Instant::now();
                rooms.lock().values().for_each(|room| room.wake_if_idle(now));
            }
        });
    }

    /// Closes room `id`; false if there is none.
    pub fn close(&self, id: &RoomId) -> bool {
        match self.get(id) {
            Some(room) => {
                room.end(Ended::Closed);
                true
            }
            None => false,
        }
    }

    /// Holds a place for `name` in a public, open room of `game` with the labels of `filter` on
    /// this server: the room that
    /// holds one for it already (its first deadline), else the fullest that has a place to
    /// hold (the oldest of those equally full), as Colyseus' `joinOrCreate` finds one. Returns
    /// the room and the hold's deadline; `None` if no room has a place for `name`.
    pub fn hold_in_open_room(
        &self,
        game: &str,
        filter: &Labels,
        name: &str,
        claim: &HoldClaim,
        now: Instant,
    ) -> Option<(Arc<Room>, Instant)> {
        let mut open: Vec<_> = self
            .all()
            .into_iter()
            .filter(|r| !r.settings().private && r.settings().game == game && r.is_open() && r.labels().matches(filter))
            .collect();
        if let Some((room, until)) = open
            .iter()
            .find_map(|room| room.places().held_until(name, now).map(|until| (room, until)))
        {
            return Some((room.clone(), until));
        }
        // `all` is oldest first and the sort is stable: the oldest of the fullest first.
        open.sort_by_key(|r| r.places().free(now));
        open.into_iter()
            .find_map(|room| Some((room.clone(), room.places().hold(name, now, Some(claim.clone())).ok()?)))
    }

    /// Where the next room's ticks fall in `period`: successive rooms are spread by the golden
    /// ratio, so however many there are, their ticks are evenly spread over the period.
    fn phase(&self, period: Duration) -> Duration {
        const GOLDEN: f64 = 0.618_033_988_749_894_9;
        let n = self.created.fetch_add(1, Ordering::Relaxed);
        period.mul_f64((n as f64 * GOLDEN).fract())
    }

    /// A room's tick loop has ended: end the room (its players and spectators watch its
    /// token) and forget it.
    fn ended(&self, room: &Arc<Room>, ended: Ended) {
        room.end(ended);
        let removed = {
            let mut rooms = self.lock();
            match rooms.get(room.id()) {
                Some(current) if Arc::ptr_eq(current, room) => rooms.remove(room.id()).is_some(),
                _ => false,
            }
        };
        if removed {
            self.runtime.metrics.rooms.dec();
        }
        if let (Ended::MatchOver, Some(results)) = (ended, room.results()) {
            // Nothing panics while holding it (a push, a pop).
            let mut kept = self.ended.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            while kept.len() >= ENDED_KEPT || kept.front().is_some_and(|(_, _, at)| at.elapsed() >= ENDED_FOR) {
                kept.pop_front();
            }
            kept.push_back((room.id().clone(), results, Instant::now()));
        }
        if ended != Ended::Shutdown {
            let mut feeds = self
                .closed_feeds
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            while feeds.len() >= CLOSED_FEEDS_KEPT
                || feeds.front().is_some_and(|(_, _, at)| at.elapsed() >= CLOSED_FEED_FOR)
            {
                feeds.pop_front();
            }
            feeds.push_back((room.id().clone(), room.feed().clone(), Instant::now()));
        }
        self.runtime.metrics.room_closed(ended);
        match ended {
            Ended::Crashed => tracing::error!(room = %room.id(), "room crashed: its tick loop panicked"),
            _ => tracing::debug!(room = %room.id(), ?ended, "room ended"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoomId, Arc<Room>>> {
        // Nothing panics while holding the lock (map lookups and inserts).
        self.rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpListener;

    use crate::client::{Client, ClientError, Received};
    use crate::room::tick::tests::CRASH_NAME;
    use crate::{Config, Server};

    #[test]
    fn successive_rooms_tick_at_phases_spread_over_the_period() {
        let rooms = super::Rooms::new(
            &Config::defaults(),
            crate::room::RoomId::parse("default").unwrap(),
            Default::default(),
            Default::default(),
        );
        let period = Duration::from_millis(1000);
        let mut phases: Vec<u128> = (0..10).map(|_| rooms.phase(period).as_millis()).collect();
        phases.sort_unstable();
        phases.push(1000 + phases[0]);
        // Ten rooms leave no gap over twice the even spacing (100 ms) between their ticks.
        let widest = phases.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(widest <= 200, "{phases:?}");
    }

    #[tokio::test]
    async fn a_room_whose_tick_panics_ends_alone_and_says_so() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::new(
            listener,
            Config {
                seed: Some(1),
                ..Config::defaults()
            },
        );
        let addr = server.local_addr().unwrap();
        let metrics = server.metrics();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(server.run(shutdown.clone()));
        let http = reqwest::Client::new();
        let created: serde_json::Value = http
            .post(format!("http://{addr}/rooms"))
            .json(&serde_json::json!({ "game": "arena" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let doomed_url = created["ws"].as_str().unwrap().to_owned();
        let doomed_id = created["id"].as_str().unwrap().to_owned();

        let mut bystander = Client::connect(&format!("ws://{addr}/ws"), "ann").await.unwrap();
        let mut victim = Client::connect(&doomed_url, "bob").await.unwrap();
        let mut spectator = http
            .get(format!("http://{addr}/rooms/{doomed_id}/events"))
            .send()
            .await
            .unwrap();
        while !matches!(victim.recv().await.unwrap(), Received::Snapshot { .. }) {}
        // Its tick loop panics admitting this player.
        let crasher = Client::connect(&doomed_url, CRASH_NAME).await;
        assert!(crasher.is_err(), "the crashing room welcomed its crasher");

        let closed = loop {
            match tokio::time::timeout(Duration::from_secs(10), victim.recv())
                .await
                .unwrap()
            {
                Ok(_) => continue,
                Err(err) => break err,
            }
        };
        assert!(
            matches!(&closed, ClientError::Closed { code: 1011, reason } if reason == "room crashed"),
            "{closed}"
        );
        let mut seen = String::new();
        while !seen.contains("event: closed") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), spectator.chunk())
                .await
                .unwrap();
            match chunk.unwrap() {
                Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                None => break,
            }
        }
        assert!(
            seen.contains("event: closed\ndata: {\"reason\":\"room crashed\"}"),
            "{seen}"
        );
        assert_eq!(metrics.rooms_closed(crate::protocol::ended::Ended::Crashed), 1);
        let gone = http
            .get(format!("http://{addr}/rooms/{doomed_id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 404);

        // The other room never noticed: its player keeps getting ticks.
        let tick = loop {
            if let Received::Delta { tick, .. } = bystander.recv().await.unwrap() {
                break tick;
            }
        };
        while !matches!(bystander.recv().await.unwrap(), Received::Delta { tick: t, .. } if t >= tick + 10) {}
        shutdown.cancel();
        running.await.unwrap().unwrap();
    }
}
