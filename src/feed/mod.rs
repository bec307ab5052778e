//! The spectator feed: one source of truth for SSE, long-polling and polling.
//!
//! At `--spectator-hz` the tick loop diffs the world against the one of the previous spectator
//! event, which merges every tick in between (an orb that came and went in between is simply
//! absent; nothing that is still true is lost), and publishes one [`Event`]. Each event is
//! encoded once, as JSON and as a complete SSE frame, and shared by every spectator, so the
//! number of spectators adds no encoding work to the tick loop.
//!
//! Each event's id is `<epoch>-<tick>`: the epoch names this incarnation of the room (a room
//! opened again under the same id, a new match, or a feed rebuilt from a keyframe after a gap,
//! has a new one), so an id from another incarnation is never mistaken for a position in this
//! one. The public events a game told to every player since the last event come before it, in
//! tick order, each its own event (`<epoch>-<tick>-<n>`: the `n`th after the delta of `tick`);
//! the end of a match is one more (`ended`).
//!
//! A ring of recent events serves resumes (`Last-Event-ID`, `?after=`). A spectator whose
//! position is older than the ring, from another epoch, or unknown, gets a snapshot instead:
//! the world at the latest event, encoded on demand by the first spectator that needs it and
//! cached until the next event (or until its room rests with no spectator connected: see
//! [`Feed::park`]). So does one whose missed events add up to more bytes than that
//! snapshot: the snapshot says the same in fewer bytes, and is shared by every spectator
//! resuming at once.
//!
//! A feed nobody reads renders nothing: once no spectator is connected and more events have
//! been published since anyone last read it than the ring holds (so no position it ever gave
//! out can be resumed from the ring any more), an event keeps only its world, for the next
//! snapshot ([`Feed::pass`]); the first read, or a spectator connecting, brings the events
//! back. What a spectator is sent is the same as if every event had been rendered: a position
//! older than the ring gets a snapshot either way.
//!
//! Spectators are written these very bytes (reference counts, never a copy per spectator), so
//! a spectator that stops reading holds at most a reference to events that exist anyway.
//!
//! The same feed serves a room on another node of a cluster: there it is fed from the room's
//! Redis stream ([`crate::cluster`]) instead of a tick loop, through [`Feed::publish`] and
//! [`Feed::reset`], and spectators cannot tell the difference.

mod event;
mod render;
mod viewport;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::protocol::delta::{Changes, NetWorld, PackedWorld};
use crate::protocol::{GameEvent, Results, Schema};

pub(crate) use self::event::{At, Epoch, Position};
pub(crate) use self::event::{Event, EventKind};
pub(crate) use self::viewport::{Viewport, Watch};

/// A public event a game told every player, in the tick it was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Heard {
    pub(crate) tick: u64,
    pub(crate) event: GameEvent,
}

/// What a feed sends its replica (the room's Redis stream, in a cluster) for each event.
#[derive(Debug)]
pub(crate) enum Replicated {
    /// An event: the public events told since the world at `base`, then the changes from
    /// it to `world`.
    Event {
        epoch: Epoch,
        base: u64,
        heard: Vec<Heard>,
        changes: Changes,
        world: Arc<NetWorld>,
    },
    /// The match ended at `tick` (of `epoch`) with `results`.
    Ended { epoch: Epoch, tick: u64, results: Results },
    /// The feed's last event: the room ended.
    Closed { name: &'static str, json: String },
}

/// What a spectator at some position needs next.
#[derive(Debug)]
pub(crate) enum Catchup {
    /// Nothing new yet.
    UpToDate,
    /// These deltas, in order, bring it to the latest event.
    Events(Vec<Arc<Event>>),
    /// Its position is unknown or too old: start over from this snapshot.
    Snapshot(Arc<Event>),
}

/// Makes a world again: that of a game nobody has played in, from its config and seed.
pub(crate) type Remake = Arc<dyn Fn() -> NetWorld + Send + Sync>;

/// The world as of the latest event: shared with the publisher, which diffs the next event
/// from it; or, while its room rests ([`Feed::park`]), packed, or not kept at all when the
/// game can make it again. Each is a reference count to clone under the feed's lock, and
/// unpacked or made again after it.
#[derive(Clone)]
enum Kept {
    Shared(Arc<NetWorld>),
    Packed(Arc<PackedWorld>),
    Remade { tick: u64, remake: Remake },
}

impl Kept {
    fn tick(&self) -> u64 {
        match self {
            Self::Shared(world) => world.tick(),
            Self::Packed(packed) => packed.tick(),
            Self::Remade { tick, .. } => *tick,
        }
    }

