//! Who is connected and how to reach them: each player's input slot (in), outbound queue (out)
//! and where it stands with the frames it was sent. The tick loop owns one [`Roster`].
//!
//! The fan-out lives here because its overflow policy is about the queue: when a player's
//! queue is full, this tick's delta is dropped and the player is marked behind; once the queue
//! has room again it gets a keyframe, never a delta against a base it does not hold. A player
//! whose queue stays full for the slow timeout is kicked ("too slow") and leaves the world.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::delta::NetWorld;
use crate::frames;
use crate::metrics::Metrics;
use crate::protocol::{EntityId, Input, Schema, ServerMsg, Snapshot};
use crate::room::outbox::{Outbound, Outlet, PushError};

/// The latest input of one player, written by its session and taken by the tick loop.
///
/// "The latest input received before a tick is the one applied": a slot that keeps only the
/// latest is exactly that rule, needs no queue, and cannot grow however fast a client sends.
/// A std Mutex: its two users each hold it for a copy, never across an await.
#[derive(Debug, Default)]
pub struct InputSlot(Mutex<Option<Input>>);

impl InputSlot {
    /// Stores an input; returns whether it replaced one that no tick had taken.
    pub fn put(&self, input: Input) -> bool {
        self.lock().replace(input).is_some()
    }

    /// Takes the stored input, if any.
    pub fn take(&self) -> Option<Input> {
        self.lock().take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Input>> {
        // Nothing panics while holding it (a copy in or out).
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a session hands over to take its place in the game.
#[derive(Debug)]
pub struct Seat {
    /// Where the session writes the player's latest move.
    pub input: Arc<InputSlot>,
    /// Frames for this player, bounded by `--player-queue` (see the module docs for the
    /// overflow policy).
    pub out: Outlet,
    /// Cancelled when the player is too slow to keep.
    pub kick: CancellationToken,
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

#[derive(Debug)]
struct Peer {
    seat: Seat,
    /// The `seq` of the last move applied.
    ack: u32,
    /// The last ack queued to the player.
    ack_sent: u32,
    sync: Sync,
    /// When its queue was first found full, if it still is.
    full_since: Option<Instant>,
}

/// The connected players.
#[derive(Debug)]
pub struct Roster {
    peers: BTreeMap<EntityId, Peer>,
    slow_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Roster {
    /// An empty roster that kicks players whose queue stays full for `slow_timeout`.
    pub fn new(slow_timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            peers: BTreeMap::new(),
            slow_timeout,
            metrics,
        }
    }

    /// How many players are connected.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether nobody is connected.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Seats player `id`; its first frame after any already queued will be a keyframe.
    pub fn insert(&mut self, id: EntityId, seat: Seat) {
        self.peers.insert(
            id,
            Peer {
                seat,
                ack: 0,
                ack_sent: 0,
                sync: Sync::Joining,
                full_since: None,
            },
        );
    }

    /// Removes the players whose session has ended and returns their ids.
    pub fn remove_departed(&mut self) -> Vec<EntityId> {
        let gone: Vec<_> = self
            .peers
            .iter()
            .filter(|(_, p)| p.seat.out.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.peers.remove(id);
        }
        gone
    }

    /// Takes each player's latest input, if any, recording its `seq` as the player's ack.
    pub fn take_inputs(&mut self, mut apply: impl FnMut(EntityId, &Input)) {
        for (id, peer) in &mut self.peers {
            if let Some(input) = peer.seat.input.take() {
                peer.ack = input.seq;
                apply(*id, &input);
            }
        }
    }

    /// Queues this tick's frame for every player: `delta` (a framed [`ServerMsg::Delta`]), or a
    /// keyframe of `world` for those joining or behind. Every player gets the same bytes, so
    /// queueing is a reference count, not a copy. Returns the players kicked for being too
    /// slow (already removed).
    pub fn fan_out(&mut self, delta: &Bytes, world: &NetWorld, schema: &Schema, now: Instant) -> Vec<EntityId> {
        // Encoded at most once per tick, and only if someone needs it.
        let mut keyframe: Option<Bytes> = None;
        let mut kicked = Vec::new();
        let (mut queued, mut deepest) = (0, 0);
        for (id, peer) in &mut self.peers {
            let frame = match peer.sync {
                Sync::Synced => delta.clone(),
                Sync::Joining | Sync::Behind => keyframe
                    .get_or_insert_with(|| {
                        let snapshot = Snapshot {
                            tick: world.tick(),
                            entities: world.entities().to_vec(),
                        };
                        frames::binary_frame(ServerMsg::Snapshot(snapshot).encode(schema))
                    })
                    .clone(),
            };
            let ack = (peer.ack != peer.ack_sent).then_some(peer.ack);
            let pushed = peer.seat.out.push(Outbound { ack, frame });
            let depth = match pushed {
                Ok(waiting) => waiting,
                Err(PushError::Full) => peer.seat.out.capacity(),
                Err(PushError::Closed) => 0,
            };
            queued += depth;
            deepest = deepest.max(depth);
            match pushed {
                Ok(_) => {
                    peer.ack_sent = peer.ack;
                    if peer.sync == Sync::Behind {
                        self.metrics.resync_keyframes.inc();
                    }
                    peer.sync = Sync::Synced;
                    peer.full_since = None;
                }
                Err(PushError::Full) => {
                    if peer.sync == Sync::Synced {
                        self.metrics.deltas_dropped.inc();
                        peer.sync = Sync::Behind;
                    }
                    let since = *peer.full_since.get_or_insert(now);
                    if now.duration_since(since) >= self.slow_timeout {
                        peer.seat.kick.cancel();
                        kicked.push(*id);
                    }
                }
                // The session ended; `remove_departed` takes it out next tick.
                Err(PushError::Closed) => {}
            }
        }
        for id in &kicked {
            self.peers.remove(id);
        }
        self.metrics.outbound_queued.set(queued as i64);
        self.metrics.outbound_queue_max.set(deepest as i64);
        kicked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::InputValues;

    #[test]
    fn input_slot_keeps_only_the_latest_input() {
        let slot = InputSlot::default();
        let input = |seq, values: &[i32]| Input {
            seq,
            values: InputValues::new(values),
        };
        assert_eq!(slot.take(), None);
        assert!(!slot.put(input(1, &[-127, 5])));
        assert!(slot.put(input(u32::MAX, &[127, -1])));
        assert_eq!(slot.take(), Some(input(u32::MAX, &[127, -1])));
        assert_eq!(slot.take(), None);
    }
}
