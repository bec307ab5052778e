//! A player's bounded queue of outbound frames: the tick loop pushes at one end
//! ([`Outlet`]), the player's session takes from the other ([`Inbox`]).
//!
//! Not a tokio `mpsc` channel: that allocates its slots 32 at a time, up front, which is
//! 1.3 KiB per player whatever the queue holds, and the queue of a player who keeps up is
//! empty almost always. This one holds a `VecDeque` that allocates for what is queued and
//! gives back a backlog's room once it drains. The overflow policy is the fan-out's (see
//! [`crate::room::roster`]); the queue only refuses when full.
//!
//! Either end dropped closes the queue: the tick loop sees a departed session, the session
//! sees a tick loop that has stopped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

/// One tick's output for one player, written in one flush: an ack if the player's last
/// applied move changed since the last one it was sent, then the tick's frame (the same bytes
/// for every player).
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The new ack, if it changed.
    pub ack: Option<u32>,
    /// A WebSocket frame carrying an encoded [`ServerMsg`] (the tick's delta, a keyframe or
    /// the welcome), framed once for every player.
    pub frame: Bytes,
}

/// Room kept when a drained queue gives its backlog's memory back.
const KEEP: usize = 4;

/// Creates a queue of at most `capacity` frames.
pub fn outbox(capacity: usize) -> (Outlet, Inbox) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            frames: VecDeque::new(),
            closed: false,
        }),
        ready: Notify::new(),
        capacity,
    });
    (Outlet(shared.clone()), Inbox(shared))
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The queue holds `capacity` frames.
    #[error("queue full")]
    Full,
    /// The session has ended.
    #[error("queue closed")]
    Closed,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// Woken on every push and on close; holds a permit if the session was not waiting.
    ready: Notify,
    capacity: usize,
}

#[derive(Debug)]
struct Queue {
    frames: VecDeque<Outbound>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock (pushes, pops and a flag), so a poisoned lock
        // still holds a consistent queue.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }
}

/// The tick loop's end.
#[derive(Debug)]
pub struct Outlet(Arc<Shared>);

impl Outlet {
    /// Queues `frame` unless the queue is full or closed; returns how many frames were
    /// already waiting (one lock for the fan-out's push and its queue-depth gauge).
    pub fn push(&self, frame: Outbound) -> Result<usize, PushError> {
        let mut queue = self.0.lock();
        if queue.closed {
            return Err(PushError::Closed);
        }
        if queue.frames.len() >= self.0.capacity {
            return Err(PushError::Full);
        }
        let waiting = queue.frames.len();
        queue.frames.push_back(frame);
        drop(queue);
        self.0.ready.notify_one();
        Ok(waiting)
    }

    /// The most frames it holds.
    pub fn capacity(&self) -> usize {
        self.0.capacity
    }

    /// Frames queued and not yet taken.
    pub fn len(&self) -> usize {
        self.0.lock().frames.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.0.lock().closed
    }
}

impl Drop for Outlet {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The session's end.
#[derive(Debug)]
pub struct Inbox(Arc<Shared>);

impl Inbox {
    /// The next frame; `None` once the tick loop's end is gone. Cancel-safe: a frame is only
    /// taken when this returns it.
    pub async fn recv(&mut self) -> Option<Outbound> {
        loop {
            if let Some(next) = self.try_recv() {
                return next;
            }
            self.0.ready.notified().await;
        }
    }

    /// The next frame if one is queued (`Some(None)` once closed), without waiting.
    pub fn try_recv(&mut self) -> Option<Option<Outbound>> {
        let mut queue = self.0.lock();
        match queue.frames.pop_front() {
            Some(frame) => {
                if queue.frames.is_empty() && queue.frames.capacity() > KEEP {
                    queue.frames.shrink_to(KEEP);
                }
                Some(Some(frame))
            }
            None if queue.closed => Some(None),
            None => None,
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8) -> Outbound {
        Outbound {
            ack: None,
            frame: Bytes::from(vec![n]),
        }
    }

    #[test]
    fn refuses_past_capacity_and_keeps_order() {
        let (out, mut inbox) = outbox(2);
        assert_eq!(out.push(frame(1)), Ok(0));
        assert_eq!(out.push(frame(2)), Ok(1));
        assert_eq!(out.push(frame(3)), Err(PushError::Full));
        assert_eq!(out.len(), 2);
        assert_eq!(inbox.try_recv().unwrap().unwrap().frame[0], 1);
        assert_eq!(out.push(frame(4)), Ok(1));
        assert_eq!(inbox.try_recv().unwrap().unwrap().frame[0], 2);
        assert_eq!(inbox.try_recv().unwrap().unwrap().frame[0], 4);
        assert!(inbox.try_recv().is_none());
        assert!(out.is_empty());
    }

    #[test]
    fn a_drained_backlog_gives_its_room_back() {
        let (out, mut inbox) = outbox(64);
        for n in 0..64 {
            out.push(frame(n)).unwrap();
        }
        while let Some(Some(_)) = inbox.try_recv() {}
        assert!(inbox.0.lock().frames.capacity() <= KEEP);
    }

    #[test]
    fn either_end_dropped_closes_it() {
        let (out, inbox) = outbox(2);
        drop(inbox);
        assert!(out.is_closed());
        assert_eq!(out.push(frame(1)), Err(PushError::Closed));

        let (out, mut inbox) = outbox(2);
        out.push(frame(1)).unwrap();
        drop(out);
        assert!(
            matches!(inbox.try_recv(), Some(Some(_))),
            "what was queued is still taken"
        );
        assert!(matches!(inbox.try_recv(), Some(None)));
    }

    #[tokio::test]
    async fn recv_waits_for_a_push_or_the_close() {
        let (out, mut inbox) = outbox(2);
        let waiter = tokio::spawn(async move {
            let first = inbox.recv().await.map(|f| f.frame[0]);
            let second = inbox.recv().await.map(|f| f.frame[0]);
            (first, second)
        });
        tokio::task::yield_now().await; // the waiter runs and waits
        out.push(frame(7)).unwrap();
        tokio::task::yield_now().await;
        drop(out);
        assert_eq!(waiter.await.unwrap(), (Some(7), None));
    }
}