    /// The world (unpacked or made again for each caller while the room rests: a resting
    /// room's readers are few, and each keeps it only while it renders). Never under the
    /// feed's lock: the tick loop must not wait on a reader.
    fn world(&self) -> Arc<NetWorld> {
        match self {
            Self::Shared(world) => world.clone(),
            Self::Packed(packed) => Arc::new(packed.unpack()),
            Self::Remade { remake, .. } => Arc::new(remake()),
        }
    }
}

struct State {
    /// This incarnation.
    epoch: Epoch,
    /// The world as of the latest event; snapshots are made from it.
    world: Kept,
    /// Recent events, oldest first; each one's `prev` is the previous one's `at`.
    ring: VecDeque<Arc<Event>>,
    /// Where the latest event is (what a spectator who has everything holds).
    latest: At,
    /// The snapshot of `world`, once someone asked for it.
    snapshot: Option<Arc<Event>>,
    /// The last incarnation's recent events (those of a match that ended, up to its `ended`):
    /// kept through the reset, so a spectator of that match gets the rest of it before the new
    /// match's snapshot.
    previous: VecDeque<Arc<Event>>,
}

/// The shared spectator feed.
pub(crate) struct Feed {
    // A std Mutex: every critical section is a few pointer copies, never held across an await.
    state: Mutex<State>,
    /// Wakes the spectators waiting for the next event (no allocation: a room nobody watches
    /// holds none).
    published: Notify,
    ring_len: usize,
    schema: Arc<Schema>,
    /// The schema as JSON, written once, at the first snapshot: every snapshot event carries it.
    schema_json: OnceLock<String>,
    spectators: AtomicUsize,
    /// Cancelled when the feed has no more events: its room ended (or the server stops).
    stop: CancellationToken,
    /// The feed's last event, once its room ended: `closed` or `shutdown`, and its JSON.
    last: OnceLock<Box<(&'static str, String)>>,
    /// Where events are copied for other nodes, once the room is in a cluster's directory.
    replica: OnceLock<mpsc::Sender<Replicated>>,
    /// Events the replica's queue had no room for.
    replica_dropped: AtomicUsize,
    /// Events published since anyone last read the feed (counted to the ring's length and no
    /// further), changed under the state's lock: see [`Feed::unwatched`].
    unread: AtomicUsize,
    /// How many ticks ahead of the latest event a spectator's position may be and still be
    /// waited for rather than answered with a snapshot: 0 for a room's own feed (nobody can be
    /// ahead of it), a little for a copy on another node (a spectator coming from the owner
    /// may be a few events ahead of it).
    ahead: u64,
}

impl Feed {
    /// A feed of incarnation `epoch` starting from `world`, remembering `ring_len` deltas for
    /// resumes, waiting for spectators up to `ahead` ticks ahead of it, ending when `stop` is
    /// cancelled.
    pub(crate) fn new(
        epoch: Epoch,
        world: Arc<NetWorld>,
        ring_len: usize,
        ahead: u64,
        schema: Arc<Schema>,
        stop: CancellationToken,
    ) -> Self {
        let state = State {
            epoch,
            latest: At::tick(world.tick()),
            // Grown as events come (see `publish`): a room nobody has played in holds none.
            ring: VecDeque::new(),
            snapshot: None,
            previous: VecDeque::new(),
            world: Kept::Shared(world),
        };
        Self {
            state: Mutex::new(state),
            published: Notify::new(),
            ring_len: ring_len.max(1),
            schema_json: OnceLock::new(),
            schema,
            spectators: AtomicUsize::new(0),
            stop,
            last: OnceLock::new(),
            replica: OnceLock::new(),
            replica_dropped: AtomicUsize::new(0),
            // A new feed has been read by nobody, and has given out no position.
            unread: AtomicUsize::new(ring_len.max(1)),
            ahead,
        }
    }

    /// Whether nobody could read the next event: no spectator is connected, no replica copies
    /// the feed, and no position given out since the last read is still in the ring (the next
    /// event would push the oldest it could resume from out). Then [`Feed::pass`] does instead
    /// of rendering the event.
    pub(crate) fn unwatched(&self) -> bool {
        self.spectator_count() == 0
            && self.unread.load(Ordering::Relaxed) >= self.ring_len
            && self.replica.get().is_none()
    }

    /// Moves the feed on to `world` without an event, if it is still [`Feed::unwatched`]
    /// (checked under the lock every reader takes, so a reader is never given a position this
    /// forgets); `false` if someone has read it meanwhile, and the event must be published.
    /// The ring is let go: none of its positions can be resumed from.
    pub(crate) fn pass(&self, world: Arc<NetWorld>) -> bool {
        let mut state = self.lock();
        if !self.unwatched() {
            return false;
        }
        state.ring = VecDeque::new();
        state.latest = At::tick(world.tick());
        state.world = Kept::Shared(world);
        state.snapshot = None;
        true
    }

