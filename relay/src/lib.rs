//! tickcast-relay: a network between a client and a server, on loopback.
//!
//! Over loopback every round trip is free, so the differences between ways of following a
//! match (a long-poll must ask again after every answer; a stream only pays the one-way delay)
//! do not show. This relay puts a path with a cost between them: a TCP proxy on `127.0.0.1:0`
//! that forwards to a loopback target and delays each direction by a one-way delay with jitter,
//! optionally capping its bandwidth, and counts what it carried. It can also misbehave on
//! demand ([`Relay::cut`], [`Relay::stall`], [`Relay::blackhole`]), as phones' networks do.
//!
//! # Module map
//! - [`link`]: the delay model of one direction, as arithmetic (no I/O, no clock): when a chunk
//!   read at a given time may be written out, in order.
//! - `pipe`: one direction of one connection: read, stamp, queue (bounded in bytes), write on
//!   time (waiting out a stall), forward the end of the stream.
//! - `faults`: the faults in force: a cut of the connections open now, a stall, a blackhole
//!   for new connections.
//! - this file: the relay itself: the accept loop with its connection cap, the two pipes of each
//!   connection, the counters, and stopping.
//!
//! # A connection, step by step
//! 1. Wait for a free connection slot ([`RelayConfig::max_connections`]), then accept.
//! 2. Connect to the target (loopback only, checked at start); Nagle off on both sockets, so
//!    the relay never holds bytes back for coalescing.
//! 3. Run two pipes, client to target ("up") and target to client ("down"), each with its own
//!    [`link::Link`]: a chunk is released at `max(read time + delay ± jitter, previous release)`,
//!    so jitter never reorders bytes.
//! 4. When one side ends its stream, the end is forwarded after the bytes before it; when both
//!    have, or either fails, or the relay stops, both sockets are closed.
//!
//! At 0 ms (no delay, no jitter, no cap) a chunk is written as soon as it is read, without a
//! timer: the relay costs two loopback hops and a task wake, tens of microseconds.
#![warn(missing_docs)]

mod faults;
pub mod link;
mod pipe;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::faults::Faults;
use crate::link::Link;
pub use crate::link::Shape;
use crate::pipe::{Carried, pipe};

/// Connections at once, by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Bytes held per direction of a connection, by default: far more than a spectator event or a
/// tick's frames in flight, far less than memory worth worrying about at the connection cap.
pub const DEFAULT_MAX_BUFFERED: usize = 256 * 1024;
/// Pause after a failed `accept` (out of descriptors, say), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What a relay forwards, and how.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where connections are forwarded; must be a loopback address.
    pub target: SocketAddr,
    /// Delay, jitter and bandwidth, the same in both directions.
    pub shape: Shape,
    /// Connections relayed at once. Bound: when all slots are taken the relay stops accepting,
    /// and new connections wait in the listener's backlog until one closes.
    pub max_connections: usize,
    /// Bytes held per direction of a connection, between reading and writing. Bound: past it
    /// the relay stops reading that direction, so its sender is slowed by TCP flow control.
    pub max_buffered: usize,
    /// Seed of the jitter; each direction of each connection draws from its own stream.
    pub seed: u64,
}

impl RelayConfig {
    /// A relay to `target` with a fixed one-way `delay`, no jitter, no bandwidth cap and the
    /// default bounds.
    pub fn new(target: SocketAddr, delay: Duration) -> Self {
        Self {
            target,
            shape: Shape {
                delay,
                jitter: Duration::ZERO,
                bandwidth: None,
            },
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_buffered: DEFAULT_MAX_BUFFERED,
            seed: 1,
        }
    }
}

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The target is not on this machine's loopback.
    #[error("relay target {0} is not a loopback address")]
    NotLoopback(SocketAddr),
    /// A bound of zero would relay nothing.
    #[error("relay bounds must be at least 1 (max_connections {0}, max_buffered {1})")]
    ZeroBound(usize, usize),
    /// Binding 127.0.0.1:0 failed.
    #[error("relay bind: {0}")]
    Bind(#[source] io::Error),
}

/// What a relay has carried so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relayed {
    /// Connections accepted.
    pub connections: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections closed because the target could not be reached.
    pub failed: u64,
    /// Client to target.
    pub up: Flow,
    /// Target to client.
    pub down: Flow,
    /// The most bytes any one direction of any connection held at once.
    pub peak_buffered: u64,
}

/// What one direction carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flow {
    /// Bytes written out.
    pub bytes: u64,
    /// Chunks written out (one per read).
    pub chunks: u64,
}

