//! A player's outbound path: the tick loop writes each tick's frame straight to the player's
//! socket ([`Outlet`]); only what the socket does not take at once waits, in a bounded queue,
//! for the player's session to write ([`Inbox`]).
//!
//! A player who keeps up costs one non-blocking `send` per tick, from the tick loop (a
//! `sendmsg` with its ack when it has one), and nothing allocated: no queue entry, no wake-up
//! of its session, no poll. This is the one place a room touches a socket (ARCHITECTURE.md
//! names the exception): waking every player's task to write would cost more than the write.
//! When the socket would block, or the session is already writing a backlog, the frame is queued
//! and the session woken once; it drains the queue with ordinary async writes (the slow path,
//! with the write timeout) and hands the socket back to the direct path when the queue is
//! empty. Frames never interleave: a direct write happens only when nothing is queued and the
//! session is not writing, under the queue's lock, and the rest of a frame a direct write
//! could not finish is queued first, as raw bytes.
//!
//! The session's own frames (pongs, heartbeat pings) take the same path ([`Inbox::send`]). The
//! queue holds at most `capacity` tick frames (the overflow policy is the fan-out's: see
//! [`crate::room::roster`]), at most one pong (RFC 6455 asks a pong for the most recent ping
//! only), and a heartbeat ping every few seconds; it allocates only for what it holds.
//!
//! Either end dropped closes the queue: the tick loop sees a departed session, the session
//! sees a tick loop that has stopped.
//!
//! The queue is also the session's one doorbell from the room: a frame for it to write, a
//! kick (too slow) or the room's end all wake it through here ([`Inbox::next`]), one lock
//! and one stored waker, so a session woken by its player's input polls nothing else of the
//! room's.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

use crate::protocol::frames::{self, ACK_FRAME_MAX};

/// One tick's output for one player, written in one write: an ack if the player's last
/// applied move changed since the last one it was sent, then the tick's frame (the same bytes
/// for every player), then what follows it for this player alone (its private fields and
/// events), if anything.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The new ack, if it changed.
    pub ack: Option<u32>,
    /// A WebSocket frame carrying an encoded [`crate::protocol::ServerMsg`] (the tick's delta,
    /// a keyframe or the welcome), framed once for every player; or, for the rest of a frame
    /// a direct write could not finish, its remaining bytes.
    pub frame: Bytes,
    /// Frames that follow the tick's frame (whole WebSocket frames).
    pub after: Option<Bytes>,
}

/// What the session is to do next ([`Inbox::next`]).
#[derive(Debug)]
pub enum Next {
    /// Write this frame (the socket's async write, with the write timeout), then ask again.
    Frame(Outbound),
    /// The tick loop found the player too slow and dropped it: close.
    Kicked,
    /// The tick loop has stopped (the room is ending, or crashed): close. What was queued is
    /// not owed: a closing room sends no more ticks.
    RoomGone,
    /// The room let the player go: close with this code and reason (4000, the game refused it
    /// at the start of a new match; 4002, a resumed connection took its seat over).
    Refused(u16, String),
}

/// What a queued entry is, for the bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A tick's frame (or the rest of one): counted against the capacity.
    Tick,
    /// A frame of the session's own (a heartbeat ping).
    Own,
    /// The answer to the most recent ping: at most one queued.
    Pong,
}

#[derive(Debug)]
struct Queued {
    out: Outbound,
    kind: Kind,
    /// The rest of a frame a direct write began: it must be finished before any other frame.
    started: bool,
}

/// Room kept when a drained queue gives its backlog's memory back.
const KEEP: usize = 4;

/// Creates the outbound path of a player whose socket `socket` writes to, queueing at most
/// `capacity` tick frames. Without a socket (unit tests) everything is queued for the session.
pub fn outbox(capacity: usize, socket: Option<Arc<OwnedWriteHalf>>) -> (Outlet, Inbox) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            ticks: 0,
            closed: false,
            room_gone: false,
            kicked: false,
            refused: None,
            keep_seat: false,
            busy: false,
            waker: None,
        }),
        capacity,
        socket,
    });
    (Outlet(shared.clone()), Inbox(shared))
}

/// Why a frame was not written or queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The queue holds `capacity` tick frames.
    #[error("queue full")]
    Full,
    /// The session has ended (or is closing).
    #[error("queue closed")]
    Closed,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    capacity: usize,
    socket: Option<Arc<OwnedWriteHalf>>,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Queued>,
    /// Tick frames in `queue`.
    ticks: usize,
    /// The session's end is gone, or closing: nothing more is taken.
    closed: bool,
    /// The tick loop's end is gone.
    room_gone: bool,
    /// The tick loop found the player too slow.
    kicked: bool,
    /// The room let the player go, with this close code and reason.
    refused: Option<(u16, String)>,
    /// The session ended with the network (a drop, not a goodbye): the room keeps the seat.
    keep_seat: bool,
    /// The session took a frame and may be writing it: no direct write until it finds the
    /// queue empty.
    busy: bool,
    /// The session's task, waiting for the queue to get something while it is not writing,
    /// or for the tick loop to kick it or go.
    waker: Option<Waker>,
}

