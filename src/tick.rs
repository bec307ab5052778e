//! The tick loop: the one task that owns the world.
//!
//! Each tick, in order:
//! 1. admit players whose hello was accepted since the last tick (welcome queued);
//! 2. forget players whose session has ended (their removal is in this tick's delta);
//! 3. take each player's latest move command and set its direction;
//! 4. step the simulation;
//! 5. quantize the world and diff it against what players hold, encoding the shared part of
//!    the delta once;
//! 6. queue each player its delta (or a keyframe, if it joined or fell behind).
//!
//! Sessions never lock the world: a move command is written to the player's [`InputSlot`],
//! which keeps only the latest, and frames come back through a bounded queue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::delta::NetWorld;
use crate::feed::Feed;
use crate::metrics::Metrics;
use crate::protocol::{Move, POSITION_SCALE, PROTOCOL_VERSION, ServerMsg, SharedBody, Welcome};
use crate::sim::{EntityId, World};

/// The latest move command of one player, written by its session and taken by the tick loop.
///
/// "The latest command received before a tick is the one applied": a slot that keeps only the
/// latest is exactly that rule, needs no queue, and cannot grow however fast a client sends.
#[derive(Debug, Default)]
pub(crate) struct InputSlot(AtomicU64);

impl InputSlot {
    const PRESENT: u64 = 1 << 48;

    /// Stores a command; returns whether it replaced one that no tick had taken.
    pub(crate) fn put(&self, m: Move) -> bool {
        let packed = Self::PRESENT | u64::from(m.seq) << 16 | u64::from(m.dx as u8) << 8 | u64::from(m.dy as u8);
        self.0.swap(packed, Ordering::AcqRel) & Self::PRESENT != 0
    }

    /// Takes the stored command, if any.
    pub(crate) fn take(&self) -> Option<Move> {
        let v = self.0.swap(0, Ordering::AcqRel);
        (v & Self::PRESENT != 0).then_some(Move {
            seq: (v >> 16) as u32,
            dx: (v >> 8) as u8 as i8,
            dy: v as u8 as i8,
        })
    }
}

/// What a session hands the tick loop to join the game.
pub(crate) struct JoinRequest {
    pub(crate) input: Arc<InputSlot>,
    /// Frames for this player. Bounded by `--player-queue`; see [`TickLoop::fan_out`] for what
    /// happens when it is full.
    pub(crate) out: mpsc::Sender<Bytes>,
    /// Cancelled by the tick loop when the player is too slow to keep.
    pub(crate) kick: CancellationToken,
    pub(crate) reply: oneshot::Sender<EntityId>,
}

/// Where a player stands with respect to the frames it has been sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// Welcomed; its first keyframe is still to be queued.
    Joining,
    /// Holds every delta up to the last tick: the next delta applies.
    Synced,
    /// A delta was dropped: it needs a keyframe before any further delta.
    Behind,
}

struct Peer {
    input: Arc<InputSlot>,
    out: mpsc::Sender<Bytes>,
    kick: CancellationToken,
    ack: u32,
    sync: Sync,
    /// When its queue was first found full, if it still is.
    full_since: Option<Instant>,
}

/// The tick counter other tasks read (pongs, spectators).
#[derive(Debug, Default)]
pub(crate) struct TickClock(AtomicU64);

