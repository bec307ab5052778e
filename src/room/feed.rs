//! The spectator feed: one source of truth for SSE, long-polling and polling.
//!
//! At `--spectator-hz` the tick loop diffs the world against the one of the previous spectator
//! event, which merges every tick in between (an orb that came and went in between is simply
//! absent; nothing that is still true is lost), and publishes one [`Event`]. Each event is
//! encoded once, as JSON and as a complete SSE frame, and shared by every spectator, so the
//! number of spectators adds no encoding work to the tick loop.
//!
//! A ring of recent events serves resumes (`Last-Event-ID`, `?after=`). A spectator whose
//! position is older than the ring, or unknown, gets a snapshot instead: the world at the
//! latest event, encoded on demand by the first spectator that needs it and cached until the
//! next event. So does one whose missed events add up to more bytes than that snapshot: the
//! snapshot says the same in fewer bytes, and is shared by every spectator resuming at once.
//!
//! Spectators are written these very bytes (reference counts, never a copy per spectator), so
//! a spectator that stops reading holds at most a reference to events that exist anyway.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use crate::delta::{Changes, NetWorld};
use crate::protocol::Schema;
use crate::room::json;

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Snapshot,
    Delta,
}

impl EventKind {
    fn name(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Delta => "delta",
        }
    }
}

/// One spectator event, encoded once.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) tick: u64,
    /// For a delta, the tick it applies to (the previous event's); for a snapshot, `tick`.
    base: u64,
    /// The event's JSON, as in the SSE `data:` line and the long-poll `data` field: a slice
    /// of `sse`, not a second copy (the resume ring holds 30 s of these).
    pub(crate) json: Bytes,
    /// The complete SSE frame: `id:`, `event:`, `data:` and the blank line.
    pub(crate) sse: Bytes,
    /// What precedes `json` in the long-poll form, `{"event":"delta","id":310,"data":`
    /// (followed by `json` and `}`).
    pub(crate) poll_head: Bytes,
}

impl Event {
    fn new(tick: u64, base: u64, kind: EventKind, json: Vec<u8>) -> Self {
        let head = format!("id: {tick}\nevent: {}\ndata: ", kind.name());
        let mut sse = Vec::with_capacity(head.len() + json.len() + 2);
        // serde_json's compact output has no newlines, so one `data:` line holds it all.
        sse.extend_from_slice(head.as_bytes());
        sse.extend_from_slice(&json);
        sse.extend_from_slice(b"\n\n");
        let sse = Bytes::from(sse);
        let poll_head = format!(r#"{{"event":"{}","id":{tick},"data":"#, kind.name());
        Self {
            tick,
            base,
            json: sse.slice(head.len()..head.len() + json.len()),
            sse,
            poll_head: poll_head.into(),
        }
    }
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

struct State {
    /// The world as of the latest event; snapshots are made from it.
    world: Arc<NetWorld>,
    /// Recent deltas, oldest first; each one's base is the previous one's tick.
    ring: VecDeque<Arc<Event>>,
    /// The snapshot of `world`, once someone asked for it.
    snapshot: Option<Arc<Event>>,
}

/// The shared spectator feed.
pub(crate) struct Feed {
    // A std Mutex: every critical section is a few pointer copies, never held across an await.
    state: Mutex<State>,
    latest: watch::Sender<u64>,
    ring_len: usize,
    schema: Arc<Schema>,
    /// The schema as JSON, written once: every snapshot event carries it.
    schema_json: String,
    spectators: AtomicUsize,
}

impl Feed {
    /// A feed starting from `world`, remembering `ring_len` deltas for resumes.
    pub(crate) fn new(world: Arc<NetWorld>, ring_len: usize, schema: Arc<Schema>) -> Self {
        let (latest, _) = watch::channel(world.tick());
        let state = State {
            world,
            ring: VecDeque::with_capacity(ring_len),
            snapshot: None,
        };
        Self {
            state: Mutex::new(state),
            latest,
            ring_len: ring_len.max(1),
            schema_json: json::schema(&schema),
            schema,
            spectators: AtomicUsize::new(0),
        }
    }

    /// Publishes the step from the previous event to `world` (called by the tick loop, which
    /// keeps the same `Arc` as the base of its next diff: one copy of the world per event).
    pub(crate) fn publish(&self, changes: &Changes, world: Arc<NetWorld>) {
        // The tick loop is the only publisher, so the base cannot change under us.
        let base = self.lock().world.tick();
        let json = json::delta(base, changes, &world, &self.schema, self.spectator_count());
        let event = Arc::new(Event::new(world.tick(), base, EventKind::Delta, json));
        let tick = world.tick();
        {
            let mut state = self.lock();
            if state.ring.len() == self.ring_len {
                state.ring.pop_front();
            }
            state.ring.push_back(event);
            state.world = world;
            state.snapshot = None;
        }
        self.latest.send_replace(tick);
    }

    /// What a spectator that has seen everything up to `after` needs (`None`: nothing yet).
    pub(crate) fn since(&self, after: Option<u64>) -> Catchup {
        let state = self.lock();
        let Some(after) = after else {
            return Catchup::Snapshot(self.snapshot_of(state));
        };
        if after == state.world.tick() {
            return Catchup::UpToDate;
        }
        let start = if state.ring.front().is_some_and(|first| first.base == after) {
            Some(0)
        } else {
            state.ring.iter().position(|e| e.tick == after).map(|i| i + 1)
        };
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
        self.snapshot_of(self.lock())
    }

    /// Waits for events newer than what the receiver last saw.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Counts a connected spectator, here and in `gauge`, for as long as the guard lives.
    pub(crate) fn spectator(self: &Arc<Self>, gauge: Gauge) -> SpectatorGuard {
        self.spectators.fetch_add(1, Ordering::Relaxed);
        gauge.inc();
        SpectatorGuard {
            feed: self.clone(),
            gauge,
        }
    }

    pub(crate) fn spectator_count(&self) -> usize {
        self.spectators.load(Ordering::Relaxed)
    }

    fn snapshot_of(&self, state: MutexGuard<'_, State>) -> Arc<Event> {
        if let Some(snap) = &state.snapshot {
            return snap.clone();
        }
        let world = state.world.clone();
        drop(state); // encode outside the lock: the tick loop must never wait on a spectator
        let json = json::snapshot(&world, &self.schema, &self.schema_json, self.spectator_count());
        let snap = Arc::new(Event::new(world.tick(), world.tick(), EventKind::Snapshot, json));
        let mut state = self.lock();
        if state.world.tick() == world.tick() {
            state.snapshot = Some(snap.clone());
        }
        snap
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, so poisoning cannot carry a broken state.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("latest", &*self.latest.borrow())
            .field("spectators", &self.spectator_count())
            .finish_non_exhaustive()
    }
}

/// Keeps a spectator counted while it is connected.
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
