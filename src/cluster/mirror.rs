//! The follower's side of a room's spectator stream: on a node that does not own the room, one
//! reader per room (however many spectators it has here) rebuilds the owner's world from the
//! stream and feeds a local [`Feed`], which serves SSE, long-polls and polls exactly as the
//! owner's does: the same event ids (epoch and tick), resumes and snapshots.
//!
//! The reader starts from the newest keyframe and then reads every entry after it, in stream
//! order: there is one ordered log and one reader, so nothing is read twice or skipped (what
//! Centrifugo gets by subscribing before reading history, a stream gives by construction).
//! A delta whose base is not the world held (the owner dropped events, Redis lost the stream,
//! the room was opened again) is not applied: the reader waits for the next keyframe and starts
//! the feed over from it, and spectators get a snapshot, never a wrong delta. A checksum that
//! does not match is treated the same way.
//!
//! The reader ends when the stream says the room closed, when the room has left the directory
//! for longer than its records' expiry without a last word (its node died: the spectators get
//! a `closed` event anyway), or when it has had no spectator for [`LINGER`].

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::directory::{self, EXPIRY, RoomRecord, keys};
use super::glance::Seen;
use super::store::{Dedicated, Store};
use super::stream::{Entry, Keyframe, entries, stream_entries};
use super::{Cluster, FIRST_KEYFRAME_WITHIN, Refusal};
use crate::feed::{Epoch, Feed};
use crate::metrics::Metrics;
use crate::protocol::Schema;
use crate::protocol::delta::NetWorld;
use crate::room::RoomId;

/// How long a followed room with no spectator here is kept followed.
pub(crate) const LINGER: Duration = Duration::from_secs(30);
/// How long an XREAD waits for new entries.
const BLOCK: Duration = Duration::from_millis(1000);
/// Entries read at once.
const BATCH: usize = 256;
/// How far back from the newest entry a keyframe is looked for, in entries.
const KEYFRAME_SEARCH: usize = 2048;
/// How far ahead of this copy (in the owner's time) a resuming spectator is waited for.
const AHEAD: Duration = Duration::from_secs(2);

/// One followed room: its feed, once the first keyframe arrived.
#[derive(Debug)]
pub(crate) struct Mirror {
    ready: watch::Receiver<Option<Arc<Feed>>>,
}

impl Mirror {
    /// Starts following `room`; returns the handle and the reader to spawn.
    pub(crate) fn start(
        store: Store,
        room: RoomId,
        ring: usize,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> (Arc<Self>, impl Future<Output = ()> + use<>) {
        let (ready_tx, ready) = watch::channel(None);
        let reader = Reader {
            key: keys::events(room.as_str()),
            room,
            store,
            ring,
            metrics,
            stop,
            ready: ready_tx,
            feed: None,
            world: None,
            last_id: "0".into(),
            schema: None,
        };
        (Arc::new(Self { ready }), reader.run())
    }

    /// The feed, waiting up to `patience` for the first keyframe; `None` if none came (or
    /// the reader ended).
    pub(crate) async fn feed(&self, patience: Duration) -> Option<Arc<Feed>> {
        let mut ready = self.ready.clone();
        let found = tokio::time::timeout(patience, ready.wait_for(Option::is_some)).await;
        match found {
            Ok(Ok(feed)) => feed.clone(),
            _ => None,
        }
    }

    /// The feed, if the first keyframe has arrived and the reader still runs.
    pub(crate) fn current_feed(&self) -> Option<Arc<Feed>> {
        (!self.ended()).then(|| self.ready.borrow().clone()).flatten()
    }

    /// Spectators of the room on this node, once the feed exists.
    pub(crate) fn spectators(&self) -> Option<usize> {
        self.ready.borrow().as_ref().map(|feed| feed.spectator_count())
    }

    /// Whether the reader has ended (the room closed, or nobody watched for [`LINGER`]).
    pub(crate) fn ended(&self) -> bool {
        self.ready.has_changed().is_err()
    }
}

struct Reader {
    room: RoomId,
    key: String,
    store: Store,
    /// The resume ring's length: as long as the owner's history, which its stream keeps.
    ring: usize,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    ready: watch::Sender<Option<Arc<Feed>>>,
    feed: Option<Arc<Feed>>,
    /// The world as of the last entry applied, and its epoch; `None` until a keyframe.
    world: Option<(Epoch, Arc<NetWorld>)>,
    schema: Option<Arc<Schema>>,
    /// The id of the last entry read.
    last_id: String,
}

impl Reader {
    async fn run(mut self) {
        self.metrics.cluster_mirrors.inc();
        let why = self.follow().await;
        self.metrics.cluster_mirrors.dec();
        tracing::debug!(room = %self.room, why, "stopped following");
        // The feed's spectators get their last event; a lingering one just ends.
        if let Some(feed) = &self.feed {
            feed.stopping().cancel();
        }
    }

