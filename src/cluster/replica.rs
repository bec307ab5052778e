//! The owner's side of a room's spectator stream: each spectator event of the room, copied to
//! the Redis stream `tickcast:room:{id}:events`, from which every other node serves the room's
//! spectators ([`super::mirror`]).
//!
//! Entries are the player protocol's own binary messages, encoded once here: a `Delta` with
//! the world's checksum for each event; a keyframe (the schema, as a `Welcome`, and a
//! `Snapshot`) at the start, after every [`KEYFRAME_EVERY`] (following the delta of the same
//! tick, so followers that hold the world skip it) and after any gap (instead of the delta);
//! a last `closed` entry when the room ends. A follower rebuilds exactly the owner's world (the checksums prove it) and the
//! same events from it. The stream is trimmed to about the resume history plus a keyframe
//! interval, so it always holds a keyframe.
//!
//! The tick loop never waits for Redis: events reach this task through a bounded queue that
//! drops (and counts) what does not fit; a dropped event or a failed write makes the next
//! entry a keyframe, so followers never apply a delta to the wrong base.
//!
//! Fields of an entry: `e` epoch, `k` kind (`s` keyframe, `d` delta, `m` match ended, `c`
//! closed), `t` tick; `w` the `Welcome` and `b` the `Snapshot` of a keyframe; `p` the base tick,
//! `b` the `Delta` and, when the game told public events since the base, `v` those events (each
//! an `Events` message, its length first as 4 bytes LE) of a delta; `b` the `MatchEnded` of a
//! match's end; `n` the event name (`closed`, `shutdown`) and `j` its JSON for the last one.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::directory::{STREAM_TTL, keys};
use super::store::Store;
use super::stream::encode_heard;
use crate::feed::{Epoch, Feed, Heard, Replicated};
use crate::metrics::Metrics;
use crate::protocol::delta::{Changes, NetWorld};
use crate::protocol::{MatchEnded, PROTOCOL_VERSION, Results, ServerMsg, Welcome};

/// The longest a stream goes without a keyframe while its room changes.
pub(crate) const KEYFRAME_EVERY: Duration = Duration::from_secs(5);
/// Events waiting for Redis, per room; more are dropped (and healed by a keyframe).
const QUEUE: usize = 64;

/// Starts copying `feed`'s events to the stream of room `room` of node `node` (trimmed to
/// about `keep` entries), until the feed ends. Returns the task to track.
pub(crate) fn start(
    store: Store,
    node: String,
    room: String,
    feed: &Arc<Feed>,
    tick_hz: u32,
    keep: usize,
    metrics: Arc<Metrics>,
) -> impl Future<Output = ()> + use<> {
    let (tx, rx) = mpsc::channel(QUEUE);
    feed.replicate(tx);
    let writer = Writer {
        key: keys::events(&room),
        node,
        room,
        tick_hz,
        store,
        feed: feed.clone(),
        keep,
        metrics,
        last_tick: None,
        last_epoch: None,
        keyframe_due: true,
        last_keyframe: Instant::now(),
        last_write: Instant::now(),
        dropped_seen: 0,
    };
    writer.run(rx)
}

