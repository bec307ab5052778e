//! A room: one authoritative match, with its own world, tick loop, players and spectator feed.
//!
//! This folder owns everything about one room and its matches: the tick loop that owns its
//! world ([`tick`]), the players joining it ([`joins`]) and the game admitting them, the end of
//! a match and the next one (`matches`), the connected players and the fan-out to them
//! ([`roster`], [`outbox`]), each player's bytes after the shared frame (private fields and
//! events: [`extras`]), its player places ([`places`]) and the seats kept for players whose
//! connection dropped ([`seats`]). It calls down into the game (`crate::game`), the wire
//! (`crate::protocol`), the spectator feed it publishes (`crate::feed`) and the metrics; it
//! knows nothing of HTTP or of other rooms, and it reads its own [`Settings`] and [`Tuning`],
//! not the server's flags. One deliberate exception: the tick writes each player's frame
//! straight to its socket ([`outbox`]), for speed. Which rooms exist, and where, is
//! `crate::rooms`' business.
//!
//! A [`Room`] is the handle the rest of the server holds: sessions join through it,
//! spectators read its feed, the rooms API lists and closes it. Ending a room (closed, idle,
//! crashed, or the server stopping) cancels its token: its players are closed with the
//! ending's code and its spectators get a final event.

pub mod extras;
pub(crate) mod joins;
mod matches;
pub mod outbox;
pub mod places;
pub mod roster;
pub mod seats;
pub(crate) mod tick;
pub mod views;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::access::budgets::Held;
use crate::feed::Feed;
use crate::game::GameConfig;
use crate::metrics::Metrics;
use crate::protocol::ended::Ended;
pub use crate::protocol::rooms_api::{AfterMatch, RoomId};
use crate::protocol::rooms_api::{Labels, RoomSummary};
use crate::protocol::{Options, Results, Schema};
use crate::room::joins::Joins;
use crate::room::places::PlayerPlaces;
use crate::room::tick::{Running, Start, TickClock, TickParts};

/// What a room is made of: its game and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The game it plays.
    pub game: String,
    /// Ticks per second.
    pub tick_hz: u32,
    /// Players at once.
    pub max_players: usize,
    /// The world's seed.
    pub seed: u64,
    /// Side of the square world, in units.
    pub world_size: u32,
    /// Orbs in the world at all times.
    pub orbs: u32,
    /// Left out of `GET /rooms` and matchmaking: only those given its id find it.
    pub private: bool,
    /// The room's options for its game (checked against the schema's `room_options`).
    #[serde(default)]
    pub options: Options,
    /// What happens when a match ends.
    #[serde(default)]
    pub after_match: AfterMatch,
    /// How long a player whose connection dropped keeps its seat, in milliseconds (0: it
    /// leaves at once).
    #[serde(default)]
    pub reconnect_grace_ms: u32,
    /// How far a player sees, in world units: each is sent only the entities within it (and
    /// those its game shows further); `None`: everyone sees the whole world.
    #[serde(default)]
    pub view_radius: Option<u32>,
}

impl Settings {
    /// What the room's game is given.
    pub fn game_config(&self) -> GameConfig {
        GameConfig {
            tick_hz: self.tick_hz,
            world_size: self.world_size,
            orbs: self.orbs,
            options: self.options.clone(),
        }
    }

    /// What the room's game's schema is made from: its config without the room's options.
    pub fn schema_config(&self) -> GameConfig {
        GameConfig {
            options: Options::none(),
            ..self.game_config()
        }
    }

    /// The length of one tick.
    pub fn tick_period(&self) -> Duration {
        Duration::from_secs(1) / self.tick_hz
    }

    /// How many ticks a dropped player's seat is kept (the grace, rounded up to whole ticks).
    pub fn grace_ticks(&self) -> u64 {
        (u64::from(self.reconnect_grace_ms) * u64::from(self.tick_hz)).div_ceil(1000)
    }
}

/// How rooms run, beyond what a room's creator chooses: the server's flags, made into a room's
/// own settings once (`Config::tuning`), so a room never reads the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Spectator events per second at most; the ticks in between are merged.
    pub spectator_hz: u32,
    /// How far back a spectator can resume with exactly the events it missed.
    pub spectator_history: Duration,
    /// How long a player's queue may stay full before the player is closed as too slow.
    pub slow_timeout: Duration,
    /// How long a room (not the default one) may stay without players before it closes.
    pub room_idle: Duration,
}

impl Tuning {
    /// Ticks between spectator events in a room ticking at `tick_hz` (spectators never get
    /// more events than ticks).
    pub fn spectator_every(&self, tick_hz: u32) -> u32 {
        (tick_hz / self.spectator_hz.min(tick_hz)).max(1)
    }

    /// How many spectator events the resume ring of a room ticking at `tick_hz` keeps.
    pub fn spectator_ring(&self, tick_hz: u32) -> usize {
        let per_sec = f64::from(tick_hz) / f64::from(self.spectator_every(tick_hz));
        (per_sec * self.spectator_history.as_secs_f64()).ceil().max(1.0) as usize
    }
}