impl State {
    /// What the session is to do next; `None` once the queue is empty (the socket is then
    /// the direct path's again).
    fn next(&mut self) -> Option<Next> {
        if self.kicked {
            return Some(Next::Kicked);
        }
        if self.refused.is_some() || self.room_gone {
            // A closing room owes no more ticks, but its own frames still go out first: a
            // match's end and results, the events owed before them.
            while let Some(Queued { out, kind, .. }) = self.queue.pop_front() {
                match kind {
                    Kind::Tick => self.ticks -= 1,
                    Kind::Pong => {}
                    Kind::Own => return Some(Next::Frame(out)),
                }
            }
            if let Some((code, reason)) = self.refused.take() {
                return Some(Next::Refused(code, reason));
            }
            return Some(Next::RoomGone);
        }
        let Some(Queued { out, kind, .. }) = self.queue.pop_front() else {
            // Everything taken is written: the direct path may write again.
            self.busy = false;
            return None;
        };
        self.busy = true;
        if kind == Kind::Tick {
            self.ticks -= 1;
        }
        if self.queue.is_empty() && self.queue.capacity() > KEEP {
            self.queue.shrink_to(KEEP);
        }
        Some(Next::Frame(out))
    }

    /// Stores the waker of the task to wake (the session's: it is the only one that waits).
    fn wait(&mut self, cx: &Context<'_>) {
        if !self.waker.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
            self.waker = Some(cx.waker().clone());
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock (queue operations, flags and a non-blocking
        // write), so a poisoned lock still holds a consistent state.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lets go of the lock, then wakes the session if it waits.
    fn wake(mut state: MutexGuard<'_, State>) {
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Writes `ack`, `frame` and `after` now if the socket is ours to write and takes them, else
    /// queues them (or what is left of them). Returns how many tick frames were waiting before.
    /// The frame is shared by every player: it is cloned (a reference count touched by every
    /// writer of the room) only to be queued.
    fn send(&self, ack: Option<u32>, frame: &Bytes, after: Option<&Bytes>, kind: Kind) -> Result<usize, PushError> {
        let mut state = self.lock();
        if state.closed {
            return Err(PushError::Closed);
        }
        let waiting = state.ticks;
        if kind == Kind::Tick && waiting >= self.capacity {
            return Err(PushError::Full);
        }
        let idle = !state.busy && state.queue.is_empty();
        let out = || Outbound {
            ack,
            frame: frame.clone(),
            after: after.cloned(),
        };
        if let (true, Some(socket)) = (idle, &self.socket) {
            match write_now(socket, ack, frame, after) {
                Written::All => return Ok(waiting),
                Written::Nothing => enqueue(&mut state, vec![out()], kind, false),
                Written::Partly(rest) => enqueue(&mut state, rest, kind, true),
            }
        } else if let Some(queued) = (kind == Kind::Pong)
            .then(|| state.queue.iter_mut().find(|q| q.kind == Kind::Pong && !q.started))
            .flatten()
        {
            // One pong, for the most recent ping.
            queued.out = out();
        } else {
            enqueue(&mut state, vec![out()], kind, false);
        }
        if idle {
            // The session is not writing: it must be told. (When it is, it finds the frame
            // before it lets go of the socket.)
            Self::wake(state);
        }
        Ok(waiting)
    }

    fn close(&self, room_side: bool) {
        let mut state = self.lock();
        if room_side {
            state.room_gone = true;
        } else {
            state.closed = true;
        }
        Self::wake(state);
    }
}

/// Queues `parts` in order; the first is `started` if a direct write began it (what is left of
/// one output is queued as several parts, written back to back). A tick's output counts once,
/// on its first part. No allocation but the queue's own (and the parts').
fn enqueue(state: &mut State, parts: Vec<Outbound>, kind: Kind, started: bool) {
    if kind == Kind::Tick {
        state.ticks += 1;
    }
    for (i, out) in parts.into_iter().enumerate() {
        state.queue.push_back(Queued {
            out,
            kind: if i == 0 { kind } else { Kind::Own },
            started: started && i == 0,
        });
    }
}

/// How much of an output one non-blocking write took.
enum Written {
    /// All of it.
    All,
    /// Nothing (the socket would block, or failed: the session's write will wait, or meet
    /// the error).
    Nothing,
    /// Part: the rest to queue, in order, as raw bytes.
    Partly(Vec<Outbound>),
}

/// One non-blocking write of an ack (if any), a frame and what follows it, together.
fn write_now(socket: &OwnedWriteHalf, ack: Option<u32>, frame: &Bytes, after: Option<&Bytes>) -> Written {
    let mut ack_frame = [0u8; ACK_FRAME_MAX];
    let ack_len = ack.map_or(0, |seq| frames::ack_frame(seq, &mut ack_frame));
    let empty = Bytes::new();
    let after = after.unwrap_or(&empty);
    let slices = [
        IoSlice::new(&ack_frame[..ack_len]),
        IoSlice::new(frame),
        IoSlice::new(after),
    ];
    let written = send_now(socket, &slices).unwrap_or(0);
    let total = ack_len + frame.len() + after.len();
    match written {
        0 => Written::Nothing,
        n if n == total => Written::All,
        mut n => {
            // Only now is the ack copied out of this stack frame, for what is left of it.
            let ack = Bytes::copy_from_slice(&ack_frame[..ack_len]);
            let mut rest = Vec::with_capacity(3);
            for part in [&ack, frame, after] {
                if n >= part.len() {
                    n -= part.len();
                    continue;
                }
                rest.push(Outbound {
                    ack: None,
                    frame: part.slice(n..),
                    after: None,
                });
                n = 0;
            }
            Written::Partly(rest)
        }
    }
}

/// The tick loop's end.
#[derive(Debug)]
pub struct Outlet(Arc<Shared>);

/// The most outlets [`warm`] takes at once.
pub const WARM_MAX: usize = 16;

/// Reads what writing to each of `outlets` (the first [`WARM_MAX`]) is about to read, so that
/// the writes find it in the cache: the queue's lock and the pointer to the write half, the
/// pointer in the write half to the socket, and the socket's descriptor. Each pass reads one
/// link of the chain for every player, so its loads do not wait on one another and the CPU
/// overlaps their cache misses; the writes would meet them one at a time, each miss behind the
/// last player's lock and system call. Changes nothing.
pub fn warm<'a>(outlets: impl IntoIterator<Item = &'a Outlet>) {
    let mut halves: [Option<&OwnedWriteHalf>; WARM_MAX] = [None; WARM_MAX];
    for (half, outlet) in halves.iter_mut().zip(outlets) {
        std::hint::black_box(outlet.0.state.is_poisoned());
        *half = outlet.0.socket.as_deref();
    }
    let mut streams: [Option<&TcpStream>; WARM_MAX] = [None; WARM_MAX];
    for (stream, half) in streams.iter_mut().zip(halves) {
        *stream = half.map(AsRef::as_ref);
    }
    for stream in streams.into_iter().flatten() {
        // The descriptor, as the write reads it.
        std::hint::black_box(socket2::SockRef::from(stream));
    }
}

impl Outlet {
    /// Writes `ack` (if the player's last applied move changed) and `frame` (framed once for
    /// every player: see [`Outbound`]) to the player's socket now, or queues them; refuses them
    /// if `capacity` tick frames are already queued, or the session has ended. Returns how
    /// many tick frames were already waiting (one lock for the fan-out's write and its
    /// queue-depth gauge).
    pub fn push(&self, ack: Option<u32>, frame: &Bytes) -> Result<usize, PushError> {
        self.0.send(ack, frame, None, Kind::Tick)
    }

    /// [`Outlet::push`], with `after` (whole frames for this player alone) following the frame.
    pub fn push_with(&self, ack: Option<u32>, frame: &Bytes, after: Option<&Bytes>) -> Result<usize, PushError> {
        self.0.send(ack, frame, after, Kind::Tick)
    }

    /// Sends a frame of the room's own that is not a tick's (a welcome, the end of a match, the
    /// events a player was owed then): never refused for a full queue (a few such frames a
    /// match at most), only once the session has ended.
    pub fn send_own(&self, frame: &Bytes) -> Result<(), PushError> {
        self.0.send(None, frame, None, Kind::Own).map(|_| ())
    }

    /// Tells the session the room lets its player go, with this close code and reason: it
    /// closes ([`Next::Refused`]).
    pub fn refuse(&self, code: u16, reason: &str) {
        let mut state = self.0.lock();
        state.refused = Some((code, reason.to_owned()));
        Shared::wake(state);
    }

    /// Whether the session ended with its connection dropping (not a goodbye): the room keeps
    /// the player's seat for it.
    pub fn keeps_seat(&self) -> bool {
        let state = self.0.lock();
        state.closed && state.keep_seat
    }

    /// The most tick frames it queues.
    pub fn capacity(&self) -> usize {
        self.0.capacity
    }

    /// Tick frames queued and not yet written.
    pub fn len(&self) -> usize {
        self.0.lock().ticks
    }

    /// Whether no tick frame is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.0.lock().closed
    }

    /// Tells the session its player is too slow to keep: it closes ([`Next::Kicked`]).
    pub fn kick(&self) {
        let mut state = self.0.lock();
        state.kicked = true;
        Shared::wake(state);
    }
}

impl Drop for Outlet {
    fn drop(&mut self) {
        self.0.close(true);
    }
}

/// The session's end: what waits to be written, and its own frames' way out.
#[derive(Debug)]
pub struct Inbox(Arc<Shared>);

impl Inbox {
    /// What to do next: write a queued frame, or close (kicked, or the room gone). Waits
    /// while there is nothing. Taking a frame holds the socket for the session until a call
    /// finds the queue empty, so call it again once the frame is written. Cancel-safe: a frame
    /// is only taken when this returns it.
    pub async fn next(&mut self) -> Next {
        self.until(State::next).await
    }