struct Writer {
    node: String,
    room: String,
    tick_hz: u32,
    key: String,
    store: Store,
    feed: Arc<Feed>,
    keep: usize,
    metrics: Arc<Metrics>,
    /// The tick of the last entry written (a delta must be based on it).
    last_tick: Option<u64>,
    /// The epoch of the last entry written (a delta must be of it: a new match is a keyframe).
    last_epoch: Option<Epoch>,
    keyframe_due: bool,
    last_keyframe: Instant,
    last_write: Instant,
    /// The feed's drop count when last looked at.
    dropped_seen: usize,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Replicated>) {
        // The room may be idle (no events): its first keyframe cannot wait for one.
        let (epoch, world) = self.feed.current();
        self.keyframe(&epoch, &world).await;
        let mut check = tokio::time::interval(KEYFRAME_EVERY);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Replicated::Event { epoch, base, heard, changes, world }) => {
                        self.event(&epoch, base, &heard, &changes, &world).await;
                    }
                    Some(Replicated::Ended { epoch, tick, results }) => self.ended(&epoch, tick, results).await,
                    Some(Replicated::Closed { name, json }) => return self.closed(name, &json).await,
                    // The feed is gone without a last word: the node is stopping.
                    None => return,
                },
                _ = check.tick() => self.check().await,
            }
        }
    }

    async fn event(&mut self, epoch: &Epoch, base: u64, heard: &[Heard], changes: &Changes, world: &Arc<NetWorld>) {
        let dropped = self.feed.replica_dropped();
        if dropped != self.dropped_seen {
            self.metrics
                .cluster_events_dropped
                .inc_by((dropped - self.dropped_seen) as u64);
            self.dropped_seen = dropped;
            self.keyframe_due = true;
        }
        if self.keyframe_due || self.last_tick != Some(base) || self.last_epoch.as_ref() != Some(epoch) {
            // A gap (or a new match): followers start over from a keyframe of this event
            // instead (the public events between are lost to them).
            return self.keyframe(epoch, world).await;
        }
        let schema = self.feed.schema();
        let base_gap = u32::try_from(world.tick() - base).unwrap_or(u32::MAX);
        let bytes = changes.encode(world, base_gap, Some(world.checksum(schema)), schema);
        let events = encode_heard(heard, schema);
        let (tick, base) = (world.tick().to_string(), base.to_string());
        let mut fields: Vec<(&str, &[u8])> = vec![
            ("e", epoch.as_str().as_bytes()),
            ("k", b"d"),
            ("t", tick.as_bytes()),
            ("p", base.as_bytes()),
            ("b", &bytes),
        ];
        if !events.is_empty() {
            fields.push(("v", &events));
        }
        if !self.append(&fields).await {
            return;
        }
        self.last_tick = Some(world.tick());
        if self.last_keyframe.elapsed() >= KEYFRAME_EVERY {
            // After the delta, of the same tick: followers that hold the world skip it, and the
            // stream always keeps one to start from.
            self.keyframe(epoch, world).await;
        }
    }

    /// Writes the end of a match; followers tell their spectators.
    async fn ended(&mut self, epoch: &Epoch, tick: u64, results: Results) {
        let schema = self.feed.schema();
        let bytes = ServerMsg::MatchEnded(MatchEnded { tick, results }).encode(schema);
        let tick = tick.to_string();
        let fields: [(&str, &[u8]); 4] = [
            ("e", epoch.as_str().as_bytes()),
            ("k", b"m"),
            ("t", tick.as_bytes()),
            ("b", &bytes),
        ];
        self.append(&fields).await;
    }

    /// Writes a keyframe of `world`; on failure, the next event tries again.
    async fn keyframe(&mut self, epoch: &Epoch, world: &NetWorld) {
        let schema = self.feed.schema();
        let welcome = ServerMsg::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            player_id: 0,
            tick_hz: self.tick_hz,
            resume: String::new(),
            grace_ms: 0,
            schema: (**schema).clone(),
        })
        .encode(schema);
        let snapshot = world.encode_snapshot(schema);
        let tick = world.tick().to_string();
        let fields: [(&str, &[u8]); 5] = [
            ("e", epoch.as_str().as_bytes()),
            ("k", b"s"),
            ("t", tick.as_bytes()),
            ("w", &welcome),
            ("b", &snapshot),
        ];
        let written = self.append(&fields).await;
        self.keyframe_due = !written;
        if written {
            self.last_tick = Some(world.tick());
            self.last_epoch = Some(epoch.clone());
            self.last_keyframe = Instant::now();
        }
    }

    /// Every [`KEYFRAME_EVERY`]: a keyframe if one is due and no event brought it, and a check
    /// that the stream still exists (Redis restarted without persistence loses it, and an idle
    /// room writes nothing that would bring it back).
    async fn check(&mut self) {
        let quiet = self.last_write.elapsed() >= KEYFRAME_EVERY;
        let lost = quiet
            && matches!(
                self.store.query::<bool>(redis::cmd("EXISTS").arg(&self.key)).await,
                Ok(false)
            );
        if self.keyframe_due || lost {
            let (epoch, world) = self.feed.current();
            return self.keyframe(&epoch, &world).await;
        }
        if quiet {
            // Keep an idle room's stream alive.
            let _: Result<bool, _> = self
                .store
                .query(redis::cmd("PEXPIRE").arg(&self.key).arg(STREAM_TTL.as_millis() as u64))
                .await;
        }
    }

    /// The room ended: its stream's last entry, then it leaves the directory.
    async fn closed(self, name: &str, json: &str) {
        let epoch = self.feed.epoch();
        let fields: [(&str, &[u8]); 4] = [
            ("e", epoch.as_str().as_bytes()),
            ("k", b"c"),
            ("n", name.as_bytes()),
            ("j", json.as_bytes()),
        ];
        let _ = self.append_to(&fields).await;
        super::forget_room(&self.store, &self.node, &self.room).await;
    }

    /// Appends an entry (trimming the stream and renewing its expiry); false if it failed.
    async fn append(&mut self, fields: &[(&str, &[u8])]) -> bool {
        let ok = self.append_to(fields).await;
        if ok {
            self.last_write = Instant::now();
            self.metrics.cluster_events_written.inc();
        } else {
            self.metrics.cluster_events_dropped.inc();
            self.keyframe_due = true;
        }
        ok
    }

    async fn append_to(&self, fields: &[(&str, &[u8])]) -> bool {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&self.key).arg("MAXLEN").arg("~").arg(self.keep).arg("*");
        for (name, value) in fields {
            xadd.arg(*name).arg(*value);
        }
        let mut pipe = redis::pipe();
        pipe.add_command(xadd)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&self.key)
            .arg(STREAM_TTL.as_millis() as u64)
            .ignore();
        self.store.pipe::<()>(&pipe).await.is_ok()
    }
}
