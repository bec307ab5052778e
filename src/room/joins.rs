//! Joins on their way to a room's tick loop: each session hands its player's request here, and
//! the tick loop admits the requests at its next tick (a paused room wakes for the first).

use tokio::sync::oneshot;

use crate::game::Refusal;
use crate::protocol::{EntityId, Options, Text};
use crate::room::roster::Link;
use crate::room::seats::Secret;

/// What a session hands the tick loop to join the game, or to take a seat back.
pub(crate) struct JoinRequest {
    /// The name from the player's hello.
    pub(crate) name: Text,
    /// The options from its hello, checked against the schema.
    pub(crate) options: Options,
    /// The secret of the seat to take back (from the hello's resume token); `None` to join.
    pub(crate) resume: Option<Secret>,
    /// The player's way in and out, with its place (a resume has none: its seat keeps one).
    pub(crate) link: Link,
    /// The player's entity id, or why it was not let in.
    pub(crate) reply: oneshot::Sender<Result<EntityId, NotIn>>,
}

/// Why a join or a resume was not let in.
#[derive(Debug)]
pub(crate) enum NotIn {
    /// The game refused the join (close 4000).
    Refused(Refusal),
    /// No seat is kept for the resume token's secret: expired, already used, or never given
    /// (close 4001).
    NoSeat,
}

/// Joins waiting for a room's next tick. Each holds one of the room's places (taken before it
/// is queued), so there are never more than the room's `max_players`; an empty room's queue
/// allocates nothing.
#[derive(Default)]
pub(crate) struct Joins {
    // A std Mutex: a push or a swap, never held across an await.
    waiting: std::sync::Mutex<Vec<JoinRequest>>,
    pub(super) arrived: tokio::sync::Notify,
}

impl Joins {
    /// Queues `join` for the room's next tick (a paused room wakes for it).
    pub(crate) fn push(&self, join: JoinRequest) {
        self.lock().push(join);
        self.arrived.notify_one();
    }

    /// Every join waiting, oldest first.
    pub(super) fn take(&self) -> Vec<JoinRequest> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<JoinRequest>> {
        // Nothing panics while holding it (a push, a swap).
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for Joins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joins").field("waiting", &self.lock().len()).finish()
    }
}
