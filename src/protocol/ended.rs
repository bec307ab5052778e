//! How a room ends, and what its players are told: the close code and reason of each ending
//! (PROTOCOL.md, "Connection lifecycle and close codes").

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
}

impl Ended {
    /// The close code and reason its players get.
    pub fn close(self) -> (u16, &'static str) {
        match self {
            Ended::Closed => (1001, "room closed"),
            Ended::Idle => (1001, "room closed: idle"),
            Ended::Crashed => (1011, "room crashed"),
            Ended::Shutdown => (1001, "server shutting down"),
        }
    }
}