/// Everything a room is opened with.
pub(crate) struct Opening<'a> {
    pub(crate) id: RoomId,
    pub(crate) settings: Settings,
    pub(crate) opener: Opener,
    /// Its game's schema (shared by the rooms of that game and config).
    pub(crate) schema: Arc<Schema>,
    /// How its game's tick loop starts.
    pub(crate) start: Start,
    pub(crate) tuning: &'a Tuning,
    /// Where in each tick period its ticks fall, so rooms opened together do not tick together.
    pub(crate) phase: Duration,
    pub(crate) metrics: Arc<Metrics>,
    /// The server's token: its ending (the server stopping) ends the room too.
    pub(crate) parent: &'a CancellationToken,
}

/// A room's key: the secret its creator is given, once, to close it with (`DELETE
/// /rooms/{id}` with `Authorization: Bearer <key>`). 128 random bits as 32 hex digits.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomKey(String);

impl RoomKey {
    /// A fresh key, from the operating system's generator.
    pub fn random() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }

    /// Whether `given` is this key (compared in constant time for a given length).
    pub fn opens(&self, given: &str) -> bool {
        crate::auth::same_secret(given, &self.0)
    }

    /// The key as text, to hand to its creator.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoomKey(..)")
    }
}

/// Who opened a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenedBy {
    /// The server itself: the default room, closed by nobody.
    Server,
    /// A caller with the admin secret.
    Admin,
    /// A caller without a credential: the room counts against the anonymous share of
    /// `--max-rooms` (and, on the node that took the request, against the caller's address).
    Anonymous,
}

/// Who opens a room, and what it owes them.
#[derive(Debug)]
pub struct Opener {
    /// Who.
    pub by: OpenedBy,
    /// The key its creator closes it with (`POST /rooms` gives one; matchmaking does not).
    pub key: Option<RoomKey>,
    /// What the room holds of its anonymous creator's budget, given back when it ends.
    pub budget: Option<Held>,
}

impl Opener {
    /// The server's own room (the default room).
    pub fn server() -> Self {
        Self {
            by: OpenedBy::Server,
            key: None,
            budget: None,
        }
    }
}

/// What a room's tick loop tells the rest of the server of its match: the game's labels, and
/// the last match's results.
#[derive(Debug, Default)]
pub(crate) struct Status {
    labels: Mutex<Labels>,
    results: Mutex<Option<Arc<Results>>>,
    /// The match ended and the room closes after it: it takes nobody new meanwhile.
    closing: std::sync::atomic::AtomicBool,
    /// When the room, empty, closes itself: nanoseconds after [`idle_epoch`], 0 while anyone
    /// plays or for a room that never does (see [`crate::rooms`]' sweep).
    idle_at: std::sync::atomic::AtomicU64,
}

/// What rooms' idle deadlines count from.
fn idle_epoch() -> tokio::time::Instant {
    static EPOCH: OnceLock<tokio::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(tokio::time::Instant::now)
}

impl Status {
    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        // Nothing panics while holding them (a clone in or out).
        m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn set_labels(&self, labels: Labels) {
        *Self::lock(&self.labels) = labels;
    }

    pub(crate) fn labels(&self) -> Labels {
        Self::lock(&self.labels).clone()
    }

    pub(crate) fn set_results(&self, results: Results) {
        *Self::lock(&self.results) = Some(Arc::new(results));
    }

    pub(crate) fn results(&self) -> Option<Arc<Results>> {
        Self::lock(&self.results).clone()
    }

