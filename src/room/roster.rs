//! Who is connected and how to reach them: each player's input slot (in), outbound queue (out)
//! and where it stands with the frames it was sent. The tick loop owns one [`Roster`].
//!
//! The fan-out lives here because its overflow policy is about the queue: when a player's
//! queue is full, this tick's delta is dropped and the player is marked behind; once the queue
//! has room again it gets a keyframe, never a delta against a base it does not hold. Events are
//! never dropped: those of a dropped tick are owed, and follow the keyframe (up to
//! [`MAX_OWED`] bytes). A player whose queue stays full for the slow timeout is kicked ("too
//! slow") and leaves the world.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::protocol::delta::NetWorld;
use crate::protocol::frames;
use crate::protocol::{EntityId, Input, Message, Options, Schema, Text};
use crate::room::extras::Extras;
use crate::room::outbox::{self, Outlet, PushError};
use crate::room::places::Place;
use crate::room::views::ViewFrames;

/// Players written between two yields of a big room's fan-out: a fraction of a millisecond of
/// writes, so a worker busy with a big room still answers pings between chunks, and enough
/// writes per chunk not to pay for the yields (the sizes tried are in BENCHMARKS.md, "Fan-out
/// at the machine's floor", the chunk size).
pub const FAN_OUT_CHUNK: usize = 16;
const _: () = assert!(FAN_OUT_CHUNK <= outbox::WARM_MAX, "a chunk is warmed whole");

/// The most bytes of events a player that fell behind may be owed; past them it is too slow.
pub const MAX_OWED: usize = 256 << 10;

/// The most messages a player may have waiting for the next tick (its session's rate limits
/// keep it far below; past it the session closes the player).
pub const MAX_WAITING_MESSAGES: usize = 256;

/// What a player said since the last tick, written by its session and taken by the tick loop:
/// its latest input, and its messages in order.
///
/// "The latest input received before a tick is the one applied": a slot that keeps only the
/// latest is exactly that rule, needs no queue, and cannot grow however fast a client sends.
/// Messages are never merged or dropped; the session's per-kind rates bound them. A std
/// Mutex: its two users each hold it for a copy, never across an await.
#[derive(Debug, Default)]
pub struct InputSlot(Mutex<Said>);

#[derive(Debug, Default)]
struct Said {
    input: Option<Input>,
    messages: Vec<Message>,
}

impl InputSlot {
    /// Stores an input; returns whether it replaced one that no tick had taken.
    pub fn put(&self, input: Input) -> bool {
        self.lock().input.replace(input).is_some()
    }

    /// Takes the stored input, if any.
    pub fn take(&self) -> Option<Input> {
        self.lock().input.take()
    }

    /// Queues a message for the next tick; `false` (and nothing queued) if
    /// [`MAX_WAITING_MESSAGES`] wait already.
    pub fn say(&self, message: Message) -> bool {
        let mut said = self.lock();
        if said.messages.len() >= MAX_WAITING_MESSAGES {
            return false;
        }
        said.messages.push(message);
        true
    }

    /// Drops the stored input and the messages waiting (a new match starts without them).
    pub fn clear(&self) {
        let mut said = self.lock();
        said.input = None;
        said.messages.clear();
    }