    /// Its room rests: nobody plays, so the world cannot change before someone joins, and its
    /// tick loop lets its own reference go. It is kept packed until then (what an empty room
    /// costs is mostly this world otherwise), and unpacked for each reader that needs it; a
    /// snapshot cached with no spectator connected goes too.
    pub(crate) fn park(&self) {
        let mut state = self.lock();
        if let Kept::Shared(world) = &state.world {
            state.world = Kept::Packed(Arc::new(world.pack()));
        }
        if self.spectator_count() == 0 {
            state.snapshot = None;
        }
    }

    /// Like [`Feed::park`], for a room nobody has played in yet: its world, of `tick`, is
    /// not kept at all, but made again by `remake` for whoever needs it.
    pub(crate) fn park_remade(&self, tick: u64, remake: Remake) {
        let mut state = self.lock();
        state.world = Kept::Remade { tick, remake };
        state.latest = At::tick(tick);
        state.snapshot = None;
    }

    /// Publishes the public events `heard` since the previous event, then the step from it to
    /// `world` (called by the one publisher, the tick loop or a cluster's stream reader, which
    /// keeps the same `Arc` as the base of its next diff: one copy of the world per event).
    pub(crate) fn publish(&self, changes: &Changes, world: Arc<NetWorld>, heard: Vec<Heard>) {
        // There is one publisher, so the base cannot change under us.
        let (base, epoch, mut at) = {
            let state = self.lock();
            (state.world.tick(), state.epoch.clone(), state.latest)
        };
        let mut events = Vec::with_capacity(heard.len() + 1);
        for h in &heard {
            let next = At {
                tick: at.tick,
                seq: at.seq + 1,
            };
            let json = render::game_event(h, &self.schema);
            events.push(Arc::new(Event::new(&epoch, next, at, EventKind::Game, json)));
            at = next;
        }
        let json = render::delta(base, changes, &world, &self.schema, self.spectator_count());
        let latest = At::tick(world.tick());
        events.push(Arc::new(Event::new(&epoch, latest, at, EventKind::Delta, json)));
        if let Some(replica) = self.replica.get() {
            let copy = Replicated::Event {
                epoch,
                base,
                heard,
                changes: changes.clone(),
                world: world.clone(),
            };
            // Never waits: the tick loop must not. A dropped event leaves a gap that the
            // replica heals with its next keyframe.
            if replica.try_send(copy).is_err() {
                self.replica_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        {
            let mut state = self.lock();
            for event in events {
                self.push(&mut state, event);
            }
            state.latest = latest;
            state.world = Kept::Shared(world);
            state.snapshot = None;
        }
        self.published.notify_waiters();
    }

    /// Publishes the end of the match at `tick`, with its results (after the event of that
    /// tick).
    pub(crate) fn ended(&self, tick: u64, results: &Results) {
        let epoch = {
            let mut state = self.lock();
            let prev = state.latest;
            let at = At {
                tick: prev.tick,
                seq: prev.seq + 1,
            };
            let json = render::ended(tick, results);
            let event = Arc::new(Event::new(&state.epoch, at, prev, EventKind::Ended, json));
            self.push(&mut state, event);
            state.latest = at;
            state.epoch.clone()
        };
        if let Some(replica) = self.replica.get() {
            let copy = Replicated::Ended {
                epoch,
                tick,
                results: results.clone(),
            };
            if replica.try_send(copy).is_err() {
                self.replica_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.published.notify_waiters();
    }

    /// Adds `event` to the ring, dropping the oldest once it is full.
    fn push(&self, state: &mut State, event: Arc<Event>) {
        let unread = self.unread.load(Ordering::Relaxed);
        self.unread.store((unread + 1).min(self.ring_len), Ordering::Relaxed);
        if state.ring.len() == self.ring_len {
            state.ring.pop_front();
        } else if state.ring.len() == state.ring.capacity() {
            // Doubling, but never past the ring's length.
            let more = state.ring.len().max(8).min(self.ring_len - state.ring.len());
            state.ring.reserve_exact(more);
        }
        state.ring.push_back(event);
    }

    /// Starts over from `world` as incarnation `epoch` (a cluster's stream reader, after a
    /// gap in the stream or a room opened again): the ring is emptied, so every spectator's
    /// next read is a snapshot of `world`.
    pub(crate) fn reset(&self, epoch: Epoch, world: Arc<NetWorld>) {
        {
            let mut state = self.lock();
            state.epoch = epoch;
            state.latest = At::tick(world.tick());
            state.world = Kept::Shared(world);
            state.previous = std::mem::take(&mut state.ring);
            state.snapshot = None;
        }
        self.published.notify_waiters();
    }

    /// Copies every event from now on to `replica` (without waiting: what does not fit in its
    /// queue is counted and dropped).
    pub(crate) fn replicate(&self, replica: mpsc::Sender<Replicated>) {
        let _ = self.replica.set(replica);
    }

    /// Whether its events are copied to a replica already.
    pub(crate) fn is_replicated(&self) -> bool {
        self.replica.get().is_some()
    }

    /// Events the replica's queue had no room for, so far.
    pub(crate) fn replica_dropped(&self) -> usize {
        self.replica_dropped.load(Ordering::Relaxed)
    }

    /// Ends the feed: `name` (`closed` or `shutdown`) with `json` is the last event every
    /// spectator gets. The first ending wins.
    pub(crate) fn close(&self, name: &'static str, json: String) {
        if self.last.set(Box::new((name, json.clone()))).is_ok()
            && let Some(replica) = self.replica.get()
        {
            // The ending must reach other nodes: wait for room, briefly, off the caller.
            let replica = replica.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    replica.send(Replicated::Closed { name, json }),
                )
                .await;
            });
        }
        self.stop.cancel();
    }

    /// Cancelled when the feed has no more events.
    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.stop
    }