    pub(crate) fn set_closing(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The room is empty, and closes itself at `at` (`None`: it has players, or never does).
    pub(crate) fn set_idle_at(&self, at: Option<tokio::time::Instant>) {
        // At least 1: 0 is "none".
        let nanos = at.map_or(0, |at| {
            let nanos = at.saturating_duration_since(idle_epoch()).as_nanos();
            u64::try_from(nanos).unwrap_or(u64::MAX).max(1)
        });
        self.idle_at.store(nanos, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the room is empty and its idle deadline has passed at `now`.
    pub(crate) fn idle_due(&self, now: tokio::time::Instant) -> bool {
        let at = self.idle_at.load(std::sync::atomic::Ordering::Relaxed);
        at != 0 && now.saturating_duration_since(idle_epoch()).as_nanos() >= u128::from(at)
    }
}

/// A room, as the rest of the server holds it.
#[derive(Debug)]
pub struct Room {
    id: RoomId,
    settings: Settings,
    /// Unix microseconds.
    created_us: u64,
    opened_by: OpenedBy,
    key: Option<RoomKey>,
    /// Given back when the room is dropped.
    _budget: Option<Held>,
    clock: Arc<TickClock>,
    feed: Arc<Feed>,
    schema: Arc<Schema>,
    places: PlayerPlaces,
    joins: Arc<Joins>,
    stop: CancellationToken,
    ended: OnceLock<Ended>,
    status: Arc<Status>,
}

impl Room {
    /// A new room and the tick loop that will run it (to be spawned by the caller).
    pub(crate) fn open(opening: Opening<'_>) -> (Arc<Self>, Running) {
        let Opening {
            id,
            settings,
            opener,
            schema,
            start,
            tuning,
            phase,
            metrics,
            parent,
        } = opening;
        let joins = Arc::new(Joins::default());
        let clock = Arc::new(TickClock::default());
        let stop = parent.child_token();
        let status = Arc::new(Status::default());
        let parts = TickParts {
            room: id.clone(),
            status: status.clone(),
            settings: &settings,
            tuning,
            schema: schema.clone(),
            joins: joins.clone(),
            clock: clock.clone(),
            metrics,
            phase,
            idle_close: (opener.by != OpenedBy::Server).then_some(tuning.room_idle),
            stop: stop.clone(),
        };
        let (feed, running) = start(parts);
        let room = Arc::new(Self {
            places: PlayerPlaces::new(settings.max_players),
            feed,
            schema,
            id,
            settings,
            created_us: crate::protocol::unix_micros(),
            opened_by: opener.by,
            key: opener.key,
            _budget: opener.budget,
            clock,
            joins,
            stop,
            ended: OnceLock::new(),
            status,
        });
        (room, running)
    }

    /// Its id.
    pub fn id(&self) -> &RoomId {
        &self.id
    }

    /// What it was made with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// When it was created, Unix seconds.
    pub fn created(&self) -> u64 {
        self.created_us / 1_000_000
    }

    /// When it was created, Unix microseconds: the order rooms are listed in.
    pub fn created_us(&self) -> u64 {
        self.created_us
    }

    /// Whether it is the server's default room (behind the old paths; never idles out).
    pub fn is_default(&self) -> bool {
        self.opened_by == OpenedBy::Server
    }

    /// Who opened it.
    pub fn opened_by(&self) -> OpenedBy {
        self.opened_by
    }

    /// Whether `given` is its key (a room opened without one has none to give).
    pub fn opens_with(&self, given: &str) -> bool {
        self.key.as_ref().is_some_and(|key| key.opens(given))
    }

    /// Its game's schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Its player places.
    pub fn places(&self) -> &PlayerPlaces {
        &self.places
    }

    /// Its spectator feed.
    pub(crate) fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }

    /// The last tick it completed.
    pub fn tick(&self) -> u64 {
        self.clock.get()
    }

    /// Where sessions hand in their joins.
    pub(crate) fn joins(&self) -> &Joins {
        &self.joins
    }

    /// Cancelled when the room ends, for whatever reason.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stop
    }

    /// The last match's results, if a match has ended.
    pub fn results(&self) -> Option<Arc<Results>> {
        self.status.results()
    }

    /// Its game's labels.
    pub fn labels(&self) -> Labels {
        self.status.labels()
    }

    /// Ends the room for `why` (the first reason given wins): its spectators' last event says
    /// why, then its players are closed.
    pub fn end(&self, why: Ended) {
        if self.ended.set(why).is_ok() {
            let name = if why == Ended::Shutdown { "shutdown" } else { "closed" };
            self.feed.close(name, format!(r#"{{"reason":"{}"}}"#, why.close().1));
        }
        self.stop.cancel();
    }

    /// Wakes the room if it is empty and its idle time is over at `now`, to close itself (the
    /// rooms' sweep: a paused room holds no timer of its own).
    pub(crate) fn wake_if_idle(&self, now: tokio::time::Instant) {
        if self.status.idle_due(now) {
            self.joins.arrived.notify_one();
        }
    }

    /// Whether it takes new players: it runs, and its match has not ended for good (a room
    /// that closes after its match takes nobody while its last frames go out).
    pub fn is_open(&self) -> bool {
        self.ended().is_none() && !self.status.closing()
    }

    /// Why it ended; `None` while it runs. A room stopped without a reason stopped with the
    /// server.
    pub fn ended(&self) -> Option<Ended> {
        if let Some(why) = self.ended.get() {
            return Some(*why);
        }
        self.stop.is_cancelled().then_some(Ended::Shutdown)
    }

    /// What the rooms API shows of it.
    pub fn summary(&self) -> RoomSummary {
        let players = self.places.taken();
        RoomSummary {
            id: self.id.clone(),
            game: self.settings.game.clone(),
            players,
            max_players: self.settings.max_players,
            spectators: self.feed.spectator_count(),
            tick: self.tick(),
            tick_hz: self.settings.tick_hz,
            created: self.created(),
            joinable: self.is_open() && self.places.free(Instant::now()) > 0,
            private: self.settings.private,
            labels: self.labels(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_are_url_safe_and_random_ones_differ() {
        assert!(RoomId::parse("default").is_some());
        assert!(RoomId::parse("a-B_9").is_some());
        for bad in ["", "a/b", "a b", "é", "../x", &"x".repeat(33)] {
            assert!(RoomId::parse(bad).is_none(), "{bad:?}");
        }
        let (a, b) = (RoomId::random(), RoomId::random());
        assert_ne!(a, b);
        assert_eq!(RoomId::parse(a.as_str()), Some(a));
    }
}