    /// Takes the stored input, and the messages waiting (in order) into `messages` (which
    /// must be empty: its allocation is swapped in, so no tick allocates for them), under one
    /// lock.
    fn take_all(&self, messages: &mut Vec<Message>) -> Option<Input> {
        let mut said = self.lock();
        if !said.messages.is_empty() {
            std::mem::swap(messages, &mut said.messages);
        }
        said.input.take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Said> {
        // Nothing panics while holding it (a copy in or out).
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a player said, as the tick loop takes it.
#[derive(Debug, Clone, Copy)]
pub enum Turn<'a> {
    /// A message.
    Message(&'a Message),
    /// Its latest input.
    Input(&'a Input),
}

/// Who a player joined as: what it is joined again with when a new match starts.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Its name.
    pub name: Text,
    /// Its join options.
    pub options: Options,
}

/// A joined player's link to the tick loop, handed over by its session: where its inputs come
/// in and its frames go out.
#[derive(Debug)]
pub struct Link {
    /// Where the session writes the player's latest move.
    pub input: Arc<InputSlot>,
    /// Frames for this player, bounded by `--player-queue` (see the module docs for the
    /// overflow policy); and the way to tell its session it is too slow to keep.
    pub out: Outlet,
    /// Its place among the room's players (none in unit tests and benches).
    pub place: Option<Place>,
}

/// A player the fan-out found gone or too slow, taken out of the roster.
#[derive(Debug)]
pub struct Departed {
    /// Its entity.
    pub id: EntityId,
    /// Whether its connection dropped (rather than its player saying goodbye, or breaking a
    /// rule): the room keeps its seat for a while.
    pub dropped: bool,
    /// Its link (its place with it).
    pub link: Link,
    /// Who it joined as.
    pub joined: Joined,
    /// The `seq` of its last move applied.
    pub ack: u32,
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
    link: Link,
    joined: Joined,
    /// Events of ticks whose frame was dropped, owed after the next keyframe.
    owed: Vec<Bytes>,
    owed_bytes: usize,
    /// The `seq` of the last move applied.
    ack: u32,
    /// The last ack queued to the player.
    ack_sent: u32,
    sync: Sync,
    /// When its queue was first found full, if it still is.
    full_since: Option<Instant>,
}

/// The keyframe of `world`, framed.
pub fn keyframe(world: &NetWorld, schema: &Schema) -> Bytes {
    frames::binary_frame(world.encode_snapshot(schema))
}

/// What one tick's fan-out did, over one roster or the parts of a split one.
#[derive(Debug, Default)]
pub struct FanOut {
    /// The tick's keyframe, encoded once, if anyone needs it.
    pub keyframe: Option<Bytes>,
    /// What follows the frame for each player.
    pub extras: Arc<Extras>,
    /// In a room with views, each player's own frame (the shared delta and keyframe are then
    /// not used).
    pub views: Option<Arc<ViewFrames>>,
    /// Players to take out: kicked for being too slow (their seat kept), or whose session
    /// has ended (kept if it dropped).
    gone: Vec<(EntityId, bool)>,
    queued: usize,
    deepest: usize,
    messages: u64,
    bytes: u64,
}

impl FanOut {
    /// A fan-out sending `keyframe` to those who need one, and `extras` after the frames.
    pub fn with(keyframe: Option<Bytes>, extras: Arc<Extras>) -> Self {
        Self {
            keyframe,
            extras,
            ..Self::default()
        }
    }

    /// Adds what a part's fan-out did.
    pub fn merge(&mut self, part: FanOut) {
        self.gone.extend(part.gone);
        self.queued += part.queued;
        self.deepest = self.deepest.max(part.deepest);
        self.messages += part.messages;
        self.bytes += part.bytes;
    }
}

/// The connected players.
#[derive(Debug)]
pub struct Roster {
    /// Sorted by id (the fan-out's order). A `Vec` of boxes, not a map: a big room's fan-out
    /// moves its players into parts and back every tick ([`Roster::split`]), and this makes
    /// that a copy of 16 bytes a player (a `BTreeMap`'s `append` rebuilt the tree and moved
    /// every `Peer`: a tenth of a player-tick's instructions at 500 players).
    peers: Vec<(EntityId, Box<Peer>)>,
    slow_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Roster {
    /// An empty roster that kicks players whose queue stays full for `slow_timeout`.
    pub fn new(slow_timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            peers: Vec::new(),
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

    /// Adds player `id`, joined as `joined`; its first frame after any already queued will be a
    /// keyframe.
    pub fn insert(&mut self, id: EntityId, link: Link, joined: Joined) {
        self.insert_resumed(id, link, joined, 0);
    }

    /// Adds player `id` back, with its last move applied `ack` (sent with its keyframe).
    pub fn insert_resumed(&mut self, id: EntityId, link: Link, joined: Joined, ack: u32) {
        let peer = Box::new(Peer {
            link,
            joined,
            owed: Vec::new(),
            owed_bytes: 0,
            ack,
            ack_sent: 0,
            sync: Sync::Joining,
            full_since: None,
        });
        match self.find(id) {
            Ok(at) => self.peers[at].1 = peer,
            Err(at) => self.peers.insert(at, (id, peer)),
        }
    }

    /// Gives connected player `id` a new link (its player came back on a new connection while
    /// the old one still looked open): it starts again from a keyframe, the place the old link held
    /// moves to the new one, and the old link is returned.
    pub fn replace_link(&mut self, id: EntityId, mut link: Link) -> Option<Link> {
        let at = self.find(id).ok()?;
        let peer = &mut self.peers[at].1;
        link.place = peer.link.place.take();
        peer.owed.clear();
        peer.owed_bytes = 0;
        peer.ack_sent = 0;
        peer.sync = Sync::Joining;
        peer.full_since = None;
        Some(std::mem::replace(&mut peer.link, link))
    }

    /// Player `id`'s link, if it is in the roster.
    pub fn link(&self, id: EntityId) -> Option<&Link> {
        let at = self.find(id).ok()?;
        Some(&self.peers[at].1.link)
    }

    /// Takes what each player said: its messages, in order, then its latest input, if any
    /// (recording its `seq` as the player's ack).
    pub fn take_turns(&mut self, mut turn: impl FnMut(EntityId, Turn<'_>)) {
        let mut messages = Vec::new();
        for (id, peer) in &mut self.peers {
            let latest = peer.link.input.take_all(&mut messages);
            for m in messages.drain(..) {
                turn(*id, Turn::Message(&m));
            }
            if let Some(latest) = latest {
                peer.ack = latest.seq;
                turn(*id, Turn::Input(&latest));
            }
        }
    }

    /// Every player's id, in order.
    pub fn ids(&self) -> impl Iterator<Item = EntityId> + '_ {
        self.peers.iter().map(|(id, _)| *id)
    }

    /// The ids of players owed a keyframe this tick (joining, or behind).
    pub fn keyframed(&self) -> impl Iterator<Item = EntityId> + '_ {
        self.peers
            .iter()
            .filter(|(_, p)| p.sync != Sync::Synced)
            .map(|(id, _)| *id)
    }

    /// Takes every player out, with who it joined as (a new match joins them again).
    pub fn drain(&mut self) -> Vec<(Link, Joined)> {
        std::mem::take(&mut self.peers)
            .into_iter()
            .map(|(_, p)| (p.link, p.joined))
            .collect()
    }

    /// Sends each player that fell behind the events it is owed now, whatever its queue (the
    /// match ends: no keyframe of it will come to carry them).
    pub fn pay_owed(&mut self) {
        for (_, peer) in &mut self.peers {
            for events in peer.owed.drain(..) {
                if peer.link.out.send_own(&events).is_ok() {
                    self.metrics.websocket.sent(events.len());
                }
            }
            peer.owed_bytes = 0;
        }
    }

    /// Sends `frame` (not a tick's: the end of a match) to every player, whatever its queue.
    pub fn send_own(&self, frame: &Bytes) {
        for (_, peer) in &self.peers {
            if peer.link.out.send_own(frame).is_ok() {
                self.metrics.websocket.sent(frame.len());
            }
        }
    }

    /// Whether every player's queue is empty (what was queued for them is written).
    pub fn drained(&self) -> bool {
        self.peers.iter().all(|(_, p)| p.link.out.is_empty())
    }

    /// Sends this tick's frame to every player: `delta` (a framed [`ServerMsg::Delta`]), or a
    /// keyframe of `world` for those joining or behind. Every player gets the same bytes,
    /// written straight to its socket (or queued: see [`crate::room::outbox`]). Returns the
    /// players kicked for being too slow or found gone (already removed).
    pub fn fan_out(
        &mut self,
        delta: &Bytes,
        world: &NetWorld,
        schema: &Schema,
        extras: Arc<Extras>,
        now: Instant,
    ) -> Vec<Departed> {
        let mut pass = FanOut::with(None, extras);
        if self.needs_keyframe() {
            pass.keyframe = Some(keyframe(world, schema));
        }
        self.fan_out_pass(&mut pass, delta, now);
        self.finish(pass)
    }

    /// Whether some player is owed a keyframe this tick (it joined, or fell behind).
    pub fn needs_keyframe(&self) -> bool {
        self.peers.iter().any(|(_, p)| p.sync != Sync::Synced)
    }

    /// Moves the players into `parts` rosters of about equal size (in id order), to fan out
    /// in parallel; [`Roster::rejoin`] takes them back.
    pub fn split(&mut self, parts: usize) -> Vec<Roster> {
        let per_part = self.peers.len().div_ceil(parts.max(1)).max(1);
        // From the back, so that each player is moved once; this roster keeps its allocation.
        let mut out: Vec<Roster> = (0..self.peers.len())
            .step_by(per_part)
            .rev()
            .map(|start| Roster {
                peers: self.peers.split_off(start),
                slow_timeout: self.slow_timeout,
                metrics: self.metrics.clone(),
            })
            .collect();
        out.reverse();
        out
    }

    /// Takes back a part made by [`Roster::split`]; the parts are taken back in the order they
    /// were made.
    pub fn rejoin(&mut self, mut part: Roster) {
        debug_assert!(
            self.peers
                .last()
                .zip(part.peers.first())
                .is_none_or(|(last, first)| last.0 < first.0),
            "parts rejoined out of order"
        );
        self.peers.append(&mut part.peers);
    }

    /// Sends this tick's frame to every player of this roster, as [`Roster::fan_out`] does, with
    /// the keyframe (if anyone needs one) in `pass` already; what it did is added to `pass`.
    pub fn fan_out_pass(&mut self, pass: &mut FanOut, delta: &Bytes, now: Instant) {
        let mut from = 0;
        while let Some(next) = self.fan_out_chunk(pass, delta, now, from) {
            from = next;
        }
    }

    /// [`Roster::fan_out_pass`], yielding to the runtime after every [`FAN_OUT_CHUNK`] players:
    /// a worker thread busy with a big room's writes still answers pings and reads inputs
    /// every millisecond or so, instead of once the whole room is written.
    pub async fn fan_out_yielding(&mut self, pass: &mut FanOut, delta: &Bytes, now: Instant) {
        let mut from = 0;
        while let Some(next) = self.fan_out_chunk(pass, delta, now, from) {
            from = next;
            tokio::task::yield_now().await;
        }
    }

    /// The fan-out to the [`FAN_OUT_CHUNK`] players from the `from`th, in id order, the way to
    /// each one's socket read for all of them first ([`outbox::warm`]). Returns where the next
    /// chunk starts if any players are left. (The roster cannot change between chunks: the
    /// passes hold it borrowed.)
    fn fan_out_chunk(&mut self, pass: &mut FanOut, delta: &Bytes, now: Instant, from: usize) -> Option<usize> {
        let views = pass.views.clone();
        let end = self.peers.len().min(from + FAN_OUT_CHUNK);
        let chunk = self.peers.get_mut(from..end).unwrap_or_default();
        outbox::warm(chunk.iter().map(|(_, p)| &p.link.out));
        for (id, peer) in chunk {
            let frame = match (&views, peer.sync, &pass.keyframe) {
                (Some(views), sync, _) => match views.frame(*id, sync != Sync::Synced) {
                    Some(frame) => frame,
                    // Joined after the views were made: its frame comes next tick.
                    None => continue,
                },
                (None, Sync::Synced, _) => delta,
                (None, Sync::Joining | Sync::Behind, Some(keyframe)) => keyframe,
                // `needs_keyframe` said no one did: unreachable, and harmless (next tick).
                (None, Sync::Joining | Sync::Behind, None) => continue,
            };
            let ack = (peer.ack != peer.ack_sent).then_some(peer.ack);
            let keyed = peer.sync != Sync::Synced;
            let after = if pass.extras.is_empty() && peer.owed.is_empty() {
                None
            } else {
                pass.extras.after(*id, keyed, &peer.owed)
            };
            let frame_len = frame.len() + after.as_ref().map_or(0, Bytes::len);
            let pushed = peer.link.out.push_with(ack, frame, after.as_ref());
            let depth = match pushed {
                Ok(waiting) => waiting,
                Err(PushError::Full) => peer.link.out.capacity(),
                Err(PushError::Closed) => 0,
            };
            pass.queued += depth;
            pass.deepest = pass.deepest.max(depth);
            match pushed {
                Ok(_) => {
                    let ack_len = ack.map_or(0, frames::ack_frame_len);
                    pass.messages += 1 + u64::from(ack.is_some());
                    pass.bytes += (ack_len + frame_len) as u64;
                    peer.ack_sent = peer.ack;
                    if peer.sync == Sync::Behind {
                        self.metrics.resync_keyframes.inc();
                    }
                    peer.sync = Sync::Synced;
                    peer.full_since = None;
                    peer.owed.clear();
                    peer.owed_bytes = 0;
                }
                Err(PushError::Full) => {
                    if peer.sync == Sync::Synced {
                        self.metrics.deltas_dropped.inc();
                        peer.sync = Sync::Behind;
                    }
                    if let Some(events) = pass.extras.events_for(*id) {
                        peer.owed_bytes += events.len();
                        peer.owed.push(events.clone());
                    }
                    let since = *peer.full_since.get_or_insert(now);
                    if now.duration_since(since) >= self.slow_timeout || peer.owed_bytes > MAX_OWED {
                        // A connection that takes nothing is most often one the network
                        // dropped: the seat is kept for the player to come back to.
                        peer.link.out.kick();
                        pass.gone.push((*id, true));
                    }
                }
                // The session ended: found here, where its queue's lock is taken anyway, and
                // not by a walk of its own over every player each tick.
                Err(PushError::Closed) => pass.gone.push((*id, peer.link.out.keeps_seat())),
            }
        }
        (end < self.peers.len()).then_some(end)
    }

    /// Ends a fan-out: removes the players it kicked or found departed (and returns them, to
    /// leave the world or be kept away), and records what it sent.
    pub fn finish(&mut self, pass: FanOut) -> Vec<Departed> {
        self.metrics.websocket.sent_many(pass.messages, pass.bytes);
        self.metrics.outbound_queued.set(pass.queued as i64);
        self.metrics.outbound_queue_max.set(pass.deepest as i64);
        if pass.gone.is_empty() {
            return Vec::new();
        }
        // In id order (the fan-out found them in that order already), to take them out in one
        // walk however many went at once (a network blip can drop a whole room).
        let mut gone = pass.gone;
        gone.sort_by_key(|&(id, _)| id);
        let mut gone = gone.into_iter().peekable();
        let mut departed = Vec::with_capacity(gone.len());
        let kept = Vec::with_capacity(self.peers.capacity());
        let peers = std::mem::replace(&mut self.peers, kept);
        for (id, peer) in peers {
            while gone.next_if(|&(g, _)| g < id).is_some() {}
            match gone.next_if(|&(g, _)| g == id) {
                Some((_, dropped)) => departed.push(Departed {
                    id,
                    dropped,
                    link: peer.link,
                    joined: peer.joined,
                    ack: peer.ack,
                }),
                None => self.peers.push((id, peer)),
            }
        }
        departed
    }

    /// Where player `id` is in the roster, or where it would go.
    fn find(&self, id: EntityId) -> Result<usize, usize> {
        self.peers.binary_search_by_key(&id, |(id, _)| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::InputValues;

    #[tokio::test]
    async fn a_fan_out_over_many_chunks_writes_every_socket_once_a_tick() {
        use tokio::io::AsyncReadExt;
        let mut roster = Roster::new(Duration::from_secs(1), Arc::new(Metrics::new()));
        let mut peers = Vec::new();
        for id in 0..2 * FAN_OUT_CHUNK as u32 + 3 {
            let (socket, read, peer) = outbox::loopback_pair().await;
            let (out, inbox) = outbox::outbox(4, Some(socket));
            roster.insert(id, link(out), joined());
            peers.push((peer, read, inbox));
        }
        let (keyframe, delta) = (Bytes::from_static(&[0x82, 1, 7]), Bytes::from_static(&[0x82, 2, 8, 9]));
        let now = Instant::now();
        // Everyone joined: the keyframe, then the delta.
        let mut pass = FanOut::with(Some(keyframe), Arc::default());
        roster.fan_out_pass(&mut pass, &delta, now);
        assert!(roster.finish(pass).is_empty());
        let mut pass = FanOut::default();
        roster.fan_out_pass(&mut pass, &delta, now);
        assert!(roster.finish(pass).is_empty());
        for (mut peer, _read, mut inbox) in peers {
            assert!(inbox.try_next().is_none(), "written straight to the socket");
            let mut got = [0; 7];
            let read = tokio::time::timeout(Duration::from_secs(5), peer.read_exact(&mut got));
            read.await.expect("a player was not written").unwrap();
            assert_eq!(got, [0x82, 1, 7, 0x82, 2, 8, 9]);
            let more = peer.try_read(&mut [0; 1]);
            assert!(
                matches!(&more, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
                "{more:?}"
            );
        }
    }

    #[test]
    fn players_joined_in_any_order_are_split_in_id_order_and_the_departed_leave_from_any_part() {
        let mut roster = Roster::new(Duration::from_secs(1), Arc::new(Metrics::new()));
        let mut inboxes = Vec::new();
        for id in [7, 3, 11, 1, 9, 5, 2] {
            let (out, inbox) = outbox::outbox(4, None);
            roster.insert(id, link(out), joined());
            inboxes.push(inbox);
        }
        assert_eq!(roster.ids().collect::<Vec<_>>(), [1, 2, 3, 5, 7, 9, 11]);
        let parts = roster.split(3);
        let ids = |r: &Roster| r.ids().collect::<Vec<_>>();
        assert_eq!(
            parts.iter().map(ids).collect::<Vec<_>>(),
            [&[1, 2, 3][..], &[5, 7, 9], &[11]]
        );
        for part in parts {
            roster.rejoin(part);
        }
        assert_eq!(ids(&roster), [1, 2, 3, 5, 7, 9, 11]);
        let pass = FanOut {
            gone: vec![(2, true), (9, false), (4, true)],
            ..FanOut::default()
        };
        let departed = roster.finish(pass);
        let left: Vec<_> = departed.iter().map(|d| (d.id, d.dropped)).collect();
        assert_eq!(left, [(2, true), (9, false)], "4 was not in the roster");
        assert_eq!(ids(&roster), [1, 3, 5, 7, 11]);
        assert!(roster.link(9).is_none() && roster.link(7).is_some());
    }

    /// A player's link with a fresh input slot and no place.
    fn link(out: Outlet) -> Link {
        Link {
            input: Arc::new(InputSlot::default()),
            out,
            place: None,
        }
    }

    fn joined() -> Joined {
        Joined {
            name: Text::empty(),
            options: Options::none(),
        }
    }

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