    /// The last event of an ended feed: its name and JSON (a feed stopped without one stopped
    /// with the server).
    pub(crate) fn last_event(&self) -> (&'static str, String) {
        self.last
            .get()
            .map(|last| (**last).clone())
            .unwrap_or(("shutdown", r#"{"reason":"server shutting down"}"#.to_owned()))
    }

    /// This incarnation and the world as of its latest event.
    pub(crate) fn current(&self) -> (Epoch, Arc<NetWorld>) {
        let (epoch, kept) = {
            let state = self.read();
            (state.epoch.clone(), state.world.clone())
        };
        (epoch, kept.world())
    }

    /// This incarnation.
    pub(crate) fn epoch(&self) -> Epoch {
        self.lock().epoch.clone()
    }

    /// The world as of the latest event, for its publisher's next diff after a rest: not a
    /// read (a feed nobody reads stays so).
    pub(crate) fn latest_world(&self) -> Arc<NetWorld> {
        let kept = self.lock().world.clone();
        kept.world()
    }

    /// The game's schema.
    pub(crate) fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// What a spectator that has seen everything up to `after` needs (`None`: nothing yet).
    pub(crate) fn since(&self, after: Option<&Position>) -> Catchup {
        let state = self.read();
        let Some(after) = after else {
            return Catchup::Snapshot(self.snapshot_of(state));
        };
        if let Some(epoch) = after.epoch.as_ref().filter(|epoch| **epoch != state.epoch) {
            // A spectator of the match that ended before this one: the rest of it first (its
            // last events and its `ended`), then this match's snapshot.
            let start = (state.previous.iter()).position(|e| e.epoch == *epoch && e.prev == after.at);
            let mut rest: Vec<_> = start.map_or_else(Vec::new, |s| state.previous.iter().skip(s).cloned().collect());
            let snapshot = self.snapshot_of(state);
            if rest.is_empty() {
                return Catchup::Snapshot(snapshot);
            }
            rest.push(snapshot);
            return Catchup::Events(rest);
        }
        let after = after.at;
        let latest = state.latest;
        if after == latest || (after.tick > latest.tick && after.tick - latest.tick <= self.ahead) {
            return Catchup::UpToDate;
        }
        let start = state
            .ring
            .iter()
            .position(|e| e.prev == after && e.epoch == state.epoch);
        let Some(start) = start else {
            return Catchup::Snapshot(self.snapshot_of(state));
        };
        let events: Vec<_> = state.ring.iter().skip(start).cloned().collect();
        if events.len() > 1 {
            let missed: usize = events.iter().map(|e| e.sse.len()).sum();
            let snapshot = self.snapshot_of(state);
            if missed > snapshot.sse.len() {
                return Catchup::Snapshot(snapshot);
            }
        }
        Catchup::Events(events)
    }

    /// The current snapshot (for polling).
    pub(crate) fn snapshot(&self) -> Arc<Event> {
        self.snapshot_of(self.read())
    }

    /// Wakes at the next event published (or reset) after it is enabled or first polled: enable
    /// it before reading the feed, and an event published in between is not missed.
    pub(crate) fn published(&self) -> Notified<'_> {
        self.published.notified()
    }

    /// Counts a connected spectator, here and in `gauge`, for as long as the guard lives;
    /// `None` if the feed has `limit` already.
    pub(crate) fn spectator(self: &Arc<Self>, limit: usize, gauge: Gauge) -> Option<SpectatorGuard> {
        self.spectators
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < limit).then_some(n + 1))
            .ok()?;
        gauge.inc();
        Some(SpectatorGuard {
            feed: self.clone(),
            gauge,
        })
    }