/// A running relay. It stops when the token given to [`Relay::start`] is cancelled, or on
/// [`Relay::stop`].
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    counters: Arc<Counters>,
    faults: Arc<Faults>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Relay {
    /// Binds `127.0.0.1:0` and starts relaying to `config.target`.
    pub async fn start(config: RelayConfig, stop: CancellationToken) -> Result<Self, RelayError> {
        if !config.target.ip().is_loopback() {
            return Err(RelayError::NotLoopback(config.target));
        }
        if config.max_connections == 0 || config.max_buffered == 0 {
            return Err(RelayError::ZeroBound(config.max_connections, config.max_buffered));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(RelayError::Bind)?;
        let addr = listener.local_addr().map_err(RelayError::Bind)?;
        let relay = Self {
            addr,
            counters: Arc::default(),
            faults: Arc::default(),
            stop: stop.child_token(),
            tasks: TaskTracker::new(),
        };
        relay.tasks.spawn(accept_loop(
            listener,
            config,
            Shared {
                counters: relay.counters.clone(),
                faults: relay.faults.clone(),
            },
            relay.stop.clone(),
            relay.tasks.clone(),
        ));
        Ok(relay)
    }

    /// Cuts every connection open now, both ways, without a FIN: each end is left holding a
    /// half-open connection (until the relay stops). Later connections are relayed as usual.
    pub fn cut(&self) {
        self.faults.cut();
    }

    /// Writes nothing either way for `how_long`; then everything held flows again, in order.
    pub fn stall(&self, how_long: Duration) {
        self.faults.stall_until(tokio::time::Instant::now() + how_long);
    }

    /// Holds the connections accepted in the next `how_long` silent (never connected to the
    /// target) until the relay stops.
    pub fn blackhole(&self, how_long: Duration) {
        self.faults.blackhole_until(tokio::time::Instant::now() + how_long);
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it has carried so far.
    pub fn relayed(&self) -> Relayed {
        let c = &self.counters;
        let flow = |f: &Carried| Flow {
            bytes: f.bytes.load(Relaxed),
            chunks: f.chunks.load(Relaxed),
        };
        Relayed {
            connections: c.connections.load(Relaxed),
            open: c.open.load(Relaxed),
            failed: c.failed.load(Relaxed),
            up: flow(&c.up),
            down: flow(&c.down),
            peak_buffered: c.peak_buffered.load(Relaxed),
        }
    }

    /// Closes the listener and every connection, waits for their tasks, and returns the totals.
    pub async fn stop(self) -> Relayed {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.relayed()
    }
}

impl fmt::Display for Relayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connections ({} open, {} failed), up {} B in {} chunks, down {} B in {} chunks, peak {} B held",
            self.connections,
            self.open,
            self.failed,
            self.up.bytes,
            self.up.chunks,
            self.down.bytes,
            self.down.chunks,
            self.peak_buffered
        )
    }
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    open: AtomicU64,
    failed: AtomicU64,
    up: Carried,
    down: Carried,
    peak_buffered: AtomicU64,
}

/// What every connection of a relay shares.
#[derive(Clone)]
struct Shared {
    counters: Arc<Counters>,
    faults: Arc<Faults>,
}

async fn accept_loop(
    listener: TcpListener,
    config: RelayConfig,
    shared: Shared,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let counters = &shared.counters;
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let config = Arc::new(config);
    loop {
        // The slot is taken before accepting: at the cap, connections wait in the backlog.
        let slot = tokio::select! {
            () = stop.cancelled() => return,
            // The semaphore is never closed.
            slot = slots.clone().acquire_owned() => match slot { Ok(slot) => slot, Err(_) => return },
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (client, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::debug!(%err, "relay accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let n = counters.connections.fetch_add(1, Relaxed);
        let (config, shared, stop) = (config.clone(), shared.clone(), stop.clone());
        let blackholed = shared.faults.blackholed();
        let cut = shared.faults.cut_token();
        tasks.spawn(async move {
            let counters = &shared.counters;
            counters.open.fetch_add(1, Relaxed);
            if blackholed {
                // Held, silent, until the relay stops.
                let _held = client;
                stop.cancelled().await;
            } else {
                relay_one(client, &config, n, &shared, &cut, &stop).await;
            }
            counters.open.fetch_sub(1, Relaxed);
            tracing::trace!(%peer, "relayed connection closed");
            drop(slot);
        });
    }
}

/// Relays one accepted connection until both directions have ended, either fails, or the
/// relay stops; after a cut, holds both sockets silent until the relay stops.
async fn relay_one(
    mut client: TcpStream,
    config: &RelayConfig,
    n: u64,
    shared: &Shared,
    cut: &CancellationToken,
    stop: &CancellationToken,
) {
    let (counters, faults) = (&*shared.counters, &*shared.faults);
    let connected = tokio::select! {
        () = stop.cancelled() => return,
        connected = TcpStream::connect(config.target) => connected,
    };
    let mut target = match connected {
        Ok(target) => target,
        Err(err) => {
            counters.failed.fetch_add(1, Relaxed);
            tracing::debug!(%err, target = %config.target, "relay cannot reach its target");
            return;
        }
    };
    // Chunks go out as they fall due; Nagle would hold small ones back for coalescing.
    if client.set_nodelay(true).is_err() || target.set_nodelay(true).is_err() {
        return;
    }
    let (client_read, client_write) = client.split();
    let (target_read, target_write) = target.split();
    let seed = config.seed.wrapping_add(n.wrapping_mul(2));
    let up = pipe(
        client_read,
        target_write,
        Link::new(config.shape, seed),
        config.max_buffered,
        &counters.up,
        &counters.peak_buffered,
        faults,
    );
    let down = pipe(
        target_read,
        client_write,
        Link::new(config.shape, seed.wrapping_add(1)),
        config.max_buffered,
        &counters.down,
        &counters.peak_buffered,
        faults,
    );
    let was_cut = tokio::select! {
        () = stop.cancelled() => false,
        relayed = async { tokio::try_join!(up, down) } => {
            if let Err(err) = relayed {
                tracing::trace!(%err, "relayed connection failed");
            }
            false
        }
        () = cut.cancelled() => true,
    };
    // The pipes are gone; the sockets, still open, say nothing more until the relay stops.
    if was_cut {
        stop.cancelled().await;
    }
}