    /// What to do next, if anything, without waiting.
    pub fn try_next(&mut self) -> Option<Next> {
        self.0.lock().next()
    }

    /// The next queued frame, if any (tests: anything else than a frame is a failure).
    #[cfg(test)]
    pub fn try_frame(&mut self) -> Option<Outbound> {
        match self.try_next()? {
            Next::Frame(out) => Some(out),
            other => panic!("expected a frame, not {other:?}"),
        }
    }

    /// Whether the tick loop kicked the player.
    #[cfg(test)]
    pub fn is_kicked(&self) -> bool {
        self.0.lock().kicked
    }

    /// Waits until the tick loop kicks the player (for a session stuck writing a backlog).
    pub async fn kicked(&self) {
        self.until(|state| state.kicked.then_some(())).await
    }

    /// Waits until `ready` finds what it looks for in the state (under the lock), storing the
    /// session's waker each time it does not.
    async fn until<T>(&self, mut ready: impl FnMut(&mut State) -> Option<T>) -> T {
        poll_fn(|cx| {
            let mut state = self.0.lock();
            match ready(&mut state) {
                Some(found) => Poll::Ready(found),
                None => {
                    state.wait(cx);
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Sends a frame of the session's own (a heartbeat ping): now, or after what is queued.
    pub fn send(&self, frame: Bytes) {
        // Never full, and after the session closed nothing more is sent.
        let _ = self.0.send(None, &frame, None, Kind::Own);
    }

    /// Sends the pong for the most recent ping, replacing one that is queued and not started.
    pub fn send_pong(&self, frame: Bytes) {
        let _ = self.0.send(None, &frame, None, Kind::Pong);
    }

    /// Stops the tick loop's writes (the session is closing) and returns what must still be
    /// written before a close frame: the rest of a frame a direct write started, if any.
    /// Frames not yet started are dropped: a closing player is owed none of them. With
    /// `keep_seat`, the connection dropped (the player did not say goodbye): the room keeps
    /// its seat for a while.
    pub fn close(&mut self, keep_seat: bool) -> Option<Bytes> {
        let mut state = self.0.lock();
        state.closed = true;
        state.keep_seat = keep_seat;
        let rest = state.queue.front().filter(|q| q.started).map(|q| q.out.frame.clone());
        state.queue.clear();
        state.ticks = 0;
        rest
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.0.close(false);
    }
}

/// A loopback pair for tests: our end's write half (as the server holds it), its read half,
/// and the peer's stream.
#[cfg(test)]
pub(crate) async fn loopback_pair() -> (
    Arc<OwnedWriteHalf>,
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::TcpStream,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (ours, _) = listener.accept().await.unwrap();
    // Writable once the reactor has seen it.
    ours.writable().await.unwrap();
    let (read, write) = ours.into_split();
    (Arc::new(write), read, peer)
}

/// Writes `slices` to `socket` now or not at all (`WouldBlock`), in one `send` (a single slice
/// with bytes) or one `sendmsg`. Not `writev`, whose way in through the file layer costs about
/// twice `send`'s (BENCHMARKS.md, "Fan-out at the machine's floor").
pub(crate) fn send(stream: &TcpStream, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    let socket = socket2::SockRef::from(stream);
    let mut filled = slices.iter().filter(|slice| !slice.is_empty());
    match (filled.next(), filled.next()) {
        (None, _) => Ok(0),
        (Some(only), None) => socket.send(only),
        (Some(_), Some(_)) => socket.send_vectored(slices),
    }
}

/// The tick's write to a player's socket (the one place a room touches a socket: ARCHITECTURE.md):
/// [`send`] without asking the runtime first whether the socket is writable, where the
/// answer is nearly always yes, and asking costs a cache miss per player on the readiness
/// word the reactor writes at each of that player's inputs. A `WouldBlock` here leaves the
/// runtime's readiness as it was; the session's next write meets the full socket again,
/// clears it and waits for room as usual.
fn send_now(socket: &OwnedWriteHalf, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    send(socket.as_ref(), slices)
}

#[cfg(test)]
mod tests;
