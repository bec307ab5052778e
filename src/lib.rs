//! tickcast: an authoritative fixed-tick multiplayer game-state server.
//!
//! One task owns the world and advances it at a fixed rate. Players connect over WebSocket,
//! send binary move commands and receive a state delta every tick; they probe latency with
//! ping/pong, answered by their own connection task without waiting for a tick.
//!
//! # Module map
//! - [`sim`]: the game rules, pure (no I/O, no clock, seeded randomness).
//! - [`protocol`]: every wire message and the one bincode encoding (see PROTOCOL.md).
//! - [`delta`]: the quantized world as the wire sees it; diffs and their application.
//! - `tick`: the tick loop that owns the world.
//! - [`outbox`]: a player's bounded queue of outbound frames.
//! - [`roster`]: the connected players: input slots in, bounded frame queues out, the fan-out
//!   and its overflow policy.
//! - `session`: one player's connection, from hello to close.
//! - `frames`: reading a player's WebSocket frames (RFC 6455, server side), every one counted.
//! - `socket`: the player WebSocket: frames read by `frames`, frames framed once written as is.
//! - `feed`: the spectator feed (events encoded once, a resume ring, cached snapshots).
//! - `spectators`: SSE, long-poll, polling and the spectator page.
//! - [`server`]: HTTP routes, startup and shutdown.
//! - [`http`]: the accept loop and its limits (connections, request heads, slow peers).
//! - [`metrics`]: Prometheus metrics.
//! - [`config`]: command-line settings.
//! - [`origin`]: which web origins may open player sockets.
//! - [`auth`]: join tokens (HMAC-SHA256 over name and expiry).
//! - [`limits`]: the per-player input rate limit.
//! - [`client`]: a player client for Rust programs (tests, client-demo, benches).
//!
//! # The tick, step by step
//! 1. Admit players whose hello was accepted (each is queued a welcome).
//! 2. Remove players whose connection ended.
//! 3. Take each player's latest move command (older ones in the same tick are superseded).
//! 4. Step the simulation by `1 / tick_hz` seconds.
//! 5. Quantize, diff against the previous tick and encode the shared delta body once.
//! 6. Queue each player its delta with its own input ack, or a keyframe if it is new or fell
//!    behind; a player whose queue stays full is closed as too slow.
//! 7. Every `tick_hz / spectator_hz` ticks, publish one spectator event: the diff since the
//!    previous event, encoded once for every spectator.
#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod config;
pub mod delta;
mod feed;
mod frames;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod origin;
pub mod outbox;
pub mod protocol;
pub mod roster;
pub mod server;
mod session;
pub mod sim;
mod socket;
mod spectators;
mod tick;

pub use config::Config;
pub use server::Server;