    /// The schema as spectators' snapshots carry it (JSON), made once.
    pub(crate) fn schema_json(&self) -> &str {
        self.schema_json.get_or_init(|| render::schema(&self.schema))
    }

    pub(crate) fn spectator_count(&self) -> usize {
        self.spectators.load(Ordering::Relaxed)
    }

    fn snapshot_of(&self, state: MutexGuard<'_, State>) -> Arc<Event> {
        if let Some(snap) = &state.snapshot {
            return snap.clone();
        }
        let (kept, epoch) = (state.world.clone(), state.epoch.clone());
        drop(state); // unpack and encode outside the lock: the tick loop must never wait on a spectator
        let world = kept.world();
        let schema_json = self.schema_json.get_or_init(|| render::schema(&self.schema));
        let json = render::snapshot(&world, &self.schema, schema_json, self.spectator_count());
        let at = At::tick(world.tick());
        let snap = Arc::new(Event::new(&epoch, at, at, EventKind::Snapshot, json));
        let mut state = self.lock();
        if state.world.tick() == world.tick() && state.epoch == epoch {
            state.snapshot = Some(snap.clone());
        }
        snap
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, so poisoning cannot carry a broken state.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state, for a reader: from now on the feed is watched until the ring has gone round.
    fn read(&self) -> MutexGuard<'_, State> {
        let state = self.lock();
        self.unread.store(0, Ordering::Relaxed);
        state
    }
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("latest", &self.lock().world.tick())
            .field("spectators", &self.spectator_count())
            .finish_non_exhaustive()
    }
}

/// Keeps a spectator counted while it is connected.
#[derive(Debug)]
pub(crate) struct SpectatorGuard {
    feed: Arc<Feed>,
    gauge: Gauge,
}

impl Drop for SpectatorGuard {
    fn drop(&mut self) {
        self.feed.spectators.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::game::{Arena, GameConfig, Sandbox};

    fn arena_feed() -> (Feed, NetWorld) {
        let mut game = Sandbox::<Arena>::new(&GameConfig::default(), 5);
        game.join("a").unwrap();
        game.step();
        let world = game.world(1);
        let schema = game.schema().clone();
        let feed = Feed::new(
            Epoch::random(),
            Arc::new(world.clone()),
            8,
            0,
            schema,
            CancellationToken::new(),
        );
        (feed, world)
    }

    #[test]
    fn a_resting_feed_keeps_its_world_packed_and_gives_the_same_snapshot() {
        let (feed, world) = arena_feed();
        let before = feed.snapshot();
        feed.park();
        assert!(matches!(feed.lock().world, Kept::Packed(_)), "packed");
        assert!(
            feed.lock().snapshot.is_none(),
            "nobody watching: the cached snapshot goes"
        );
        let after = feed.snapshot();
        assert_eq!(after.sse, before.sse, "the same snapshot, from the world unpacked");
        assert_eq!(feed.latest_world().entities(), world.entities());
        assert_eq!(feed.unread.load(Ordering::Relaxed), 0, "the snapshots were reads");
        feed.unread.store(feed.ring_len, Ordering::Relaxed);
        feed.latest_world();
        assert!(feed.unwatched(), "the publisher's base is not a read");
    }

    #[test]
    fn a_feed_whose_game_can_make_its_world_again_keeps_none_and_makes_it_once_a_snapshot() {
        let (feed, world) = arena_feed();
        let expected = feed.snapshot();
        let made = Arc::new(AtomicUsize::new(0));
        let (count, again) = (made.clone(), world.clone());
        feed.park_remade(
            world.tick(),
            Arc::new(move || {
                count.fetch_add(1, Ordering::Relaxed);
                again.clone()
            }),
        );
        assert!(matches!(feed.lock().world, Kept::Remade { .. }), "no world kept");
        let first = feed.snapshot();
        let second = feed.snapshot();
        assert_eq!(first.sse, expected.sse);
        assert!(Arc::ptr_eq(&first, &second), "cached");
        assert_eq!(made.load(Ordering::Relaxed), 1, "made again once, for the snapshot");
    }
}
