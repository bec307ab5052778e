//! How a room ends, and what its players are told: the close code and reason of each ending
//! (PROTOCOL.md, "Connection lifecycle and close codes"); and the close code of a join the
//! game refused.

/// The close code of a join the game refused; the reason is the game's.
pub const REFUSED: u16 = 4000;

/// The close code of a resume token the room does not take: another room's, expired, already
/// used, or a room that keeps no seats. The reason says which.
pub const RESUME_REFUSED: u16 = 4001;

/// The close code of a connection whose seat a resumed connection took over (the old socket
/// of a player that came back while it still looked open).
pub const REPLACED: u16 = 4002;

use prometheus_client::encoding::EncodeLabelValue;

/// Why a room ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum Ended {
    /// Closed through the API.
    Closed,
    /// Nobody played in it for `--room-idle`.
    Idle,
    /// Its tick loop panicked.
    Crashed,
    /// The server is shutting down.
    Shutdown,
    /// Its match ended, and its settings say the room closes then.
    MatchOver,
}

impl Ended {
    /// The close code and reason its players get.
    pub fn close(self) -> (u16, &'static str) {
        match self {
            Ended::Closed => (1001, "room closed"),
            Ended::Idle => (1001, "room closed: idle"),
            Ended::Crashed => (1011, "room crashed"),
            Ended::Shutdown => (1001, "server shutting down"),
            Ended::MatchOver => (1000, "match over"),
        }
    }
}