    /// Follows until the room ends or nobody watches; returns why it stopped.
    async fn follow(&mut self) -> &'static str {
        let mut con: Option<Dedicated> = None;
        let mut backoff = Duration::from_millis(100);
        let mut unwatched_since = Instant::now();
        let mut missing_since: Option<Instant> = None;
        let mut last_directory_check = Instant::now();
        loop {
            if self.stop.is_cancelled() {
                return "server stopping";
            }
            // Nobody has watched for a while: stop following.
            match &self.feed {
                Some(feed) if feed.spectator_count() > 0 => unwatched_since = Instant::now(),
                _ if unwatched_since.elapsed() >= LINGER => return "no spectators",
                _ => {}
            }
            // A room gone from the directory without a last word: its node died.
            if last_directory_check.elapsed() >= Duration::from_secs(1) {
                last_directory_check = Instant::now();
                match directory::room(&self.store, &self.room).await {
                    Ok(Some(_)) => missing_since = None,
                    Ok(None) => {
                        let since = *missing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= EXPIRY {
                            self.close("closed", r#"{"reason":"room lost: its node stopped"}"#);
                            return "room left the directory";
                        }
                    }
                    Err(_) => {} // Redis away: spectators wait, the reader retries.
                }
            }
            let connection = match con.as_mut() {
                Some(c) => c,
                None => match self.store.dedicated(BLOCK).await {
                    Ok(c) => con.insert(c),
                    Err(_) => {
                        self.pause(&mut backoff).await;
                        continue;
                    }
                },
            };
            let read = if self.world.is_none() {
                self.sync(connection).await
            } else {
                self.read(connection).await
            };
            match read {
                Ok(Some(ended)) => return ended,
                Ok(None) => backoff = Duration::from_millis(100),
                Err(()) => {
                    con = None;
                    self.pause(&mut backoff).await;
                }
            }
        }
    }

    async fn pause(&self, backoff: &mut Duration) {
        tokio::select! {
            _ = tokio::time::sleep(*backoff) => {}
            _ = self.stop.cancelled() => {}
        }
        *backoff = (*backoff * 2).min(Duration::from_secs(2));
    }

    /// Finds the newest keyframe and starts from it (or, if the newest word is the room's
    /// last, ends with it).
    async fn sync(&mut self, con: &mut Dedicated) -> Result<Option<&'static str>, ()> {
        let newest: Value = con
            .query(
                redis::cmd("XREVRANGE")
                    .arg(&self.key)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(KEYFRAME_SEARCH),
            )
            .await
            .map_err(drop)?;
        let entries = entries(&newest);
        if let Some(last) = entries.first()
            && last.get("k") == Some(b"c")
        {
            self.close_with(last);
            return Ok(Some("room closed"));
        }
        let Some(keyframe) = entries.iter().find(|e| e.get("k") == Some(b"s")) else {
            // No keyframe yet (the room just opened, or Redis lost the stream): wait a little.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Ok(None);
        };
        self.keyframe(keyframe);
        Ok(None)
    }

