//! Faults a relay can put on its network at any moment, for tests and the harness to see what
//! clients and the server do when the network misbehaves:
//!
//! - **cut**: every connection open now stops carrying anything, both ways, at once, and sends
//!   no FIN: both ends are left with a half-open connection, as when a phone leaves its Wi-Fi
//!   (the relay holds the sockets until it stops). Connections made later are relayed as usual.
//! - **stall** for a while: nothing is written either way until it ends (what arrives
//!   meanwhile waits, within each direction's bound), then everything flows again in order.
//! - **blackhole** new connections for a while: those accepted during it are held silent (never
//!   connected to the target) until the relay stops; connections already open are untouched.

use std::sync::Mutex;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The faults in force, shared by the relay's accept loop and its connections.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Cancelled by a cut; replaced by a fresh one for the connections that come after.
    cut: Mutex<CancellationToken>,
    /// Until when nothing is written.
    stalled_until: Mutex<Option<Instant>>,
    /// Until when new connections are held silent.
    blackhole_until: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding them (a copy in or out).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Faults {
    /// Cuts every connection open now.
    pub(crate) fn cut(&self) {
        std::mem::take(&mut *lock(&self.cut)).cancel();
    }

    /// What a connection opened now watches for its cut.
    pub(crate) fn cut_token(&self) -> CancellationToken {
        lock(&self.cut).clone()
    }

    /// Stalls every connection until `until` (a later stall extends it).
    pub(crate) fn stall_until(&self, until: Instant) {
        let mut stalled = lock(&self.stalled_until);
        *stalled = Some(stalled.map_or(until, |s| s.max(until)));
    }

    /// Until when writes wait, if they do now.
    pub(crate) fn stalled(&self) -> Option<Instant> {
        lock(&self.stalled_until).filter(|until| *until > Instant::now())
    }

    /// Holds new connections silent until `until`.
    pub(crate) fn blackhole_until(&self, until: Instant) {
        let mut holed = lock(&self.blackhole_until);
        *holed = Some(holed.map_or(until, |h| h.max(until)));
    }

    /// Whether a connection accepted now is held silent.
    pub(crate) fn blackholed(&self) -> bool {
        lock(&self.blackhole_until).is_some_and(|until| until > Instant::now())
    }
}