impl TickClock {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub(crate) struct TickLoop {
    world: World,
    /// What every synced player holds: the world as of the last tick's delta.
    sent: NetWorld,
    /// This tick's capture; swapped with `sent` after the diff to reuse both allocations.
    next: NetWorld,
    peers: BTreeMap<EntityId, Peer>,
    /// The world as of the last spectator event; the next event is the diff from here.
    spectated: NetWorld,
    spectator_every: u64,
    feed: Arc<Feed>,
    joins: mpsc::Receiver<JoinRequest>,
    clock: Arc<TickClock>,
    metrics: Arc<Metrics>,
    welcome: Welcome,
    period: Duration,
    tick_hz: u32,
    slow_timeout: Duration,
}

impl TickLoop {
    pub(crate) fn new(
        config: &Config,
        seed: u64,
        joins: mpsc::Receiver<JoinRequest>,
        clock: Arc<TickClock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let world = World::new(config.rules(), seed);
        let sent = NetWorld::capture(&world);
        let feed = Arc::new(Feed::new(&sent, config.spectator_ring(), config.world_size));
        let welcome = Welcome {
            version: PROTOCOL_VERSION,
            player_id: 0,
            tick_hz: config.tick_hz,
            world_width: config.world_size,
            world_height: config.world_size,
            position_scale: POSITION_SCALE,
        };
        Self {
            world,
            next: sent.clone(),
            spectated: sent.clone(),
            spectator_every: u64::from(config.spectator_every()),
            feed,
            sent,
            peers: BTreeMap::new(),
            joins,
            clock,
            metrics,
            welcome,
            period: config.tick_period(),
            tick_hz: config.tick_hz,
            slow_timeout: config.slow_timeout,
        }
    }

    /// The spectator feed this loop publishes to.
    pub(crate) fn feed(&self) -> Arc<Feed> {
        self.feed.clone()
    }

