//! How a room ends, and what its players are told: the close code and reason of each ending
//! (PROTOCOL.md, "Connection lifecycle and close codes"); and the close code of a join the
//! game refused.

/// The close code of a join the game refused; the reason is the game's.
pub const REFUSED: u16 = 4000;

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