    /// Reads and applies the entries after the last one.
    async fn read(&mut self, con: &mut Dedicated) -> Result<Option<&'static str>, ()> {
        let reply: Value = con
            .query(
                redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(BATCH)
                    .arg("BLOCK")
                    .arg(BLOCK.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&self.key)
                    .arg(&self.last_id),
            )
            .await
            .map_err(drop)?;
        let read = match &reply {
            Value::Array(streams) => streams.first().map(stream_entries).unwrap_or_default(),
            _ => Vec::new(),
        };
        for entry in read {
            self.last_id.clone_from(&entry.id);
            match entry.get("k") {
                Some(b"d") => self.delta(&entry),
                Some(b"s") => {
                    let held = self.world.as_ref().map(|(epoch, world)| (epoch.clone(), world.tick()));
                    let this = (entry.text("e").and_then(Epoch::parse), entry.number("t"));
                    if held.map(|(e, t)| (Some(e), Some(t))) != Some(this) {
                        self.keyframe(&entry);
                    }
                }
                Some(b"m") => {
                    let ended = self.schema.as_ref().and_then(|schema| entry.ended(schema));
                    if let (Some(feed), Some(ended)) = (&self.feed, ended) {
                        feed.ended(ended.tick, &ended.results);
                    }
                }
                Some(b"c") => {
                    self.close_with(&entry);
                    return Ok(Some("room closed"));
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// Applies a delta entry, or drops the world (to wait for a keyframe) if it does not fit.
    fn delta(&mut self, entry: &Entry) {
        let (Some((epoch, world)), Some(schema)) = (&self.world, &self.schema) else {
            return;
        };
        let Some((_, next)) = entry.applied(epoch, world, schema) else {
            // A gap, another incarnation, or a checksum that does not match: start over from
            // the next keyframe.
            self.metrics.cluster_mirror_resyncs.inc();
            self.world = None;
            return;
        };
        let next = Arc::new(next);
        if let Some(feed) = &self.feed {
            // The changes again, from the worlds: their texts are the new world's.
            let changes = world.diff(&next, schema);
            feed.publish(&changes, next.clone(), entry.heard(schema));
        }
        self.world = Some((epoch.clone(), next));
    }

    /// Starts over from a keyframe entry (creating the feed at the first).
    fn keyframe(&mut self, entry: &Entry) {
        let Some(Keyframe {
            epoch,
            tick_hz,
            schema,
            world,
        }) = entry.keyframe()
        else {
            return;
        };
        self.last_id.clone_from(&entry.id);
        match &self.feed {
            Some(feed) => {
                feed.reset(epoch.clone(), world.clone());
                self.metrics.cluster_mirror_resyncs.inc();
            }
            None => {
                // A spectator coming from the owner may be up to this far ahead of this copy.
                let ahead = u64::from(tick_hz.max(1)) * AHEAD.as_secs();
                let feed = Arc::new(Feed::new(
                    epoch.clone(),
                    world.clone(),
                    self.ring,
                    ahead,
                    schema.clone(),
                    self.stop.child_token(),
                ));
                self.feed = Some(feed.clone());
                self.ready.send_replace(Some(feed));
            }
        }
        self.schema = Some(schema);
        self.world = Some((epoch, world));
    }

    fn close_with(&mut self, entry: &Entry) {
        let name = if entry.get("n") == Some(b"shutdown") {
            "shutdown"
        } else {
            "closed"
        };
        let json = entry.text("j").unwrap_or(r#"{"reason":"room closed"}"#).to_owned();
        self.close(name, &json);
    }

    /// Ends the feed with this last event (a feed not made yet has no spectators to tell).
    fn close(&mut self, name: &'static str, json: &str) {
        if let Some(feed) = &self.feed {
            feed.close(name, json.to_owned());
        }
    }
}

impl Cluster {
    /// The feed of another node's room, followed here from its stream.
    /// This node follows at most `--max-followed-rooms` rooms at once; a spectator of one more
    /// gets 503.
    pub(crate) async fn follow(&self, record: &RoomRecord) -> Result<Arc<Feed>, Refusal> {
        let mirror = {
            let mut mirrors = self.lock_mirrors();
            mirrors.retain(|_, m| !m.ended());
            match mirrors.get(&record.summary.id) {
                Some(mirror) => mirror.clone(),
                None if mirrors.len() >= self.max_followed_rooms => {
                    let message = format!(
                        "this node follows its maximum of {} rooms of other nodes: try again shortly, or watch room {} on its node",
                        self.max_followed_rooms, record.summary.id
                    );
                    return Err(Refusal::new(503, message));
                }
                None => {
                    let (mirror, reader) = Mirror::start(
                        self.store.clone(),
                        record.summary.id.clone(),
                        // Events at the spectator rate, for the history the owner keeps.
                        self.tuning.spectator_ring(self.tuning.spectator_hz),
                        self.metrics.clone(),
                        self.shutdown.clone(),
                    );
                    self.tasks.spawn(reader);
                    mirrors.insert(record.summary.id.clone(), mirror.clone());
                    mirror
                }
            }
        };
        mirror.feed(FIRST_KEYFRAME_WITHIN).await.ok_or_else(|| {
            Refusal::new(
                503,
                format!(
                    "room {}'s spectator stream is not available yet: try again",
                    record.summary.id
                ),
            )
        })
    }

    /// Another node's room as it is now, for a poll: from this node's follower of it if there
    /// is one, else from a one-off look at its stream ([`glance`]), which follows nothing.
    pub(crate) async fn glance(&self, record: &RoomRecord) -> Result<Seen, Refusal> {
        let followed = self.lock_mirrors().get(&record.summary.id).cloned();
        if let Some(feed) = followed.and_then(|mirror| mirror.current_feed()) {
            return Ok(Seen::State(feed.snapshot()));
        }
        self.glances
            .look(&self.store, &record.summary.id)
            .await
            .map_err(Refusal::unavailable)
    }
}