    /// Runs ticks at the configured rate until `shutdown`.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let mut interval = time::interval(self.period);
        // A late tick is not followed by a burst of catch-up ticks: players would see the world
        // jump. Skipped ticks are counted as overruns instead.
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            let started = Instant::now();
            self.tick(started);
            let work = started.elapsed();
            self.metrics.ticks.inc();
            self.metrics.tick_work.observe(work.as_secs_f64());
            if work > self.period {
                self.metrics.tick_overruns.inc();
            }
        }
        tracing::debug!(tick = self.world.tick(), "tick loop stopped");
    }

    /// One tick's work; `now` is used only for slow-consumer deadlines.
    pub(crate) fn tick(&mut self, now: Instant) {
        while let Ok(join) = self.joins.try_recv() {
            self.admit(join);
        }
        self.peers.retain(|id, peer| {
            let alive = !peer.out.is_closed();
            if !alive {
                self.world.remove_player(*id);
            }
            alive
        });
        for (id, peer) in &mut self.peers {
            if let Some(m) = peer.input.take() {
                self.world.set_direction(*id, m.dx, m.dy);
                peer.ack = m.seq;
                self.metrics.inputs_applied.inc();
            }
        }
        self.world.step();
        self.next.recapture(&self.world);
        let changes = self.sent.diff(&self.next);
        std::mem::swap(&mut self.sent, &mut self.next);
        let tick = self.world.tick();
        // Once a second, enough to catch a drifting client without hashing every tick.
        let checksum = (tick % u64::from(self.tick_hz) == 0).then(|| self.sent.checksum());
        let delta = SharedBody::delta(tick, 1, &changes.spawned, &changes.updated, &changes.removed, checksum);
        self.fan_out(&delta, now);
        if tick % self.spectator_every == 0 {
            // Diffing against the last event's world merges the ticks in between. Nothing
            // changed, nothing published: an idle match must not wake every long-poller.
            let changes = self.spectated.diff(&self.sent);
            if !changes.is_empty() {
                self.feed.publish(&changes, &self.sent);
                self.spectated.clone_from(&self.sent);
            }
        }
        self.clock.0.store(tick, Ordering::Relaxed);
        self.metrics.players.set(self.peers.len() as i64);
    }

    fn admit(&mut self, join: JoinRequest) {
        if join.out.is_closed() {
            return; // The session gave up while waiting for this tick.
        }
        let id = self.world.add_player();
        let welcome = ServerMsg::Welcome(Welcome {
            player_id: id,
            ..self.welcome.clone()
        });
        // A fresh queue has room; if the session is already gone, the next tick removes it.
        let _ = join.out.try_send(welcome.encode().into());
        let _ = join.reply.send(id);
        let peer = Peer {
            input: join.input,
            out: join.out,
            kick: join.kick,
            ack: 0,
            sync: Sync::Joining,
            full_since: None,
        };
        self.peers.insert(id, peer);
    }

    /// Queues this tick's frame for every player.
    ///
    /// Overflow policy of the per-player queue: when it is full, this tick's delta is dropped
    /// and the player is marked behind; once the queue has room again it gets a keyframe, never
    /// a delta against a base it does not hold. A player whose queue stays full for
    /// `--slow-timeout` is kicked ("too slow") and leaves the world.
    fn fan_out(&mut self, delta: &SharedBody, now: Instant) {
        let mut keyframe = None;
        let mut kicked = Vec::new();
        for (id, peer) in &mut self.peers {
            let frame = match peer.sync {
                Sync::Synced => delta.frame(peer.ack),
                Sync::Joining | Sync::Behind => keyframe
                    .get_or_insert_with(|| SharedBody::snapshot(self.sent.tick(), self.sent.entities()))
                    .frame(peer.ack),
            };
            match peer.out.try_send(frame) {
                Ok(()) => {
                    if peer.sync == Sync::Behind {
                        self.metrics.resync_keyframes.inc();
                    }
                    peer.sync = Sync::Synced;
                    peer.full_since = None;
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if peer.sync == Sync::Synced {
                        self.metrics.deltas_dropped.inc();
                        peer.sync = Sync::Behind;
                    }
                    let since = *peer.full_since.get_or_insert(now);
                    if now.duration_since(since) >= self.slow_timeout {
                        peer.kick.cancel();
                        kicked.push(*id);
                    }
                }
                // The session ended; the next tick removes it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        for id in kicked {
            self.peers.remove(&id);
            self.world.remove_player(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_slot_keeps_only_the_latest_command() {
        let slot = InputSlot::default();
        assert_eq!(slot.take(), None);
        assert!(!slot.put(Move {
            seq: 1,
            dx: -127,
            dy: 5
        }));
        assert!(slot.put(Move {
            seq: u32::MAX,
            dx: 127,
            dy: -1
        }));
        assert_eq!(
            slot.take(),
            Some(Move {
                seq: u32::MAX,
                dx: 127,
                dy: -1
            })
        );
        assert_eq!(slot.take(), None);
    }

    fn join(tick: &mut TickLoop, queue: usize) -> (mpsc::Receiver<Bytes>, CancellationToken) {
        let (out, rx) = mpsc::channel(queue);
        let (reply, _) = oneshot::channel();
        let kick = CancellationToken::new();
        tick.admit(JoinRequest {
            input: Arc::default(),
            out,
            kick: kick.clone(),
            reply,
        });
        (rx, kick)
    }

    fn decode(frame: Bytes) -> ServerMsg {
        ServerMsg::decode(&frame).unwrap()
    }

    #[test]
    fn a_player_that_falls_behind_gets_a_keyframe_then_is_kicked_when_it_stays_full() {
        let config = Config {
            slow_timeout: Duration::from_secs(1),
            ..Config::defaults()
        };
        let (_joins_tx, joins) = mpsc::channel(1);
        let mut tick = TickLoop::new(&config, 1, joins, Arc::default(), Arc::default());
        let (mut rx, kick) = join(&mut tick, 3);
        let t0 = Instant::now();
        tick.tick(t0); // welcome + keyframe
        tick.tick(t0); // delta; the queue is now full
        tick.tick(t0); // dropped
        assert!(matches!(decode(rx.try_recv().unwrap()), ServerMsg::Welcome(_)));
        assert!(matches!(decode(rx.try_recv().unwrap()), ServerMsg::Snapshot(s) if s.tick == 1));
        assert!(matches!(decode(rx.try_recv().unwrap()), ServerMsg::Delta(d) if d.tick == 2));
        tick.tick(t0); // room again: a keyframe at tick 4, not the delta 3 -> 4
        assert!(matches!(decode(rx.try_recv().unwrap()), ServerMsg::Snapshot(s) if s.tick == 4));
        assert_eq!(tick.metrics.deltas_dropped.get(), 1);
        assert_eq!(tick.metrics.resync_keyframes.get(), 1);

        for _ in 0..4 {
            tick.tick(t0); // fill the queue again
        }
        assert!(!kick.is_cancelled());
        tick.tick(t0 + Duration::from_secs(1));
        assert!(kick.is_cancelled(), "a player full past the deadline is kicked");
        assert!(tick.world.players().is_empty());
    }
}
