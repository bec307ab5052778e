//! Spectator places: an SSE stream or a waiting long-poll holds one until it ends.
//!
//! Three caps, so no one client and no one room can take every place: `--max-spectators` over
//! the server, `--max-spectators-per-room` (half of it by default) per room on this server,
//! and `--max-spectators-per-address` (50) per client address (an IPv6 /64 counts as one).
//! A spectator over one of them gets 503 with `Retry-After`, naming the cap.

use std::net::IpAddr;
use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::access::budgets::{AtOnce, Held, client_key};
use crate::config::Config;
use crate::feed::{Feed, SpectatorGuard};

/// Client addresses counted at once (more than there can be spectators).
const ADDRESSES: usize = 1 << 16;

/// The spectator places of a server.
#[derive(Debug)]
pub(crate) struct SpectatorPlaces {
    server: Arc<Semaphore>,
    max: usize,
    per_room: usize,
    per_address: u32,
    addresses: AtOnce,
}

/// A spectator's place, given back when dropped.
#[derive(Debug)]
pub(crate) struct SpectatorPlace {
    _server: OwnedSemaphorePermit,
    _address: Held,
    _room: SpectatorGuard,
}

/// Which cap refused a spectator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Full {
    /// `--max-spectators-per-address`.
    #[error("this address has its maximum of {0} spectators: try again shortly")]
    Address(u32),
    /// `--max-spectators-per-room`.
    #[error("this room has its maximum of {0} spectators here: try again shortly")]
    Room(usize),
    /// `--max-spectators`.
    #[error("the server has its maximum of {0} spectators: try again shortly")]
    Server(usize),
}

impl SpectatorPlaces {
    /// The places `config` allows.
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            server: Arc::new(Semaphore::new(config.max_spectators)),
            max: config.max_spectators,
            per_room: config.max_spectators_per_room(),
            per_address: config.max_spectators_per_address,
            addresses: AtOnce::new(ADDRESSES),
        }
    }

    /// A place for a spectator from `peer` of `feed`, counted in `gauge` while it lives.
    pub(crate) fn take(&self, peer: IpAddr, feed: &Arc<Feed>, gauge: &Gauge) -> Result<SpectatorPlace, Full> {
        let address = self
            .addresses
            .take(client_key(peer), self.per_address)
            .ok_or(Full::Address(self.per_address))?;
        let room = feed
            .spectator(self.per_room, gauge.clone())
            .ok_or(Full::Room(self.per_room))?;
        let server = self
            .server
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::Server(self.max))?;
        Ok(SpectatorPlace {
            _server: server,
            _address: address,
            _room: room,
        })
    }
}
